-- Upsert the rows of daily_stats over every tenant (cca_daily_stats) given as a JSON array (one object
-- per day, the columns by name). Days in :days that have no object get a row of zeros. (The tenants'
-- rows: daily_upsert_tenants.sql.)
INSERT INTO cca_daily_stats AS s (
    stat_date, total_calls, resolved_by_bot, transferred, avg_duration_seconds, avg_quality_score,
    total_cost_usd, scenario_breakdown, transfer_reasons, hourly_distribution, orders_created,
    fittings_booked, scored_calls, costed_calls, unique_callers, repeat_calls_7d, first_contact_resolved,
    scenario_transfers, response_p50_ms, response_p95_ms, calls_over_latency_budget, stt_reasks,
    long_pauses, barge_ins, tool_errors, source_fingerprint, computed_at)
SELECT days.d,
       coalesce(r.total_calls, 0), coalesce(r.resolved_by_bot, 0), coalesce(r.transferred, 0),
       r.avg_duration_seconds, r.avg_quality_score, coalesce(r.total_cost_usd, 0),
       coalesce(r.scenario_breakdown, '{}'), coalesce(r.transfer_reasons, '{}'),
       coalesce(r.hourly_distribution, '{}'), coalesce(r.orders_created, 0), coalesce(r.fittings_booked, 0),
       coalesce(r.scored_calls, 0), coalesce(r.costed_calls, 0), coalesce(r.unique_callers, 0),
       coalesce(r.repeat_calls_7d, 0), coalesce(r.first_contact_resolved, 0), coalesce(r.scenario_transfers, '{}'),
       r.response_p50_ms, r.response_p95_ms, coalesce(r.calls_over_latency_budget, 0), coalesce(r.stt_reasks, 0),
       coalesce(r.long_pauses, 0), coalesce(r.barge_ins, 0), coalesce(r.tool_errors, 0), r.source_fingerprint, now()
FROM unnest(CAST(:days AS date[])) AS days(d)
LEFT JOIN jsonb_to_recordset(CAST(:rows AS jsonb)) AS r (
    d date, total_calls int, resolved_by_bot int, transferred int, avg_duration_seconds float8,
    avg_quality_score float8, total_cost_usd float8, scenario_breakdown jsonb, transfer_reasons jsonb,
    hourly_distribution jsonb, orders_created int, fittings_booked int, scored_calls int, costed_calls int,
    unique_callers int, repeat_calls_7d int, first_contact_resolved int, scenario_transfers jsonb,
    response_p50_ms float8, response_p95_ms float8, calls_over_latency_budget int, stt_reasks int,
    long_pauses int, barge_ins int, tool_errors int, source_fingerprint text) USING (d)
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
