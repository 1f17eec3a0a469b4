-- 012: ccanalytics's daily figures live in its own table. daily_stats belongs to the call processor,
-- which fills it itself by UTC day each night (../shared/callcenter-schema.md); ccanalytics computed
-- its figures by Kyiv day into the same rows, so the two overwrote each other. cca_daily_stats holds
-- ours (one row per business day in CCA_TIMEZONE); the processor's daily_stats is only read, and the
-- columns ccanalytics had added to it are dropped.
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

-- an installation that computed its figures into daily_stats keeps them (the rows it wrote carry a
-- fingerprint); on a database attached from the call processor there is nothing to carry over
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'daily_stats'
                 AND column_name = 'source_fingerprint') THEN
        EXECUTE $copy$
            INSERT INTO cca_daily_stats
            SELECT stat_date, total_calls, resolved_by_bot, transferred, avg_duration_seconds,
                   avg_quality_score, total_cost_usd, scenario_breakdown, transfer_reasons,
                   hourly_distribution, orders_created, fittings_booked, scored_calls, costed_calls,
                   unique_callers, repeat_calls_7d, first_contact_resolved, scenario_transfers,
                   response_p50_ms, response_p95_ms, calls_over_latency_budget, stt_reasks, long_pauses,
                   barge_ins, tool_errors, source_fingerprint, computed_at
            FROM daily_stats WHERE source_fingerprint IS NOT NULL
        $copy$;
    END IF;
END
$$;

ALTER TABLE daily_stats
    DROP COLUMN IF EXISTS orders_created,
    DROP COLUMN IF EXISTS fittings_booked,
    DROP COLUMN IF EXISTS scored_calls,
    DROP COLUMN IF EXISTS costed_calls,
    DROP COLUMN IF EXISTS unique_callers,
    DROP COLUMN IF EXISTS repeat_calls_7d,
    DROP COLUMN IF EXISTS first_contact_resolved,
    DROP COLUMN IF EXISTS scenario_transfers,
    DROP COLUMN IF EXISTS response_p50_ms,
    DROP COLUMN IF EXISTS response_p95_ms,
    DROP COLUMN IF EXISTS calls_over_latency_budget,
    DROP COLUMN IF EXISTS stt_reasks,
    DROP COLUMN IF EXISTS long_pauses,
    DROP COLUMN IF EXISTS barge_ins,
    DROP COLUMN IF EXISTS tool_errors,
    DROP COLUMN IF EXISTS source_fingerprint,
    DROP COLUMN IF EXISTS computed_at;
