-- One fingerprint per local day (time zone :tz) of the calls that started in [:start, :end): it
-- changes when a call of that day is added, removed, re-delivered, scored, costed, or its derived
-- metrics are recomputed. ccanalytics.metrics recomputes only days whose fingerprint changed.
SELECT (c.started_at AT TIME ZONE :tz)::date AS d,
       md5(concat_ws(':', count(*), max(c.ingested_at), sum(c.quality_score), count(c.quality_score),
                     sum(c.total_cost_usd), count(c.total_cost_usd), max(m.computed_at),
                     sum(hashtextextended(c.id::text, 0)))) AS fingerprint
FROM calls c
LEFT JOIN call_metrics m ON m.call_id = c.id
WHERE c.started_at >= :start AND c.started_at < :end
GROUP BY 1
