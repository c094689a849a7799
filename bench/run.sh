#!/usr/bin/env bash
# bench/run.sh -- the benchmark: sets up everything itself (packages, release build, its own
# Redis and PostgreSQL on free loopback ports, schema, N seeded users with sessions and
# projects), measures the raw-store ceilings (pgbench, redis-benchmark), then drives
# neptun-api -- and a peer implementation of the same contract, if given -- with wrk, and
# prints one table of ratios. See bench/README.md for what each figure means.
#
# Usage: bench/run.sh [options]
#   --users N          users, sessions and projects seeded (default 10000)
#   --duration S       seconds per wrk run and per ceiling run (default 10)
#   --connections N    wrk connections, pgbench and redis-benchmark clients (default 64)
#   --threads N        wrk threads, pgbench -j, redis-benchmark --threads (default 2)
#   --idle N           idle keep-alive connections held during a second read run (default
#                      10000; 0 skips that part)
#   --idle-silent      the idle connections send nothing (default: one GET each, then idle)
#   --peer "COMMAND"   also start COMMAND (same contract, same stores and data) and
#                      alternate ours/peer per scenario, e.g.
#                      --peer ../shared/peers/node-h3/start.sh
#                      Repeatable: with several, each is named after its command's folder
#                      (peer-drogon, peer-node-h3) and the table has a ratio pair for each.
#   --scenarios LIST   space- or comma-separated subset of: update read unauthorized
#                      forbidden mixed conditional (default all)
#   --warmup S         seconds of mixed load per server before measuring (default 3)
#   --server-cmd "CMD" start CMD instead of build/release/neptun-api (and skip the build);
#                      for developing this harness against a stand-in
#   --no-build         do not build; use build/release/neptun-api as it is
#   --keep             keep the stores' data files (logs are always kept)
#   --no-log-off       skip the second run of ours with the access log off (ours-nolog)
#   -h, --help
#
# Loopback only. Every process it starts is stopped on exit; the logs stay in the folder
# printed at the end. The table is also written to bench/results/<timestamp>.json.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NEPTUN_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR/.. source=deploy/local/lib.sh
. "$NEPTUN_ROOT/deploy/local/lib.sh"

USERS=10000
DURATION=10
CONNECTIONS=64
THREADS=2
IDLE=10000
IDLE_SILENT=0
WARMUP=3
SCENARIOS="update read unauthorized forbidden mixed conditional"
PEER_CMDS=()
SERVER_CMD=""
BUILD=1
KEEP=0
LOG_OFF_TOO=1
SESSION_PREFIX="neptun:session:"
OURS_BIN="$NEPTUN_ROOT/build/release/neptun-api"

usage() { sed -n '/^# Usage:/,/^# -h/s/^# \{0,1\}//p' "$0"; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 2; }
int_arg() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 needs a whole number, got '$2'"; }

while [ $# -gt 0 ]; do
  arg=$1
  if [[ $arg == --*=* ]]; then set -- "${arg%%=*}" "${arg#*=}" "${@:2}"; arg=$1; fi
  case $arg in
    --users | --connections | --threads | --idle | --warmup)
      [ $# -ge 2 ] || die "$arg needs a value"; int_arg "$arg" "$2"
      case $arg in
        --users) USERS=$2 ;; --connections) CONNECTIONS=$2 ;; --threads) THREADS=$2 ;;
        --idle) IDLE=$2 ;; --warmup) WARMUP=$2 ;;
      esac
      shift 2 ;;
    --duration) [ $# -ge 2 ] || die "--duration needs a value"; DURATION=${2%s}
      int_arg --duration "$DURATION"; shift 2 ;;
    --peer) [ $# -ge 2 ] || die "--peer needs a command"; PEER_CMDS+=("$2"); shift 2 ;;
    --server-cmd) [ $# -ge 2 ] || die "--server-cmd needs a command"; SERVER_CMD=$2; shift 2 ;;
    --scenarios) [ $# -ge 2 ] || die "--scenarios needs a list"; SCENARIOS=${2//,/ }; shift 2 ;;
    --idle-silent) IDLE_SILENT=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    --no-log-off) LOG_OFF_TOO=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$arg'" ;;
  esac
done
for s in $SCENARIOS; do
  [ -f "$BENCH_DIR/wrk/$s.lua" ] || die "unknown scenario '$s'"
