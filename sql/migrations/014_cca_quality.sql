-- 014: the call processor's own quality evaluation in ccanalytics's shape. calls.quality_score and
-- calls.quality_details are written by the processor's quality task (its LLM evaluation: criterion →
-- score, ../shared/callcenter-schema.md) and never by ccanalytics, whose scores live in call_scores.
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
