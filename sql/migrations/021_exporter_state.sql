-- 021: the Prometheus exporter's counters never go down for the same data.
--
-- A finished call is counted once: when its metrics are first derived after it ended (final_at, kept
-- when the call is re-delivered and its metrics are derived again). A call the processor wrote is
-- derived again once it ends (call_ended_at: the ended_at its metrics saw), so a call in progress is
-- neither counted as finished nor left with the turns it had at that moment.
ALTER TABLE call_metrics
    ADD COLUMN final_at      timestamptz,
    ADD COLUMN call_ended_at timestamptz;
UPDATE call_metrics m SET call_ended_at = c.ended_at,
                          final_at = CASE WHEN c.ended_at IS NOT NULL THEN m.computed_at END
FROM calls c WHERE c.id = m.call_id AND c.started_at = m.started_at;
CREATE INDEX call_metrics_final_idx ON call_metrics (final_at) WHERE final_at IS NOT NULL;
DROP INDEX call_metrics_computed_idx;

-- The exporter's cumulative counters and histograms as of its watermarks (ccanalytics.exporter). Any
-- exporter process starts from here and counts what is newer, so a restart, a second process or a
-- retention purge (which checkpoints first) never lowers a counter.
CREATE TABLE cca_exporter_state (
    name              text PRIMARY KEY,
    metrics_watermark timestamptz NOT NULL,
    scores_watermark  timestamptz NOT NULL,
    counters          jsonb NOT NULL,
    histograms        jsonb NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
