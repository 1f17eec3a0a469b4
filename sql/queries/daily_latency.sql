-- Per local day (time zone :tz) of :days: the figures of daily_stats that come from call_metrics
-- (which carries each call's started_at, so no join to the calls is needed): signal counts, calls
-- over the latency budget, every bot reply's response latency of the day, and call_metrics' part of
-- the day's fingerprint.
--
-- The replies come as one comma-separated text of integer milliseconds per day (no row per reply);
-- ccanalytics.percentiles takes the exact p50/p95 from them with percentile_cont's interpolation.
-- ccanalytics.metrics runs this with sorting disabled (see daily_calls.sql): one hash group per day.
-- metrics_print changes when a call's metrics are derived again or removed; it must stay the same
-- expression as in daily_fingerprints.sql.
SELECT *
FROM (
    SELECT (started_at AT TIME ZONE :tz)::date                                         AS d,
           sum(stt_reasks)                                                             AS stt_reasks,
           sum(long_pauses)                                                            AS long_pauses,
           sum(barge_ins)                                                              AS barge_ins,
           sum(tool_errors)                                                            AS tool_errors,
           count(*) FILTER (WHERE response_p95_ms > :response_budget_ms)               AS calls_over_latency_budget,
           concat_ws(':', count(*), extract(epoch FROM max(computed_at)))              AS metrics_print,
           string_agg(array_to_string(response_ms, ','), ',') FILTER (WHERE cardinality(response_ms) > 0)
                                                                                       AS response_ms
    FROM call_metrics
    WHERE started_at >= :start AND started_at < :end
    GROUP BY 1
) x
WHERE d = ANY(CAST(:days AS date[]))
