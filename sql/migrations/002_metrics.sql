-- 002: per-call derived metrics, and the neighbours of a customer's calls (repeat callers).

-- One row per call, derived from its turns and tool calls (ccanalytics.callmetrics). Recomputed when
-- the call is re-delivered (computed_at < cca_call_ingest.ingested_at) and filled for calls the call processor
-- wrote itself. Not partitioned: one narrow row per call.
CREATE TABLE call_metrics (
    call_id                 uuid PRIMARY KEY,
    started_at              timestamptz NOT NULL,
    turns                   integer NOT NULL CHECK (turns >= 0),
    customer_turns          integer NOT NULL CHECK (customer_turns >= 0),
    bot_turns               integer NOT NULL CHECK (bot_turns >= 0),
    -- response latency: end of customer speech -> start of bot speech, one value per bot reply
    response_ms             integer[] NOT NULL DEFAULT '{}',
    response_p50_ms         double precision CHECK (response_p50_ms >= 0),
    response_p95_ms         double precision CHECK (response_p95_ms >= 0),
    response_max_ms         double precision CHECK (response_max_ms >= 0),
    response_estimated      boolean NOT NULL DEFAULT false,  -- from component latencies, not timestamps
    -- per-turn component latencies (customer turns: STT; bot turns: LLM TTFT and TTS), in turn order
    stt_ms                  integer[] NOT NULL DEFAULT '{}',
    llm_ms                  integer[] NOT NULL DEFAULT '{}',
    tts_ms                  integer[] NOT NULL DEFAULT '{}',
    stt_p95_ms              double precision,
    llm_p95_ms              double precision,
    tts_p95_ms              double precision,
    stt_reasks              integer NOT NULL DEFAULT 0 CHECK (stt_reasks >= 0),
    low_confidence_turns    integer NOT NULL DEFAULT 0 CHECK (low_confidence_turns >= 0),
    min_stt_confidence      real,
    long_pauses             integer NOT NULL DEFAULT 0 CHECK (long_pauses >= 0),
    barge_ins               integer NOT NULL DEFAULT 0 CHECK (barge_ins >= 0),
    tool_calls              integer NOT NULL DEFAULT 0 CHECK (tool_calls >= 0),
    tool_errors             integer NOT NULL DEFAULT 0 CHECK (tool_errors >= 0),
    rejected_tool_calls     integer NOT NULL DEFAULT 0 CHECK (rejected_tool_calls >= 0),
    suspicious_tool_calls   integer NOT NULL DEFAULT 0 CHECK (suspicious_tool_calls >= 0),
    greeted                 boolean,
    computed_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_metrics_started_idx ON call_metrics (started_at);
-- the exporter reads newly derived rows since its watermark
CREATE INDEX call_metrics_computed_idx ON call_metrics (computed_at);

-- For each call of a known customer that started in [p_start - 7 days, p_end + 7 days): when the same
-- customer called before and after it. Repeat callers and first-contact resolution read this
-- (sql/queries/daily_calls.sql, summary.sql); a customer is one tenant's (customers are per
-- tenant and phone). Inlined by the planner (one SQL SELECT, STABLE).
CREATE FUNCTION cca_customer_neighbours(p_start timestamptz, p_end timestamptz)
    RETURNS TABLE (id uuid, started_at timestamptz, transferred_to_operator boolean, prev_at timestamptz,
                   next_at timestamptz)
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT id, started_at, coalesce(transferred_to_operator, false),
           lag(started_at) OVER w  AS prev_at,
           lead(started_at) OVER w AS next_at
    FROM calls
    WHERE customer_id IS NOT NULL
      AND started_at >= p_start - interval '7 days'
      AND started_at < p_end + interval '7 days'
    WINDOW w AS (PARTITION BY customer_id ORDER BY started_at, id)
$$;
