#!/bin/sh
# The PostgreSQL hot standby (compose/scale/postgres-replica.yml). On first start it copies
# the primary with pg_basebackup through the replication slot that
# compose/postgres-init/20-replication.sh created, and writes the recovery settings (-R:
# standby.signal and primary_conninfo); afterwards it only starts PostgreSQL, which streams
# the primary's WAL and answers read-only queries.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  export PGPASSWORD="$KB_REPLICATION_PASSWORD"
  until pg_basebackup --host="$KB_PG_PRIMARY_HOST" --username="${KB_REPLICATION_ROLE:-kb_replicator}" \
      --pgdata="$PGDATA" --wal-method=stream --write-recovery-conf \
      --slot="${KB_REPLICATION_SLOT:-kb_standby_1}" --checkpoint=fast; do
    # A half-written copy must not look like a data directory on the next attempt.
    echo "standby: the primary at $KB_PG_PRIMARY_HOST is not reachable yet; retrying" >&2
    find "$PGDATA" -mindepth 1 -delete
    sleep 10
  done
  unset PGPASSWORD
  chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on -c max_connections="${KB_PG_MAX_CONNECTIONS:-400}"
