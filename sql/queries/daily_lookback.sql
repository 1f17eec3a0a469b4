-- Days whose first-contact resolution a new call can change: the local days (time zone :tz) of the
-- same customer's calls in the 7 days before each call that arrived since :since on one of :changed
-- (days whose fingerprint moved: a new call of an unchanged day was accounted for already). A customer
-- is one tenant's (customers are unique per tenant and phone), so the lookback follows customer_id.
--
-- A call arrived since :since: delivered since (cca_call_ingest.ingested_at), or, for a call the call
-- processor wrote itself (no ingest row, no stamp of its own), derived since: every daily_stats run
-- derives the metrics of new calls first (call_metrics.computed_at). A re-derivation of an older call
-- brings its customer's days too, which costs a recomputation, never a wrong figure.
WITH n AS (
    SELECT i.call_id AS id, i.started_at FROM cca_call_ingest i WHERE i.ingested_at > :since
    UNION
    SELECT m.call_id, m.started_at FROM call_metrics m
    WHERE m.computed_at > :since AND NOT EXISTS (SELECT 1 FROM cca_call_ingest i WHERE i.call_id = m.call_id)
)
SELECT DISTINCT (p.started_at AT TIME ZONE :tz)::date AS d
FROM n
JOIN calls c ON c.id = n.id AND c.started_at = n.started_at
JOIN calls p ON p.customer_id = c.customer_id
            AND p.started_at >= c.started_at - make_interval(days => :fcr_days) AND p.started_at < c.started_at
WHERE c.customer_id IS NOT NULL
  -- from the first changed day's local midnight to the last one's end: a range of the index on
  -- started_at (and of the partitions to read), where the local day alone is a pass over every partition
  AND c.started_at >= (SELECT min(x) FROM unnest(CAST(:changed AS date[])) x)::timestamp AT TIME ZONE :tz
  AND c.started_at < (SELECT max(x) + 1 FROM unnest(CAST(:changed AS date[])) x)::timestamp AT TIME ZONE :tz
  AND (c.started_at AT TIME ZONE :tz)::date = ANY(CAST(:changed AS date[]))
