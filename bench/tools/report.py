#!/usr/bin/env python3
"""bench/tools/report.py -- turns the measurements bench/run.sh collected (one JSON object a
line) into the printed table and bench/results/<timestamp>.json.

    report.py meta KEY=VALUE...        prints {"kind":"meta",...} (numbers stay numbers)
    report.py table MEASUREMENTS OUT   prints the tables, writes OUT (JSON)

Measurement lines: kind "meta", "ceiling" {name, value}, "wrk" {server, scenario, phase,
wrk: BENCH_RESULT of bench/wrk/common.lua, before/after and stores_before/stores_after:
proc_tree.py output}, "idle" {server, requested, rss_before_kib, rss_after_kib, holder,
end}.
"""
import json
import sys

# Which raw-store figure bounds each scenario: one PostgreSQL statement or one Redis GET
# per request.
CEILING_OF = {
    "update": "pg_update_tps",
    "read": "pg_select_tps",
    "mixed": "pg_mixed_tps",  # pgbench running select.sql@9 update.sql@1
    "unauthorized": "redis_get_rps",
    "forbidden": "redis_get_rps",
}
CEILING_LABEL = {
    "pg_update_tps": "pgbench UPDATE",
    "pg_select_tps": "pgbench SELECT",
    "pg_mixed_tps": "pgbench 9 SELECT : 1 UPDATE",
    "redis_get_rps": "redis GET",
}


def number(text):
    return int(text) if text.isdigit() else text


def cmd_meta(pairs):
    meta = {"kind": "meta"}
    for pair in pairs:
        key, _, value = pair.partition("=")
        meta[key] = number(value)
    print(json.dumps(meta))


def per_request_us(before, after, requests):
    if not before or not after or not requests:
        return None
    return (after["ticks"] - before["ticks"]) / after["clk_tck"] * 1e6 / requests


