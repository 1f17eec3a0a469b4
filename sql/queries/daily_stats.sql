-- Compute daily_stats for the local days :days (an array of dates in time zone :tz), whose calls
-- start in [:start, :end). Weighted: every figure of a day is counts over counts of that day's calls.
-- Needs call_metrics to be derived first (ccanalytics.callmetrics). Every day of :days gets a row,
-- days without calls a row of zeros.
--
-- Repeat caller: the same customer called within the 7 days before. First-contact resolution: the
-- bot resolved the call (no transfer) and the customer did not call again within 7 days (so the
-- figure of the last 7 days is provisional; ccanalytics.metrics recomputes them as calls arrive).
WITH days AS (
    SELECT unnest(CAST(:days AS date[])) AS d
),
c AS (
    SELECT c.id, c.started_at, c.customer_id, c.duration_seconds, c.scenario, c.transferred_to_operator,
           c.transfer_reason, c.order_id, c.fitting_booking_id, c.quality_score, c.total_cost_usd,
           (c.started_at AT TIME ZONE :tz)::date AS d
    FROM calls c
    WHERE c.started_at >= :start AND c.started_at < :end
),
cd AS (
    SELECT c.* FROM c JOIN days USING (d)
),
nb AS (
    SELECT * FROM cca_customer_neighbours(:start, :end)
),
agg AS (
    SELECT cd.d,
           count(*)                                                         AS total_calls,
           count(*) FILTER (WHERE NOT cd.transferred_to_operator)           AS resolved_by_bot,
           count(*) FILTER (WHERE cd.transferred_to_operator)               AS transferred,
           avg(cd.duration_seconds)::float8                                 AS avg_duration_seconds,
           avg(cd.quality_score)::float8                                    AS avg_quality_score,
           count(cd.quality_score)                                          AS scored_calls,
           coalesce(sum(cd.total_cost_usd), 0)::float8                      AS total_cost_usd,
           count(cd.total_cost_usd)                                         AS costed_calls,
           count(*) FILTER (WHERE cd.order_id IS NOT NULL)                  AS orders_created,
           count(*) FILTER (WHERE cd.fitting_booking_id IS NOT NULL)        AS fittings_booked,
           count(DISTINCT cd.customer_id)                                   AS unique_callers,
           count(*) FILTER (WHERE nb.prev_at >= cd.started_at - interval '7 days') AS repeat_calls_7d,
           count(*) FILTER (WHERE NOT cd.transferred_to_operator
                              AND (nb.next_at IS NULL OR nb.next_at > cd.started_at + interval '7 days'))
                                                                            AS first_contact_resolved,
           coalesce(sum(m.stt_reasks), 0)                                   AS stt_reasks,
           coalesce(sum(m.long_pauses), 0)                                  AS long_pauses,
           coalesce(sum(m.barge_ins), 0)                                    AS barge_ins,
           coalesce(sum(m.tool_errors), 0)                                  AS tool_errors,
           count(*) FILTER (WHERE m.response_p95_ms > :response_budget_ms)  AS calls_over_latency_budget
    FROM cd
    LEFT JOIN nb ON nb.id = cd.id AND nb.started_at = cd.started_at
    LEFT JOIN call_metrics m ON m.call_id = cd.id
    GROUP BY cd.d
),
lat AS (
    SELECT cd.d,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY x)  AS response_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY x) AS response_p95_ms
    FROM cd
    JOIN call_metrics m ON m.call_id = cd.id
    CROSS JOIN LATERAL unnest(m.response_ms) AS x
    GROUP BY cd.d
),
scen AS (
    SELECT d, jsonb_object_agg(scenario, n) AS scenario_breakdown,
           jsonb_object_agg(scenario, t) FILTER (WHERE t > 0) AS scenario_transfers
    FROM (SELECT d, coalesce(scenario, 'unknown') AS scenario, count(*) AS n,
                 count(*) FILTER (WHERE transferred_to_operator) AS t
          FROM cd GROUP BY 1, 2) s
    GROUP BY d
),
reasons AS (
    SELECT d, jsonb_object_agg(reason, n) AS transfer_reasons
    FROM (SELECT d, coalesce(transfer_reason, 'unknown') AS reason, count(*) AS n
          FROM cd WHERE transferred_to_operator GROUP BY 1, 2) r
    GROUP BY d
),
hours AS (
    SELECT d, jsonb_object_agg(h, n) AS hourly_distribution
    FROM (SELECT d, extract(hour FROM started_at AT TIME ZONE :tz)::int AS h, count(*) AS n
          FROM cd GROUP BY 1, 2) h
    GROUP BY d
)
INSERT INTO daily_stats AS s (
    stat_date, total_calls, resolved_by_bot, transferred, avg_duration_seconds, avg_quality_score,
    total_cost_usd, scenario_breakdown, transfer_reasons, hourly_distribution, orders_created,
    fittings_booked, scored_calls, costed_calls, unique_callers, repeat_calls_7d, first_contact_resolved,
    scenario_transfers, response_p50_ms, response_p95_ms, calls_over_latency_budget, stt_reasks,
    long_pauses, barge_ins, tool_errors, source_fingerprint, computed_at)
