-- Price the calls that started in [:start, :end) from their usage at the prices in force on the
-- call's local day (:tz) into the temporary table cost_priced: the calls whose new breakdown or total
-- differ from what is stored, and the estimated and unpriced ones (for the counts). :prices is the price book as
-- JSON rows (ccanalytics.pricing). Usage is the call log's, else the one the processor recorded in
-- cost_breakdown, else the LLM requests it logged (llm_usage_log: tokens only); what none of them holds
-- is estimated from the transcript (bot turns and characters, call duration) and the call is flagged
-- "estimated". Self-hosted STT (a fixed monthly
-- cost) costs each call its day's per-call share (:days, from ccanalytics.fixedcost). What
-- the call processor reported (calls.total_cost_usd, never written here) is noted as "reported_total_usd". Calls whose provider or model has no
-- price are marked unpriced.
--
-- A read-only statement on purpose: PostgreSQL may scan and price in parallel workers (a statement
-- that writes to calls never runs in parallel). ccanalytics.cost then rewrites only the changed
-- rows. The usage block is read once per call (jsonb_to_record); the price book is a handful of
-- rows, hashed per component.
CREATE TEMP TABLE cost_priced ON COMMIT DROP AS
WITH p AS NOT MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(CAST(:prices AS jsonb)) AS p(
        component text, name text, valid_from date, valid_to date, usd_per_increment float8,
        increment_seconds float8, fixed_usd_per_month float8, input_per_1m float8, output_per_1m float8,
        cached_input_per_1m float8, usd_per_1m_chars float8, usd_per_minute float8)
),
e AS NOT MATERIALIZED (  -- LLM or TTS usage missing: bot turns and characters from the transcript
    SELECT t.call_id, count(*) FILTER (WHERE t.speaker = 'bot') AS bot_turns,
           coalesce(sum(length(t.content)) FILTER (WHERE t.speaker = 'bot'), 0) AS bot_chars
    FROM cca_calls x
    JOIN call_turns t ON t.call_id = x.id
     AND t.created_at >= x.started_at - interval '1 minute' AND t.created_at < x.started_at + interval '7 hours'
    WHERE (x.usage IS NULL OR NOT x.usage ?& ARRAY['llm_input_tokens', 'tts_chars'])
      AND x.started_at >= :price_from AND x.started_at < :end
    GROUP BY t.call_id
),
days AS NOT MATERIALIZED (  -- per-call share of a fixed-cost STT per day (ccanalytics.fixedcost)
    SELECT * FROM jsonb_to_recordset(CAST(:days AS jsonb)) AS f(d date, provider text, per_call float8)
),
c AS NOT MATERIALIZED (
    SELECT c.id, c.started_at, (c.started_at AT TIME ZONE :tz)::date AS d, (c.usage IS NULL OR NOT c.usage ?& ARRAY['llm_input_tokens', 'tts_chars']) AS estimated,
           c.computed_total_cost_usd AS old_total, c.computed_cost_breakdown AS old_breakdown,
           c.recorded_total_cost_usd AS reported_total,
           coalesce(u.stt_provider, :stt_default) AS stt_provider,
           coalesce(u.stt_seconds, c.duration_seconds, 0) AS stt_seconds,
           coalesce(u.llm_model, :llm_default) AS llm_model,
           coalesce(u.llm_input_tokens, e.bot_turns * :est_input_tokens, 0) AS llm_in,
           coalesce(u.llm_cached_input_tokens, 0) AS llm_cached,
           coalesce(u.llm_output_tokens, e.bot_turns * :est_output_tokens, 0) AS llm_out,
           coalesce(u.tts_provider, :tts_default) AS tts_provider,
           coalesce(u.tts_chars, e.bot_chars, 0) AS tts_chars,
           coalesce(u.tts_cached_chars, 0) AS tts_cached,
           coalesce(u.telephony_seconds, c.duration_seconds, 0) AS telephony_seconds,
           CAST(:telephony_default AS text) AS telephony
    FROM cca_calls c
    LEFT JOIN LATERAL jsonb_to_record(c.usage) AS u(
        stt_provider text, stt_seconds float8, llm_model text, llm_input_tokens float8,
        llm_cached_input_tokens float8, llm_output_tokens float8, tts_provider text, tts_chars float8,
        tts_cached_chars float8, telephony_seconds float8) ON true
    LEFT JOIN e ON e.call_id = c.id
    -- :price_from: :start, or the freshness job's horizon (ccanalytics.cost.compute_costs(since=…))
    WHERE c.started_at >= :price_from AND c.started_at < :end
      -- :only_new (ccanalytics.freshness): the finished calls ccanalytics has not priced yet
      AND (NOT CAST(:only_new AS boolean) OR (NOT c.cost_priced AND c.ended_at IS NOT NULL))
),
priced AS NOT MATERIALIZED (
    SELECT c.id, c.started_at, c.estimated, c.old_total, c.old_breakdown, c.reported_total,
           CASE WHEN ps.fixed_usd_per_month IS NOT NULL THEN fd.per_call
                ELSE ceil(c.stt_seconds / nullif(ps.increment_seconds, 0)) * ps.usd_per_increment END AS stt,
           ((c.llm_in - least(c.llm_cached, c.llm_in)) * pl.input_per_1m
             + least(c.llm_cached, c.llm_in) * coalesce(pl.cached_input_per_1m, pl.input_per_1m)
             + c.llm_out * pl.output_per_1m) / 1e6 AS llm,
           greatest(c.tts_chars - c.tts_cached, 0) * pt.usd_per_1m_chars / 1e6 AS tts,
           coalesce(ceil(c.telephony_seconds / 60.0) * ptel.usd_per_minute, 0) AS telephony,
           ps.name IS NULL OR pl.name IS NULL OR pt.name IS NULL AS unpriced
    FROM c
    LEFT JOIN p ps ON ps.component = 'stt' AND ps.name = c.stt_provider AND c.d >= ps.valid_from AND c.d < ps.valid_to
    LEFT JOIN days fd ON fd.d = c.d AND fd.provider = c.stt_provider
    LEFT JOIN p pl ON pl.component = 'llm' AND pl.name = c.llm_model AND c.d >= pl.valid_from AND c.d < pl.valid_to
    LEFT JOIN p pt ON pt.component = 'tts' AND pt.name = c.tts_provider AND c.d >= pt.valid_from AND c.d < pt.valid_to
    LEFT JOIN p ptel ON ptel.component = 'telephony' AND ptel.name = c.telephony
                    AND c.d >= ptel.valid_from AND c.d < ptel.valid_to
),
rounded AS NOT MATERIALIZED (
    SELECT priced.*, round(stt::numeric, 6) AS stt6, round(llm::numeric, 6) AS llm6, round(tts::numeric, 6) AS tts6,
           round(telephony::numeric, 6) AS telephony6, round((stt + llm + tts + telephony)::numeric, 6)::float8 AS total
    FROM priced
),
compared AS NOT MATERIALIZED (  -- against the stored breakdown, read once; the new one is built only if it differs
    SELECT r.*, NOT r.unpriced AND (
               ob.priced_by IS DISTINCT FROM CAST(:source AS text) OR ob.estimated IS DISTINCT FROM r.estimated
               OR ob.stt IS DISTINCT FROM r.stt6 OR ob.llm IS DISTINCT FROM r.llm6 OR ob.tts IS DISTINCT FROM r.tts6
               OR ob.telephony IS DISTINCT FROM r.telephony6 OR r.old_total IS DISTINCT FROM r.total) AS changed
    FROM rounded r
    LEFT JOIN LATERAL jsonb_to_record(r.old_breakdown) AS ob(
        stt numeric, llm numeric, tts numeric, telephony numeric, estimated boolean, priced_by text) ON true
)
SELECT id, started_at, estimated, unpriced, total, changed,
       CASE WHEN changed THEN jsonb_build_object(
           'stt', stt6, 'llm', llm6, 'tts', tts6, 'telephony', telephony6,
           'estimated', estimated, 'priced_by', CAST(:source AS text),
           'reported_total_usd', to_jsonb(reported_total)) END AS breakdown
FROM compared
WHERE changed OR unpriced OR estimated  -- the rest needs no write and no counting beyond call_costs_volume.sql
