#!/usr/bin/env bash
# deploy/image/build.sh -- the build steps of the production image (deploy/Dockerfile), kept
# in a script so that tests/deploy/check.sh runs the same steps on a machine without a
# container engine: the same apt packages, the same cmake invocation, the same check that
# the runtime stage's packages provide every shared library the binary loads.
#
#   build.sh deps                  apt-get install the build packages (deploy/local/lib.sh)
#   build.sh build                 cmake --preset release && cmake --build --preset release
#                                  --target neptun-api -> build/release/neptun-api
#   build.sh runtime-deps          print the runtime stage's apt packages, one a line
#   build.sh check-runtime BINARY  every shared library BINARY loads comes from a runtime
#                                  package (or from what those packages depend on)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The runtime stage installs exactly these (Debian 12 names). Boost.Asio and Beast are
# header-only; Boost.JSON and Boost.URL are shared libraries. ca-certificates is there for
# TLS to Redis or PostgreSQL (libpq's sslrootcert; rediss:// verifies against the system CAs
# by default). libssl3 is OpenSSL, which rediss:// (asio::ssl) and libpq load.
runtime_packages=(libboost-json1.81.0 libboost-url1.81.0 libhiredis0.14 libpq5 libssl3 ca-certificates)

# In every debian:12-slim image already (priority required); the binary may need them directly.
base_packages=(libc6 libstdc++6 libgcc-s1)

die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# packages_of PATH...: prints "PATH PACKAGE" for each PATH that a Debian package ships. One
# dpkg-query call for all (it reads every file list, so one call per library is slow). After
# the /usr merge a library may be registered under /lib while the loader reports /usr/lib, or
# the other way round, so each path is also asked for under its other spelling.
packages_of() {
  local -A spelling=()
  local path alt
  for path in "$@"; do
    spelling[$path]=$path
    case $path in /usr/*) alt=${path#/usr} ;; *) alt=/usr$path ;; esac
    spelling[$alt]=$path
  done
  # "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6"; diversions and misses are other lines.
  dpkg-query -S "${!spelling[@]}" 2>/dev/null | while IFS= read -r line; do
    case $line in *': /'*) ;; *) continue ;; esac
    local pkgs=${line%%: /*} file=/${line#*: /}
    [ -n "${spelling[$file]:-}" ] || continue
    printf '%s %s\n' "${spelling[$file]}" "${pkgs%%[:,]*}"
  done
}

# depends_closure PKG...: PKG and every installed package they depend on, recursively
# (Depends and Pre-Depends; every alternative of an `a | b`), from one dpkg-query call.
depends_closure() {
  dpkg-query -W -f='${Package}\t${Depends}, ${Pre-Depends}\n' | awk -F '\t' -v roots="$*" '
    { deps = $2; gsub(/\([^)]*\)|:any|[ ]/, "", deps); gsub(/\|/, ",", deps); edges[$1] = deps }
    END {
      n = split(roots, queue, " ")
      for (i = 1; i <= n; i++) {
        p = queue[i]
        if (p == "" || (p in seen)) continue
        seen[p] = 1; print p
        m = split(edges[p], next_, ",")
        for (j = 1; j <= m; j++) if (next_[j] != "" && !(next_[j] in seen)) queue[++n] = next_[j]
      }
    }'
}

check_runtime() {
  local binary=${1:-}
  [ -n "$binary" ] || die "usage: build.sh check-runtime BINARY"
  [ -x "$binary" ] || die "$binary: not an executable file"
  command -v ldd >/dev/null || die "ldd not found (package libc-bin)"
  command -v readelf >/dev/null || die "readelf not found (package binutils)"

  local failures=0 p
  # The names must be real Debian 12 packages: installed here (the -dev packages pull them
  # in) or at least known to apt.
  for p in "${runtime_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' &&
      ! apt-cache show "$p" >/dev/null 2>&1; then
      echo "FAIL runtime package $p is neither installed nor known to apt" >&2
      failures=$((failures + 1))
    fi
  done

  local ldd_out
  ldd_out=$(ldd "$binary" 2>&1) || die "ldd $binary failed: $ldd_out"
  if grep -q 'not found' <<<"$ldd_out"; then
    echo "FAIL unresolved libraries:" >&2
    grep 'not found' <<<"$ldd_out" >&2
    failures=$((failures + 1))
  fi

  local -A direct_ok=() closure_ok=()
  for p in "${runtime_packages[@]}" "${base_packages[@]}"; do direct_ok[$p]=1; done
  while read -r p; do closure_ok[$p]=1; done < <(depends_closure "${runtime_packages[@]}" "${base_packages[@]}")

  local -A needed=()
  local soname
  while read -r soname; do needed[$soname]=1; done < <(
    readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

  # "libpq.so.5 => /lib/x86_64-linux-gnu/libpq.so.5 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)";
  # linux-vdso.so.1 has no file.
  local line name path pkg kind
  local -A lib_path=()
  while read -r line; do
    case $line in
      *'=>'*) name=${line%% =>*}; path=${line#*=> }; path=${path%% (*} ;;
      /*) path=${line%% (*}; name=${path##*/} ;;
      *) continue ;;
    esac
    [ -e "$path" ] && lib_path[$name]=$path
  done <<<"$ldd_out"
  [ ${#lib_path[@]} -gt 0 ] || die "ldd listed no libraries for $binary"

  local -A package_at=()
  while read -r path pkg; do package_at[$path]=$pkg; done < <(packages_of "${lib_path[@]}")

  for name in $(printf '%s\n' "${!lib_path[@]}" | sort); do
    path=${lib_path[$name]}
    pkg=${package_at[$path]:-}
    if [ -z "$pkg" ]; then
      echo "FAIL $name ($path) belongs to no Debian package" >&2
      failures=$((failures + 1))
      continue
    fi
    if [ -n "${needed[$name]:-}" ]; then
      kind=direct
      [ -n "${direct_ok[$pkg]:-}" ] && { echo "ok   $name <- $pkg (needed directly)"; continue; }
    else
      kind=indirect
      [ -n "${closure_ok[$pkg]:-}" ] && { echo "ok   $name <- $pkg (through the runtime packages' dependencies)"; continue; }
    fi
    echo "FAIL $name ($path, $kind) comes from $pkg, which the runtime stage does not install: add it to runtime_packages in deploy/image/build.sh" >&2
    failures=$((failures + 1))
  done

  if [ "$failures" -gt 0 ]; then
    echo "check-runtime: $failures problem(s) with $binary" >&2
    return 1
  fi
  echo "check-runtime: every shared library of $binary is in the runtime image"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  deps)
    # shellcheck source=deploy/local/lib.sh
    source "$root/deploy/local/lib.sh"
    ensure_packages "${NEPTUN_BUILD_PACKAGES[@]}"
    ;;
  build)
    # lib.sh's ccache settings: without its sloppiness for precompiled headers, ccache
    # caches almost nothing of this build. Only the binary: the image ships no tests.
    # shellcheck source=deploy/local/lib.sh
    source "$root/deploy/local/lib.sh"
    cd "$root"
    cmake --preset release && cmake --build --preset release --target neptun-api
    ;;
  runtime-deps)
    printf '%s\n' "${runtime_packages[@]}"
    ;;
  check-runtime)
    check_runtime "$@"
    ;;
  *)
    sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
