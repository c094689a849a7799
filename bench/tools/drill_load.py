#!/usr/bin/env python3
"""bench/tools/drill_load.py -- the drill's load and its report (bench/drill.sh).

  drill_load.py run --port P --users N --writers W --first-writer ID --connections C
                    --out FILE
      Closed-loop HTTP/1.1 keep-alive load on 127.0.0.1:P until SIGTERM: C connections of
      mixed traffic (90 % GET, 10 % PATCH of a random seeded user's own project 1..N) and W
      writers, each PATCHing its own project (user FIRST+i) with description = 1, 2, 3, ...,
      the next only once the last was answered. Every request becomes one line of FILE:
      `t_sent latency_s kind status` (kind m = mixed, w = writer; status is the HTTP status,
      or `err:<why>` for a socket error or a 10 s timeout; a 503 without Retry-After, i.e. from
      the load balancer, is `503lb`). At the end FILE.acked gets one line per writer:
      `project_id last_acknowledged_value last_sent_value`.

  drill_load.py report --requests FILE --phases FILE [--json OUT]
      One row per phase (the phases file: `t name` lines starting each phase, and
      `t @event` lines marking an event inside the current one). Prints the table.
"""
import argparse
import asyncio
import json
import random
import signal
import sys
import time

TYPES = ["web-site", "web-service", "web-app"]
LANGUAGES = ["typescript", "javascript", "php", "go", "python", "java", "kotlin", "ruby", "elixir"]


class Conn:
    def __init__(self, port):
        self.port = port
        self.reader = None
        self.writer = None

    async def ensure(self):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method, path, token, body=None):
        """Returns (status, headers dict); raises on a socket error."""
        await self.ensure()
        head = f"{method} {path} HTTP/1.1\r\nHost: drill\r\nCookie: neptun-session={token}\r\nAccept: application/json\r\n"
        data = b""
        if body is not None:
            data = body.encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("closed")
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ConnectionError("junk")
        status = int(parts[1])
        headers = {}
        while True:
            h = await self.reader.readline()
            if not h:
                raise ConnectionError("closed in headers")
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif status not in (204, 304):
            await self.reader.read()  # until close
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers


async def one(conn, records, kind, method, path, token, body=None):
    t0 = time.time()
    try:
        status, headers = await asyncio.wait_for(conn.request(method, path, token, body), 10)
        code = str(status)
        if status == 503 and "retry-after" not in headers:
            code = "503lb"
    except asyncio.TimeoutError:
        conn.close()
        status, code = None, "err:timeout"
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
        conn.close()
        status, code = None, "err:" + type(e).__name__
    records.append(f"{t0:.6f} {time.time() - t0:.6f} {kind} {code}\n")
    return status


async def mixed_client(port, users, records, stop):
    conn = Conn(port)
    n = 0
    while not stop.is_set():
        uid = random.randint(1, users)
        path = f"/api/users/{uid}/projects/{uid}"
        n += 1
        if random.randint(1, 10) == 1:
            body = json.dumps({"name": f"Drill {uid}-{n}", "description": f"drill request {n}",
                               "project_type": random.choice(TYPES),
                               "programming_language": random.choice(LANGUAGES)})
            st = await one(conn, records, "m", "PATCH", path, f"bench-{uid}", body)
        else:
            st = await one(conn, records, "m", "GET", path, f"bench-{uid}")
        if st is None:
            await asyncio.sleep(0.01)  # a refused connect must not spin
    conn.close()


async def writer_client(port, uid, acked, stop, records):
    conn = Conn(port)
    path = f"/api/users/{uid}/projects/{uid}"
    value = 0
    while not stop.is_set():
        value += 1
        acked[uid][1] = value
        st = await one(conn, records, "w", "PATCH", path, f"bench-{uid}",
                       json.dumps({"description": str(value)}))
        if st == 200:
            acked[uid][0] = value
        elif st is None:
            await asyncio.sleep(0.01)
    conn.close()