done
[ "$USERS" -ge 2 ] || die "--users must be at least 2 (the forbidden scenario needs two)"
if [ "$DURATION" -lt 1 ] || [ "$CONNECTIONS" -lt 1 ] || [ "$THREADS" -lt 1 ]; then
  die "--duration, --connections and --threads must be at least 1"
fi
[ "$THREADS" -le "$CONNECTIONS" ] || die "--threads must not exceed --connections"

# --- packages and build --------------------------------------------------------------------

# A peer (or stand-in) that runs on Node needs node and npm; whether they come from Debian
# or elsewhere, only install them when missing.
needs_node() {
  local cmd=$1 first
  [ -n "$cmd" ] || return 1
  case $cmd in *node* | *npm*) return 0 ;; esac
  first=${cmd%% *}
  [ -f "$(dirname "$first")/package.json" ]
}

ensure_packages wrk redis-server redis-tools postgresql-15 postgresql-client-15 python3 curl
peers_need_node=0
for cmd in "${PEER_CMDS[@]}"; do needs_node "$cmd" && peers_need_node=1; done
if [ "$peers_need_node" = 1 ] || needs_node "$SERVER_CMD"; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    ensure_packages nodejs npm
  fi
fi
# Debian's own python3 (a python3 earlier on PATH, e.g. a pyenv shim, can take a second to start).
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
if [ -z "$SERVER_CMD" ]; then
  SERVER_CMD=$OURS_BIN
  if [ "$BUILD" = 1 ]; then
    ensure_packages "${NEPTUN_BUILD_PACKAGES[@]}"
    log_step "building the release preset"
    build_preset release neptun-api
  fi
  [ -x "$OURS_BIN" ] || die "$OURS_BIN is missing (build failed, or --no-build without a build)"
fi

# The idle part holds N connections in one client process, and the server holds as many.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$IDLE" -gt 0 ] && [ "$NOFILE" != unlimited ] && [ "$IDLE" -gt $((NOFILE - 1024)) ]; then
  log_step "ulimit -n is $NOFILE: holding $((NOFILE - 1024)) idle connections instead of $IDLE"
  IDLE=$((NOFILE - 1024))
fi

# --- run folder, clean-up ------------------------------------------------------------------

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/neptun-bench.XXXXXX")
chmod 755 "$RUN_DIR" # the postgres user must be able to enter it
MEASUREMENTS=$RUN_DIR/measurements.jsonl
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
declare -A PID=() PORT=() ADMIN=()
HOLDER_PID=""
USED_PORTS=" "

stop_server() {
  local name=$1 pid=${PID[$1]:-} _
  [ -n "$pid" ] || return 0
  # The server runs in a session of its own (setsid), so its group id is its pid: this ends
  # a cluster primary with its workers, or a wrapper script with what it started.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PID[$name]=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$HOLDER_PID" ]; then
    kill -TERM "$HOLDER_PID" 2>/dev/null || true
    wait "$HOLDER_PID" 2>/dev/null || true
  fi
  local name
  for name in "${!PID[@]}"; do stop_server "$name"; done
  stop_redis "$RUN_DIR/redis" || true
  stop_postgres "$RUN_DIR/pg" || true
  [ "$KEEP" = 1 ] || rm -rf "$RUN_DIR/pg/data" "$RUN_DIR/redis/dump.rdb"
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

# --- stores, schema, data ------------------------------------------------------------------

REDIS_PORT=$(new_port)
PG_PORT=$(new_port)
DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/neptun"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

log_step "starting Redis on 127.0.0.1:$REDIS_PORT and PostgreSQL on 127.0.0.1:$PG_PORT in $RUN_DIR"
start_redis "$RUN_DIR/redis" "$REDIS_PORT"
# Default durability, said out loud: every UPDATE waits for its WAL flush, as in production.
start_postgres "$RUN_DIR/pg" "$PG_PORT" "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"

psql_neptun() {
  PGOPTIONS="-c TimeZone=UTC" psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d neptun \
    -v ON_ERROR_STOP=1 -qAt "$@"
}

if [ -x "$OURS_BIN" ]; then
  log_step "schema: neptun-api migrate"
  NEPTUN_DATABASE_URL=$DATABASE_URL NEPTUN_LOG_LEVEL=warn "$OURS_BIN" migrate \
    >"$RUN_DIR/migrate.log" 2>&1 || { cat "$RUN_DIR/migrate.log" >&2; die "migrate failed"; }
else
  log_step "schema: $OURS_BIN is missing, applying bench/sql/schema-fallback.sql (CONTRACT.md §2) with psql"
  psql_neptun -f "$BENCH_DIR/sql/schema-fallback.sql" >"$RUN_DIR/migrate.log" 2>&1 ||
    { cat "$RUN_DIR/migrate.log" >&2; die "schema failed"; }
fi

log_step "seeding $USERS users, projects (project id = user id) and sessions (token bench-<id>)"
awk -v n="$USERS" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\tu%d@bench.test\n", i, i }' |
  psql_neptun -c "COPY neptun_user (id, primary_email) FROM STDIN"
awk -v n="$USERS" 'BEGIN {
  split("web-site web-service web-app", types, " ")
  split("typescript javascript php go python java kotlin ruby elixir", languages, " ")
  for (i = 1; i <= n; i++)
    printf "%d\tProject %d\tSeeded by bench/run.sh\t%s\t%s\t%d\n", i, i, types[i % 3 + 1], languages[i % 9 + 1], i
}' | psql_neptun -c "COPY neptun_user_project (id, name, description, type, main_language, neptun_user_id) FROM STDIN"
psql_neptun -c "SELECT setval('neptun_user_id_seq', $USERS), setval('neptun_user_project_id_seq', $USERS)" >/dev/null
psql_neptun -c "VACUUM ANALYZE neptun_user" -c "VACUUM ANALYZE neptun_user_project"

