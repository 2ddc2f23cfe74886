#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL server on loopback for the test suite.
#   .ci/pg.sh start   -> installs Debian's postgresql if missing (as root), starts it, prints the URL
#   .ci/pg.sh stop
set -euo pipefail
PORT=${REPMON_PG_PORT:-54329}
DIR=${REPMON_PG_DIR:-/tmp/repmon-test-pg}

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

case "${1:-start}" in
  start)
    if [ -z "$(pgbin)" ]; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing PostgreSQL from Debian's packages..." >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      else
        echo "PostgreSQL is not installed and cannot be installed here" >&2
        exit 1
      fi
    fi
    BIN=$(pgbin)
    if [ -f "$DIR/data/postmaster.pid" ]; then as_pg "$BIN/pg_ctl -D $DIR/data stop -m immediate" >/dev/null 2>&1 || true; fi
    rm -rf "$DIR"; mkdir -p "$DIR"
    if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; fi
    as_pg "$BIN/initdb -D $DIR/data -A trust -U postgres -E UTF8 --no-locale" >/dev/null
    as_pg "$BIN/pg_ctl -D $DIR/data -l $DIR/server.log -w -o '-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=200' start" >/dev/null
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    BIN=$(pgbin)
    if [ -n "$BIN" ] && [ -f "$DIR/data/postmaster.pid" ]; then
      as_pg "$BIN/pg_ctl -D $DIR/data stop -m fast" >/dev/null 2>&1 || true
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
