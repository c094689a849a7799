#!/usr/bin/env python3
"""bench/tools/idle_conns.py -- hold N idle keep-alive connections to an HTTP server, for the
idle-connection part of bench/run.sh (memory per idle connection, throughput beside them).

Each connection sends one complete GET (a valid session on its own project, so the answer
is a 200 that keeps the connection alive), reads the whole response, then sends nothing
more. With --silent it sends nothing at all (the server's first-request header timeout then
applies, not its keep-alive idle timeout).

When every connection has been tried, a JSON line goes to --ready-file:
    {"requested":N,"open":N,"failed":N,"statuses":{"200":N},"seconds":S}
The connections are then held until SIGTERM or SIGINT, after which one more JSON line,
{"open_at_end":N,"closed_by_server":N}, goes to stdout and the process exits 0. SIGUSR1
prints {"open_now":N} meanwhile (the server may close idle connections on its own).
Raise `ulimit -n` above N first.
"""
import argparse
import asyncio
import json
import signal
import sys
import time


async def open_one(args, index, stats, holders, sem):
    user = index % args.users + 1
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port), args.timeout)
        except (OSError, asyncio.TimeoutError) as e:
            stats["failed"] += 1
            stats["errors"][type(e).__name__] = stats["errors"].get(type(e).__name__, 0) + 1
            return
        if not args.silent:
            request = (f"GET /api/users/{user}/projects/{user} HTTP/1.1\r\n"
                       f"Host: {args.host}:{args.port}\r\n"
                       f"Cookie: neptun-session={args.token_prefix}{user}\r\n"
                       "Accept: application/json\r\n\r\n")
            try:
                writer.write(request.encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), args.timeout)
                lines = head.decode("latin-1").split("\r\n")
                status = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                if length:
                    await asyncio.wait_for(reader.readexactly(length), args.timeout)
                stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, IndexError, ValueError) as e:
                stats["failed"] += 1
                stats["errors"][type(e).__name__] = stats["errors"].get(type(e).__name__, 0) + 1
                writer.close()
                return
    stats["open"] += 1
    holders.append(asyncio.ensure_future(hold(reader, writer, stats)))


async def hold(reader, writer, stats):
    try:
        while await reader.read(4096):
            pass  # the server has nothing to send on an idle connection; ignore if it does
    except OSError:
        pass
    stats["open"] -= 1
    stats["closed_by_server"] += 1
    writer.close()


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--users", type=int, default=1, help="spread the GETs over users 1..N")
    p.add_argument("--token-prefix", default="bench-")
    p.add_argument("--silent", action="store_true", help="send nothing on the connections")
    p.add_argument("--parallel", type=int, default=200, help="connections being opened at once")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--ready-file", required=True)
    args = p.parse_args()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stats = {"open": 0, "failed": 0, "closed_by_server": 0, "statuses": {}, "errors": {}}
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: print(json.dumps({"open_now": stats["open"]}), flush=True))
    holders = []
    sem = asyncio.Semaphore(args.parallel)
    started = time.monotonic()
    opening = asyncio.ensure_future(asyncio.gather(
        *(open_one(args, i, stats, holders, sem) for i in range(args.count))))
    await asyncio.wait([opening, asyncio.ensure_future(stop.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    if opening.done():
        with open(args.ready_file, "w") as f:
            json.dump({"requested": args.count, "open": stats["open"], "failed": stats["failed"],
                       "statuses": stats["statuses"], "errors": stats["errors"],
                       "seconds": round(time.monotonic() - started, 2)}, f)
            f.write("\n")
        await stop.wait()
    else:
        opening.cancel()
    print(json.dumps({"open_at_end": stats["open"], "closed_by_server": stats["closed_by_server"]}),
          flush=True)
    for task in holders:
        task.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
