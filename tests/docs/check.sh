#!/usr/bin/env bash
# tests/docs/check.sh -- checks docs/openapi.yaml (ctest: docs_openapi): that it is a valid
# OpenAPI 3.1 document, that every example in it fits its schema, and that the real server
# answers as it says: one request for every status declared for each operation, each answer's
# status, headers and body checked against the document, and every declared status (but 500)
# seen answered.
#
#   tests/docs/check.sh BINARY        the whole check; the live part runs BINARY
#   tests/docs/check.sh               the document and its examples only
#   tests/docs/check.sh --prepare     install what the check needs (apt: nodejs, npm; npm ci),
#                                     then exit
#
# The live part needs NEPTUN_DEPLOY_CHECK_REDIS_URL and NEPTUN_DEPLOY_CHECK_DATABASE_URL (a
# migrated database; tests/run.sh sets both), psql and redis-cli; without the two variables
# it is skipped. It seeds two users, a project each and a session, and removes them at the end.
# Needs node and npm. The npm packages (tests/docs/package-lock.json) go to
# build/docs-check/node_modules, installed again only when the lock file changes.
# Exits 0 when every check passed; prints "N passed, M failed" last.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${NEPTUN_DOCS_CHECK_DIR:-$root/build/docs-check}

fail() {
  printf 'docs check: %s\n' "$*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

# npm ci into the cache, once per lock file and node version.
install_node_modules() {
  local stamp want
  want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1) $(node --version)"
  stamp="$cache/node_modules/.neptun-lock"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  mkdir -p "$cache"
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  echo "==> npm ci in ${cache#"$root"/} (tests/docs/package-lock.json changed or first run)" >&2
  (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >&2) || return 1
  echo "$want" >"$stamp"
}

prepare() {
  # shellcheck source=deploy/local/lib.sh
  source "$root/deploy/local/lib.sh"
  local pkgs=()
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  [ ${#pkgs[@]} -eq 0 ] || ensure_packages "${pkgs[@]}"
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  install_node_modules
}

binary=""
case ${1:-} in
  --prepare) prepare; exit ;;
  -h | --help) sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2 ;;
  "") ;;
  *) binary=$1 ;;
esac

command -v node >/dev/null || fail "node not found: apt-get install nodejs npm (or tests/docs/check.sh --prepare)"
command -v npm >/dev/null || fail "npm not found: apt-get install npm (or tests/docs/check.sh --prepare)"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # ctest may run two of us; npm ci is shared
install_node_modules || fail "npm ci failed in $cache (is the npm registry reachable?)"
exec 9>&-

if [ -n "$binary" ]; then
  [ -x "$binary" ] || fail "$binary is not an executable file"
  binary=$(readlink -f "$binary")
  if [ -n "${NEPTUN_DEPLOY_CHECK_REDIS_URL:-}" ] && [ -n "${NEPTUN_DEPLOY_CHECK_DATABASE_URL:-}" ]; then
    command -v psql >/dev/null || fail "psql not found: apt-get install postgresql-client"
    command -v redis-cli >/dev/null || fail "redis-cli not found: apt-get install redis-tools"
  fi
fi

exec node "$here/check.mjs" --root "$root" --cache "$cache" ${binary:+--binary "$binary"}
