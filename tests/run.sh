#!/usr/bin/env bash
# tests/run.sh -- installs what is missing, builds, starts a Redis and a PostgreSQL of its
# own on free loopback ports, runs every test through ctest, stops the stores.
#
#   tests/run.sh                      release preset (the binary that ships)
#   tests/run.sh --presets "release asan"   each preset in turn (CI does this)
#   tests/run.sh -L unit              extra arguments go to ctest (here: unit tests only)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/deploy/local/lib.sh"

presets=(release)
ctest_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --presets) read -r -a presets <<<"$2"; shift 2 ;;
    *) ctest_args+=("$1"); shift ;;
  esac
done

ensure_packages "${NEPTUN_BUILD_PACKAGES[@]}" "${NEPTUN_STORE_PACKAGES[@]}" redis-tools curl pgbouncer \
  redis-sentinel openssl iproute2
# The deployment checks need Node.js, kubectl and their npm packages: fetched here, so that
# ctest itself needs no network.
"$ROOT/tests/deploy/check.sh" --prepare
"$ROOT/tests/docs/check.sh" --prepare
# The image test (release tree only) needs podman, runc and mmdebstrap; the drill (release
# tree only too) haproxy and redis-sentinel.
case " ${presets[*]} " in
  *" release "*) "$ROOT/tests/image/check.sh" --prepare; "$ROOT/bench/drill.sh" --prepare ;;
esac

WORK=$(mktemp -d /tmp/neptun-tests.XXXXXX)
chmod 755 "$WORK"
cleanup() {
  stop_redis "$WORK/redis"
  stop_postgres "$WORK/pg"
  rm -rf "$WORK"
}
trap cleanup EXIT

REDIS_PORT=$(free_port)
PG_PORT=$(free_port)
log_step "starting Redis on 127.0.0.1:$REDIS_PORT and PostgreSQL on 127.0.0.1:$PG_PORT"
start_redis "$WORK/redis" "$REDIS_PORT"
start_postgres "$WORK/pg" "$PG_PORT"

export NEPTUN_TEST_REDIS_PORT=$REDIS_PORT
export NEPTUN_TEST_PG_PORT=$PG_PORT
export NEPTUN_TEST_PG_BIN=$PG_BIN
export NEPTUN_TEST_PG_DATA=$WORK/pg/data
export NEPTUN_TEST_PG_LOG=$WORK/pg/postgres.log
export NEPTUN_TEST_PG_OPTIONS="-h 127.0.0.1 -p $PG_PORT -k $WORK/pg -c max_connections=200"
# ctest runs one test at a time, so the deployment check may use the same stores.
export NEPTUN_DEPLOY_CHECK_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export NEPTUN_DEPLOY_CHECK_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/neptun

status=0
for preset in "${presets[@]}"; do
  log_step "building preset $preset"
  build_preset "$preset"
  # Each preset's tests start from an empty schema.
  as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc \
    "DROP DATABASE IF EXISTS neptun" -c "CREATE DATABASE neptun" >/dev/null
  NEPTUN_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/neptun" \
    "$ROOT/build/$preset/neptun-api" migrate >/dev/null
  log_step "running the tests of preset $preset"
  (cd "$ROOT" && ctest --preset "$preset" "${ctest_args[@]}") || status=1
done
exit $status
