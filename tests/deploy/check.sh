#!/usr/bin/env bash
# tests/deploy/check.sh -- the deployment checks (ctest label `deploy`): the image build script,
# the Kubernetes manifests rendered from deploy/k8s/overlays/*, deploy/compose.yaml and
# docs/operations.md, against the Kubernetes API schemas and against the server itself.
#
#   tests/deploy/check.sh BINARY                 the real run: BINARY --help, check-runtime,
#                                                and BINARY started with each overlay's settings
#   tests/deploy/check.sh --help-file FILE       no binary: settings from a --help text (for
#                                                working on the manifests before a build;
#                                                tests/deploy/saved-help.txt is one)
#   tests/deploy/check.sh --prepare              install what the checks need (apt: nodejs,
#                                                npm, and kubernetes-client if there is no
#                                                kubectl; npm ci), then exit
#
# Needs node, npm and kubectl. The npm packages (tests/deploy/package-lock.json) go to
# build/deploy-check/node_modules, installed again only when the lock file changes.
# Set NEPTUN_DEPLOY_CHECK_REDIS_URL and NEPTUN_DEPLOY_CHECK_DATABASE_URL to live stores (a
# scratch database: the Job's `migrate` runs on it) to also run the migration and see /readyz
# turn from 200 to 503 on SIGTERM; without them the stores are unreachable loopback ports.
# Exits 0 when every check passed; prints "N passed, M failed" last.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${NEPTUN_DEPLOY_CHECK_DIR:-$root/build/deploy-check}

fail() {
  printf 'deploy check: %s\n' "$*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

# The kubectl to render with. Google Cloud SDK's kubectl is a dispatcher that asks a cluster
# (localhost:8080 when none is configured) for its version first; its versioned siblings
# render without talking to anything, so take the newest of those when they are there.
find_kubectl() {
  local k real dir v
  k=$(command -v kubectl) || return 1
  real=$(readlink -f "$k")
  dir=$(dirname "$real")
  v=$(find "$dir" -maxdepth 1 -name 'kubectl.1.[0-9]*' -perm -u+x 2>/dev/null | sort -V | tail -n 1)
  printf '%s\n' "${v:-$k}"
}

# npm ci into the cache, once per lock file and node version.
install_node_modules() {
  local stamp want
  want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1) $(node --version)"
  stamp="$cache/node_modules/.neptun-lock"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  mkdir -p "$cache"
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  echo "==> npm ci in ${cache#"$root"/} (tests/deploy/package-lock.json changed or first run)" >&2
  (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >&2) || return 1
  echo "$want" >"$stamp"
}

prepare() {
  # shellcheck source=deploy/local/lib.sh
  source "$root/deploy/local/lib.sh"
  local pkgs=()
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  # kubernetes-client and Google's kubectl package both ship /usr/bin/kubectl.
  command -v kubectl >/dev/null || pkgs+=(kubernetes-client)
  [ ${#pkgs[@]} -eq 0 ] || ensure_packages "${pkgs[@]}"
  install_node_modules
}

binary="" help_file=""
case ${1:-} in
  --prepare) prepare; exit ;;
  --help-file) help_file=${2:-}; [ -f "$help_file" ] || fail "--help-file needs a file" ;;
  -h | --help | "") sed -n '2,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2 ;;
  *) binary=$1 ;;
esac

command -v node >/dev/null || fail "node not found: apt-get install nodejs npm (or tests/deploy/check.sh --prepare)"
command -v npm >/dev/null || fail "npm not found: apt-get install npm (or tests/deploy/check.sh --prepare)"
kubectl=$(find_kubectl) || fail "kubectl not found: apt-get install kubernetes-client (or tests/deploy/check.sh --prepare)"
"$kubectl" version --client >/dev/null 2>&1 || fail "$kubectl does not run: $("$kubectl" version --client 2>&1 | tail -n 1)"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # ctest may run two of us; npm ci and the rendered files are shared
install_node_modules || fail "npm ci failed in $cache (is the npm registry reachable?)"

if [ -n "$binary" ]; then
  [ -x "$binary" ] || fail "$binary is not an executable file"
  binary=$(readlink -f "$binary")
  help_file="$cache/help.txt"
  # The help text and its exit status are themselves checked: a failing --help fails here.
  timeout 10 "$binary" --help >"$help_file" 2>&1 || fail "$binary --help exited $?: $(head -c 500 "$help_file")"
fi

exec node "$here/check.js" --root "$root" --cache "$cache" --kubectl "$kubectl" \
  --help-file "$help_file" ${binary:+--binary "$binary"}
