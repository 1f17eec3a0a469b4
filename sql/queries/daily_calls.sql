-- Per local day (time zone :tz) of :days, whose calls start in [:start, :end): the call-side figures
-- of daily_stats, in one scan of the calls with grouping sets for the day totals and the breakdowns
-- (scenario, transfer reason, hour). Weighted: counts over counts of the day's calls.
-- (Customers' repeat calls and first-contact resolution: daily_customers.sql.)
WITH c AS (
    SELECT c.started_at AT TIME ZONE :tz AS lt, c.customer_id, c.duration_seconds, c.scenario,
           c.transferred_to_operator, c.transfer_reason, c.order_id, c.fitting_booking_id, c.quality_score,
           c.total_cost_usd
    FROM calls c
    WHERE c.started_at >= :start AND c.started_at < :end
),
g AS (
    SELECT lt::date AS d,
           coalesce(scenario, 'unknown') AS scenario,
           CASE WHEN transferred_to_operator THEN coalesce(transfer_reason, 'unknown') END AS reason,
           extract(hour FROM lt)::int AS h,
           GROUPING(coalesce(scenario, 'unknown'),
                    CASE WHEN transferred_to_operator THEN coalesce(transfer_reason, 'unknown') END,
                    extract(hour FROM lt)::int) AS grp,
           count(*)                                                         AS n,
           count(*) FILTER (WHERE transferred_to_operator)                  AS transferred,
           sum(duration_seconds)::float8                                    AS sum_duration,
           count(duration_seconds)                                          AS n_duration,
           sum(quality_score)::float8                                       AS sum_quality,
           count(quality_score)                                             AS scored_calls,
           coalesce(sum(total_cost_usd), 0)::float8                         AS total_cost_usd,
           count(total_cost_usd)                                            AS costed_calls,
           count(order_id)                                                  AS orders_created,
           count(fitting_booking_id)                                        AS fittings_booked,
           count(*) FILTER (WHERE customer_id IS NULL AND NOT transferred_to_operator) AS fcr_anonymous
    FROM c
    GROUP BY GROUPING SETS (
        (lt::date),
        (lt::date, coalesce(scenario, 'unknown')),
        (lt::date, CASE WHEN transferred_to_operator THEN coalesce(transfer_reason, 'unknown') END),
        (lt::date, extract(hour FROM lt)::int))
),
days AS (
    SELECT g.d, g.n AS total_calls, g.n - g.transferred AS resolved_by_bot, g.transferred,
           g.sum_duration / nullif(g.n_duration, 0) AS avg_duration_seconds,
           g.sum_quality / nullif(g.scored_calls, 0) AS avg_quality_score, g.scored_calls,
           g.total_cost_usd, g.costed_calls, g.orders_created, g.fittings_booked, g.fcr_anonymous
    FROM g WHERE grp = 7
),
breakdowns AS (
    SELECT d,
           coalesce(jsonb_object_agg(scenario, n) FILTER (WHERE grp = 3), '{}')                 AS scenario_breakdown,
           coalesce(jsonb_object_agg(scenario, transferred) FILTER (WHERE grp = 3 AND transferred > 0), '{}')
                                                                                             AS scenario_transfers,
           coalesce(jsonb_object_agg(reason, n) FILTER (WHERE grp = 5 AND reason IS NOT NULL), '{}')
                                                                                             AS transfer_reasons,
           coalesce(jsonb_object_agg(h, n) FILTER (WHERE grp = 6), '{}')                        AS hourly_distribution
    FROM g WHERE grp <> 7
    GROUP BY d
)
SELECT days.*, b.scenario_breakdown, b.scenario_transfers, b.transfer_reasons, b.hourly_distribution
FROM days
JOIN breakdowns b USING (d)
WHERE days.d = ANY(CAST(:days AS date[]))
