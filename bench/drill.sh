#!/usr/bin/env bash
# bench/drill.sh -- the production drill (issue 15): a fleet on 127.0.0.1, from Debian
# packages, under a steady load, through a rolling restart, a Redis failover and a
# PostgreSQL promotion. One table row per phase; fails on a 5xx other than 503, a 401 (every
# session is valid), any status but 200/503, any failed request in the rolling restart, or
# a lost acknowledged write.
#
# The fleet: three neptun-api replicas (build/release/neptun-api) behind HAProxy, which
# health-checks /readyz on each admin port; Redis master + replica + three Sentinels (the
# replicas on redis+sentinel://); PostgreSQL primary + synchronous streaming standby
# (pg_basebackup), the replicas on a multi-host conninfo with target_session_attrs=read-write.
# The load (bench/tools/drill_load.py): closed-loop keep-alive connections through HAProxy,
# 90 % GET / 10 % PATCH of seeded projects, plus writers that PATCH their own project with
# 1, 2, 3, ... and record the last value answered 200.
#
# Phases: steady; rolling-restart (each replica in turn: SIGTERM, drain with the shutdown
# delay, start again, the next once HAProxy has it UP); redis-failover (SENTINEL FAILOVER,
# then the old master SIGKILLed); pg-promotion (primary stopped -m immediate, standby
# promoted); steady-again.
#
# Usage: bench/drill.sh [options]
#   --short            the ctest version: 2 s steady phases, NEPTUN_SHUTDOWN_DELAY_MS=2000
#   --phase-seconds S  seconds of load per steady phase and after each event (default 5)
#   --delay-ms MS      NEPTUN_SHUTDOWN_DELAY_MS of the replicas (default 8000, the k8s value)
#   --connections N    mixed-load connections (default 16); --writers N (default 4)
#   --users N          seeded users, sessions and projects (default 2000)
#   --binary PATH      the server binary (default build/release/neptun-api, built unless
#                      --no-build)
#   --no-build         do not build
#   --keep             keep the stores' data files (logs are always kept)
#   --prepare          install the packages it needs, then exit (tests/run.sh does this)
#   -h, --help
#
# Loopback only. Every process it starts is stopped on exit (trap EXIT); the logs stay in
# the folder printed at the end.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NEPTUN_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR/.. source=deploy/local/lib.sh
. "$NEPTUN_ROOT/deploy/local/lib.sh"

DRILL_PACKAGES=(haproxy redis-server redis-sentinel redis-tools postgresql-15
  postgresql-client-15 python3 curl)
PHASE_S=5
DELAY_MS=8000
CONNECTIONS=16
WRITERS=4
USERS=2000
BIN="$NEPTUN_ROOT/build/release/neptun-api"
BUILD=1
KEEP=0
REPLICAS=3

usage() { sed -n '/^# Usage:/,/^#   -h/s/^# \{0,1\}//p' "$0"; }
die() { printf 'bench/drill.sh: %s\n' "$*" >&2; exit 2; }
int_arg() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 needs a whole number, got '$2'"; }

while [ $# -gt 0 ]; do
  case $1 in
    --short) PHASE_S=2; DELAY_MS=2000; USERS=500; shift ;;
    --phase-seconds) int_arg "$1" "${2:-}"; PHASE_S=$2; shift 2 ;;
    --delay-ms) int_arg "$1" "${2:-}"; DELAY_MS=$2; shift 2 ;;
    --connections) int_arg "$1" "${2:-}"; CONNECTIONS=$2; shift 2 ;;
    --writers) int_arg "$1" "${2:-}"; WRITERS=$2; shift 2 ;;
    --users) int_arg "$1" "${2:-}"; USERS=$2; shift 2 ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; BIN=$2; BUILD=0; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    --prepare) ensure_packages "${DRILL_PACKAGES[@]}"; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
if [ "$WRITERS" -lt 1 ] || [ "$USERS" -lt 1 ] || [ "$PHASE_S" -lt 1 ]; then
  die "--writers, --users and --phase-seconds must be at least 1"
fi

ensure_packages "${DRILL_PACKAGES[@]}"
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
if [ "$BUILD" = 1 ]; then
  ensure_packages "${NEPTUN_BUILD_PACKAGES[@]}"
  log_step "building the release preset"
  build_preset release neptun-api
fi
[ -x "$BIN" ] || die "$BIN is missing (build failed, or --no-build without a build)"

