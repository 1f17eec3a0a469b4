-- Days whose first-contact resolution a new call can change: the local days (time zone :tz) of the
-- same customers' calls in the 7 days before each call ingested since :since on one of :changed
-- (days whose fingerprint moved: a new call of an unchanged day was accounted for already).
SELECT DISTINCT (p.started_at AT TIME ZONE :tz)::date AS d
FROM calls n
JOIN calls p ON p.customer_id = n.customer_id
            AND p.started_at >= n.started_at - make_interval(days => :fcr_days) AND p.started_at < n.started_at
WHERE n.ingested_at > :since AND n.customer_id IS NOT NULL
  AND (n.started_at AT TIME ZONE :tz)::date = ANY(CAST(:changed AS date[]))
