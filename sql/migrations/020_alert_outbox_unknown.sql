-- 020: alert notifications whose outcome is unknown. A channel that took the whole request and then
-- gave no answer (Telegram or the SMTP server slower than the answer timeout, the connection cut while
-- waiting) may well have delivered it: re-sending would deliver it twice. ccanalytics.alerts records
-- such a row as 'unknown' (sent_at: when the request went out; last_error: why the answer is missing)
-- and never re-sends it by itself; it no longer holds back the later notifications of its alert.
-- An operator who finds it missing sets it back to 'pending' (docs/alerts.md).
ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_status_check;
ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_check;
ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_check1;
ALTER TABLE alert_outbox
    ADD CONSTRAINT alert_outbox_status_check CHECK (status IN ('pending', 'sent', 'unknown', 'dead')),
    ADD CONSTRAINT alert_outbox_sent_at_check CHECK ((status IN ('sent', 'unknown')) = (sent_at IS NOT NULL)),
    ADD CONSTRAINT alert_outbox_error_check CHECK (status NOT IN ('dead', 'unknown') OR last_error IS NOT NULL);
