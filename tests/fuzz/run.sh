#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] -- builds the libFuzzer targets with clang and runs each for
# SECONDS (default 30) on a copy of its seed corpus, so the repository is left as it was.
# Exits non-zero when any target finds a crash, a leak or a timeout; the input that did it is
# kept under the build directory's artifacts/<target>/ (printed below).
#
#   NEPTUN_FUZZ_BUILD_DIR  build directory (default build/fuzz)
#   NEPTUN_FUZZ_JOBS       parallel compile jobs (default 2)
#   NEPTUN_FUZZ_TARGETS    the targets to run (default: all five)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FUZZ_DIR=$ROOT/tests/fuzz
source "$ROOT/deploy/local/lib.sh"  # ensure_packages, and the ccache settings
SECONDS_PER_TARGET=${1:-30}
BUILD=${NEPTUN_FUZZ_BUILD_DIR:-$ROOT/build/fuzz}
JOBS=${NEPTUN_FUZZ_JOBS:-2}
read -r -a TARGETS <<<"${NEPTUN_FUZZ_TARGETS:-request cookie id body json}"

case $SECONDS_PER_TARGET in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

# Debian 12: clang 14 and its runtime libraries (libFuzzer, the sanitizers).
ensure_packages cmake ninja-build ccache clang-14 libclang-rt-14-dev libboost1.81-dev libboost-json1.81-dev
CXX=${NEPTUN_FUZZ_CXX:-$(command -v clang++ || command -v clang++-14)}
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

started=$(date +%s)
echo "== configuring and building the fuzz targets in $BUILD"
cmake -S "$FUZZ_DIR" -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX" "${launcher[@]}" >/dev/null
cmake --build "$BUILD" -j "$JOBS"
built=$(date +%s)
echo "== built in $((built - started)) s"

WORK=$(mktemp -d /tmp/neptun-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  bin=$BUILD/${t}_fuzz
  corpus=$WORK/$t/corpus
  artifacts=$BUILD/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  if [ -d "$FUZZ_DIR/corpus/$t" ]; then cp -R "$FUZZ_DIR/corpus/$t/." "$corpus/"; fi
  # Inputs that once crashed a target run first, so what was fixed stays fixed.
  if [ -d "$FUZZ_DIR/crashes/$t" ]; then cp -R "$FUZZ_DIR/crashes/$t/." "$corpus/"; fi
  args=(-max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10
        -print_final_stats=1 -artifact_prefix="$artifacts/")
  if [ -f "$FUZZ_DIR/$t.dict" ]; then args+=(-dict="$FUZZ_DIR/$t.dict"); fi
  log=$WORK/$t.log
  echo "== ${t}_fuzz for ${SECONDS_PER_TARGET} s"
  rc=0
  "$bin" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)
  if [ "$rc" -eq 0 ]; then
    echo "PASS ${t}_fuzz: ${runs:-?} runs, ${cov:-cov: ?}"
    passed=$((passed + 1))
  else
    echo "FAIL ${t}_fuzz (exit $rc): ${runs:-?} runs, ${cov:-cov: ?}"
    # The sanitizer's or the invariant's report, and where the input was saved.
    grep -E 'ERROR: |SUMMARY: |fuzz invariant violated|Assertion|runtime error|Test unit written to|==[0-9]+== ' "$log" |
      head -n 20 | sed 's/^/    /' || true
    cp "$log" "$artifacts/last-run.log"
    echo "    full log: $artifacts/last-run.log"
    failed=$((failed + 1))
  fi
done

echo "== fuzzing took $(($(date +%s) - built)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
