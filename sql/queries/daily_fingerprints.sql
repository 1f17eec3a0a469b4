-- The two parts of the fingerprint of each local day (time zone :tz) of :days, over the calls and
-- the call_metrics that started in [:start, :end): calls_print (daily_calls.sql) changes when a call
-- of that day is added, removed, scored or costed; metrics_print (daily_latency.sql)
-- when the day's derived metrics are recomputed or removed. ccanalytics.metrics stores their hash
-- with the day's statistics and recomputes a day whose calls show recent changes only when it moved.
-- The expressions must stay the same as in those two queries, which compute the parts of a full run.
WITH c AS (
    SELECT (started_at AT TIME ZONE :tz)::date AS d,
           concat_ws(':', count(*),
                     bit_xor(uuid_hash_extended(id, hashfloat8extended(coalesce(quality_score, -1),
                                                                       hashfloat8extended(coalesce(total_cost_usd, -1), 0)))))
               AS calls_print
    FROM cca_calls
    WHERE started_at >= :start AND started_at < :end
    GROUP BY 1
),
m AS (
    SELECT (started_at AT TIME ZONE :tz)::date AS d,
           concat_ws(':', count(*), extract(epoch FROM max(computed_at))) AS metrics_print
    FROM call_metrics
    WHERE started_at >= :start AND started_at < :end
    GROUP BY 1
)
SELECT d, c.calls_print, m.metrics_print
FROM c FULL JOIN m USING (d)
WHERE d = ANY(CAST(:days AS date[]))