# --- run folder, clean-up ------------------------------------------------------------------

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/neptun-drill.XXXXXX")
chmod 755 "$RUN_DIR" # the postgres user must be able to enter it
declare -A PID=() PORT=() ADMIN=()
HAPROXY_PID="" LOAD_PID=""
USED_PORTS=" "

kill_wait() { # PID: SIGKILL and reap (our own child)
  [ -n "$1" ] || return 0
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cleanup() {
  local rc=$? name f
  trap - EXIT INT TERM
  [ -z "$LOAD_PID" ] || { kill -TERM "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; }
  for name in "${!PID[@]}"; do
    [ -n "${PID[$name]}" ] || continue
    kill -KILL -- "-${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
  done
  kill_wait "$HAPROXY_PID"
  for f in "$RUN_DIR"/sentinel-*.pid "$RUN_DIR"/redis-*/redis.pid; do
    [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
    rm -f "$f"
  done
  for f in pg-primary pg-standby; do
    [ -f "$RUN_DIR/$f/data/postmaster.pid" ] &&
      as_postgres "$PG_BIN/pg_ctl" -D "$RUN_DIR/$f/data" -m immediate -w stop >/dev/null 2>&1
  done
  [ "$KEEP" = 1 ] || rm -rf "$RUN_DIR/pg-primary/data" "$RUN_DIR/pg-standby/data" "$RUN_DIR"/redis-*/dump.rdb
  printf '==> logs: %s\n' "$RUN_DIR" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

new_port() {
  local p
  while :; do
    p=$(free_port)
    case $USED_PORTS in *" $p "*) continue ;; esac
    USED_PORTS="$USED_PORTS$p "
    echo "$p"
    return
  done
}
now() { date +%s.%N; }
PHASES=$RUN_DIR/phases.txt
phase() { printf '%s %s\n' "$(now)" "$1" >>"$PHASES"; log_step "phase $1"; }
event() { printf '%s @%s\n' "$(now)" "$1" >>"$PHASES"; log_step "  $1"; }
await() { # TIMEOUT_S WHAT CMD...: poll CMD every 50 ms
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${deadline}s waiting for $what"
    sleep 0.05
  done
}

# --- Redis: master, replica, three Sentinels ---------------------------------------------

REDIS_MASTER=$(new_port)
REDIS_REPLICA=$(new_port)
start_redis_node() { # PORT [ARGS...]
  local port=$1 dir="$RUN_DIR/redis-$1"
  shift
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save '' --appendonly no "$@" >/dev/null
  await 10 "Redis on $port" redis-cli -p "$port" ping
}
log_step "Redis master 127.0.0.1:$REDIS_MASTER, replica 127.0.0.1:$REDIS_REPLICA"
start_redis_node "$REDIS_MASTER" >/dev/null
start_redis_node "$REDIS_REPLICA" --replicaof 127.0.0.1 "$REDIS_MASTER" >/dev/null

SENTINELS=()
for i in 1 2 3; do
  p=$(new_port)
  SENTINELS+=("$p")
  cat >"$RUN_DIR/sentinel-$p.conf" <<EOF
port $p
bind 127.0.0.1
daemonize yes
pidfile $RUN_DIR/sentinel-$p.pid
logfile $RUN_DIR/sentinel-$p.log
dir $RUN_DIR
sentinel monitor mymaster 127.0.0.1 $REDIS_MASTER 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
sentinel parallel-syncs mymaster 1
EOF
  redis-sentinel "$RUN_DIR/sentinel-$p.conf" >/dev/null
done
log_step "Sentinels on ${SENTINELS[*]}"
sentinel_knows_all() {
  local s
  for s in "${SENTINELS[@]}"; do
    redis-cli -p "$s" SENTINEL replicas mymaster 2>/dev/null | grep -qx "$REDIS_REPLICA" || return 1
    [ "$(redis-cli -p "$s" SENTINEL sentinels mymaster 2>/dev/null | grep -c '^name$')" = 2 ] || return 1
  done
}
await 30 "the Sentinels to know the replica and each other" sentinel_knows_all
master_port() { redis-cli -p "${SENTINELS[0]}" SENTINEL get-master-addr-by-name mymaster | sed -n 2p; }

# --- PostgreSQL: primary and synchronous standby -------------------------------------------

PG_PRIMARY=$(new_port)
PG_STANDBY=$(new_port)
log_step "PostgreSQL primary 127.0.0.1:$PG_PRIMARY, standby 127.0.0.1:$PG_STANDBY"
start_postgres "$RUN_DIR/pg-primary" "$PG_PRIMARY" "-c fsync=on -c synchronous_commit=on"
psql_at() { # PORT SQL...
  local port=$1
  shift
  PGOPTIONS="-c TimeZone=UTC" psql -h 127.0.0.1 -p "$port" -U postgres -d neptun -v ON_ERROR_STOP=1 -qAt "$@"
}
NEPTUN_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PRIMARY/neptun" NEPTUN_LOG_LEVEL=warn \
  "$BIN" migrate >"$RUN_DIR/migrate.log" 2>&1 || { cat "$RUN_DIR/migrate.log" >&2; die "migrate failed"; }

# Users 1..USERS for the mixed load, USERS+1..USERS+WRITERS for the writers (their own
# projects: no other request touches them). Project id = user id, token bench-<id>.
TOTAL=$((USERS + WRITERS))
log_step "seeding $TOTAL users, projects and sessions"
awk -v n="$TOTAL" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\tu%d@drill.test\n", i, i }' |
  psql_at "$PG_PRIMARY" -c "COPY neptun_user (id, primary_email) FROM STDIN"
awk -v n="$TOTAL" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\tProject %d\t0\tweb-app\tgo\t%d\n", i, i, i }' |
  psql_at "$PG_PRIMARY" -c "COPY neptun_user_project (id, name, description, type, main_language, neptun_user_id) FROM STDIN"
psql_at "$PG_PRIMARY" -c "SELECT setval('neptun_user_id_seq', $TOTAL), setval('neptun_user_project_id_seq', $TOTAL)" >/dev/null
awk -v n="$TOTAL" 'BEGIN {
  for (i = 1; i <= n; i++) {
    key = "neptun:session:bench-" i
    value = "{\"user\":{\"id\":" i ",\"primary_email\":\"u" i "@drill.test\"}}"
    printf "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$5\r\n86400\r\n", length(key), key, length(value), value
  }
}' | redis-cli -p "$REDIS_MASTER" --pipe >"$RUN_DIR/redis-seed.log" 2>&1
[ "$(redis-cli -p "$REDIS_MASTER" WAIT 1 5000)" = 1 ] || die "the Redis replica did not catch up"
[ "$(redis-cli -p "$REDIS_REPLICA" dbsize)" = "$TOTAL" ] || die "the Redis replica lacks sessions"

mkdir -p "$RUN_DIR/pg-standby"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$RUN_DIR/pg-standby"
as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PRIMARY" -U postgres \
  -D "$RUN_DIR/pg-standby/data" -R -X stream -c fast >"$RUN_DIR/basebackup.log" 2>&1 ||
  { cat "$RUN_DIR/basebackup.log" >&2; die "pg_basebackup failed"; }
as_postgres "$PG_BIN/pg_ctl" -D "$RUN_DIR/pg-standby/data" -l "$RUN_DIR/pg-standby/postgres.log" \
  -w -t 60 start -o "-h 127.0.0.1 -p $PG_STANDBY -k $RUN_DIR/pg-standby -c max_connections=200" >/dev/null ||
  die "the standby did not start; see $RUN_DIR/pg-standby/postgres.log"
# Commits wait for the standby from now on: an acknowledged write is on both (the primary's
# own setting; the standby was copied before it, so once promoted it does not wait for one).
psql_at "$PG_PRIMARY" -c "ALTER SYSTEM SET synchronous_standby_names = '*'" -c "SELECT pg_reload_conf()" >/dev/null
standby_sync() { [ "$(psql_at "$PG_PRIMARY" -c "SELECT sync_state FROM pg_stat_replication")" = sync ]; }
await 30 "the standby to be synchronous" standby_sync

# --- the replicas and HAProxy --------------------------------------------------------------

REDIS_URL="redis+sentinel://127.0.0.1:${SENTINELS[0]},127.0.0.1:${SENTINELS[1]},127.0.0.1:${SENTINELS[2]}/mymaster/0"
DATABASE_URL="host=127.0.0.1,127.0.0.1 port=$PG_PRIMARY,$PG_STANDBY dbname=neptun user=postgres target_session_attrs=read-write"

start_replica() { # NAME
  local name=$1
  # The k8s ConfigMap's settings (deploy/k8s/base/kustomization.yaml), one thread each; the
  # shutdown delay as chosen. Logs appended across restarts.
  env NEPTUN_LISTEN="127.0.0.1:${PORT[$name]}" NEPTUN_ADMIN_LISTEN="127.0.0.1:${ADMIN[$name]}" \
    NEPTUN_REDIS_URL="$REDIS_URL" NEPTUN_DATABASE_URL="$DATABASE_URL" NEPTUN_THREADS=1 \
    NEPTUN_SHUTDOWN_DELAY_MS="$DELAY_MS" NEPTUN_SHUTDOWN_TIMEOUT_MS=15000 \
    NEPTUN_IDLE_TIMEOUT_MS=30000 NEPTUN_HANDLER_TIMEOUT_MS=5000 NEPTUN_WRITE_TIMEOUT_MS=5000 \
    NEPTUN_RETRY_AFTER_S=1 NEPTUN_REDIS_TIMEOUT_MS=1000 NEPTUN_PG_POOL_SIZE=4 \
    NEPTUN_PG_POOL_WAIT_MS=1000 NEPTUN_PG_STATEMENT_TIMEOUT_MS=4000 \
    NEPTUN_PG_CONNECT_TIMEOUT_MS=1000 NEPTUN_ACCESS_LOG_SAMPLE=0.01 \
    setsid "$BIN" serve </dev/null >>"$RUN_DIR/$name.log" 2>&1 &
  PID[$name]=$!
}

LB_PORT=$(new_port)
STATS_PORT=$(new_port)
for i in $(seq 1 "$REPLICAS"); do
  PORT[r$i]=$(new_port)
  ADMIN[r$i]=$(new_port)
done
# The settings docs/operations.md ("Behind a load balancer") documents; keep them in step.
{
  cat <<EOF
global
  maxconn 4096
  nbthread 1
  log stdout format raw daemon

defaults
  mode http
  log global
  # Only what went wrong is logged: errors, retries, redispatches.
  option httplog
  option dontlog-normal
  timeout connect 1s
  timeout client 30s
  # Above the server's NEPTUN_HANDLER_TIMEOUT_MS + NEPTUN_WRITE_TIMEOUT_MS.
  timeout server 15s
  # Client side keep-alive; the server side pool is closed before NEPTUN_IDLE_TIMEOUT_MS.
  timeout http-keep-alive 10s
  timeout check 1s
  # A connection refused (a replica that has just exited) or closed with nothing answered:
  # try again, on another replica.
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response

frontend api
  bind 127.0.0.1:$LB_PORT
  default_backend replicas

backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  # /readyz on the admin port every 500 ms (250 ms while changing state or down); 2 failures
  # take a replica out, 2 successes bring it back.
  default-server inter 500ms fastinter 250ms downinter 250ms fall 2 rise 2
EOF
  for i in $(seq 1 "$REPLICAS"); do
    echo "  server r$i 127.0.0.1:${PORT[r$i]} check port ${ADMIN[r$i]}"
  done
  cat <<EOF

listen stats
  bind 127.0.0.1:$STATS_PORT
  stats enable
  stats uri /stats
EOF
} >"$RUN_DIR/haproxy.cfg"

log_step "replicas r1..r$REPLICAS (NEPTUN_SHUTDOWN_DELAY_MS=$DELAY_MS), HAProxy on 127.0.0.1:$LB_PORT"
for i in $(seq 1 "$REPLICAS"); do start_replica "r$i"; done
haproxy -f "$RUN_DIR/haproxy.cfg" -db >"$RUN_DIR/haproxy.log" 2>&1 &
HAPROXY_PID=$!

replica_ready() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${ADMIN[$1]}/readyz")" = 200 ]
}
lb_status() { # SERVER -> UP, DOWN, ...
  curl -s --max-time 1 "http://127.0.0.1:$STATS_PORT/stats;csv" |
    awk -F, -v s="$1" '$1 == "replicas" && $2 == s { print $18 }'
}
lb_up() { [ "$(lb_status "$1")" = UP ]; }
all_up() {
  local i
  for i in $(seq 1 "$REPLICAS"); do lb_up "r$i" || return 1; done
}
await 60 "every replica UP in HAProxy" all_up
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Cookie: neptun-session=bench-1' \
  "http://127.0.0.1:$LB_PORT/api/users/1/projects/1")
