#!/usr/bin/env bash
# tests/image/check.sh -- the image test (ctest label `image`): builds deploy/Dockerfile for
# real with podman and runs the image the way deploy/k8s runs it, against the test's own
# Redis and PostgreSQL on loopback.
#
#   tests/image/check.sh              the test: needs NEPTUN_TEST_REDIS_PORT and
#                                     NEPTUN_TEST_PG_PORT (tests/run.sh exports them)
#   tests/image/check.sh --store DIR  the same, but with DIR as podman's storage root, kept
#                                     afterwards: a second run reuses podman's layers (for
#                                     work on the Dockerfile; the test itself starts empty)
#   tests/image/check.sh --prepare    apt-get install podman, runc, mmdebstrap, uidmap; exit
#
# No registry is used. The base image that the Dockerfile's FROM names (debian:12-slim) is
# made with `mmdebstrap --variant=minbase bookworm` from this machine's Debian apt sources
# and `podman import`ed; the build is `podman build --pull=never`. Inside the build, apt
# fetches from those same sources (the build needs the Debian mirror, as tests/run.sh does).
# podman runs with runtime runc and the ulimits of a containers.conf of our own
# (CONTAINERS_CONF), its storage in a temporary folder that is removed at the end.
#
# Kept between runs in NEPTUN_IMAGE_CACHE (default /var/cache/neptun-image, or
# ~/.cache/neptun-image when not root): the base tar (keyed by the apt sources, remade
# after 7 days), the .deb files the build downloads, and the build stage's ccache.
#
# The container runs as in deploy/k8s/base: uid/gid 10001, read-only root filesystem (the
# server with a 16 MiB /tmp, the migration without), every capability dropped, no new
# privileges, the default seccomp profile, 2 CPUs and 512 MiB, the settings of the
# neptun-api-settings ConfigMap; only the listen addresses differ (127.0.0.1 and free
# ports: the container shares the host's network, so 127.0.0.1 is the host's loopback and
# the stores are reachable; nothing listens beyond loopback).
# Exits 0 when every check passed; prints "N passed, M failed" last.
# `check && pass ... || failc ...` is meant: pass always returns 0.
# shellcheck disable=SC2015
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=deploy/local/lib.sh
source "$root/deploy/local/lib.sh"

NEPTUN_IMAGE_PACKAGES=(podman runc mmdebstrap uidmap curl redis-tools postgresql-client-15)

store="" keep_store=0
case ${1:-} in
  --prepare) ensure_packages "${NEPTUN_IMAGE_PACKAGES[@]}"; exit ;;
  --store) store=${2:-}; [ -n "$store" ] || { echo "--store needs a folder" >&2; exit 2; }
    keep_store=1 ;;
  -h | --help) sed -n '2,30s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2 ;;
  "") ;;
  *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

passed=0 failed=0
pass() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
failc() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
summary() { echo "$passed passed, $failed failed"; }
# A step the rest depends on failed: report it, clean up, stop.
abort() { failc "$*"; summary; exit 1; }
t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0)) s"; }

for tool in podman runc mmdebstrap curl redis-cli psql; do
  command -v "$tool" >/dev/null || abort "$tool not found: tests/image/check.sh --prepare installs it"
done
[ -n "${NEPTUN_TEST_REDIS_PORT:-}" ] && [ -n "${NEPTUN_TEST_PG_PORT:-}" ] ||
  abort "NEPTUN_TEST_REDIS_PORT and NEPTUN_TEST_PG_PORT are not set: run through tests/run.sh"

if [ "$(id -u)" -eq 0 ]; then cache=${NEPTUN_IMAGE_CACHE:-/var/cache/neptun-image}
else cache=${NEPTUN_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/neptun-image}; fi
mkdir -p "$cache/base" "$cache/apt-archives" "$cache/buildah-cache" || abort "cannot create $cache"
# One image test at a time per cache (the base tar and the apt archives are shared).
exec 8>"$cache/.lock"
flock 8

