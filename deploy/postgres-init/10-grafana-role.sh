#!/bin/sh
# Runs once, when the compose PostgreSQL initialises an empty data volume (docker-entrypoint-initdb.d).
# Creates grafana_ro, the read-only login of Grafana's PostgreSQL datasource, allowed to read exactly
# what the dashboards' SQL panels and variables read (docs/deployment.md, "Grafana's database role",
# lists them per panel; tests/test_grafana_grants.py keeps the list below equal to the panels' SQL).
# The tables and views do not exist yet (ccanalytics migrates at its first start, the call processor
# creates its own): an event trigger grants SELECT on each of them as it is created.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v db="$POSTGRES_DB" -v pw="$CCA_GRAFANA_PG_PASSWORD" <<'SQL'
CREATE ROLE grafana_ro LOGIN PASSWORD :'pw' CONNECTION LIMIT 10;
GRANT CONNECT ON DATABASE :"db" TO grafana_ro;
GRANT USAGE ON SCHEMA public TO grafana_ro;
ALTER ROLE grafana_ro SET statement_timeout = '30s';

CREATE FUNCTION cca_grafana_grant() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN
        SELECT c.oid FROM pg_event_trigger_ddl_commands() d
        JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
        WHERE c.relnamespace = 'public'::regnamespace
          AND c.relname = ANY (ARRAY['cca_ab_tests', 'cca_calls', 'cca_daily_stats_by_tenant', 'tenants'])
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO grafana_ro', rel);
    END LOOP;
END
$$;
CREATE EVENT TRIGGER cca_grafana_grant ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'CREATE VIEW')
    EXECUTE FUNCTION cca_grafana_grant();
SQL
