-- Derive call_metrics for the calls given as arrays (:ids, :starts, :ends, :tenants: id, start, end and
-- tenant of each; sql/queries/call_metrics_targets.sql finds the calls that need it) which started in
-- [:start, :end]. Turns are read through cca_call_turns (speech durations and barge-ins of delivered call
-- logs). Signal patterns and thresholds come from ccanalytics.signals (bind parameters), so SQL and
-- Python agree. The call's tenant is kept with its metrics (migration 026), so that the daily figures
-- group them by tenant without joining every call again.
--
-- Response latency of a bot reply = start of the bot turn - end of the customer turn before it
-- (timestamp + speech duration). When durations are missing or the clocks disagree, it is estimated
-- as the customer turn's STT latency + the bot turn's LLM and TTS latencies (response_estimated).
-- final_at, the first derivation after the call ended, is kept on every later one: the exporter counts a
-- finished call once, by final_at. The stamps are clock_timestamp(), not the transaction start: the
-- exporter reads rows stamped since its watermark (with a lag), so they should be close to the commit.
WITH target AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]),
                         CAST(:tenants AS uuid[])) AS x(id, started_at, ended_at, tenant_id)
),
t AS (
    SELECT tr.call_id, tr.turn_number, tr.speaker, tr.content, tr.created_at, tr.speech_duration_ms,
           tr.stt_confidence, tr.stt_latency_ms, tr.llm_latency_ms, tr.tts_latency_ms, tr.interrupted,
           lag(tr.speaker) OVER w           AS prev_speaker,
           lag(tr.created_at) OVER w        AS prev_at,
           lag(tr.speech_duration_ms) OVER w AS prev_dur,
           lag(tr.stt_latency_ms) OVER w    AS prev_stt
    FROM cca_call_turns tr
    JOIN target ON target.id = tr.call_id
    WHERE tr.created_at >= CAST(:start AS timestamptz) - interval '1 hour'
      AND tr.created_at <= CAST(:end AS timestamptz) + interval '7 hours'
    WINDOW w AS (PARTITION BY tr.call_id ORDER BY tr.turn_number)
),
g AS (
    SELECT t.*,
           extract(epoch FROM created_at - prev_at) * 1000 - prev_dur AS gap_ms
    FROM t
),
r AS (
    SELECT g.*,
           CASE WHEN speaker = 'bot' AND prev_speaker = 'customer' AND gap_ms BETWEEN 0 AND :max_gap_ms
                THEN gap_ms END AS measured_ms,
           CASE WHEN speaker = 'bot' AND prev_speaker = 'customer'
                 AND (prev_stt IS NOT NULL OR llm_latency_ms IS NOT NULL OR tts_latency_ms IS NOT NULL)
                THEN coalesce(prev_stt, 0) + coalesce(llm_latency_ms, 0) + coalesce(tts_latency_ms, 0) END
                AS estimated_ms
    FROM g
),
per_call AS (
    SELECT call_id,
           count(*)                                                        AS turns,
           count(*) FILTER (WHERE speaker = 'customer')                    AS customer_turns,
           count(*) FILTER (WHERE speaker = 'bot')                         AS bot_turns,
           coalesce(array_agg(round(coalesce(measured_ms, estimated_ms))::int ORDER BY turn_number)
                    FILTER (WHERE coalesce(measured_ms, estimated_ms) IS NOT NULL), '{}')  AS response_ms,
           coalesce(bool_or(measured_ms IS NULL AND estimated_ms IS NOT NULL), false)      AS response_estimated,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(measured_ms, estimated_ms)) AS response_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY coalesce(measured_ms, estimated_ms)) AS response_p95_ms,
           max(coalesce(measured_ms, estimated_ms))                        AS response_max_ms,
           coalesce(array_agg(stt_latency_ms ORDER BY turn_number)
                    FILTER (WHERE speaker = 'customer' AND stt_latency_ms IS NOT NULL), '{}') AS stt_ms,
           coalesce(array_agg(llm_latency_ms ORDER BY turn_number)
                    FILTER (WHERE speaker = 'bot' AND llm_latency_ms IS NOT NULL), '{}')      AS llm_ms,
           coalesce(array_agg(tts_latency_ms ORDER BY turn_number)
                    FILTER (WHERE speaker = 'bot' AND tts_latency_ms IS NOT NULL), '{}')      AS tts_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY stt_latency_ms)    AS stt_p95_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY llm_latency_ms)    AS llm_p95_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY tts_latency_ms)    AS tts_p95_ms,
           count(*) FILTER (WHERE speaker = 'bot' AND content ~* :reask_regex)             AS stt_reasks,
           count(*) FILTER (WHERE speaker = 'customer' AND stt_confidence < :low_confidence) AS low_confidence_turns,
           min(stt_confidence) FILTER (WHERE speaker = 'customer')         AS min_stt_confidence,
           count(*) FILTER (WHERE gap_ms > :long_pause_ms AND gap_ms <= :max_gap_ms)       AS long_pauses,
           count(*) FILTER (WHERE speaker = 'bot' AND interrupted)         AS barge_ins,
           ((array_agg(content ORDER BY turn_number) FILTER (WHERE speaker = 'bot'))[1]) ~* :greeting_regex
                                                                           AS greeted
    FROM r
    GROUP BY call_id
),
tools AS (
    SELECT tc.call_id,
           count(*)                                                        AS tool_calls,
           count(*) FILTER (WHERE NOT tc.success)                          AS tool_errors,
           count(*) FILTER (WHERE NOT tc.success AND tc.tool_result::text ~* :rejected_regex) AS rejected_tool_calls,
           count(*) FILTER (WHERE tc.tool_args @? CAST(:suspicious_path AS jsonpath))        AS suspicious_tool_calls
    FROM call_tool_calls tc
    JOIN target ON target.id = tc.call_id
    WHERE tc.created_at >= CAST(:start AS timestamptz) - interval '1 hour'
      AND tc.created_at <= CAST(:end AS timestamptz) + interval '7 hours'
    GROUP BY tc.call_id
)
INSERT INTO call_metrics AS m (
    call_id, started_at, turns, customer_turns, bot_turns, response_ms, response_p50_ms, response_p95_ms,
    response_max_ms, response_estimated, stt_ms, llm_ms, tts_ms, stt_p95_ms, llm_p95_ms, tts_p95_ms, stt_reasks,
    low_confidence_turns, min_stt_confidence, long_pauses, barge_ins, tool_calls, tool_errors,
    rejected_tool_calls, suspicious_tool_calls, greeted, computed_at, final_at, call_ended_at, tenant_id)
