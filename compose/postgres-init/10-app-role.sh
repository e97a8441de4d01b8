#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d).
# Two roles: POSTGRES_USER (`kb`) owns the schema and runs migrations and the audit purge;
# KB_APP_DB_ROLE (`kb_app`), which the web, worker and beat containers use, may read and
# write rows but is no superuser and owns no table, so it can neither disable the audit
# trail's append-only trigger nor hold UPDATE, DELETE or TRUNCATE on the audit table
# (kb/audit migrations 0002 and 0003). tests/ops/test_database_roles.py runs this script.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_role="${KB_APP_DB_ROLE:-kb_app}" -v app_password="$KB_APP_DB_PASSWORD" \
  -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"app_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
GRANT CONNECT ON DATABASE :"db" TO :"app_role";
GRANT USAGE ON SCHEMA public TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO :"app_role";
SQL