work=$(mktemp -d /tmp/neptun-image.XXXXXX)
chmod 755 "$work"
[ -n "$store" ] || store=$work/storage
mkdir -p "$store/graph" "$store/run" "$store/libpod" "$work/tmp"
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
tmp_dir = "$store/libpod"
events_logger = "file"
events_logfile_path = "$store/libpod/events.log"
EOF
export CONTAINERS_CONF=$work/containers.conf
# buildah keeps RUN --mount=type=cache folders in $TMPDIR/buildah-cache: that one is ours
# to keep, the rest of the build's TMPDIR is this run's.
ln -s "$cache/buildah-cache" "$work/tmp/buildah-cache"
podman_opts=(--root "$store/graph" --runroot "$store/run" --storage-driver overlay)
pm() { podman "${podman_opts[@]}" "$@"; }

image=localhost/neptun-api:image-test
name=neptun-image-test-$$
pg_port=$NEPTUN_TEST_PG_PORT redis_port=$NEPTUN_TEST_REDIS_PORT
db=neptun_image_test
token=""

cleanup() {
  pm rm -f -t 0 "$name" >/dev/null 2>&1
  [ -n "$token" ] && redis-cli -h 127.0.0.1 -p "$redis_port" del "neptun:session:$token" >/dev/null 2>&1
  as_postgres psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  if [ "$keep_store" -eq 0 ]; then
    pm rmi -a -f >/dev/null 2>&1
    # Whatever podman left mounted under the storage root, deepest first.
    findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r -n 1 umount -l 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- the base image ----------------------------------------------------------------------

# The Debian sources of this machine (NEPTUN_IMAGE_APT_SOURCES: other files), the ones
# whose URIs name a Debian mirror: a third-party repository's keyring is not in the base.
sources=()
if [ -n "${NEPTUN_IMAGE_APT_SOURCES:-}" ]; then
  read -r -a sources <<<"$NEPTUN_IMAGE_APT_SOURCES"
else
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -Eq '^[^#]*https?://[^ ]*debian' "$f" && sources+=("$f")
  done
fi
[ ${#sources[@]} -gt 0 ] || abort "no Debian apt sources found in /etc/apt (set NEPTUN_IMAGE_APT_SOURCES)"

arch=$(dpkg --print-architecture)
key=$( { cat "${sources[@]}"; echo "$arch minbase bookworm"; mmdebstrap --version; } | sha256sum | cut -c1-16)
base_tar=$cache/base/bookworm-minbase-$arch-$key.tar
if [ -s "$base_tar" ] && [ -n "$(find "$base_tar" -mtime -7)" ]; then
  pass "base: cached $(basename "$base_tar") ($(elapsed))"
else
  rm -rf "${cache:?}"/base/*
  log_step "mmdebstrap --variant=minbase bookworm from ${sources[*]}"
  # Without the descriptors we inherit (ctest's, our lock): mmdebstrap hands apt the next
  # free one for `cat >&N`, and dash cannot redirect past 9 ("Bad fd number").
  if (for f in /proc/"$BASHPID"/fd/*; do fd=${f##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec mmdebstrap --variant=minbase --format=tar --verbose bookworm "$base_tar.tmp" "${sources[@]}") \
    >"$work/mmdebstrap.log" 2>&1 && mv "$base_tar.tmp" "$base_tar"; then
    pass "base: mmdebstrap made $(basename "$base_tar") ($(elapsed))"
  else
    cp "$work/mmdebstrap.log" "$cache/last-mmdebstrap.log"
    tail -n 20 "$work/mmdebstrap.log"
    abort "base: mmdebstrap failed (log: $cache/last-mmdebstrap.log)"
  fi
fi

# Every base the Dockerfile's FROM lines name (ARG defaults expanded; earlier stages are
# not bases), in the fully qualified form podman stores an unqualified name under.
declare -A arg_default=() stages=() bases=()
while read -r kw rest; do
  case ${kw^^} in
    ARG) [[ $rest == *=* ]] && arg_default[${rest%%=*}]=${rest#*=} ;;
    FROM)
      read -r -a f <<<"$rest"
      ref=${f[0]}
      for a in "${!arg_default[@]}"; do ref=${ref//\$\{$a\}/${arg_default[$a]}}; ref=${ref//\$$a/${arg_default[$a]}}; done
      [ -n "${stages[$ref]:-}" ] || bases[$ref]=1
      [ ${#f[@]} -ge 3 ] && [ "${f[1]^^}" = AS ] && stages[${f[2]}]=1
      ;;
  esac
done < <(sed -e 's/\r$//' "$root/deploy/Dockerfile" | grep -Ei '^[[:space:]]*(ARG|FROM)[[:space:]]')
[ ${#bases[@]} -gt 0 ] || abort "deploy/Dockerfile names no base image"
for ref in "${!bases[@]}"; do
  case $ref in
    *@*) abort "deploy/Dockerfile: FROM $ref is pinned to a digest, which a base made here cannot have (pin it in CI with --build-arg instead)" ;;
    debian:12* | debian:bookworm* | */debian:12* | */debian:bookworm*) ;;
    *) abort "deploy/Dockerfile: FROM $ref: this test makes Debian 12 bases only" ;;
  esac
  full=$ref
  [[ $full == */* ]] || full=library/$full
  [[ ${full%%/*} == *[.:]* || ${full%%/*} == localhost ]] || full=docker.io/$full
  pm import "$base_tar" "$full" >"$work/import.log" 2>&1 ||
    { cat "$work/import.log"; abort "base: podman import as $full failed"; }
  pass "base: imported as $full ($(elapsed))"
done

# --- the build ---------------------------------------------------------------------------

# .deb files older than a month are for versions long gone.
find "$cache/apt-archives" -name '*.deb' -mtime +30 -delete 2>/dev/null
log_step "podman build --pull=never -f deploy/Dockerfile (log: $cache/last-build.log)"
# Layers are kept only for a storage root that is kept: committing every step of the build
# stage (2 GB) costs half a minute for nothing.
layers=false
[ "$keep_store" -eq 1 ] && layers=true
TMPDIR=$work/tmp pm build --pull=never --layers="$layers" --network=host \
  --volume "$cache/apt-archives:/var/cache/apt/archives" \
  -f "$root/deploy/Dockerfile" -t "$image" "$root" >"$work/build.log" 2>&1
build_status=$?
cp "$work/build.log" "$cache/last-build.log"
if [ "$build_status" -eq 0 ]; then
  pass "build: podman build -f deploy/Dockerfile ($(elapsed))"
else
  tail -n 30 "$work/build.log"
  abort "build: podman build -f deploy/Dockerfile failed"
fi

user=$(pm image inspect -f '{{.Config.User}}' "$image")
entry=$(pm image inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$image")
size=$(pm image inspect -f '{{.Size}}' "$image")
[ "$user" = 10001:10001 ] && pass "image: USER $user, $((size / 1000000)) MB" ||
  failc "image: USER is '$user', not 10001:10001 (deploy/k8s runs the pod as runAsUser 10001)"
[ "$entry" = '["/usr/local/bin/neptun-api"] ["serve"]' ] && pass "image: ENTRYPOINT/CMD $entry" ||
  failc "image: ENTRYPOINT/CMD is $entry, not [\"/usr/local/bin/neptun-api\"] [\"serve\"]"

# --- running it as deploy/k8s does ---------------------------------------------------------

# The ConfigMap's settings (deploy/k8s/base/kustomization.yaml), then the pod's own: the
# listen addresses are the host's loopback here.
settings=()
while read -r kv; do
  case $kv in NEPTUN_LISTEN=* | NEPTUN_ADMIN_LISTEN=*) ;; *) settings+=(-e "$kv") ;; esac
done < <(
  sed -n 's/^[[:space:]]*-[[:space:]]*\(NEPTUN_[A-Z0-9_]*=.*\)$/\1/p' "$root/deploy/k8s/base/kustomization.yaml")
[ ${#settings[@]} -gt 0 ] || failc "no NEPTUN_ settings found in deploy/k8s/base/kustomization.yaml"
database_url=postgresql://postgres@127.0.0.1:$pg_port/$db
restricted=(--user 10001:10001 --read-only --read-only-tmpfs=false --cap-drop=ALL
  --security-opt no-new-privileges --network=host --cpus 2)

PGOPTIONS="-c client_min_messages=warning" as_postgres psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db" \
  -c "CREATE DATABASE $db" >/dev/null || abort "cannot create the scratch database $db"

# `--help` exits 0.
if out=$(timeout 60 podman "${podman_opts[@]}" \
  run --rm "${restricted[@]}" "$image" --help 2>&1) && grep -q NEPTUN_DATABASE_URL <<<"$out"; then
  pass "run: --help"
else
  failc "run: --help failed: $(head -c 300 <<<"$out")"
fi

# The Job: args [migrate], the Job's limits, no /tmp at all; twice (it is idempotent).
for round in 1 2; do
  if out=$(timeout 120 podman "${podman_opts[@]}" \
    run --rm "${restricted[@]}" --memory 128m "${settings[@]}" -e "NEPTUN_DATABASE_URL=$database_url" \
    "$image" migrate 2>&1); then
    pass "migrate (run $round): exit 0"
  else
    failc "migrate (run $round): exited $?: $(tail -n 5 <<<"$out")"
  fi
done
tables=$(as_postgres psql -h 127.0.0.1 -p "$pg_port" -U postgres -d "$db" -tAc \
  "SELECT count(*) FROM pg_tables WHERE schemaname='public' AND tablename IN ('neptun_user','neptun_user_project')")
[ "$tables" = 2 ] && pass "migrate: neptun_user and neptun_user_project exist" ||
  failc "migrate: $tables of the 2 tables exist"

# A user, a project of theirs and a session in the web app's format.
token=imagetest$$$RANDOM$RANDOM
ids=$(as_postgres psql -h 127.0.0.1 -p "$pg_port" -U postgres -d "$db" -tAqc \
  "WITH u AS (INSERT INTO neptun_user (primary_email) VALUES ('$token@example.com') RETURNING id)
   INSERT INTO neptun_user_project (name, type, main_language, neptun_user_id)
   SELECT 'before', 'web-app', 'go', id FROM u RETURNING neptun_user_id || ' ' || id")
read -r user_id project_id <<<"$ids"
[ -n "${project_id:-}" ] || abort "seeding the project failed"
redis-cli -h 127.0.0.1 -p "$redis_port" set "neptun:session:$token" \
  "{\"user\":{\"id\":$user_id,\"primary_email\":\"$token@example.com\"},\"loggedInAt\":\"2025-02-16T17:42:11.000Z\"}" \
  ex 600 >/dev/null || abort "cannot write the session to Redis"

api_port=$(free_port)
admin_port=$(free_port)
while [ "$admin_port" = "$api_port" ]; do admin_port=$(free_port); done
if ! pm run -d --name "$name" "${restricted[@]}" --memory 512m \
  --tmpfs /tmp:rw,size=16m,mode=1777 "${settings[@]}" \
  -e "NEPTUN_LISTEN=127.0.0.1:$api_port" -e "NEPTUN_ADMIN_LISTEN=127.0.0.1:$admin_port" \
  -e NEPTUN_THREADS=2 -e "NEPTUN_REDIS_URL=redis://127.0.0.1:$redis_port/0" \
  -e "NEPTUN_DATABASE_URL=$database_url" "$image" serve >"$work/run.log" 2>&1; then
  abort "serve: podman run failed: $(cat "$work/run.log")"
fi

# status_of URL [CURL_ARGS...]: the HTTP status, and the body in $work/body.
status_of() { curl -s -o "$work/body" -w '%{http_code}' --max-time 5 "$@" 2>/dev/null; }
running() { [ "$(pm inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ]; }

ready=""
for _ in $(seq 1 300); do
  running || break
  [ "$(status_of "http://127.0.0.1:$admin_port/readyz")" = 200 ] && { ready=1; break; }
  sleep 0.1
done
[ -n "$ready" ] || abort "serve: /readyz never answered 200 within 30 s; logs: $(pm logs "$name" 2>&1 | tail -n 10)"
pass "serve: /readyz 200 on the admin port ($(elapsed))"

# What the container's process is: read from the host's /proc.
pid=$(pm inspect -f '{{.State.Pid}}' "$name")
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
nnp=$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$pid/status")
rootfs=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | head -n 1)
[ "$uids" = "10001 10001 10001 10001" ] && pass "serve: runs as uid 10001" || failc "serve: uids are $uids"
[ "$caps" = 0000000000000000 ] && [ "$nnp" = 1 ] && pass "serve: no capabilities, no new privileges" ||
  failc "serve: CapEff $caps, NoNewPrivs $nnp"
[[ $rootfs == ro,* || $rootfs == ro ]] && pass "serve: root filesystem read-only" ||
  failc "serve: root filesystem mounted $rootfs"

api=http://127.0.0.1:$api_port/api/users/$user_id/projects/$project_id
new_name="renamed in the image $RANDOM"
code=$(status_of -X PATCH "$api" -H "Cookie: neptun-session=$token" \
  -H 'Content-Type: application/json' --data "{\"name\":\"$new_name\",\"project_type\":\"web-site\"}")
stored=$(as_postgres psql -h 127.0.0.1 -p "$pg_port" -U postgres -d "$db" -tAc \
  "SELECT name || '|' || type FROM neptun_user_project WHERE id = $project_id")
if [ "$code" = 200 ] && grep -q "\"name\":\"$new_name\"" "$work/body" && [ "$stored" = "$new_name|web-site" ]; then
  pass "PATCH with the session: 200 and the row in PostgreSQL"
else
  failc "PATCH with the session: $code $(head -c 300 "$work/body"); the row holds '$stored'"
fi

code=$(status_of -X PATCH "$api" -H 'Content-Type: application/json' --data '{"name":"nobody"}')
if [ "$code" = 401 ] && grep -q '"statusCode":401' "$work/body"; then
  pass "PATCH without a cookie: 401"
else
  failc "PATCH without a cookie: $code $(head -c 300 "$work/body")"
fi

code=$(status_of "http://127.0.0.1:$admin_port/metrics")
if [ "$code" = 200 ] && grep -q '^neptun_http_requests_total' "$work/body" && grep -q '^neptun_ready 1' "$work/body"; then
  pass "/metrics 200 on the admin port, neptun_ready 1"
else
  failc "/metrics: $code $(head -c 300 "$work/body")"
fi
code=$(status_of "http://127.0.0.1:$api_port/metrics")
[ "$code" = 404 ] && pass "/metrics is not on the API port (404)" || failc "/metrics on the API port answered $code"

# SIGTERM: /readyz turns 503 while the server still serves through the delay, then it
# drains and exits 0.
pm kill --signal TERM "$name" >/dev/null || failc "podman kill --signal TERM failed"
draining=""
for _ in $(seq 1 50); do
  [ "$(status_of "http://127.0.0.1:$admin_port/readyz")" = 503 ] && { draining=1; break; }
  sleep 0.1
done
[ -n "$draining" ] && pass "SIGTERM: /readyz 503" || failc "SIGTERM: /readyz did not turn 503 within 5 s"
code=$(status_of "$api" -H "Cookie: neptun-session=$token")
[ "$code" = 200 ] && pass "SIGTERM: still serving during NEPTUN_SHUTDOWN_DELAY_MS (GET 200)" ||
  failc "SIGTERM: GET during the delay answered $code"
exit_code=$(timeout 60 podman "${podman_opts[@]}" wait "$name")
logs=$(pm logs "$name" 2>&1)
if [ "$exit_code" = 0 ] && grep -q '"event":"drain_started"' <<<"$logs" &&
  grep -q '"event":"stopped"' <<<"$logs"; then
  pass "SIGTERM: drained, exit code 0 ($(elapsed))"
else
  failc "SIGTERM: exit code '$exit_code'; last log lines: $(tail -n 5 <<<"$logs")"
fi

summary
[ "$failed" -eq 0 ]
