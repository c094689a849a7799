#!/usr/bin/env python3
"""bench/tools/proc_tree.py -- CPU time and memory of a process and all its descendants,
read from /proc, for bench/run.sh (a server may be one process, or a cluster primary with
worker children, or a shell that started either).

    proc_tree.py PID...  ->  {"pids":[...],"ticks":N,"clk_tck":100,"rss_kib":N,"hwm_kib":N}

ticks = utime + stime (clock ticks) summed over the trees, plus cutime + cstime: the time of
children that exited and were reaped (PostgreSQL backends that close, a worker that a
cluster primary replaced), so that a delta never goes backwards when a process ends.
rss_kib = VmRSS summed; hwm_kib = VmHWM (peak RSS) summed over the processes alive now.
"""
import json
import os
import sys


def children_map():
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def trees(roots):
    children = children_map()
    pids, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid not in pids:
            pids.append(pid)
            todo.extend(children.get(pid, []))
    return pids


def stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # utime, stime, cutime, cstime: fields 14 to 17 of stat, counted from 1 with pid and comm
    ticks = sum(int(v) for v in fields[11:15])
    mem = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                mem[key] = int(value.split()[0])
    return ticks, mem.get("VmRSS", 0), mem.get("VmHWM", 0)


def main():
    roots = [int(a) for a in sys.argv[1:]]
    out = {"pids": [], "ticks": 0, "clk_tck": os.sysconf("SC_CLK_TCK"), "rss_kib": 0, "hwm_kib": 0}
    for pid in trees(roots):
        try:
            ticks, rss, hwm = stats(pid)
        except (OSError, ValueError):
            continue
        out["pids"].append(pid)
        out["ticks"] += ticks
        out["rss_kib"] += rss
        out["hwm_kib"] += hwm
    print(json.dumps(out))
    return 0 if out["pids"] else 1


if __name__ == "__main__":
    sys.exit(main())
