-- Derive call_metrics for the calls that started in [:start, :end). With :only_stale, only the calls
-- whose metrics are missing or out of date, found without joining every call of the range to three
-- tables (a call the call processor wrote itself carries no change stamp):
--   * calls without metrics: each UTC day of the range is compared on both sides — the number of
--     calls and the XOR of a hash of their ids, from index-only scans of calls (started_at, id) and
--     call_metrics (started_at, call_id) (migration 024) — and only the days that differ are searched
--     call by call (an anti-join on call_metrics' key). Exact: a day whose calls and metrics hold the
--     same ids compares equal, any other day (up to a 64-bit hash collision) does not;
--   * calls derived while in progress that have ended since: the partial index on call_metrics
--     (started_at) WHERE call_ended_at IS NULL (migration 024), joined to their calls row;
--   * calls delivered (or re-delivered) through ccanalytics after their metrics were derived
--     (computed_at < cca_call_ingest.ingested_at): with :ingested_after, only those delivered after
--     it, through the index on ingested_at; without it, every delivered call of the range.
-- Without :only_stale, every call of the range. Turns are read through cca_call_turns (speech
-- durations and barge-ins of delivered call logs). Signal patterns and thresholds come from
-- ccanalytics.signals (bind parameters), so SQL and Python agree.
--
-- Response latency of a bot reply = start of the bot turn - end of the customer turn before it
-- (timestamp + speech duration). When durations are missing or the clocks disagree, it is estimated
-- as the customer turn's STT latency + the bot turn's LLM and TTS latencies (response_estimated).
-- final_at, the first derivation after the call ended, is kept on every later one: the exporter counts a
-- finished call once, by final_at. The stamps are clock_timestamp(), not the transaction start: the
-- exporter reads rows stamped since its watermark (with a lag), so they should be close to the commit.
WITH call_days AS (
    SELECT date_bin('1 day', started_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS b, count(*) AS n,
           bit_xor(uuid_hash_extended(id, 0)) AS x
    FROM calls
    WHERE CAST(:only_stale AS boolean) AND started_at >= :start AND started_at < :end
    GROUP BY 1
),
metric_days AS (
    SELECT date_bin('1 day', started_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS b, count(*) AS n,
           bit_xor(uuid_hash_extended(call_id, 0)) AS x
    FROM call_metrics
    WHERE CAST(:only_stale AS boolean) AND started_at >= :start AND started_at < :end
    GROUP BY 1
),
-- the UTC days with a call that has no metrics (a day with metrics of deleted calls only is left alone)
unmatched AS MATERIALIZED (
    SELECT c.b FROM call_days c LEFT JOIN metric_days m ON m.b = c.b
    WHERE m.b IS NULL OR m.n <> c.n OR m.x <> c.x
),
target AS (
    SELECT c.id, c.started_at, c.ended_at
    FROM calls c
    WHERE NOT CAST(:only_stale AS boolean) AND c.started_at >= :start AND c.started_at < :end
    UNION
    SELECT c.id, c.started_at, c.ended_at
    FROM unmatched u
    CROSS JOIN LATERAL (
        SELECT c.id, c.started_at, c.ended_at
        FROM calls c
        WHERE c.started_at >= greatest(u.b, CAST(:start AS timestamptz))
          AND c.started_at < least(u.b + interval '1 day', CAST(:end AS timestamptz))
          AND NOT EXISTS (SELECT 1 FROM call_metrics m WHERE m.call_id = c.id)
    ) c
    UNION
    SELECT c.id, c.started_at, c.ended_at
    FROM call_metrics m
    JOIN calls c ON c.id = m.call_id AND c.started_at = m.started_at
    WHERE CAST(:only_stale AS boolean) AND m.call_ended_at IS NULL
      AND m.started_at >= :start AND m.started_at < :end AND c.ended_at IS NOT NULL
    UNION
    SELECT c.id, c.started_at, c.ended_at
    FROM cca_call_ingest i
    JOIN call_metrics m ON m.call_id = i.call_id
    JOIN calls c ON c.id = i.call_id AND c.started_at = i.started_at
    WHERE CAST(:only_stale AS boolean) AND i.started_at >= :start AND i.started_at < :end
      AND i.ingested_at > coalesce(CAST(:ingested_after AS timestamptz), '-infinity')
      AND m.computed_at < i.ingested_at
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
      AND tr.created_at < CAST(:end AS timestamptz) + interval '7 hours'
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
      AND tc.created_at < CAST(:end AS timestamptz) + interval '7 hours'
    GROUP BY tc.call_id
)
INSERT INTO call_metrics AS m (
    call_id, started_at, turns, customer_turns, bot_turns, response_ms, response_p50_ms, response_p95_ms,
    response_max_ms, response_estimated, stt_ms, llm_ms, tts_ms, stt_p95_ms, llm_p95_ms, tts_p95_ms, stt_reasks,
    low_confidence_turns, min_stt_confidence, long_pauses, barge_ins, tool_calls, tool_errors,
    rejected_tool_calls, suspicious_tool_calls, greeted, computed_at, final_at, call_ended_at)
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
       CASE WHEN target.ended_at IS NOT NULL THEN clock_timestamp() END, target.ended_at
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
    final_at = coalesce(m.final_at, EXCLUDED.final_at), call_ended_at = EXCLUDED.call_ended_at
