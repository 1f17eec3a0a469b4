-- 016: ccanalytics's daily figures per tenant, beside the figures over every tenant.
--
-- cca_daily_stats (012) keeps its one row per local day over every tenant — calls whose tenant was
-- deleted included (the processor's calls.tenant_id is ON DELETE SET NULL: they count only there).
-- The same figures of each tenant that had calls that day are the rows of cca_daily_stats_tenants,
-- keyed by (stat_date, tenant_id), the processor's tenant id. ccanalytics.metrics computes both in the
-- same pass (sql/queries/daily_calls.sql, daily_latency.sql, daily_customers.sql group by day and by
-- day and tenant), so a day's rows always come from one snapshot; counts and sums are the tenants'
-- own, and the response percentiles and unique callers of a tenant are computed over its calls, never
-- derived from other rows.
--
-- Why a second table and not a NOT NULL tenant key in cca_daily_stats with a sentinel for "every
-- tenant": every reader of cca_daily_stats takes its rows as "the row of the day" — problem detection
-- (ccanalytics.quality.problems), sum(total_calls) over a range in reports, tests and people's own
-- queries, retention, backups of our tables (pg_dump -t), the grafana_ro grant. A key column would make
-- each of them count every call twice until it filtered the sentinel; a second table leaves them
-- right. The cost: a figure column added later goes into both tables and into the view below
-- (tests/test_schema.py checks that the two tables have the same figure columns).
--
-- A day computed before this migration has no tenant rows yet: its stored fingerprint lacks the
-- format prefix of ccanalytics.metrics.fingerprint, and the next run over that day (incremental
-- included) recomputes it with its tenant rows (docs/metrics.md: upgrading).
--
-- No foreign key to the processor's tenants: its table is its own business, and a row of a tenant it
-- deleted is harmless (the view leaves it out; the next computation of that day removes it).
CREATE TABLE cca_daily_stats_tenants (
    LIKE cca_daily_stats INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    tenant_id uuid NOT NULL,
    PRIMARY KEY (stat_date, tenant_id)
);

-- Both tables read the same way: one row per day and scope. tenant is the tenant's slug, or the
-- sentinel '*' for the row over every tenant (cca_daily_stats; tenant_id NULL there). A slug never
-- is '*'. Grafana's tenant variable takes these values: WHERE tenant = '$tenant'.
CREATE VIEW cca_daily_stats_by_tenant AS
SELECT CAST('*' AS text) AS tenant, CAST(NULL AS uuid) AS tenant_id,
       stat_date, total_calls, resolved_by_bot, transferred, avg_duration_seconds, avg_quality_score,
       total_cost_usd, scenario_breakdown, transfer_reasons, hourly_distribution, orders_created,
       fittings_booked, scored_calls, costed_calls, unique_callers, repeat_calls_7d, first_contact_resolved,
       scenario_transfers, response_p50_ms, response_p95_ms, calls_over_latency_budget, stt_reasks,
       long_pauses, barge_ins, tool_errors, source_fingerprint, computed_at
FROM cca_daily_stats
UNION ALL
SELECT CAST(t.slug AS text), s.tenant_id,
       s.stat_date, s.total_calls, s.resolved_by_bot, s.transferred, s.avg_duration_seconds, s.avg_quality_score,
       s.total_cost_usd, s.scenario_breakdown, s.transfer_reasons, s.hourly_distribution, s.orders_created,
       s.fittings_booked, s.scored_calls, s.costed_calls, s.unique_callers, s.repeat_calls_7d,
       s.first_contact_resolved, s.scenario_transfers, s.response_p50_ms, s.response_p95_ms,
       s.calls_over_latency_budget, s.stt_reasks, s.long_pauses, s.barge_ins, s.tool_errors,
       s.source_fingerprint, s.computed_at
FROM cca_daily_stats_tenants s
JOIN tenants t ON t.id = s.tenant_id;