# Sessions as the Neptun web app writes them; RESP so that the JSON needs no quoting.
awk -v n="$USERS" -v prefix="$SESSION_PREFIX" -v now="$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" 'BEGIN {
  for (i = 1; i <= n; i++) {
    key = prefix "bench-" i
    value = "{\"user\":{\"id\":" i ",\"primary_email\":\"u" i "@bench.test\"},\"loggedInAt\":\"" now "\"}"
    printf "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$5\r\n86400\r\n", length(key), key, length(value), value
  }
}' | redis-cli -p "$REDIS_PORT" --pipe >"$RUN_DIR/redis-seed.log" 2>&1
sessions=$(redis-cli -p "$REDIS_PORT" dbsize)
projects=$(psql_neptun -c "SELECT count(*) FROM neptun_user_project")
if [ "$sessions" != "$USERS" ] || [ "$projects" != "$USERS" ]; then
  die "seeding gave $sessions sessions and $projects projects, not $USERS; see $RUN_DIR/redis-seed.log"
fi

# --- metadata ------------------------------------------------------------------------------

commit=$(git -C "$NEPTUN_ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
[ -z "$(git -C "$NEPTUN_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+dirty"
"$PYTHON" "$BENCH_DIR/tools/report.py" meta \
  "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "commit=$commit" "cpus=$(nproc)" \
  "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
  "kernel=$(uname -r)" "users=$USERS" "duration=$DURATION" "connections=$CONNECTIONS" \
  "threads=$THREADS" "idle=$IDLE" "idle_mode=$([ "$IDLE_SILENT" = 1 ] && echo silent || echo get)" \
  "server_cmd=${SERVER_CMD#"$NEPTUN_ROOT/"}" "peer_cmd=$(IFS=';'; printf '%s' "${PEER_CMDS[*]}")" \
  "wrk=$(wrk -v 2>&1 | head -1 | cut -d' ' -f2)" \
  "postgres=$("$PG_BIN/postgres" --version | awk '{print $3}')" \
  "redis=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')" >"$MEASUREMENTS"

# --- ceilings: the stores alone at the same concurrency --------------------------------------

store_stats() { # the postmaster with its backends, and Redis
  proc_stats "$(head -1 "$RUN_DIR/pg/data/postmaster.pid")" "$(cat "$RUN_DIR/redis/redis.pid")"
}
proc_stats() { "$PYTHON" "$BENCH_DIR/tools/proc_tree.py" "$@"; }
json_field() { sed -n "s/.*\"$1\": *\\([0-9.]*\\).*/\\1/p"; }

run_pgbench() { # NAME SCRIPT[@WEIGHT]...
  local name=$1 out="$RUN_DIR/pgbench-$1.txt" tps script scripts=() shown=()
  shift
  for script in "$@"; do
    scripts+=(-f "$BENCH_DIR/sql/$script")
    shown+=("-f bench/sql/$script")
  done
  log_step "ceiling: pgbench -M prepared -n -c $CONNECTIONS -j $THREADS -T $DURATION ${shown[*]}"
  "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -M prepared -n \
    -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" "${scripts[@]}" \
    -D users="$USERS" -D name="Bench project" -D set_description=true \
    -D description="Updated by pgbench" -D project_type=web-app -D programming_language=go \
    neptun >"$out" 2>&1 || { cat "$out" >&2; die "pgbench failed"; }
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
  [ -n "$tps" ] || die "no tps in $out"
  printf '    %s tps\n' "$tps" >&2
  printf '{"kind":"ceiling","name":"%s","value":%s}\n' "$name" "$tps" >>"$MEASUREMENTS"
}
run_pgbench pg_update_tps update.sql
run_pgbench pg_select_tps select.sql
# The mixed scenario's own ceiling: the same 9:1 blend of the two statements.
if [[ " $SCENARIOS " == *" mixed "* ]]; then
  run_pgbench pg_mixed_tps select.sql@9 update.sql@1
fi

redis_get() { # REQUESTS -> requests per second of GET <a real session key>
  redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNECTIONS" --threads "$THREADS" -n "$1" --csv \
    GET "${SESSION_PREFIX}bench-1" 2>>"$RUN_DIR/redis-benchmark.err" |
    tee -a "$RUN_DIR/redis-benchmark.txt" | awk -F'","' 'NR == 2 { print $2 + 0 }'
}
log_step "ceiling: redis-benchmark -c $CONNECTIONS --threads $THREADS GET ${SESSION_PREFIX}bench-1 for about ${DURATION}s"
rps=$(redis_get 20000) || die "redis-benchmark failed; see $RUN_DIR/redis-benchmark.txt"
# That short run sizes the real one to last about --duration seconds.
rps=$(redis_get "$(awk -v r="$rps" -v d="$DURATION" 'BEGIN { n = int(r * d); print (n < 20000 ? 20000 : n) }')") ||
  die "redis-benchmark failed; see $RUN_DIR/redis-benchmark.txt"
[ -n "$rps" ] || die "no result from redis-benchmark; see $RUN_DIR/redis-benchmark.txt"
printf '    %s GET/s\n' "$rps" >&2
printf '{"kind":"ceiling","name":"redis_get_rps","value":%s}\n' "$rps" >>"$MEASUREMENTS"

# --- servers -------------------------------------------------------------------------------

start_server() { # NAME COMMAND [VAR=VALUE...]
  local name=$1 cmd=$2
  shift 2
  PORT[$name]=$(new_port)
  ADMIN[$name]=$(new_port)
  log_step "starting $name: $cmd ${*:-}(127.0.0.1:${PORT[$name]}, admin 127.0.0.1:${ADMIN[$name]})"
  # setsid: a session (and process group) of its own, so stop_server reaches its children.
  # Logs go to a file, as they would to a container runtime's pipe.
  env NEPTUN_LISTEN="127.0.0.1:${PORT[$name]}" NEPTUN_ADMIN_LISTEN="127.0.0.1:${ADMIN[$name]}" \
    NEPTUN_REDIS_URL="$REDIS_URL" NEPTUN_DATABASE_URL="$DATABASE_URL" \
    NEPTUN_SESSION_PREFIX="$SESSION_PREFIX" \
    NEPTUN_IDLE_TIMEOUT_MS=600000 NEPTUN_MAX_CONNECTIONS=20000 "$@" \
    setsid bash -c "$cmd" </dev/null >"$RUN_DIR/$name.log" 2>&1 &
  PID[$name]=$!
}

# Ready when the admin listener's /readyz says 200; a server without an admin listener (the
# Node peer, a stand-in) counts as ready once its own port answers HTTP at all.
wait_ready() { # NAME ACCEPT_ANY_HTTP TIMEOUT_S
  local name=$1 any=$2 deadline=$((SECONDS + $3)) code
  while :; do
    if ! kill -0 "${PID[$name]}" 2>/dev/null; then
      tail -n 20 "$RUN_DIR/$name.log" >&2
      die "$name exited before it was ready; see $RUN_DIR/$name.log"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${ADMIN[$name]}/readyz" || true)
    [ "$code" = 200 ] && return 0
    if [ "$any" = 1 ]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${PORT[$name]}/" || true)
      [ "$code" != 000 ] && return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "$name not ready after $3 s; see $RUN_DIR/$name.log"
    sleep 0.2
  done
}

# One request of each kind, so that a misconfigured run stops here instead of filling a
# table with errors.
smoke_check() { # NAME
  local name=$1 base="http://127.0.0.1:${PORT[$1]}/api/users" got
  check() { # EXPECTED CURL-ARGS...
    local expected=$1; shift
    got=$(curl -s -o "$RUN_DIR/$name-smoke.body" -w '%{http_code}' --max-time 5 "$@" || true)
    [ "$got" = "$expected" ] && return 0
    printf 'bench/run.sh: %s answered %s, not %s, to %s: %s\n' "$name" "$got" "$expected" "$*" \
      "$(head -c 300 "$RUN_DIR/$name-smoke.body" 2>/dev/null)" >&2
    return 1
  }
  check 200 -H 'Cookie: neptun-session=bench-1' "$base/1/projects/1" ||
    die "$name does not serve the seeded data; see $RUN_DIR/$name.log"
  check 200 -X PATCH -H 'Cookie: neptun-session=bench-2' -H 'Content-Type: application/json' \
    --data '{"name":"Smoke","description":null,"project_type":"web-app","programming_language":"go"}' \
    "$base/2/projects/2" || true
  check 401 -H 'Cookie: neptun-session=bench-unknown' "$base/1/projects/1" || true
  check 403 -H 'Cookie: neptun-session=bench-1' "$base/2/projects/2" || true
}

ours_any_http=0
[ "$SERVER_CMD" = "$OURS_BIN" ] || ours_any_http=1
# ours: the shipped defaults (an access line for every request); ours-nolog: the same binary
# with the access log off (NEPTUN_ACCESS_LOG_SAMPLE=0), so the table shows what logging costs.
start_server ours "$SERVER_CMD"
wait_ready ours "$ours_any_http" 120
smoke_check ours
SERVERS="ours"
if [ "$LOG_OFF_TOO" = 1 ]; then
  start_server ours-nolog "$SERVER_CMD" NEPTUN_ACCESS_LOG_SAMPLE=0
  wait_ready ours-nolog "$ours_any_http" 120
  smoke_check ours-nolog
  SERVERS="ours ours-nolog"
fi
# One peer is "peer"; several are told apart by their command's folder.
peer_name() { # INDEX COMMAND
  if [ "${#PEER_CMDS[@]}" -eq 1 ]; then echo peer; return; fi
  local first=${2%% *} dir
  dir=$(basename "$(dirname "$first")")
  case $dir in . | / | "") dir=$1 ;; esac
  echo "peer-$dir"
}
for i in "${!PEER_CMDS[@]}"; do
  name=$(peer_name "$((i + 1))" "${PEER_CMDS[$i]}")
  case " $SERVERS " in *" $name "*) name="$name-$((i + 1))" ;; esac
  start_server "$name" "${PEER_CMDS[$i]}"
  wait_ready "$name" 1 300 # the first start may run npm ci
  smoke_check "$name"
  SERVERS="$SERVERS $name"
