-- 019: the customers ccanalytics's ingest created. A call log delivered through ccanalytics (the ingest
-- API, `ccanalytics ingest`, the demo) whose caller is new to its tenant makes the customer row, as the
-- call processor would; later deliveries keep that row's counters (total_calls, first_call_at,
-- last_call_at) equal to its calls. A customer the processor created is its own and never changed
-- (../shared/callcenter-schema.md): it has no row here.
CREATE TABLE cca_created_customers (
    customer_id uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);