SELECT target.id, target.started_at,
       coalesce(p.turns, 0), coalesce(p.customer_turns, 0), coalesce(p.bot_turns, 0),
       coalesce(p.response_ms, '{}'), p.response_p50_ms, p.response_p95_ms, p.response_max_ms,
       coalesce(p.response_estimated, false), coalesce(p.stt_ms, '{}'), coalesce(p.llm_ms, '{}'),
       coalesce(p.tts_ms, '{}'), p.stt_p95_ms, p.llm_p95_ms, p.tts_p95_ms,
       coalesce(p.stt_reasks, 0), coalesce(p.low_confidence_turns, 0), p.min_stt_confidence,
       coalesce(p.long_pauses, 0), coalesce(p.barge_ins, 0),
       coalesce(tools.tool_calls, 0), coalesce(tools.tool_errors, 0),
       coalesce(tools.rejected_tool_calls, 0), coalesce(tools.suspicious_tool_calls, 0),
       p.greeted, clock_timestamp(),
       CASE WHEN target.ended_at IS NOT NULL THEN clock_timestamp() END, target.ended_at, target.tenant_id
FROM target
LEFT JOIN per_call p ON p.call_id = target.id
LEFT JOIN tools ON tools.call_id = target.id
ON CONFLICT (call_id) DO UPDATE SET
    started_at = EXCLUDED.started_at, turns = EXCLUDED.turns, customer_turns = EXCLUDED.customer_turns,
    bot_turns = EXCLUDED.bot_turns, response_ms = EXCLUDED.response_ms,
    response_p50_ms = EXCLUDED.response_p50_ms, response_p95_ms = EXCLUDED.response_p95_ms,
    response_max_ms = EXCLUDED.response_max_ms, response_estimated = EXCLUDED.response_estimated,
    stt_ms = EXCLUDED.stt_ms, llm_ms = EXCLUDED.llm_ms, tts_ms = EXCLUDED.tts_ms, stt_p95_ms = EXCLUDED.stt_p95_ms, llm_p95_ms = EXCLUDED.llm_p95_ms, tts_p95_ms = EXCLUDED.tts_p95_ms,
    stt_reasks = EXCLUDED.stt_reasks, low_confidence_turns = EXCLUDED.low_confidence_turns,
    min_stt_confidence = EXCLUDED.min_stt_confidence, long_pauses = EXCLUDED.long_pauses,
    barge_ins = EXCLUDED.barge_ins, tool_calls = EXCLUDED.tool_calls, tool_errors = EXCLUDED.tool_errors,
    rejected_tool_calls = EXCLUDED.rejected_tool_calls, suspicious_tool_calls = EXCLUDED.suspicious_tool_calls,
    greeted = EXCLUDED.greeted, computed_at = EXCLUDED.computed_at,
    final_at = coalesce(m.final_at, EXCLUDED.final_at), call_ended_at = EXCLUDED.call_ended_at,
    tenant_id = EXCLUDED.tenant_id
