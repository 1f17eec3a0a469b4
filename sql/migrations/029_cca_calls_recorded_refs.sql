-- 029: cca_calls shows the processor's own order and fitting booking ids beside the ones it resolves
-- (recorded_order_id, recorded_fitting_booking_id), so that a query that counts orders over a year
-- (sql/queries/daily_calls.sql) reads no cca_call_ingest row: it counts the processor's ids, and adds the
-- few references that ccanalytics's ingest kept because they are not uuids (cca_call_ingest.order_ref,
-- booking_ref) from their own partial index. Without a column of cca_call_ingest in the query, PostgreSQL
-- leaves out the view's join to it (a left join on its key), which was a third of the daily figures'
-- call-side cost.
CREATE OR REPLACE VIEW cca_calls AS
SELECT c.id, c.caller_id, c.customer_id, c.started_at, c.ended_at, c.duration_seconds, c.scenario,
       coalesce(c.transferred_to_operator, false) AS transferred_to_operator, c.transfer_reason,
       coalesce(c.order_id::text, i.order_ref) AS order_id,
       coalesce(c.fitting_booking_id::text, i.booking_ref) AS fitting_booking_id,
       CAST(CASE WHEN c.prompt_version IS NULL OR c.prompt_version = 'default'
                 THEN coalesce(p.label, c.prompt_version) ELSE c.prompt_version END AS varchar(50)) AS prompt_version,
       CASE WHEN s.call_id IS NOT NULL AND current_setting('cca.quality_source', true) IS DISTINCT FROM 'processor'
            THEN s.overall_score ELSE c.quality_score END AS quality_score,
       CASE WHEN s.call_id IS NOT NULL AND current_setting('cca.quality_source', true) IS DISTINCT FROM 'processor'
            THEN s.details ELSE cca_recorded_quality(c.quality_details) END AS quality_details,
       CASE WHEN s.call_id IS NOT NULL AND current_setting('cca.quality_source', true) IS DISTINCT FROM 'processor'
            THEN 'ccanalytics' WHEN c.quality_score IS NOT NULL THEN 'processor' END AS quality_source,
       s.created_at AS scored_at,
       s.call_id IS NOT NULL AS quality_scored,
       CASE WHEN k.call_id IS NOT NULL AND current_setting('cca.cost_source', true) IS DISTINCT FROM 'processor'
            THEN k.breakdown ELSE cca_recorded_costs(c.cost_breakdown) END AS cost_breakdown,
       CASE WHEN k.call_id IS NOT NULL AND current_setting('cca.cost_source', true) IS DISTINCT FROM 'processor'
            THEN k.total_usd ELSE c.total_cost_usd END AS total_cost_usd,
       CASE WHEN k.call_id IS NOT NULL AND current_setting('cca.cost_source', true) IS DISTINCT FROM 'processor'
            THEN 'ccanalytics' WHEN c.total_cost_usd IS NOT NULL THEN 'processor' END AS cost_source,
       k.call_id IS NOT NULL AS cost_priced,
       coalesce(i.usage, cca_recorded_usage(c.cost_breakdown), cca_logged_usage(c.id, c.started_at)) AS usage,
       cca_logged_usage(c.id, c.started_at) AS logged_usage,
       g.test_id AS ab_test_id, g.variant AS ab_variant, i.payload_sha256, i.ingested_at,
       c.tenant_id, t.slug AS tenant,
       c.cost_breakdown AS recorded_cost_breakdown, c.total_cost_usd AS recorded_total_cost_usd,
       c.quality_score AS recorded_quality_score, c.quality_details AS recorded_quality_details,
       k.breakdown AS computed_cost_breakdown, k.total_usd AS computed_total_cost_usd,
       s.overall_score AS computed_quality_score, s.details AS computed_quality_details,
       c.order_id AS recorded_order_id, c.fitting_booking_id AS recorded_fitting_booking_id
FROM calls c
LEFT JOIN cca_call_costs k ON k.call_id = c.id AND k.started_at = c.started_at
LEFT JOIN call_scores s ON s.current_call_id = c.id
LEFT JOIN cca_call_ingest i ON i.call_id = c.id
LEFT JOIN cca_ab_assignments g ON g.call_id = c.id
LEFT JOIN cca_call_prompts p ON p.call_id = c.id
LEFT JOIN tenants t ON t.id = c.tenant_id;

CREATE INDEX cca_call_ingest_refs_idx ON cca_call_ingest (started_at)
    WHERE order_ref IS NOT NULL OR booking_ref IS NOT NULL;
