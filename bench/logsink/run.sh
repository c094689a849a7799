#!/usr/bin/env bash
# bench/logsink/run.sh -- our asynchronous log sink against Debian's spdlog 1.10 async
# logger (the comparison issue 10 asked for before choosing). Installs libspdlog-dev,
# compiles compare.cpp against build/release/libneptun_core.a (built if missing), and runs
# a burst (back-to-back lines) and a paced round (a line every 20 µs per thread, a server's
# access log at 50 000 requests/s per thread) with stderr going through a pipe, as it would to
# a log collector. Prints each round's JSON and the ratios; see bench/README.md.
#
# Usage: bench/logsink/run.sh [LINES_PER_THREAD] [ROUNDS]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/deploy/local/lib.sh"
LINES=${1:-200000}
ROUNDS=${2:-3}

ensure_packages "${NEPTUN_BUILD_PACKAGES[@]}" libspdlog-dev
[ -f "$ROOT/build/release/libneptun_core.a" ] ||
  (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build --preset release --target neptun_core)
OUT=$(mktemp -d /tmp/neptun-logsink.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
g++ -std=c++20 -O2 -DNDEBUG -I"$ROOT/include" "$HERE/compare.cpp" \
  "$ROOT/build/release/libneptun_core.a" $(pkg-config --cflags --libs spdlog) -pthread \
  -o "$OUT/compare"

run_mode() { # SPACING_NS
  # stderr (both loggers' lines) through a pipe to a reader that throws them away.
  "$OUT/compare" "$LINES" "$ROUNDS" "$1" 2> >(cat >/dev/null)
}
{
  run_mode 0
  run_mode 20000
} | tee "$OUT/rounds.json"
python3 - "$OUT/rounds.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for spacing in sorted({r["spacing_ns"] for r in rows}):
    rs = [r for r in rows if r["spacing_ns"] == spacing]
    med = lambda who, k: statistics.median(r[who][k] for r in rs)
    mode = "burst" if spacing == 0 else f"paced ({spacing // 1000} us per line per thread)"
    print(f"{mode}: spdlog / ours on the calling thread {med('spdlog','producer_ns') / med('ours','producer_ns'):.2f}"
          f" ({med('ours','producer_ns'):.0f} vs {med('spdlog','producer_ns'):.0f} ns per line),"
          + (f" all threads' CPU {med('spdlog','cpu_ns') / med('ours','cpu_ns'):.2f}," if spacing == 0 else ",")
          f" dropped ours {sum(r['ours']['dropped'] for r in rs)} spdlog {sum(r['spdlog']['dropped'] for r in rs)}"
          f" of {sum(r['lines'] for r in rs)}")
PY