done

# --- load ----------------------------------------------------------------------------------

run_wrk() { # SERVER SCENARIO PHASE [DURATION]
  local server=$1 scenario=$2 phase=$3 duration=${4:-$DURATION}
  local out="$RUN_DIR/wrk-$server-$scenario-$phase.txt" pid=${PID[$1]}
  local before after stores_before stores_after result
  before=$(proc_stats "$pid")
  stores_before=$(store_stats)
  BENCH_USERS=$USERS wrk -t"$THREADS" -c"$CONNECTIONS" -d"${duration}s" --latency \
    -s "$BENCH_DIR/wrk/$scenario.lua" "http://127.0.0.1:${PORT[$server]}" >"$out" 2>&1 ||
    { cat "$out" >&2; die "wrk failed against $server"; }
  after=$(proc_stats "$pid") || die "$server is gone; see $RUN_DIR/$server.log"
  stores_after=$(store_stats)
  result=$(sed -n 's/^BENCH_RESULT //p' "$out")
  [ -n "$result" ] || die "no BENCH_RESULT in $out"
  [ "$phase" = warmup ] && return 0
  printf '{"kind":"wrk","server":"%s","scenario":"%s","phase":"%s","wrk":%s,"before":%s,"after":%s,"stores_before":%s,"stores_after":%s}\n' \
    "$server" "$scenario" "$phase" "$result" "$before" "$after" "$stores_before" "$stores_after" >>"$MEASUREMENTS"
  printf '    %-5s %-12s %-5s %10s req/s, %s not %s\n' "$server" "$scenario" "$phase" \
    "$(awk '/^Requests\/sec:/ { print $2 }' "$out")" \
    "$(printf '%s' "$result" | sed -n 's/.*"mismatched":\([0-9]*\).*/\1/p')" \
    "$(printf '%s' "$result" | sed -n 's/.*"expected":\([0-9]*\).*/\1/p')" >&2
}

