-- Per local day (time zone :tz) of :days: the figures of daily_stats that come from call_metrics
-- (which carries each call's started_at, so no join to the calls is needed): signal counts, calls
-- over the latency budget, and response latency p50/p95 over every bot reply of the day.
SELECT sums.*, lat.response_p50_ms, lat.response_p95_ms
FROM (
    SELECT (started_at AT TIME ZONE :tz)::date AS d, sum(stt_reasks) AS stt_reasks, sum(long_pauses) AS long_pauses,
           sum(barge_ins) AS barge_ins, sum(tool_errors) AS tool_errors,
           count(*) FILTER (WHERE response_p95_ms > :response_budget_ms) AS calls_over_latency_budget,
           count(*) AS derived_calls, max(computed_at) AS derived_at
    FROM call_metrics
    WHERE started_at >= :start AND started_at < :end
    GROUP BY 1
) sums
LEFT JOIN (
    SELECT (m.started_at AT TIME ZONE :tz)::date AS d,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY x)  AS response_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY x) AS response_p95_ms
    FROM call_metrics m CROSS JOIN LATERAL unnest(m.response_ms) AS x
    WHERE m.started_at >= :start AND m.started_at < :end
    GROUP BY 1
) lat USING (d)
WHERE sums.d = ANY(CAST(:days AS date[]))
