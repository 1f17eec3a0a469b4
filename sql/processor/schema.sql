-- The call processor's tables, as its Alembic migrations leave them at head 058.
--
-- ccanalytics does not own these tables. The call centre's call processor (public: svv2602/call-center,
-- migrations/versions/001…058) creates them, writes their rows and makes their monthly partitions.
-- This file restates that shape in plain DDL. It was written from the documented facts in
-- shared/callcenter-schema.md, checked column by column against the processor's migrations (the
-- migration that declares each fact is named beside it). Where the two disagree, the migrations win.
--
-- Uses:
--   * a fresh database that ccanalytics creates itself (the embedded demo, the tests) gets these tables
--     from this file before sql/migrations/ runs;
--   * the test fixture and `db check` (ccanalytics.schemacheck) use it to know what the processor's
--     schema looks like.
-- A database attached to the real call processor never runs this file.
--
-- ccanalytics never changes a value in these tables. Their rows, counters, costs, quality scores and
-- daily_stats are the processor's. Anything ccanalytics derives lives in its own tables (cca_*).
--
-- Only the tables ccanalytics reads are here (the processor's orders, fitting_*, knowledge_*,
-- operators, admin_*, sandbox_*, callback_requests, … are left out). Foreign keys appear only where a
-- processor migration declares them. Seed rows (020: prompt versions, 045: model prices) are left out;
-- this is structure only.
-- No partitions are created here: cc_processor_ensure_partitions() at the end stands in for the
-- processor's partition manager (src/tasks/partition_manager.py).
-- No extension is needed: the only server-side uuid default is gen_random_uuid(), which has been
-- built in since PostgreSQL 13.
-- All names are unqualified, so everything is created in the current schema (schemacheck runs this
-- file in a scratch schema).


-- ------------------------------------------------------------------------------------------ tenants
-- The retail networks one Asterisk serves. 032 creates the table; 040 adds extensions; 054 adds
-- working_hours (NULL = open 24/7).
CREATE TABLE tenants (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug          varchar(50)  NOT NULL UNIQUE,
    name          varchar(200) NOT NULL,
    network_id    varchar(50)  NOT NULL,
    agent_name    varchar(100) NOT NULL DEFAULT 'Олена',
    greeting      text,
    enabled_tools text[]       NOT NULL DEFAULT '{}',
    prompt_suffix text,
    config        jsonb        NOT NULL DEFAULT '{}',
    is_active     boolean      NOT NULL DEFAULT true,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz,
    extensions    text[]       NOT NULL DEFAULT '{}',                 -- 040
    working_hours jsonb        DEFAULT NULL                           -- 054
);
CREATE INDEX ix_tenants_slug ON tenants (slug);                                       -- 032
CREATE INDEX ix_tenants_is_active ON tenants (is_active) WHERE is_active = true;      -- 032
CREATE INDEX ix_tenants_extensions ON tenants USING gin (extensions);                 -- 040


-- ---------------------------------------------------------------------------------------- customers
-- 001 creates it with no default on id: the processor supplies its own uuid. 048 adds the profile
-- columns. 050 adds tenant_id (NOT NULL after a backfill, ON DELETE RESTRICT) and replaces the unique
-- index on phone alone (idx_customers_phone, dropped) with one on (tenant_id, phone). 053 adds the
-- soft delete.
CREATE TABLE customers (
    id               uuid PRIMARY KEY,
    phone            varchar(20) NOT NULL,
    name             varchar(200),
    total_calls      integer DEFAULT 0,
    first_call_at    timestamptz,
    last_call_at     timestamptz,
    created_at       timestamptz DEFAULT now(),
    city             varchar(100),                                                  -- 048
    vehicles         jsonb DEFAULT '[]'::jsonb,                                     -- 048
    delivery_address varchar(500),                                                  -- 048
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,      -- 050
    deleted_at       timestamptz                                                    -- 053
);
CREATE UNIQUE INDEX idx_customers_tenant_phone ON customers (tenant_id, phone);       -- 050
CREATE INDEX idx_customers_tenant_id ON customers (tenant_id);                        -- 050
CREATE INDEX idx_customers_active ON customers (tenant_id, last_call_at DESC)
    WHERE deleted_at IS NULL;                                                         -- 053


