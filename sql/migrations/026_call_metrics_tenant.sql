-- 026: the tenant of a call kept with its derived metrics (issue 22: daily figures of a year in seconds).
--
-- daily_stats groups every call's metrics by day and tenant (sql/queries/daily_latency.sql). The tenant
-- is the call's (calls.tenant_id, set by the call processor when the call starts); reading it by joining
-- every call of the range again cost more than the rest of that query. The derivation writes it with the
-- metrics (sql/queries/call_metrics.sql). A call whose tenant was deleted afterwards (the processor's
-- foreign key sets calls.tenant_id to NULL) keeps the old id here: its metrics still count over every
-- tenant, and the daily figures keep a tenant's row only when the calls side has one (ccanalytics.metrics).
ALTER TABLE call_metrics ADD COLUMN tenant_id uuid;
UPDATE call_metrics m SET tenant_id = c.tenant_id
FROM calls c WHERE c.id = m.call_id AND c.started_at = m.started_at AND c.tenant_id IS NOT NULL;