[ "$code" = 200 ] || die "GET through HAProxy answered $code, not 200"

# --- load and phases -----------------------------------------------------------------------

REQUESTS=$RUN_DIR/requests.txt
"$PYTHON" "$BENCH_DIR/tools/drill_load.py" run --port "$LB_PORT" --users "$USERS" \
  --writers "$WRITERS" --first-writer $((USERS + 1)) --connections "$CONNECTIONS" \
  --out "$REQUESTS" 2>"$RUN_DIR/load.log" &
LOAD_PID=$!
sleep 1 # warm-up, outside every phase

phase steady
sleep "$PHASE_S"

phase rolling-restart
for i in $(seq 1 "$REPLICAS"); do
  event "r$i-SIGTERM"
  kill -TERM "${PID[r$i]}"
  rc=0
  wait "${PID[r$i]}" || rc=$?
  PID[r$i]=""
  [ "$rc" = 0 ] || die "r$i exited with status $rc after SIGTERM; see $RUN_DIR/r$i.log"
  event "r$i-exited"
  start_replica "r$i"
  # Ready (its own /readyz, what the kubelet probes), then routed to (HAProxy has it UP).
  await 60 "r$i ready again" replica_ready "r$i"
  await 60 "r$i UP again" lb_up "r$i"
  event "r$i-up"
