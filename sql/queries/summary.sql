-- Summary of the calls that started in [:start, :end) of the tenants :tenants (slugs; NULL: every tenant): weighted rates (counts over counts, never
-- averages of daily averages). Hour-of-day uses the business time zone :tz. Latency and signal
-- figures come from call_metrics (derived by ccanalytics.callmetrics); first-contact resolution and
-- repeat callers look 7 days around each call.
WITH c AS (
    SELECT * FROM cca_calls c
    WHERE c.started_at >= :start AND c.started_at < :end
      AND (CAST(:tenants AS text[]) IS NULL OR c.tenant = ANY(CAST(:tenants AS text[])))
),
nb AS (
    SELECT * FROM cca_customer_neighbours(:start, :end)
)
SELECT
    count(*)                                                        AS total_calls,
    count(*) FILTER (WHERE NOT c.transferred_to_operator)           AS resolved_by_bot,
    count(*) FILTER (WHERE c.transferred_to_operator)               AS transferred,
    avg(c.duration_seconds)::float8                                 AS avg_duration_seconds,
    count(*) FILTER (WHERE c.order_id IS NOT NULL)                  AS orders_created,
    count(*) FILTER (WHERE c.fitting_booking_id IS NOT NULL)        AS fittings_booked,
    avg(c.quality_score)::float8                                    AS avg_quality_score,
    count(c.quality_score)                                          AS scored_calls,
    coalesce(sum(c.total_cost_usd), 0)::float8                      AS total_cost_usd,
    count(c.total_cost_usd)                                         AS costed_calls,
    count(c.total_cost_usd) FILTER (WHERE NOT c.transferred_to_operator) AS costed_resolved_calls,
    count(DISTINCT c.customer_id)                                   AS customers,
    count(*) FILTER (WHERE nb.prev_at >= c.started_at - make_interval(days => :fcr_days)) AS repeat_calls_7d,
    count(*) FILTER (WHERE NOT c.transferred_to_operator
                       AND (nb.next_at IS NULL OR nb.next_at > c.started_at + make_interval(days => :fcr_days)))
                                                                    AS first_contact_resolved,
    count(m.call_id)                                                AS derived_calls,
    coalesce(sum(m.stt_reasks), 0)::int                             AS stt_reasks,
    coalesce(sum(m.tool_errors), 0)::int                            AS tool_errors,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM c JOIN call_metrics m2 ON m2.call_id = c.id,
            unnest(m2.response_ms) x)                               AS response_p50_ms,
    (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY x) FROM c JOIN call_metrics m2 ON m2.call_id = c.id,
            unnest(m2.response_ms) x)                               AS response_p95_ms,
    (SELECT coalesce(jsonb_object_agg(reason, n), '{}'::jsonb) FROM (
        SELECT coalesce(transfer_reason, 'unknown') AS reason, count(*) AS n
        FROM c WHERE transferred_to_operator GROUP BY 1) r)         AS transfer_reasons,
    (SELECT coalesce(jsonb_object_agg(scenario, n), '{}'::jsonb) FROM (
        SELECT coalesce(scenario, 'unknown') AS scenario, count(*) AS n FROM c GROUP BY 1) s) AS scenarios,
    (SELECT coalesce(jsonb_object_agg(h, n), '{}'::jsonb) FROM (
        SELECT extract(hour FROM started_at AT TIME ZONE :tz)::int AS h, count(*) AS n
        FROM c GROUP BY 1) h)                                       AS hourly_distribution
FROM c
LEFT JOIN nb ON nb.id = c.id AND nb.started_at = c.started_at
LEFT JOIN call_metrics m ON m.call_id = c.id