def row_of(m, ceilings):
    w = m["wrk"]
    seconds = w["duration_us"] / 1e6
    rps = w["requests"] / seconds if seconds else 0.0
    ceiling_name = CEILING_OF.get(m["scenario"])
    ceiling = ceilings.get(ceiling_name)
    errors = w["errors"]
    return {
        "server": m["server"],
        "scenario": m["scenario"],
        "phase": m["phase"],
        "requests": w["requests"],
        "seconds": round(seconds, 3),
        "rps": round(rps, 1),
        "latency_ms": {k: round(v / 1000, 3) for k, v in w["latency_us"].items()},
        "expected_status": w["expected"],
        "mismatched": w["mismatched"],
        "wrong_statuses": w["wrong_statuses"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "socket_error_kinds": {k: v for k, v in errors.items() if k != "status"},
        "cpu_us_per_request": per_request_us(m.get("before"), m.get("after"), w["requests"]),
        "store_cpu_us_per_request": per_request_us(m.get("stores_before"), m.get("stores_after"),
                                                   w["requests"]),
        "peak_rss_kib": (m.get("after") or {}).get("hwm_kib"),
        "rss_kib": (m.get("after") or {}).get("rss_kib"),
        "processes": len((m.get("after") or {}).get("pids", [])),
        "ceiling": ceiling_name,
        "ceiling_ratio": round(rps / ceiling, 3) if ceiling else None,
    }


def fmt(value, spec, none="-"):
    return none if value is None else format(value, spec)


def print_table(headers, rows, aligns):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if a == "<" else c.rjust(w)
                         for c, w, a in zip(cells, widths, aligns)).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def cmd_table(path, out_path):
    meta, ceilings, measurements, idle = {}, {}, [], []
    with open(path) as f:
        for text in f:
            if not text.strip():
                continue
            m = json.loads(text)
            kind = m.pop("kind")
            if kind == "meta":
                meta.update(m)
            elif kind == "ceiling":
                ceilings[m["name"]] = m["value"]
            elif kind == "wrk":
                measurements.append(m)
            elif kind == "idle":
                idle.append(m)

    rows = [row_of(m, ceilings) for m in measurements]
    main = [r for r in rows if r["phase"] == "main"]
    by_key = {(r["server"], r["scenario"]): r for r in main}
    # "peer" when there is one, "peer-<folder>" for each of several (bench/run.sh --peer).
    peers = []
    for r in main:
        if r["server"].startswith("peer") and r["server"] not in peers:
            peers.append(r["server"])
    has_peer = bool(peers)

    comparison = []
    for r in main:
        if r["server"] != "ours":
            continue
        for peer in peers:
            p = by_key.get((peer, r["scenario"]))
            if not p:
                continue
            cpu_ratio = None
            if r["cpu_us_per_request"] and p["cpu_us_per_request"] is not None:
                cpu_ratio = round(p["cpu_us_per_request"] / r["cpu_us_per_request"], 2)
            comparison.append({
                "scenario": r["scenario"],
                "peer": peer,
                "rps_ours_over_peer": round(r["rps"] / p["rps"], 2) if p["rps"] else None,
                "cpu_per_request_peer_over_ours": cpu_ratio,
            })
    compared = {(c["scenario"], c["peer"]): c for c in comparison}

    print()
    print(f"neptun-api bench  {meta.get('date', '')}  commit {meta.get('commit', '?')}  "
          f"{meta.get('cpus', '?')} cpu(s) {meta.get('cpu_model', '')}")
    print(f"users {meta.get('users')}  wrk -t{meta.get('threads')} -c{meta.get('connections')} "
          f"-d{meta.get('duration')}s  ours: {meta.get('server_cmd')}"
          + (f"  peer: {meta.get('peer_cmd')}" if has_peer else ""))
    print("ceilings at the same concurrency: " + ", ".join(
        f"{CEILING_LABEL[k]} {ceilings[k]:.0f}/s" for k in CEILING_LABEL if k in ceilings))
    print()
    headers = ["scenario", "server", "req/s", "p50 ms", "p99 ms", "max ms", "wrong", "sock err",
               "CPU us/req", "stores us/req", "peak RSS MiB", "x ceiling"]
    aligns = ["<", "<"] + [">"] * 10
    for peer in peers:
        headers += [f"ours/{peer} req/s", f"{peer}/ours CPU"]
        aligns += [">", ">"]
    table = []
    for r in main:
        cells = [r["scenario"], r["server"], fmt(r["rps"], ".0f"),
                 fmt(r["latency_ms"]["p50"], ".2f"), fmt(r["latency_ms"]["p99"], ".2f"),
                 fmt(r["latency_ms"]["max"], ".1f"),
                 str(r["mismatched"]) + (" (" + ",".join(f"{k}x{v}" for k, v in sorted(r["wrong_statuses"].items())) + ")"
                                         if r["wrong_statuses"] else ""),
                 str(r["socket_errors"]),
                 fmt(r["cpu_us_per_request"], ".1f"), fmt(r["store_cpu_us_per_request"], ".1f"),
                 fmt(r["peak_rss_kib"] / 1024 if r["peak_rss_kib"] else None, ".1f"),
                 fmt(r["ceiling_ratio"], ".2f")]
        for peer in peers:
            c = compared.get((r["scenario"], peer)) if r["server"] == "ours" else None
            cells += [fmt(c and c["rps_ours_over_peer"], ".2f", ""),
                      fmt(c and c["cpu_per_request_peer_over_ours"], ".2f", "")]
        table.append(cells)
    print_table(headers, table, aligns)

    idle_rows = []
    for i in idle:
        base = by_key.get((i["server"], "read"))
        with_idle = next((r for r in rows if r["phase"] == "idle" and r["server"] == i["server"]), None)
        opened = i["holder"].get("open", 0)
        held = i.get("open_at_rss")
        held = opened if held is None else held
        growth = i["rss_after_kib"] - i["rss_before_kib"]
        idle_rows.append({
            "server": i["server"],
            "requested": i["requested"],
            "opened": opened,
            "failed": i["holder"].get("failed"),
            "open_at_end": (i.get("end") or {}).get("open_at_end"),
            "rss_before_kib": i["rss_before_kib"],
            "rss_after_kib": i["rss_after_kib"],
            "open_at_rss": held,
            "rss_bytes_per_connection": round(growth * 1024 / held) if held else None,
            "read_rps": base and base["rps"],
            "read_rps_with_idle": with_idle and with_idle["rps"],
            "read_p99_ms_with_idle": with_idle and with_idle["latency_ms"]["p99"],
            "mismatched_with_idle": with_idle and with_idle["mismatched"],
            "ratio": round(with_idle["rps"] / base["rps"], 2) if base and with_idle and base["rps"] else None,
        })
    if idle_rows:
        print()
        print(f"idle keep-alive connections held during a second read run ({idle_rows[0]['requested']} requested)")
        headers = ["server", "opened", "open at RSS", "open at end", "RSS before MiB", "RSS after MiB",
                   "B/conn", "read req/s", "with idle", "ratio", "p99 ms with idle", "wrong"]
        table = [[r["server"], str(r["opened"]), fmt(r["open_at_rss"], "d"), fmt(r["open_at_end"], "d"),
                  fmt(r["rss_before_kib"] / 1024, ".1f"), fmt(r["rss_after_kib"] / 1024, ".1f"),
                  fmt(r["rss_bytes_per_connection"], "d"), fmt(r["read_rps"], ".0f"),
                  fmt(r["read_rps_with_idle"], ".0f"), fmt(r["ratio"], ".2f"),
                  fmt(r["read_p99_ms_with_idle"], ".2f"), fmt(r["mismatched_with_idle"], "d")]
                 for r in idle_rows]
        print_table(headers, table, ["<"] + [">"] * 11)

    warnings = []
    for r in rows:
        if r["mismatched"] or r["socket_errors"]:
            warnings.append(f"{r['server']} {r['scenario']} ({r['phase']}): {r['mismatched']} responses "
                            f"not {r['expected_status']} {r['wrong_statuses'] or ''}, "
                            f"{r['socket_errors']} socket errors {r['socket_error_kinds']}")
    for r in idle_rows:
        if r["opened"] != r["requested"] or (r["open_at_end"] is not None and r["open_at_end"] != r["opened"]):
            warnings.append(f"{r['server']} idle: {r['opened']} of {r['requested']} opened, "
                            f"{r['open_at_end']} still open at the end")
    if warnings:
        print()
        for w in warnings:
            print("warning: " + w)

    with open(out_path, "w") as f:
        json.dump({"meta": meta, "ceilings": ceilings, "results": rows,
                   "comparison": comparison, "idle": idle_rows, "warnings": warnings}, f, indent=2)
        f.write("\n")


def main(argv):
    if len(argv) >= 2 and argv[1] == "meta":
        cmd_meta(argv[2:])
    elif len(argv) == 4 and argv[1] == "table":
        cmd_table(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