done
sleep "$PHASE_S"

phase redis-failover
old_master=$(master_port)
event failover
redis-cli -p "${SENTINELS[0]}" SENTINEL FAILOVER mymaster >/dev/null
master_moved() { [ "$(master_port)" != "$old_master" ]; }
await 30 "Sentinel to name a new master" master_moved
event promoted
kill -KILL "$(cat "$RUN_DIR/redis-$old_master/redis.pid")"
rm -f "$RUN_DIR/redis-$old_master/redis.pid"
event old-master-killed
await 60 "every replica UP again" all_up
event all-up
sleep "$PHASE_S"

phase pg-promotion
event primary-stopped
as_postgres "$PG_BIN/pg_ctl" -D "$RUN_DIR/pg-primary/data" -m immediate -w stop >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$RUN_DIR/pg-standby/data" -w promote >/dev/null
event promoted
await 60 "every replica UP again" all_up
event all-up
sleep "$PHASE_S"

phase steady-again
sleep "$PHASE_S"
phase end

kill -TERM "$LOAD_PID"
wait "$LOAD_PID" || die "the load generator failed; see $RUN_DIR/load.log"
LOAD_PID=""

# --- report and checks ---------------------------------------------------------------------

"$PYTHON" "$BENCH_DIR/tools/drill_load.py" report --requests "$REQUESTS" --phases "$PHASES" \
  --json "$RUN_DIR/table.json" | tee "$RUN_DIR/table.md"

