#!/usr/bin/env bash
# bench/logsink/run.sh -- our asynchronous log sink against Debian's spdlog 1.10 async
# logger (the comparison issue 10 asked for before choosing). Installs libspdlog-dev,
# compiles compare.cpp against build/release/libneptun_core.a (built if missing), and runs
# a burst (back-to-back lines) and a paced round (a line every 20 µs per thread, a server's
# access log at 50 000 requests/s per thread) with stderr going through a pipe, as it would to
# a log collector. Each contender has about 4 MiB of queue; spdlog runs twice, with its
# stderr sink (a write per line) and with a buffered file sink on /dev/stderr. Prints each
# round's JSON and the ratios; see bench/README.md.
#
# Usage: bench/logsink/run.sh [LINES_PER_THREAD] [ROUNDS]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/deploy/local/lib.sh"
LINES=${1:-200000}
ROUNDS=${2:-3}

ensure_packages "${NEPTUN_BUILD_PACKAGES[@]}" libspdlog-dev
[ -f "$ROOT/build/release/build.ninja" ] || (cd "$ROOT" && cmake --preset release >/dev/null)
(cd "$ROOT" && cmake --build --preset release --target neptun_core >/dev/null)
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
    def med(who, k):
        return statistics.median(r[who][k] for r in rs)
    mode = "burst" if spacing == 0 else "paced (a line every %d us per thread)" % (spacing // 1000)
    lines = sum(r["lines"] for r in rs)
    print("%s, %d lines per contender:" % (mode, lines))
    for who in ("spdlog", "spdlog_file"):
        text = "  %s / ours on the calling thread %.2f (%.0f vs %.0f ns per line)" % (
            who, med(who, "producer_ns") / med("ours", "producer_ns"), med("ours", "producer_ns"),
            med(who, "producer_ns"))
        if spacing == 0:  # paced: the threads sleep, so all-thread CPU is mostly the writer's
            text += ", CPU per line written %.2f" % (med(who, "cpu_ns") / med("ours", "cpu_ns"))
        print(text)
    print("  dropped: " + ", ".join("%s %d" % (who, sum(r[who]["dropped"] for r in rs))
                                   for who in ("ours", "spdlog", "spdlog_file")))
PY
