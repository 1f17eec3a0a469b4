-- One fingerprint per local day (time zone :tz) of :days, over the calls that started in
-- [:start, :end): it changes when a call of that day is added, removed, re-delivered, scored, costed,
-- or its derived metrics are recomputed. Stored with the day's statistics; ccanalytics.metrics
-- recomputes a day whose calls show recent changes only when its fingerprint moved.
-- Sums are numeric, not float: a float sum depends on the order of addition (parallel plans), and
-- the fingerprint must not change when the data did not.
SELECT (c.started_at AT TIME ZONE :tz)::date AS d,
       md5(concat_ws(':', count(*), max(c.ingested_at), sum(c.quality_score::numeric), count(c.quality_score),
                     sum(c.total_cost_usd::numeric), count(c.total_cost_usd), max(m.computed_at),
                     sum(hashtextextended(c.id::text, 0)))) AS fingerprint
FROM calls c
LEFT JOIN call_metrics m ON m.call_id = c.id
WHERE c.started_at >= :start AND c.started_at < :end
  AND (c.started_at AT TIME ZONE :tz)::date = ANY(CAST(:days AS date[]))
GROUP BY 1
