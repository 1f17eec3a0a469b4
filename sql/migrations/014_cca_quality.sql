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

DROP INDEX IF EXISTS calls_scored_at_idx;
ALTER TABLE calls DROP COLUMN IF EXISTS scored_at;
