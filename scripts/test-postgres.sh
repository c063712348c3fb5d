#!/usr/bin/env bash
# Starts a private PostgreSQL cluster on loopback for the test suite and prints the variable
# that points the tests at it:
#   eval "$(scripts/test-postgres.sh start)" && cargo test
#   scripts/test-postgres.sh stop
# `stop` also deletes the cluster: each test creates a database of its own, and runs add up to
# gigabytes if the cluster is kept. Needs Debian's `postgresql` package. As root, the server runs as the `postgres` user
# (initdb refuses to run as root).
set -euo pipefail

port="${TOLLGATE_PG_PORT:-55432}"
dir="${TOLLGATE_PG_DIR:-/tmp/tollgate-pg-$port}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -n "$bin" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
      as_owner "$bin/initdb" -D "$dir" -U postgres -A trust --no-sync >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" \
        start >/dev/null
    fi
    as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qtAc \
      "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tollgate') THEN
         CREATE ROLE tollgate LOGIN CREATEDB PASSWORD 'tollgate'; END IF; END \$\$;" >/dev/null
    echo "export TOLLGATE_TEST_DATABASE_URL=postgres://tollgate:tollgate@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    if [ -f "$dir/PG_VERSION" ]; then rm -rf "$dir"; fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
