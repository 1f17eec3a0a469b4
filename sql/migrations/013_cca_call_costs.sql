-- 013: the prices ccanalytics computes live in its own table. calls.cost_breakdown and
-- calls.total_cost_usd are written by the call processor at the end of each call
-- (../shared/callcenter-schema.md) and are never rewritten by ccanalytics again.
--
-- cca_calls is what every reading query of ccanalytics selects from: the processor's call with
-- ccanalytics's price (cost_breakdown, total_cost_usd; cost_priced is true) or, for a call not priced
-- yet or with no price for its model, the cost the processor recorded, as components
-- (cca_recorded_costs; cost_priced is false) — the figures never drop a call between its arrival and
-- the next pricing run. Beside them, what the processor recorded, untouched
-- (recorded_cost_breakdown, recorded_total_cost_usd). usage is the usage ccanalytics received with the
-- call log, or else the usage the processor recorded in cost_breakdown (cca_recorded_usage). A query
-- that reads no price column does not join cca_call_costs at all (PostgreSQL removes the join).
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

-- an installation that priced calls into calls keeps its prices (the breakdowns it wrote carry
-- "reported_total_usd"); the processor's own values of those calls were overwritten before and
-- cannot be restored, except the total, which ccanalytics kept as reported_total_usd
INSERT INTO cca_call_costs (call_id, started_at, breakdown, total_usd)
SELECT id, started_at, cost_breakdown, total_cost_usd
FROM calls
WHERE cost_breakdown ? 'reported_total_usd' AND total_cost_usd IS NOT NULL;

CREATE VIEW cca_calls AS
SELECT c.id, c.caller_id, c.customer_id, c.started_at, c.ended_at, c.duration_seconds, c.scenario,
       c.transferred_to_operator, c.transfer_reason, c.order_id, c.fitting_booking_id, c.prompt_version,
       c.quality_score, c.quality_details,
       CASE WHEN k.call_id IS NULL THEN cca_recorded_costs(c.cost_breakdown) ELSE k.breakdown END
           AS cost_breakdown,
       CASE WHEN k.call_id IS NULL THEN c.total_cost_usd ELSE k.total_usd END AS total_cost_usd,
       k.call_id IS NOT NULL AS cost_priced,
       coalesce(c.usage, cca_recorded_usage(c.cost_breakdown)) AS usage,
       c.ab_test_id, c.ab_variant, c.payload_sha256, c.ingested_at,
       c.cost_breakdown AS recorded_cost_breakdown, c.total_cost_usd AS recorded_total_cost_usd
FROM calls c
LEFT JOIN cca_call_costs k ON k.call_id = c.id AND k.started_at = c.started_at;