async def run(args):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    records = []
    acked = {args.first_writer + i: [0, 0] for i in range(args.writers)}
    tasks = [asyncio.create_task(mixed_client(args.port, args.users, records, stop))
             for _ in range(args.connections)]
    tasks += [asyncio.create_task(writer_client(args.port, uid, acked, stop, records))
              for uid in acked]
    with open(args.out, "w") as out:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
            out.writelines(records)
            records.clear()
            out.flush()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.writelines(records)
    with open(args.out + ".acked", "w") as f:
        for uid, (ack, sent) in acked.items():
            f.write(f"{uid} {ack} {sent}\n")


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def report(args):
    phases, events = [], {}
    for line in open(args.phases):
        t, name = line.split(None, 1)
        name = name.strip()
        if name.startswith("@"):
            events.setdefault(len(phases) - 1, []).append((float(t), name[1:]))
        else:
            phases.append((float(t), name))
    end = float("inf")
    if phases and phases[-1][1] == "end":
        end = phases.pop()[0]
    rows = [{"phase": name, "start": t, "n": 0, "ok": 0, "s503": 0, "s503lb": 0, "other": {},
             "sock": 0, "lat": [], "first_bad": None, "last_bad": None,
             "writes": 0, "writes_ok": 0} for t, name in phases]
    starts = [t for t, _ in phases]
    for line in open(args.requests):
        t, lat, kind, code = line.split()
        t, lat = float(t), float(lat)
        i = 0
        while i + 1 < len(starts) and t >= starts[i + 1]:
            i += 1
        if t < starts[0] or t > end:
            continue
        r = rows[i]
        r["n"] += 1
        r["lat"].append(lat)
        if kind == "w":
            r["writes"] += 1
        bad = True
        if code == "200":
            r["ok"] += 1
            bad = False
            if kind == "w":
                r["writes_ok"] += 1
        elif code == "503":
            r["s503"] += 1
        elif code == "503lb":
            r["s503lb"] += 1
        elif code.startswith("err:"):
            r["sock"] += 1
        else:
            r["other"][code] = r["other"].get(code, 0) + 1
        if bad:
            done_at = t + lat
            r["first_bad"] = t if r["first_bad"] is None else min(r["first_bad"], t)
            r["last_bad"] = done_at if r["last_bad"] is None else max(r["last_bad"], done_at)
    out = []
    for i, r in enumerate(rows):
        lat = sorted(r["lat"])
        ev = events.get(i, [])
        # Errors are timed from the phase's first event (the action), or its start.
        t_action = ev[0][0] if ev else r["start"]
        rec = {
            "phase": r["phase"], "requests": r["n"], "ok": r["ok"], "503": r["s503"],
            "503_lb": r["s503lb"], "other": r["other"], "socket_errors": r["sock"],
            "p50_ms": round(percentile(lat, 50) * 1000, 1),
            "p99_ms": round(percentile(lat, 99) * 1000, 1),
            "max_ms": round((lat[-1] if lat else 0) * 1000, 1),
            "writes": r["writes"], "writes_ok": r["writes_ok"],
            "errors_for_s": None if r["last_bad"] is None else round(r["last_bad"] - r["first_bad"], 2),
            "back_after_s": 0.0 if r["last_bad"] is None else round(r["last_bad"] - t_action, 2),
            "events": {name: round(t - t_action, 2) for t, name in ev},
        }
        for t, name in ev:
            if r["last_bad"] is not None:
                rec["back_after_" + name + "_s"] = round(r["last_bad"] - t, 2)
        out.append(rec)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    print("| phase | requests | 200 | 503 (server / LB) | other | socket errors | p50 / p99 / max ms | errors from .. to (s after the action) | last error, s after the promotion | events (s after the action) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for rec, r in zip(out, rows):
        other = sum(rec["other"].values())
        other_s = str(other) + ("" if not other else " (" + ", ".join(f"{k}x{v}" for k, v in sorted(rec["other"].items())) + ")")
        if r["last_bad"] is None:
            window = "none"
        else:
            t_action = (events.get(rows.index(r)) or [(r["start"], "")])[0][0]
            window = f"{r['first_bad'] - t_action:.2f} .. {r['last_bad'] - t_action:.2f}"
        since = rec.get("back_after_promoted_s")
        since_s = "-" if "promoted" not in rec["events"] else ("no error" if since is None else f"{since:.2f}")
        evs = ", ".join(f"{k} {v:.2f}" for k, v in rec["events"].items()) or "-"
        print(f"| {rec['phase']} | {rec['requests']} | {rec['ok']} | {rec['503'] + rec['503_lb']} ({rec['503']} / {rec['503_lb']}) | "
              f"{other_s} | {rec['socket_errors']} | {rec['p50_ms']} / {rec['p99_ms']} / {rec['max_ms']} | {window} | {since_s} | {evs} |")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--users", type=int, required=True)
    r.add_argument("--writers", type=int, default=4)
    r.add_argument("--first-writer", type=int, required=True)
    r.add_argument("--connections", type=int, default=16)
    r.add_argument("--out", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--requests", required=True)
    rep.add_argument("--phases", required=True)
    rep.add_argument("--json")
    args = p.parse_args()
    if args.cmd == "run":
        asyncio.run(run(args))
    else:
        report(args)


if __name__ == "__main__":
    sys.exit(main())
