-- Summary of the calls that started in [:start, :end): weighted rates (counts over counts, never
-- averages of daily averages). Hour-of-day uses the business time zone :tz.
WITH c AS (
    SELECT * FROM calls WHERE started_at >= :start AND started_at < :end
)
SELECT
    count(*)                                                        AS total_calls,
    count(*) FILTER (WHERE NOT transferred_to_operator)             AS resolved_by_bot,
    count(*) FILTER (WHERE transferred_to_operator)                 AS transferred,
    avg(duration_seconds)::float8                                   AS avg_duration_seconds,
    count(*) FILTER (WHERE order_id IS NOT NULL)                    AS orders_created,
    count(*) FILTER (WHERE fitting_booking_id IS NOT NULL)          AS fittings_booked,
    avg(quality_score)::float8                                      AS avg_quality_score,
    count(quality_score)                                            AS scored_calls,
    coalesce(sum(total_cost_usd), 0)::float8                        AS total_cost_usd,
    count(total_cost_usd)                                           AS costed_calls,
    count(DISTINCT customer_id)                                     AS customers,
    (SELECT coalesce(jsonb_object_agg(reason, n), '{}'::jsonb) FROM (
        SELECT coalesce(transfer_reason, 'unknown') AS reason, count(*) AS n
        FROM c WHERE transferred_to_operator GROUP BY 1) r)         AS transfer_reasons,
    (SELECT coalesce(jsonb_object_agg(scenario, n), '{}'::jsonb) FROM (
        SELECT coalesce(scenario, 'unknown') AS scenario, count(*) AS n FROM c GROUP BY 1) s) AS scenarios,
    (SELECT coalesce(jsonb_object_agg(h, n), '{}'::jsonb) FROM (
        SELECT extract(hour FROM started_at AT TIME ZONE :tz)::int AS h, count(*) AS n
        FROM c GROUP BY 1) h)                                       AS hourly_distribution
FROM c