-- -------------------------------------------------------------------------------------------- calls
-- Partitioned by month of started_at (001). id is the Asterisk channel uuid and has no default.
-- quality_details comes from 005 and tenant_id from 033. calls.tenant_id is the only foreign key
-- declared on a partitioned table. customer_id, order_id and fitting_booking_id are plain uuids with no
-- constraint.
CREATE TABLE calls (
    id                      uuid NOT NULL,
    caller_id               varchar(20),
    customer_id             uuid,
    started_at              timestamptz NOT NULL,
    ended_at                timestamptz,
    duration_seconds        integer,
    scenario                varchar(50),
    transferred_to_operator boolean DEFAULT false,
    transfer_reason         varchar(50),
    order_id                uuid,
    fitting_booking_id      uuid,
    prompt_version          varchar(50),
    quality_score           double precision,
    cost_breakdown          jsonb,
    total_cost_usd          double precision,
    quality_details         jsonb,                                                     -- 005
    tenant_id               uuid REFERENCES tenants (id) ON DELETE SET NULL,           -- 033
    PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX idx_calls_caller_id ON calls (caller_id);                                -- 001
CREATE INDEX idx_calls_customer_id ON calls (customer_id);                            -- 001
CREATE INDEX idx_calls_started_at ON calls (started_at);                              -- 001
CREATE INDEX idx_calls_quality_score ON calls (quality_score);                        -- 005
CREATE INDEX idx_calls_scenario ON calls (scenario);                                  -- 031
CREATE INDEX ix_calls_tenant_id ON calls (tenant_id) WHERE tenant_id IS NOT NULL;     -- 033
CREATE INDEX ix_calls_transferred ON calls (transferred_to_operator)
    WHERE transferred_to_operator = true;                                             -- 051


-- --------------------------------------------------------------------------------------- call_turns
-- Partitioned by month of created_at (001). Neither id nor created_at has a default: the processor
-- supplies both. call_id has no foreign key, because calls' key is (id, started_at). 052 adds
-- language.
CREATE TABLE call_turns (
    id             uuid NOT NULL,
    call_id        uuid NOT NULL,
    turn_number    integer,
    speaker        varchar(10),
    content        text,
    stt_confidence double precision,
    stt_latency_ms integer,
    llm_latency_ms integer,
    tts_latency_ms integer,
    created_at     timestamptz NOT NULL,
    language       varchar(10),                                                        -- 052
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX idx_call_turns_call_id ON call_turns (call_id);                          -- 001
CREATE INDEX idx_call_turns_content_fts ON call_turns
    USING gin (to_tsvector('simple', content));                                       -- 031


-- ---------------------------------------------------------------------------------- call_tool_calls
-- Partitioned by month of created_at (001), with no defaults. turn_number counts the tool calls within
-- a call. It is not the dialogue turn, so order tool calls among the turns by created_at.
CREATE TABLE call_tool_calls (
    id          uuid NOT NULL,
    call_id     uuid NOT NULL,
    turn_number integer,
    tool_name   varchar(50),
    tool_args   jsonb,
    tool_result jsonb,
    duration_ms integer,
    success     boolean,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX idx_call_tool_calls_call_id ON call_tool_calls (call_id);                -- 001


-- -------------------------------------------------------------------------------------- daily_stats
-- 005. The processor's nightly task upserts one row per UTC day. The defaults are spelled the way the
-- migration declares them (a quoted '0' and '{}'), so the catalog shows the same default expressions.
CREATE TABLE daily_stats (
    stat_date            date PRIMARY KEY,
    total_calls          integer          NOT NULL DEFAULT '0',
    resolved_by_bot      integer          NOT NULL DEFAULT '0',
    transferred          integer          NOT NULL DEFAULT '0',
    avg_duration_seconds double precision NOT NULL DEFAULT '0',
    avg_quality_score    double precision NOT NULL DEFAULT '0',
    total_cost_usd       double precision NOT NULL DEFAULT '0',
    scenario_breakdown   jsonb DEFAULT '{}',
    transfer_reasons     jsonb DEFAULT '{}',
    hourly_distribution  jsonb DEFAULT '{}'
);


-- ---------------------------------------------------------------------------------- prompt_versions
-- 006. uuid id with a server default. There is no version number and no label.
CREATE TABLE prompt_versions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          varchar(100) NOT NULL,
    system_prompt text NOT NULL,
    tools_config  jsonb,
    is_active     boolean NOT NULL DEFAULT 'false',
    metadata      jsonb DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_prompt_versions_is_active ON prompt_versions (is_active);            -- 006


-- ---------------------------------------------------------------------------------- prompt_ab_tests
-- 006. Known quirk, kept on purpose: the migration gave status the server default "'active'" as a
-- string, and Alembic quoted it again. The stored default is therefore the 8-character text 'active'
-- with its quote characters. Rows inserted without a status get that value. The processor itself
-- always writes active / stopped / completed explicitly.
CREATE TABLE prompt_ab_tests (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    test_name     varchar(200) NOT NULL,
    variant_a_id  uuid NOT NULL REFERENCES prompt_versions (id),
    variant_b_id  uuid NOT NULL REFERENCES prompt_versions (id),
    traffic_split double precision NOT NULL DEFAULT '0.5',
    calls_a       integer NOT NULL DEFAULT '0',
    calls_b       integer NOT NULL DEFAULT '0',
    quality_a     double precision NOT NULL DEFAULT '0',
    quality_b     double precision NOT NULL DEFAULT '0',
    status        varchar(20) NOT NULL DEFAULT '''active''',
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);
CREATE INDEX idx_prompt_ab_tests_status ON prompt_ab_tests (status);                  -- 006


-- -------------------------------------------------------------------------------- llm_model_pricing
-- The processor's price list for the models it uses, per 1M tokens. 045 creates it; 046 adds
-- provider_type, include_in_comparison and catalog_model_key. 046's description calls
-- catalog_model_key an FK to the catalog, but no constraint is declared, so none is declared here.
-- (A cached-input price column arrives in 060, after head.)
CREATE TABLE llm_model_pricing (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider_key          varchar(100) NOT NULL,
    model_name            varchar(200) NOT NULL,
    display_name          varchar(200) NOT NULL,
    input_price_per_1m    numeric(10,4) NOT NULL,
    output_price_per_1m   numeric(10,4) NOT NULL,
    is_system             boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz,
    provider_type         varchar(50),                                                  -- 046
    include_in_comparison boolean NOT NULL DEFAULT true,                                -- 046
    catalog_model_key     varchar(300),                                                 -- 046
    CONSTRAINT uq_llm_model_pricing_provider UNIQUE (provider_key)
);


-- ------------------------------------------------------------------------------ llm_pricing_catalog
-- The full model price catalog synced from LiteLLM, per 1M tokens. 046 creates it; 047 adds
-- is_hidden.
CREATE TABLE llm_pricing_catalog (
    model_key           varchar(300) PRIMARY KEY,
    provider_type       varchar(50) NOT NULL,
    display_name        varchar(300),
    input_price_per_1m  numeric(10,4) NOT NULL,
    output_price_per_1m numeric(10,4) NOT NULL,
    max_input_tokens    integer,
    max_output_tokens   integer,
    is_new              boolean NOT NULL DEFAULT true,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    is_hidden           boolean NOT NULL DEFAULT false                                  -- 047
);
CREATE INDEX ix_catalog_provider ON llm_pricing_catalog (provider_type);              -- 046
CREATE INDEX ix_catalog_new ON llm_pricing_catalog (is_new) WHERE is_new = true;      -- 046
CREATE INDEX ix_catalog_hidden ON llm_pricing_catalog (is_hidden) WHERE is_hidden = true;  -- 047


-- ------------------------------------------------------------------------------------ llm_usage_log
-- One row per LLM request, with the real token counts. Partitioned by month of created_at (045).
-- Unlike the call tables, the processor declares defaults for id and created_at here. call_id and
-- tenant_id have no foreign keys. 058 adds cached_input_tokens.
CREATE TABLE llm_usage_log (
    id                  uuid NOT NULL DEFAULT gen_random_uuid(),
    task_type           varchar(50)  NOT NULL,
    provider_key        varchar(100) NOT NULL,
    model_name          varchar(200) NOT NULL,
    input_tokens        integer NOT NULL,
    output_tokens       integer NOT NULL,
    latency_ms          integer,
    call_id             uuid,
    tenant_id           uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    cached_input_tokens integer NOT NULL DEFAULT 0,                                     -- 058
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX ix_llm_usage_log_task_created ON llm_usage_log (task_type, created_at);  -- 045
CREATE INDEX ix_llm_usage_log_provider ON llm_usage_log (provider_key, created_at);   -- 045
CREATE INDEX ix_llm_usage_log_tenant_id ON llm_usage_log (tenant_id)
    WHERE tenant_id IS NOT NULL;                                                      -- 051


-- ------------------------------------------------------------------------------ partition stand-in
-- cc_processor_ensure_partitions(p_from, p_months): make the monthly partitions of calls, call_turns,
-- call_tool_calls and llm_usage_log for the p_months months starting with the month of p_from. Returns
-- how many partitions it created.
--
-- This stands in for the processor's partition manager, only on databases ccanalytics created itself.
-- Like that manager, it names partitions <table>_YYYY_MM (calls_2026_11) and gives each one the
-- bounds [first of the month, first of the next month). The bounds are written with an explicit UTC
-- offset, so a month is a UTC month whatever the session's TimeZone.
-- A month is skipped when it is already covered. Coverage is judged by the existing partitions'
-- bounds, not by their names, so one partition spanning several months also counts. These cases raise
-- an error instead of being guessed at:
--   * a month that existing partitions cover only partly;
--   * a table with the partition's name that does not cover the month.
-- Concurrent callers are serialised by a transaction-level advisory lock. Each partition is created in
-- its parent's schema.
CREATE FUNCTION cc_processor_ensure_partitions(p_from date, p_months integer) RETURNS integer
    LANGUAGE plpgsql
AS $fn$
DECLARE
    v_table    text;
    v_parent   regclass;
    v_schema   name;
    v_first    date;
    v_month    date;
    v_next     date;
    v_lo       timestamptz;
    v_hi       timestamptz;
    v_overlap  numeric;
    v_name     text;
    v_created  integer := 0;
BEGIN
    IF p_from IS NULL OR p_months IS NULL OR p_months < 0 THEN
        RAISE EXCEPTION 'cc_processor_ensure_partitions: a start date and a month count >= 0 are needed (got %, %)',
            p_from, p_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM pg_advisory_xact_lock(hashtext('cc_processor_ensure_partitions'));

    v_first := date_trunc('month', p_from)::date;
    FOREACH v_table IN ARRAY ARRAY['calls', 'call_turns', 'call_tool_calls', 'llm_usage_log'] LOOP
        v_parent := to_regclass(v_table);
        IF v_parent IS NULL THEN
            RAISE EXCEPTION 'cc_processor_ensure_partitions: table % does not exist', v_table
                USING ERRCODE = 'undefined_table';
        END IF;
        SELECT n.nspname INTO v_schema
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = v_parent;

        FOR i IN 0 .. p_months - 1 LOOP
            v_month := (v_first + make_interval(months => i))::date;
            v_next  := (v_month + interval '1 month')::date;
            v_lo    := v_month::timestamp AT TIME ZONE 'UTC';
            v_hi    := v_next::timestamp AT TIME ZONE 'UTC';

            -- how much of [v_lo, v_hi) the existing partitions already cover (range partitions never
            -- overlap each other, so the overlaps add up); a DEFAULT partition covers nothing here
            SELECT coalesce(sum(extract(epoch FROM least(b.hi, v_hi) - greatest(b.lo, v_lo))), 0)
              INTO v_overlap
              FROM (
                    SELECT CASE r.m[1] WHEN 'MINVALUE' THEN '-infinity'::timestamptz
                                       ELSE btrim(r.m[1], '''')::timestamptz END AS lo,
                           CASE r.m[2] WHEN 'MAXVALUE' THEN 'infinity'::timestamptz
                                       ELSE btrim(r.m[2], '''')::timestamptz END AS hi
                      FROM pg_inherits inh
                      JOIN pg_class c ON c.oid = inh.inhrelid
                     CROSS JOIN LATERAL (
                           SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                               '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m
                     ) r
                     WHERE inh.inhparent = v_parent AND r.m IS NOT NULL
                   ) b
             WHERE b.lo < v_hi AND b.hi > v_lo;

            IF v_overlap >= extract(epoch FROM v_hi - v_lo) THEN
                CONTINUE;  -- already covered
            ELSIF v_overlap > 0 THEN
                RAISE EXCEPTION 'cc_processor_ensure_partitions: %-% of % is only partly covered by existing partitions',
                    extract(year FROM v_month), lpad(extract(month FROM v_month)::text, 2, '0'), v_table
                    USING ERRCODE = 'invalid_object_definition';
            END IF;

            v_name := v_table || '_' || to_char(v_month, 'YYYY_MM');
            IF to_regclass(format('%I.%I', v_schema, v_name)) IS NOT NULL THEN
                RAISE EXCEPTION 'cc_processor_ensure_partitions: %.% exists but does not cover that month of %',
                    v_schema, v_name, v_table
                    USING ERRCODE = 'duplicate_table';
            END IF;

            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           v_schema, v_name, v_parent,
                           to_char(v_month, 'YYYY-MM-DD') || ' 00:00:00+00',
                           to_char(v_next, 'YYYY-MM-DD') || ' 00:00:00+00');
            v_created := v_created + 1;
        END LOOP;
    END LOOP;

    RETURN v_created;
END
$fn$;
