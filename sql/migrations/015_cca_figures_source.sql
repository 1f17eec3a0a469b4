-- 015: cca_calls, what every reading query of ccanalytics selects the calls from: the processor's
-- call with the quality score and cost the configuration chooses, and both sources beside them.
--
-- The engines of ccanalytics set the session settings cca.quality_source and cca.cost_source from
-- CCA_QUALITY_SOURCE / CCA_COST_SOURCE (ccanalytics.database.resolve_url). 'processor' shows what the
-- call processor recorded; unset or anything else, ccanalytics's figure where it computed one
-- (call_scores, cca_call_costs: quality_scored, cost_priced), else the processor's — the figures never
-- drop a call between its arrival and the next scoring or pricing run. quality_source / cost_source
-- tell which one a row shows. The processor's shapes are mapped to ccanalytics's (cca_recorded_quality,
-- cca_recorded_costs) and kept as they are beside (recorded_*); ccanalytics's own stay available
-- whatever the setting (computed_*): the scorer and the pricing run compare with them, and the call
-- page shows both. usage is the usage ccanalytics received with the call log, or else the usage the
-- processor recorded in cost_breakdown (cca_recorded_usage), or else the LLM requests it logged for the
-- call (llm_usage_log, cca_logged_usage; also shown as logged_usage). ab_test_id / ab_variant are the variant
-- the call was served when known (cca_ab_assignments); payload_sha256 / ingested_at are NULL for a
-- call the processor wrote itself. A query that reads none of the joined tables' columns does not
-- join them at all (PostgreSQL removes a LEFT JOIN on a unique key whose columns are not read).
CREATE VIEW cca_calls AS
SELECT c.id, c.caller_id, c.customer_id, c.started_at, c.ended_at, c.duration_seconds, c.scenario,
       coalesce(c.transferred_to_operator, false) AS transferred_to_operator, c.transfer_reason,
       coalesce(c.order_id::text, i.order_ref) AS order_id,
       coalesce(c.fitting_booking_id::text, i.booking_ref) AS fitting_booking_id, c.prompt_version,
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
       s.overall_score AS computed_quality_score, s.details AS computed_quality_details
FROM calls c
LEFT JOIN cca_call_costs k ON k.call_id = c.id AND k.started_at = c.started_at
LEFT JOIN call_scores s ON s.current_call_id = c.id
LEFT JOIN cca_call_ingest i ON i.call_id = c.id
LEFT JOIN cca_ab_assignments g ON g.call_id = c.id
LEFT JOIN tenants t ON t.id = c.tenant_id;
