-- Per local day (time zone :tz) of :days, over every tenant (tenant_id NULL) and per tenant that had
-- calls that day: the figures of daily_stats that come from call_metrics — signal counts, calls over
-- the latency budget, every bot reply's response latency of the day, and call_metrics' part of the
-- day's fingerprint. A call's tenant is the one kept with its metrics (call_metrics.tenant_id: the calls
-- row's when they were derived, migration 026), so no call is joined. The metrics of a call without a
-- tenant count only over every tenant; those of a call whose tenant was deleted since make a row that
-- ccanalytics.metrics drops (the calls side has no row for that tenant).
--
-- One scan groups the metrics per day and tenant; the rows over every tenant roll up from those
-- groups (sums, counts, the newest stamp, the replies' texts put together), so no per-call work is
-- repeated. The replies come as one comma-separated text of integer milliseconds per row (no row per
-- reply); ccanalytics.percentiles takes the exact p50/p95 of each row's own replies with
-- percentile_cont's interpolation. ccanalytics.metrics runs this with sorting disabled (see
-- daily_calls.sql). metrics_print changes when a call's metrics are derived again or removed; it must
-- stay the same expression as in daily_fingerprints.sql.
SELECT d, tenant_id,
       sum(stt_reasks)                                             AS stt_reasks,
       sum(long_pauses)                                            AS long_pauses,
       sum(barge_ins)                                              AS barge_ins,
       sum(tool_errors)                                            AS tool_errors,
       sum(calls_over_latency_budget)                              AS calls_over_latency_budget,
       concat_ws(':', sum(n), extract(epoch FROM max(computed_at))) AS metrics_print,
       string_agg(response_ms, ',')                                AS response_ms
FROM (
    -- the local day of the group's UTC bin (:bin; see daily_calls.sql): converted once per group
    SELECT (date_bin(CAST(:bin AS interval), m.started_at, TIMESTAMPTZ '2000-01-01 00:00+00') AT TIME ZONE :tz)::date AS d,
           m.tenant_id,
           sum(m.stt_reasks)                                                           AS stt_reasks,
           sum(m.long_pauses)                                                          AS long_pauses,
           sum(m.barge_ins)                                                            AS barge_ins,
           sum(m.tool_errors)                                                          AS tool_errors,
           count(*) FILTER (WHERE m.response_p95_ms > :response_budget_ms)             AS calls_over_latency_budget,
           count(*)                                                                    AS n,
           max(m.computed_at)                                                          AS computed_at,
           string_agg(array_to_string(m.response_ms, ','), ',') FILTER (WHERE cardinality(m.response_ms) > 0)
                                                                                       AS response_ms
    FROM call_metrics m
    WHERE m.started_at >= :start AND m.started_at < :end
    GROUP BY date_bin(CAST(:bin AS interval), m.started_at, TIMESTAMPTZ '2000-01-01 00:00+00'), 2
) x
WHERE d = ANY(CAST(:days AS date[]))
GROUP BY GROUPING SETS ((d), (d, tenant_id))
HAVING GROUPING(tenant_id) = 1 OR tenant_id IS NOT NULL
