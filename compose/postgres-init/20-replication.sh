#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d), and
# only when the site runs a streaming replica (compose/scale/central.yml passes
# KB_REPLICATION_PASSWORD; on one machine it is unset and this does nothing). It creates the
# role the standby connects as (REPLICATION and LOGIN only: it reads the WAL stream, no
# table), the physical slot that keeps the WAL the standby still needs, and the one
# pg_hba.conf line that lets that role in from the standby's address. The entrypoint restarts
# the server after these scripts, so the line takes effect. tests/test_compose.py runs this.
# An if, not an early exit: the entrypoint sources scripts that are not executable.
set -eu
if [ -n "${KB_REPLICATION_PASSWORD:-}" ]; then
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="${KB_REPLICATION_ROLE:-kb_replicator}" -v password="$KB_REPLICATION_PASSWORD" \
    -v slot="${KB_REPLICATION_SLOT:-kb_standby_1}" <<'SQL'
CREATE ROLE :"role" LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SELECT pg_create_physical_replication_slot(:'slot');
SQL
  echo "host replication ${KB_REPLICATION_ROLE:-kb_replicator} ${KB_REPLICA_CIDR:?set KB_REPLICA_CIDR} scram-sha-256" \
    >> "$PGDATA/pg_hba.conf"
fi
