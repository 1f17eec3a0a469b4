-- Insert the per-tenant rows of daily_stats (cca_daily_stats_tenants) given as a JSON array (one object
-- per day and tenant, the columns by name). ccanalytics.metrics first deletes the rows of the days it
-- recomputes, in the same transaction: a tenant without calls that day any more has no row.
INSERT INTO cca_daily_stats_tenants AS s (
    stat_date, tenant_id, total_calls, resolved_by_bot, transferred, avg_duration_seconds, avg_quality_score,
    total_cost_usd, scenario_breakdown, transfer_reasons, hourly_distribution, orders_created,
    fittings_booked, scored_calls, costed_calls, unique_callers, repeat_calls_7d, first_contact_resolved,
    scenario_transfers, response_p50_ms, response_p95_ms, calls_over_latency_budget, stt_reasks,
    long_pauses, barge_ins, tool_errors, source_fingerprint, computed_at)
SELECT r.d, r.tenant_id,
       coalesce(r.total_calls, 0), coalesce(r.resolved_by_bot, 0), coalesce(r.transferred, 0),
       r.avg_duration_seconds, r.avg_quality_score, coalesce(r.total_cost_usd, 0),
       coalesce(r.scenario_breakdown, '{}'), coalesce(r.transfer_reasons, '{}'),
       coalesce(r.hourly_distribution, '{}'), coalesce(r.orders_created, 0), coalesce(r.fittings_booked, 0),
       coalesce(r.scored_calls, 0), coalesce(r.costed_calls, 0), coalesce(r.unique_callers, 0),
       coalesce(r.repeat_calls_7d, 0), coalesce(r.first_contact_resolved, 0), coalesce(r.scenario_transfers, '{}'),
       r.response_p50_ms, r.response_p95_ms, coalesce(r.calls_over_latency_budget, 0), coalesce(r.stt_reasks, 0),
       coalesce(r.long_pauses, 0), coalesce(r.barge_ins, 0), coalesce(r.tool_errors, 0), r.source_fingerprint, now()
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r (
    d date, tenant_id uuid, total_calls int, resolved_by_bot int, transferred int, avg_duration_seconds float8,
    avg_quality_score float8, total_cost_usd float8, scenario_breakdown jsonb, transfer_reasons jsonb,
    hourly_distribution jsonb, orders_created int, fittings_booked int, scored_calls int, costed_calls int,
    unique_callers int, repeat_calls_7d int, first_contact_resolved int, scenario_transfers jsonb,
    response_p50_ms float8, response_p95_ms float8, calls_over_latency_budget int, stt_reasks int,
    long_pauses int, barge_ins int, tool_errors int, source_fingerprint text)
