-- Price the calls that started in [:start, :end) from their usage at the prices in force on the
-- call's local day (:tz), and store the breakdown. :prices is the price book as JSON rows
-- (ccanalytics.pricing). Calls without usage are estimated from their transcript (bot turns and
-- characters, call duration) and flagged "estimated". Self-hosted STT (a fixed monthly cost) is
-- shared by that month's calls that used it. Calls already priced at the same total are not rewritten.
-- What the call processor reported is kept as
-- "reported_total_usd". Calls whose provider or model has no price are left as they are and counted.
WITH p AS (
    SELECT * FROM jsonb_to_recordset(CAST(:prices AS jsonb)) AS p(
        component text, name text, valid_from date, valid_to date, usd_per_increment float8,
        increment_seconds float8, fixed_usd_per_month float8, input_per_1m float8, output_per_1m float8,
        cached_input_per_1m float8, usd_per_1m_chars float8, usd_per_minute float8)
),
c AS (
    SELECT c.id, c.started_at, (c.started_at AT TIME ZONE :tz)::date AS d, c.usage IS NULL AS estimated,
           c.total_cost_usd AS old_total, c.cost_breakdown AS old_breakdown,
           coalesce(c.usage ->> 'stt_provider', :stt_default) AS stt_provider,
           coalesce((c.usage ->> 'stt_seconds')::float8, c.duration_seconds, 0) AS stt_seconds,
           coalesce(c.usage ->> 'llm_model', :llm_default) AS llm_model,
           coalesce((c.usage ->> 'llm_input_tokens')::float8, e.bot_turns * :est_input_tokens, 0) AS llm_in,
           coalesce((c.usage ->> 'llm_cached_input_tokens')::float8, 0) AS llm_cached,
           coalesce((c.usage ->> 'llm_output_tokens')::float8, e.bot_turns * :est_output_tokens, 0) AS llm_out,
           coalesce(c.usage ->> 'tts_provider', :tts_default) AS tts_provider,
           coalesce((c.usage ->> 'tts_chars')::float8, e.bot_chars, 0) AS tts_chars,
           coalesce((c.usage ->> 'tts_cached_chars')::float8, 0) AS tts_cached,
           coalesce((c.usage ->> 'telephony_seconds')::float8, c.duration_seconds, 0) AS telephony_seconds
    FROM calls c
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE t.speaker = 'bot') AS bot_turns,
               coalesce(sum(length(t.content)) FILTER (WHERE t.speaker = 'bot'), 0) AS bot_chars
        FROM call_turns t
        WHERE c.usage IS NULL AND t.call_id = c.id
          AND t.created_at >= c.started_at - interval '1 minute' AND t.created_at < c.started_at + interval '7 hours'
    ) e ON c.usage IS NULL
    WHERE c.started_at >= :start AND c.started_at < :end
),
months AS (  -- calls per month on a fixed-cost STT, over whole months
    SELECT date_trunc('month', (x.started_at AT TIME ZONE :tz))::date AS m, coalesce(x.usage ->> 'stt_provider', :stt_default) AS provider,
           count(*) AS n
    FROM calls x
    WHERE x.started_at >= date_trunc('month', CAST(:start AS timestamptz) AT TIME ZONE :tz) AT TIME ZONE :tz - interval '1 day'
      AND x.started_at < CAST(:end AS timestamptz) + interval '32 days'
      AND coalesce(x.usage ->> 'stt_provider', :stt_default) IN (SELECT name FROM p WHERE fixed_usd_per_month IS NOT NULL)
    GROUP BY 1, 2
),
priced AS (
    SELECT c.id, c.started_at, c.estimated, c.old_total, c.old_breakdown,
           CASE WHEN ps.fixed_usd_per_month IS NOT NULL THEN ps.fixed_usd_per_month / nullif(mo.n, 0)
                ELSE ceil(c.stt_seconds / nullif(ps.increment_seconds, 0)) * ps.usd_per_increment END AS stt,
           ((c.llm_in - least(c.llm_cached, c.llm_in)) * pl.input_per_1m
             + least(c.llm_cached, c.llm_in) * coalesce(pl.cached_input_per_1m, pl.input_per_1m)
             + c.llm_out * pl.output_per_1m) / 1e6 AS llm,
           greatest(c.tts_chars - c.tts_cached, 0) * pt.usd_per_1m_chars / 1e6 AS tts,
           coalesce(ceil(c.telephony_seconds / 60.0) * ptel.usd_per_minute, 0) AS telephony,
           ps.name IS NULL OR pl.name IS NULL OR pt.name IS NULL AS unpriced
    FROM c
    LEFT JOIN p ps ON ps.component = 'stt' AND ps.name = c.stt_provider AND c.d >= ps.valid_from AND c.d < ps.valid_to
    LEFT JOIN months mo ON mo.m = date_trunc('month', c.d)::date AND mo.provider = c.stt_provider
    LEFT JOIN p pl ON pl.component = 'llm' AND pl.name = c.llm_model AND c.d >= pl.valid_from AND c.d < pl.valid_to
    LEFT JOIN p pt ON pt.component = 'tts' AND pt.name = c.tts_provider AND c.d >= pt.valid_from AND c.d < pt.valid_to
    LEFT JOIN p ptel ON ptel.component = 'telephony' AND ptel.name = :telephony_default
                    AND c.d >= ptel.valid_from AND c.d < ptel.valid_to
),
updated AS (
    UPDATE calls SET
        cost_breakdown = jsonb_build_object(
            'stt', round(priced.stt::numeric, 6), 'llm', round(priced.llm::numeric, 6),
            'tts', round(priced.tts::numeric, 6), 'telephony', round(priced.telephony::numeric, 6),
            'estimated', priced.estimated, 'priced_by', CAST(:source AS text),
            'reported_total_usd', CASE WHEN priced.old_breakdown ? 'priced_by' THEN priced.old_breakdown -> 'reported_total_usd'
                                       ELSE to_jsonb(priced.old_total) END),
        total_cost_usd = round((priced.stt + priced.llm + priced.tts + priced.telephony)::numeric, 6)
    FROM priced
    WHERE calls.id = priced.id AND calls.started_at = priced.started_at AND NOT priced.unpriced
      AND (calls.cost_breakdown IS NULL OR NOT calls.cost_breakdown ? 'priced_by'
           OR calls.total_cost_usd IS DISTINCT FROM
              round((priced.stt + priced.llm + priced.tts + priced.telephony)::numeric, 6)::float8)
    RETURNING priced.estimated
)
SELECT (SELECT count(*) FROM updated) AS updated,
       (SELECT count(*) FROM priced WHERE NOT unpriced) AS priced,
       (SELECT count(*) FROM priced WHERE estimated AND NOT unpriced) AS estimated,
       (SELECT count(*) FROM priced WHERE unpriced) AS unpriced
