-- 001: core — transcript search and phone masking, what ccanalytics keeps about each call it received,
-- and the indexes its queries need on the call processor's tables.
--
-- The call processor's tables (calls, call_turns, call_tool_calls, customers, tenants, prompt_versions,
-- prompt_ab_tests, daily_stats, llm_usage_log) are not created here: they are the processor's, in the
-- shape its own migrations give them (../shared/callcenter-schema.md). A fresh database (the embedded
-- demo, the tests) gets them from sql/processor/schema.sql before these migrations run; an existing
-- one is attached (ccanalytics.attach). Nothing here adds a column to them or writes their values.

-- ---------------------------------------------------------------- text search for transcripts
-- Ukrainian has no snowball stemmer in PostgreSQL. Transcripts are Ukrainian (sometimes Russian or
-- surzhyk), so cca_search_normalize() folds the Ukrainian-only letters onto their Russian
-- counterparts and drops apostrophes (п'ять -> пять), then the Russian snowball stemmer (without a
-- stop-word list: Ukrainian "не", "так", "як" must stay searchable) handles inflection.
-- Documents and queries go through the same two functions, so a whole-word query always finds
-- every turn that contains that word.
CREATE TEXT SEARCH DICTIONARY cca_russian_stem (TEMPLATE = snowball, Language = russian);
CREATE TEXT SEARCH DICTIONARY cca_english_stem (TEMPLATE = snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION cca_text (COPY = pg_catalog.simple);
ALTER TEXT SEARCH CONFIGURATION cca_text
    ALTER MAPPING FOR word, hword, hword_part WITH cca_russian_stem;
ALTER TEXT SEARCH CONFIGURATION cca_text
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart WITH cca_english_stem;

CREATE FUNCTION cca_search_normalize(txt text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN translate(lower(txt), 'іїєґ''’ʼ`', 'ииег');

CREATE FUNCTION cca_search_vector(txt text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN to_tsvector('cca_text'::regconfig, cca_search_normalize(txt));

CREATE FUNCTION cca_search_query(q text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN websearch_to_tsquery('cca_text'::regconfig, cca_search_normalize(q));

-- ---------------------------------------------------------------- phone masking
-- The SQL twin of ccanalytics.privacy.mask_phone for stored (normalised) caller ids, so that
-- exports and API answers mask in the query itself. A test keeps the two in agreement.
CREATE FUNCTION cca_mask_phone(p text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE
        WHEN length(regexp_replace(p, '\D', '', 'g')) <= 4 THEN repeat('*', length(p))
        WHEN p ~ '^\+\d{11,}$' THEN left(p, 6) || repeat('*', length(p) - 8) || right(p, 2)
        WHEN p ~ '^\+\d+$' THEN left(p, 3) || repeat('*', length(p) - 5) || right(p, 2)
        WHEN p ~ '^\d+$' THEN left(p, 2) || repeat('*', length(p) - 4) || right(p, 2)
        ELSE repeat('*', length(p))
    END;

-- ---------------------------------------------------------------- what ccanalytics received with a call
-- A call delivered through ccanalytics's ingest API (the call processor posting its call log, or a
-- bulk load): the usage block of the log, the payload's canonical SHA-256 (re-delivery of the same
-- payload is a no-op, a changed one replaces the call), when it arrived, and an order or fitting
-- booking reference that is not a uuid ('' for "created, id unknown"): the processor's order_id and
-- fitting_booking_id hold only uuids. A call the processor wrote into its tables itself has no row
-- here, and ccanalytics never replaces it.
CREATE TABLE cca_call_ingest (
    call_id         uuid PRIMARY KEY,
    started_at      timestamptz NOT NULL,
    usage           jsonb,
    payload_sha256  bytea NOT NULL,
    order_ref       varchar(50),
    booking_ref     varchar(50),
    ingested_at     timestamptz NOT NULL DEFAULT now()
);
-- incremental daily figures find the calls delivered since a day was computed
CREATE INDEX cca_call_ingest_ingested_idx ON cca_call_ingest (ingested_at);

-- Per-turn facts of a delivered call log that the processor's call_turns has no column for.
CREATE TABLE cca_turn_extras (
    turn_id             uuid PRIMARY KEY,
    call_id             uuid NOT NULL,
    speech_duration_ms  integer CHECK (speech_duration_ms >= 0),
    interrupted         boolean
);
CREATE INDEX cca_turn_extras_call_idx ON cca_turn_extras (call_id);

-- The A/B variant a call was served, when known: sent with the call log (ab_test) or recorded by the
-- prompt resolver at call start (docs/integration.md). The call processor records no variant on its
-- calls (calls.prompt_version stays 'default'), so a call without a row here has no A/B attribution.
CREATE TABLE cca_ab_assignments (
    call_id     uuid PRIMARY KEY,
    test_id     uuid NOT NULL,
    variant     varchar(20) NOT NULL CHECK (variant <> ''),
    source      varchar(10) NOT NULL DEFAULT 'ingest' CHECK (source IN ('ingest', 'resolver')),
    assigned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cca_ab_assignments_test_idx ON cca_ab_assignments (test_id, variant);

-- The turns as ccanalytics reads them: the processor's row and the extras of a delivered call log.
-- A query that reads no extra column does not join cca_turn_extras (PostgreSQL removes the join).
CREATE VIEW cca_call_turns AS
SELECT t.id, t.call_id, t.turn_number, t.speaker, t.content, t.stt_confidence, t.stt_latency_ms,
       t.llm_latency_ms, t.tts_latency_ms, t.created_at, t.language,
       x.speech_duration_ms, x.interrupted
FROM call_turns t
LEFT JOIN cca_turn_extras x ON x.turn_id = t.id;

-- ---------------------------------------------------------------- indexes on the processor's tables
-- Built without blocking the processor's writes on an attached database (CREATE INDEX CONCURRENTLY per
-- partition, ccanalytics.attach). Transcript search: the processor's own GIN index is on
-- to_tsvector('simple', content), which finds no inflected form; ccanalytics searches its own vector.
CREATE INDEX cca_call_turns_search_idx ON call_turns USING gin (cca_search_vector(content));
CREATE INDEX cca_call_turns_call_idx ON call_turns (call_id, created_at);
CREATE INDEX cca_call_tool_calls_call_idx ON call_tool_calls (call_id, created_at);
CREATE INDEX cca_call_tool_calls_tool_idx ON call_tool_calls (tool_name, created_at);
CREATE INDEX cca_call_tool_calls_failed_idx ON call_tool_calls (created_at) WHERE NOT success;
-- the journal pages by (started_at, id); per scenario and caller within a period
CREATE INDEX cca_calls_started_idx ON calls (started_at, id);
CREATE INDEX cca_calls_scenario_idx ON calls (scenario, started_at);
CREATE INDEX cca_calls_caller_idx ON calls (caller_id, started_at);
CREATE INDEX cca_calls_customer_idx ON calls (customer_id, started_at);
CREATE INDEX cca_calls_tenant_idx ON calls (tenant_id, started_at);
-- the LLM requests the processor logged for a call (cca_logged_usage, migration 013)
CREATE INDEX cca_llm_usage_log_call_idx ON llm_usage_log (call_id, created_at);
