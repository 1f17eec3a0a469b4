-- 012: ccanalytics's daily figures, one row per business day in CCA_TIMEZONE. daily_stats belongs to the
-- call processor, which fills it itself by UTC day each night (../shared/callcenter-schema.md); it is
-- only read.
CREATE TABLE cca_daily_stats (
    stat_date                 date PRIMARY KEY,
    total_calls               integer NOT NULL DEFAULT 0 CHECK (total_calls >= 0),
    resolved_by_bot           integer NOT NULL DEFAULT 0 CHECK (resolved_by_bot >= 0),
    transferred               integer NOT NULL DEFAULT 0 CHECK (transferred >= 0),
    avg_duration_seconds      double precision CHECK (avg_duration_seconds >= 0),
    avg_quality_score         double precision CHECK (avg_quality_score BETWEEN 0 AND 1),
    total_cost_usd            double precision CHECK (total_cost_usd >= 0),
    scenario_breakdown        jsonb NOT NULL DEFAULT '{}'::jsonb,
    transfer_reasons          jsonb NOT NULL DEFAULT '{}'::jsonb,
    hourly_distribution       jsonb NOT NULL DEFAULT '{}'::jsonb,
    orders_created            integer NOT NULL DEFAULT 0 CHECK (orders_created >= 0),
    fittings_booked           integer NOT NULL DEFAULT 0 CHECK (fittings_booked >= 0),
    scored_calls              integer NOT NULL DEFAULT 0 CHECK (scored_calls >= 0),
    costed_calls              integer NOT NULL DEFAULT 0 CHECK (costed_calls >= 0),
    unique_callers            integer NOT NULL DEFAULT 0 CHECK (unique_callers >= 0),
    repeat_calls_7d           integer NOT NULL DEFAULT 0 CHECK (repeat_calls_7d >= 0),
    first_contact_resolved    integer NOT NULL DEFAULT 0 CHECK (first_contact_resolved >= 0),
    scenario_transfers        jsonb NOT NULL DEFAULT '{}'::jsonb,
    response_p50_ms           double precision,
    response_p95_ms           double precision,
    calls_over_latency_budget integer NOT NULL DEFAULT 0,
    stt_reasks                integer NOT NULL DEFAULT 0,
    long_pauses               integer NOT NULL DEFAULT 0,
    barge_ins                 integer NOT NULL DEFAULT 0,
    tool_errors               integer NOT NULL DEFAULT 0,
    -- what the row was computed from (sql/queries/daily_fingerprints.sql), and when
    source_fingerprint        text,
    computed_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (resolved_by_bot + transferred <= total_calls)
);
