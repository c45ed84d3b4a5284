#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on this machine, for a search's study shared by workers on
# several nodes (hydra.sweeper.storage=postgresql://…) and for its tests.
#
#   scripts/local-postgres.sh start    # initdb and pg_ctl under .postgres/ (git-ignored); prints the URL
#   scripts/local-postgres.sh url      # postgresql://cnnexp@127.0.0.1:15432/cnnexp
#   scripts/local-postgres.sh status
#   scripts/local-postgres.sh stop
#
# Installs nothing: it names the Debian package when it is missing. Listens on 127.0.0.1 only,
# with trust authentication: for trying and testing, not for a shared database. As root the
# cluster runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CNNEXP_POSTGRES_STATE:-$ROOT/.postgres}
PORT=${CNNEXP_POSTGRES_PORT:-15432}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
URL="postgresql://cnnexp@127.0.0.1:$PORT/cnnexp"

need() {
  if [[ -z $BIN || ! -x $BIN/initdb ]]; then
    echo "local-postgres: PostgreSQL is not installed. On Debian/Ubuntu, as root:" >&2
    echo "  apt-get update && apt-get install -y postgresql" >&2
    exit 2
  fi
}

as_owner() {  # root runs the server as postgres; anyone else as themselves
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() {
  [[ -f $STATE/data/postmaster.pid ]] && as_owner "$BIN/pg_ctl" -D "$STATE/data" status >/dev/null 2>&1
}

start() {
  need
  mkdir -p "$STATE"
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$STATE"
    runuser -u postgres -- test -w "$STATE" || {
      echo "local-postgres: the postgres user cannot reach $STATE (a folder above it is private);" \
           "set CNNEXP_POSTGRES_STATE to a folder it can reach, e.g. under /tmp" >&2; exit 2; }
  fi
  if [[ ! -f $STATE/data/PG_VERSION ]]; then
    as_owner "$BIN/initdb" -D "$STATE/data" -U cnnexp --auth=trust --encoding=UTF8 >"$STATE/initdb.log" 2>&1 \
      || { cat "$STATE/initdb.log" >&2; exit 1; }
  fi
  if ! running; then
    as_owner "$BIN/pg_ctl" -D "$STATE/data" -l "$STATE/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$STATE' -c max_connections=200" start \
      >/dev/null || { tail -n 20 "$STATE/server.log" >&2; exit 1; }
  fi
  if ! as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U cnnexp -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'cnnexp'" | grep -q 1; then
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U cnnexp cnnexp
  fi
  echo "local-postgres: running on 127.0.0.1:$PORT. Use it with: hydra.sweeper.storage=$URL"
}

stop() {
  if running; then
    as_owner "$BIN/pg_ctl" -D "$STATE/data" -m fast -w stop >/dev/null
  fi
  echo "local-postgres: stopped"
}

status() {
  if [[ -n $BIN ]] && running; then
    echo "local-postgres: running, $URL"
  else
    echo "local-postgres: not running (scripts/local-postgres.sh start)"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) echo "$URL" ;;
  *) echo "usage: scripts/local-postgres.sh start|stop|status|url" >&2; exit 2 ;;
esac
