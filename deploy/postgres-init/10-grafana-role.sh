#!/bin/sh
# Runs once, when the compose PostgreSQL initialises an empty data volume (docker-entrypoint-initdb.d).
# Creates grafana_ro, the read-only login of Grafana's PostgreSQL datasource. Tables that the owner
# (POSTGRES_USER, the role ccanalytics migrates with) creates later become readable by it.
# Grafana's panels read the daily figures per tenant (cca_daily_stats_by_tenant), cca_calls, cca_ab_tests
# and tenants; to narrow the grant to those after the first migration, see
# docs/deployment.md ("Grafana's database role").
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" -v pw="$CCA_GRAFANA_PG_PASSWORD" <<'SQL'
CREATE ROLE grafana_ro LOGIN PASSWORD :'pw' CONNECTION LIMIT 10;
GRANT CONNECT ON DATABASE :"db" TO grafana_ro;
GRANT USAGE ON SCHEMA public TO grafana_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO grafana_ro;
ALTER ROLE grafana_ro SET statement_timeout = '30s';
SQL
