-- 024: the indexes that keep the incremental work proportional to what changed (issues 16 and 22).
--
-- All on ccanalytics's own table call_metrics; the processor's tables get none.
--
-- call_metrics.computed_at: the incremental daily figures find the days whose calls were derived since
-- they were computed, and the days of the same customers' earlier calls (sql/queries/daily_changes.sql,
-- daily_lookback.sql). Migration 021 dropped it when the exporter moved to final_at; without it each
-- incremental run read the whole table.
CREATE INDEX call_metrics_computed_idx ON call_metrics (computed_at);

-- The calls whose metrics were derived while they were in progress (call_ended_at IS NULL): a call the
-- processor wrote is derived again once it has ended (sql/queries/call_metrics.sql). A handful of rows
-- at any time, so the check reads a handful of index entries instead of every call of the range.
CREATE INDEX call_metrics_open_idx ON call_metrics (started_at) WHERE call_ended_at IS NULL;

-- call_metrics by start with the call's id: the derivation compares each day's calls with their
-- metrics (count and XOR of the ids' hashes) from two index-only scans, and searches call by call only
-- the days that differ (sql/queries/call_metrics.sql). It serves every range read of the start too.
CREATE INDEX call_metrics_started_call_idx ON call_metrics (started_at, call_id);
DROP INDEX call_metrics_started_idx;
