# deploy/local/lib.sh -- shell functions shared by deploy/local/run.sh, tests/run.sh and
# bench/run.sh: install Debian packages that are missing, build a preset, and run Redis and
# PostgreSQL on loopback in a folder of our own. Source it; it defines functions only.

NEPTUN_ROOT=${NEPTUN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# Packages every entry point needs: the build, the stores, and the tools around them.
NEPTUN_BUILD_PACKAGES=(build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev libboost-test1.81-dev libboost-url1.81-dev
  libhiredis-dev libpq-dev libssl-dev)
NEPTUN_STORE_PACKAGES=(redis-server postgresql-15 postgresql-client-15)

log_step() { printf '==> %s\n' "$*" >&2; }

# ensure_packages PKG...: apt-get install whichever of PKG are not installed yet.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log_step "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ccache across clones of the repository and with precompiled headers (CMake's advice).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$NEPTUN_ROOT}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}

# build_preset NAME [TARGET...]: configure (once) and build a CMake preset.
build_preset() {
  local preset=$1; shift
  (cd "$NEPTUN_ROOT" &&
    { [ -f "build/$preset/build.ninja" ] || cmake --preset "$preset" >/dev/null; } &&
    cmake --build --preset "$preset" ${1:+--target "$@"})
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on right now, below the
# kernel's ephemeral range (32768+) so that no outgoing connection can be holding it.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# as_postgres CMD...: PostgreSQL refuses to run as root, so its tools run as `postgres`.
as_postgres() {
  # From /: the postgres user may not be able to enter the current folder (root's home).
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# start_redis DIR PORT: a Redis on 127.0.0.1:PORT whose files live in DIR.
start_redis() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save '' --appendonly no >/dev/null
  local i
  for i in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis did not start on port $port; see $dir/redis.log" >&2
  return 1
}

stop_redis() {
  local dir=$1
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
  rm -f "$dir/redis.pid"
}

# start_postgres DIR PORT [EXTRA_POSTGRES_OPTIONS]: a PostgreSQL cluster in DIR (created on
# first use, kept afterwards) listening on 127.0.0.1:PORT, with database `neptun`, user
# `postgres` trusted on loopback.
start_postgres() {
  local dir=$1 port=$2 extra=${3:-}
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { echo "initdb failed; see $dir/initdb.log" >&2; return 1; }
  fi
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
    -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=200 $extra" >/dev/null ||
    { echo "postgres did not start; see $dir/postgres.log" >&2; return 1; }
  as_postgres psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAqc \
    "SELECT 1 FROM pg_database WHERE datname='neptun'" | grep -q 1 ||
    as_postgres psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE neptun" >/dev/null
}

stop_postgres() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  return 0
}
