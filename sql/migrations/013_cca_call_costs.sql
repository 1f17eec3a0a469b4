-- 013: the prices ccanalytics computes live in its own table. calls.cost_breakdown and
-- calls.total_cost_usd are written by the call processor at the end of each call
-- (../shared/callcenter-schema.md) and are never rewritten by ccanalytics again.
--
-- Every reading query selects the calls through the view cca_calls (migration 015), which shows this
-- price beside the processor's recorded one.
CREATE TABLE cca_call_costs (
    call_id     uuid NOT NULL,
    started_at  timestamptz NOT NULL,   -- the call's, so a period reads a range
    breakdown   jsonb NOT NULL,         -- stt, llm, tts, telephony, estimated, reported_total_usd, …
    total_usd   double precision CHECK (total_usd >= 0),
    priced_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, started_at)
);
CREATE INDEX cca_call_costs_started_at_idx ON cca_call_costs (started_at);

-- The processor's cost_breakdown keys (stt_provider, stt_seconds, llm_model, llm_input_tokens,
-- llm_output_tokens, llm_cached_input_tokens, tts_characters, tts_cached_characters) as the usage
-- block of the call log (sql/queries/call_costs.sql reads that shape); NULL when it holds no usage.
CREATE FUNCTION cca_recorded_usage(b jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN jsonb_typeof(b) = 'object'
                 AND b ?| ARRAY['stt_seconds', 'llm_input_tokens', 'llm_output_tokens', 'tts_characters']
           THEN jsonb_strip_nulls(jsonb_build_object(
                'stt_provider', b -> 'stt_provider',
                'stt_seconds', b -> 'stt_seconds',
                'llm_model', b -> 'llm_model',
                'llm_input_tokens', b -> 'llm_input_tokens',
                'llm_cached_input_tokens', b -> 'llm_cached_input_tokens',
                'llm_output_tokens', b -> 'llm_output_tokens',
                'tts_chars', b -> 'tts_characters',
                'tts_cached_chars', b -> 'tts_cached_characters'))
           END
$$;

-- The processor's cost_breakdown (stt_cost, llm_cost, tts_cost, telephony_cost, total_cost and usage
-- keys) as cost components (stt, llm, tts, telephony); a call log's cost block, already in that shape,
-- is returned as it is.
CREATE FUNCTION cca_recorded_costs(b jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN jsonb_typeof(b) <> 'object' THEN NULL
                WHEN b ?| ARRAY['stt_cost', 'llm_cost', 'tts_cost', 'telephony_cost']
                THEN jsonb_strip_nulls(jsonb_build_object(
                    'stt', b -> 'stt_cost', 'llm', b -> 'llm_cost', 'tts', b -> 'tts_cost',
                    'telephony', b -> 'telephony_cost'))
                ELSE b
           END
$$;

-- The LLM requests the processor logged for a call (llm_usage_log: one row per request, real token
-- counts) as the LLM part of a usage block: requests, tokens, cached input tokens, and the model that
-- took most of the tokens; by_task splits them by the processor's task_type. NULL when it logged none.
-- Reads only the partitions around the call's start (its requests are made during the call).
CREATE FUNCTION cca_logged_usage(p_call uuid, p_started timestamptz) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN count(*) > 0 THEN jsonb_build_object(
               'llm_calls', count(*),
               'llm_input_tokens', sum(input_tokens),
               'llm_cached_input_tokens', sum(cached_input_tokens),
               'llm_output_tokens', sum(output_tokens),
               'llm_model', (SELECT u2.model_name FROM llm_usage_log u2
                             WHERE u2.call_id = p_call AND u2.created_at >= p_started - interval '1 hour'
                               AND u2.created_at < p_started + interval '1 day'
                             GROUP BY u2.model_name
                             ORDER BY sum(u2.input_tokens + u2.output_tokens) DESC, u2.model_name LIMIT 1),
               'by_task', (SELECT jsonb_object_agg(task_type, n) FROM (
                               SELECT u3.task_type, jsonb_build_object(
                                   'requests', count(*), 'input_tokens', sum(u3.input_tokens),
                                   'cached_input_tokens', sum(u3.cached_input_tokens),
                                   'output_tokens', sum(u3.output_tokens)) AS n
                               FROM llm_usage_log u3
                               WHERE u3.call_id = p_call AND u3.created_at >= p_started - interval '1 hour'
                                 AND u3.created_at < p_started + interval '1 day'
                               GROUP BY u3.task_type) t))
           END
    FROM llm_usage_log u
    WHERE u.call_id = p_call AND u.created_at >= p_started - interval '1 hour'
      AND u.created_at < p_started + interval '1 day'
$$;
