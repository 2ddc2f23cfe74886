#!/usr/bin/env bash
# Runs the whole test suite with its services: PostgreSQL on loopback and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Chromium from Debian's packages for the digest render test..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

PG_URL=$(.ci/pg.sh start)
trap '.ci/pg.sh stop' EXIT
export REPMON_TEST_PG_URL="$PG_URL" REPMON_REQUIRE_PG=1
if command -v chromium >/dev/null 2>&1; then export REPMON_REQUIRE_CHROMIUM=1; fi
.venv/bin/python -m pytest -q "$@"