if [ "$WARMUP" -gt 0 ]; then
  log_step "warm-up: ${WARMUP}s of mixed load per server"
  for server in $SERVERS; do run_wrk "$server" mixed warmup "$WARMUP"; done
fi

log_step "scenarios ($SCENARIOS): wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, alternating $SERVERS"
for scenario in $SCENARIOS; do
  for server in $SERVERS; do
    run_wrk "$server" "$scenario" main
    sleep 1
  done
done

# --- idle keep-alive connections ------------------------------------------------------------

idle_phase() { # SERVER
  local server=$1
  local ready="$RUN_DIR/idle-$server.ready" log="$RUN_DIR/idle-$server.log"
  local rss_before rss_after open_now deadline=$((SECONDS + 300)) silent=()
  [ "$IDLE_SILENT" = 1 ] && silent=(--silent)
  log_step "idle: $server, opening $IDLE keep-alive connections, then read again"
  rss_before=$(proc_stats "${PID[$server]}" | json_field rss_kib)
  "$PYTHON" "$BENCH_DIR/tools/idle_conns.py" --port "${PORT[$server]}" --count "$IDLE" \
    --users "$USERS" --ready-file "$ready" "${silent[@]}" >"$log" 2>&1 &
  HOLDER_PID=$!
  until [ -s "$ready" ]; do
    kill -0 "$HOLDER_PID" 2>/dev/null || { cat "$log" >&2; die "the idle holder exited early"; }
    [ "$SECONDS" -lt "$deadline" ] || die "opening $IDLE connections took over 300 s"
    sleep 0.2
  done
  sleep 1
  rss_after=$(proc_stats "${PID[$server]}" | json_field rss_kib)
  # How many were still open when RSS was read (a server may close idle ones on its own).
  kill -USR1 "$HOLDER_PID"
  for _ in $(seq 1 50); do grep -q open_now "$log" && break; sleep 0.1; done
  open_now=$(sed -n 's/.*"open_now": *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  printf '    %s, %s open when RSS was read\n' "$(cat "$ready")" "${open_now:-?}" >&2
  run_wrk "$server" read idle
  kill -TERM "$HOLDER_PID" 2>/dev/null || true
  wait "$HOLDER_PID" 2>/dev/null || true
  HOLDER_PID=""
  printf '{"kind":"idle","server":"%s","requested":%d,"rss_before_kib":%d,"rss_after_kib":%d,"open_at_rss":%s,"holder":%s,"end":%s}\n' \
    "$server" "$IDLE" "$rss_before" "$rss_after" "${open_now:-null}" "$(cat "$ready")" \
    "$(tail -n 1 "$log" | grep '^{' || echo null)" >>"$MEASUREMENTS"
  sleep 1
}

if [ "$IDLE" -gt 0 ]; then
  for server in $SERVERS; do [ "$server" = ours-nolog ] || idle_phase "$server"; done
fi

# --- report --------------------------------------------------------------------------------

mkdir -p "$BENCH_DIR/results"
"$PYTHON" "$BENCH_DIR/tools/report.py" table "$MEASUREMENTS" "$BENCH_DIR/results/$STAMP.json" |
  tee "$RUN_DIR/table.txt"
printf '\n==> results: %s\n' "bench/results/$STAMP.json" >&2
