-- 014: ccanalytics's quality scores live only in its own table. calls.quality_score and
-- calls.quality_details are written by the call processor's own quality task (its LLM evaluation:
-- criterion → score, ../shared/callcenter-schema.md) and are never rewritten by ccanalytics again;
-- the scorer writes call_scores alone, whose current row now also keeps the whole details document
-- the journal and the reports read. calls.scored_at, a column ccanalytics had added to the
-- processor's table, is dropped: the time of a score is call_scores.created_at.
ALTER TABLE call_scores ADD COLUMN details jsonb;

-- an installation that mirrored its scores into calls keeps their details (the processor's values
-- those scores overwrote cannot be restored)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'calls' AND column_name = 'scored_at') THEN
        EXECUTE $copy$
            UPDATE call_scores s SET details = c.quality_details
            FROM calls c
            WHERE s.is_current AND c.id = s.call_id AND c.started_at = s.started_at
              AND c.scored_at IS NOT NULL AND jsonb_typeof(c.quality_details -> 'criteria') = 'object'
        $copy$;
    END IF;
END
$$;

-- what changed since a watermark (sql/queries/daily_changes.sql, the exporter) is read by this index
CREATE INDEX call_scores_created_idx ON call_scores (created_at);

-- The processor's quality_details ({criterion: score}) in ccanalytics's shape ({"criteria":
-- {criterion: {"score": …}}, "judge": {"kind": "processor"}}); a document already in that shape is
-- returned as it is; NULL when it holds no score.
CREATE FUNCTION cca_recorded_quality(d jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN jsonb_typeof(d) <> 'object' THEN NULL
                WHEN d ? 'criteria' THEN d
                ELSE (SELECT CASE WHEN count(*) = 0 THEN NULL ELSE jsonb_build_object(
                          'criteria', jsonb_object_agg(e.key, jsonb_build_object('score', e.value)),
                          'judge', jsonb_build_object('kind', 'processor')) END
                      FROM jsonb_each(d) e WHERE jsonb_typeof(e.value) = 'number')
           END
$$;

-- cca_calls (migration 013) with quality as with cost: ccanalytics's current score when it scored the
-- call (quality_scored), else what the processor recorded; the processor's values beside, untouched.
DROP VIEW cca_calls;
CREATE VIEW cca_calls AS
SELECT c.id, c.caller_id, c.customer_id, c.started_at, c.ended_at, c.duration_seconds, c.scenario,
       c.transferred_to_operator, c.transfer_reason, c.order_id, c.fitting_booking_id, c.prompt_version,
       CASE WHEN s.call_id IS NULL THEN c.quality_score ELSE s.overall_score END AS quality_score,
       CASE WHEN s.call_id IS NULL THEN cca_recorded_quality(c.quality_details) ELSE s.details END
           AS quality_details,
       s.created_at AS scored_at,
       s.call_id IS NOT NULL AS quality_scored,
       CASE WHEN k.call_id IS NULL THEN cca_recorded_costs(c.cost_breakdown) ELSE k.breakdown END
           AS cost_breakdown,
       CASE WHEN k.call_id IS NULL THEN c.total_cost_usd ELSE k.total_usd END AS total_cost_usd,
       k.call_id IS NOT NULL AS cost_priced,
       coalesce(c.usage, cca_recorded_usage(c.cost_breakdown)) AS usage,
       c.ab_test_id, c.ab_variant, c.payload_sha256, c.ingested_at,
       c.cost_breakdown AS recorded_cost_breakdown, c.total_cost_usd AS recorded_total_cost_usd,
       c.quality_score AS recorded_quality_score, c.quality_details AS recorded_quality_details
FROM calls c
LEFT JOIN cca_call_costs k ON k.call_id = c.id AND k.started_at = c.started_at
LEFT JOIN call_scores s ON s.call_id = c.id AND s.is_current;

DROP INDEX IF EXISTS calls_scored_at_idx;
ALTER TABLE calls DROP COLUMN IF EXISTS scored_at;
