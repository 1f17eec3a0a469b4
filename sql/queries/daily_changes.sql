-- What changed since :since that daily_stats must follow: per local day (time zone :tz), the newest
-- time a call of that day was delivered (or re-delivered: cca_call_ingest), scored by ccanalytics
-- (call_scores), had its metrics derived (call_metrics), or was rewritten by a batch (re-priced:
-- call_changes; cca_call_costs.priced_at has no index, the pricing run notes its hours there). Read
-- through the indexes on cca_call_ingest.ingested_at, call_scores.created_at, call_metrics.computed_at
-- and call_changes.changed_at, so the cost follows the changes, not the size of the table.
--
-- A call the call processor wrote into its own tables has no cca_call_ingest row and its tables carry
-- no change stamp. A new one shows here through call_metrics.computed_at: every daily_stats run derives
-- the metrics of calls that have none first (sql/queries/call_metrics.sql), and ccanalytics's scoring
-- adds call_scores.created_at. What cannot be seen: the processor's later UPDATEs of a call it wrote
-- (its own quality_score / quality_details from its quality task, cost_breakdown, a corrected transfer
-- or scenario) and its DELETEs. A day with such a change is recomputed only when something above
-- changes it too (its fingerprint then covers the score and cost), or by a full run
-- (compute_daily_stats(incremental=False), `ccanalytics stats daily --full`).
SELECT (started_at AT TIME ZONE :tz)::date AS d, max(stamp) AS changed_at
FROM (
    SELECT started_at, ingested_at AS stamp FROM cca_call_ingest WHERE ingested_at > :since
    UNION ALL
    SELECT started_at, created_at FROM call_scores WHERE created_at > :since
    UNION ALL
    SELECT started_at, computed_at FROM call_metrics WHERE computed_at > :since
    UNION ALL
    SELECT started_at, changed_at FROM call_changes WHERE changed_at > :since
) x
WHERE started_at >= :start AND started_at < :end
GROUP BY 1