failed=0
fail() { printf 'FAIL: %s\n' "$*"; failed=1; }
# Anything but 200 and 503: a 401 for a valid session, a 5xx other than 503, any other status.
bad=$(awk '$4 != "200" && $4 != "503" && $4 != "503lb" && $4 !~ /^err:/ { n[$4]++ }
  END { for (s in n) printf "%s%sx%d", sep, s, n[s]; sep = " " }' "$REQUESTS")
[ -z "$bad" ] || fail "statuses other than 200 and 503: $bad"
restart_bad=$("$PYTHON" -c 'import json, sys
r = [p for p in json.load(open(sys.argv[1])) if p["phase"] == "rolling-restart"][0]
print(r["requests"] - r["ok"])' "$RUN_DIR/table.json")
[ "$restart_bad" = 0 ] || fail "the rolling restart had $restart_bad failed requests (503, other or socket errors)"

# Every acknowledged write is on the new primary with its value or a later one (one that
# was sent, answered or not).
lost=0
while read -r id acked sent; do
  stored=$(psql_at "$PG_STANDBY" -c "SELECT description FROM neptun_user_project WHERE id = $id")
  if ! [[ $stored =~ ^[0-9]+$ ]] || [ "$stored" -lt "$acked" ] || [ "$stored" -gt "$sent" ]; then
    fail "project $id: last acknowledged $acked (last sent $sent), the new primary has '$stored'"
    lost=$((lost + 1))
  fi
  printf '    writer project %s: acknowledged up to %s, sent up to %s, stored %s\n' "$id" "$acked" "$sent" "$stored"
done <"$REQUESTS.acked"
[ "$(psql_at "$PG_STANDBY" -c "SELECT pg_is_in_recovery()")" = f ] || fail "the standby was not promoted"

if [ "$failed" = 0 ]; then
  echo "drill passed: $(wc -l <"$REQUESTS") requests, every acknowledged write kept"
fi
exit "$failed"