SELECT days.d,
       coalesce(agg.total_calls, 0), coalesce(agg.resolved_by_bot, 0), coalesce(agg.transferred, 0),
       agg.avg_duration_seconds, agg.avg_quality_score, coalesce(agg.total_cost_usd, 0),
       coalesce(scen.scenario_breakdown, '{}'), coalesce(reasons.transfer_reasons, '{}'),
       coalesce(hours.hourly_distribution, '{}'),
       coalesce(agg.orders_created, 0), coalesce(agg.fittings_booked, 0), coalesce(agg.scored_calls, 0),
       coalesce(agg.costed_calls, 0), coalesce(agg.unique_callers, 0), coalesce(agg.repeat_calls_7d, 0),
       coalesce(agg.first_contact_resolved, 0), coalesce(scen.scenario_transfers, '{}'),
       lat.response_p50_ms, lat.response_p95_ms, coalesce(agg.calls_over_latency_budget, 0),
       coalesce(agg.stt_reasks, 0), coalesce(agg.long_pauses, 0), coalesce(agg.barge_ins, 0),
       coalesce(agg.tool_errors, 0), fp.fingerprint, now()
FROM days
LEFT JOIN agg USING (d)
LEFT JOIN lat USING (d)
LEFT JOIN scen USING (d)
LEFT JOIN reasons USING (d)
LEFT JOIN hours USING (d)
LEFT JOIN (SELECT CAST(unnest(CAST(:fp_days AS text[])) AS date) AS d,
                  unnest(CAST(:fp_values AS text[])) AS fingerprint) fp USING (d)
ON CONFLICT (stat_date) DO UPDATE SET
    total_calls = EXCLUDED.total_calls, resolved_by_bot = EXCLUDED.resolved_by_bot,
    transferred = EXCLUDED.transferred, avg_duration_seconds = EXCLUDED.avg_duration_seconds,
    avg_quality_score = EXCLUDED.avg_quality_score, total_cost_usd = EXCLUDED.total_cost_usd,
    scenario_breakdown = EXCLUDED.scenario_breakdown, transfer_reasons = EXCLUDED.transfer_reasons,
    hourly_distribution = EXCLUDED.hourly_distribution, orders_created = EXCLUDED.orders_created,
    fittings_booked = EXCLUDED.fittings_booked, scored_calls = EXCLUDED.scored_calls,
    costed_calls = EXCLUDED.costed_calls, unique_callers = EXCLUDED.unique_callers,
    repeat_calls_7d = EXCLUDED.repeat_calls_7d, first_contact_resolved = EXCLUDED.first_contact_resolved,
    scenario_transfers = EXCLUDED.scenario_transfers, response_p50_ms = EXCLUDED.response_p50_ms,
    response_p95_ms = EXCLUDED.response_p95_ms, calls_over_latency_budget = EXCLUDED.calls_over_latency_budget,
    stt_reasks = EXCLUDED.stt_reasks, long_pauses = EXCLUDED.long_pauses, barge_ins = EXCLUDED.barge_ins,
    tool_errors = EXCLUDED.tool_errors, source_fingerprint = EXCLUDED.source_fingerprint,
    computed_at = EXCLUDED.computed_at
