-- 008: changes to calls that no change index records. A batch that rewrites columns of existing
-- calls (re-pricing: ccanalytics.cost) notes which calls' times it touched, so that the
-- incremental daily_stats run (sql/queries/daily_changes.sql) recomputes those days. One row per
-- touched UTC hour: the earliest and the latest start among the rewritten calls of that hour, so
-- every local day they fall on is found whatever the time zone. Rows older than 35 days are dropped
-- by the writer.
CREATE TABLE call_changes (
    started_at   timestamptz NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    source       varchar(40) NOT NULL
);
CREATE INDEX call_changes_changed_idx ON call_changes (changed_at);
