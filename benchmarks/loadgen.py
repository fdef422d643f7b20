"""A lean HTTPS load generator through an HTTP proxy (CONNECT + TLS), for the benchmarks.

It runs in its own process so that it does not share a GIL with anything it measures. Requests
are pre-built bytes (2,048 distinct prompts per connection) on keep-alive connections that all
start on one schedule; responses are parsed only as far as framing needs
(Content-Length or chunked). Prints one JSON object with the results.

With several proxies (``--proxy A,B``) it loads them in turns of ``--slice`` seconds (ABBA
order) on connections opened to each beforehand, and reports each proxy's results and the CPU
its processes (``--pids``) used during its own turns: one JSON list.

Usage: python benchmarks/loadgen.py --proxy 127.0.0.1:8080 --target 127.0.0.1:9000 \
           --ca ca.pem --mode chat|stream --concurrency 16 --duration 10 [--rate 100] \
           [--proxy A,B --slice 1 --pids PA+WA,PB]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import time


def build_request(host: str, mode: str, n: int) -> bytes:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": f"Request {n}: summarise the quarterly report "
                      "for the board in three sentences, please. " + "context " * 40}],
    }
    if mode == "stream":
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    raw = json.dumps(body).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
            "Authorization: Bearer sk-proj-BENCHMARK0000000000000000000000000000\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
            f"x-user-id: bench\r\nContent-Length: {len(raw)}\r\n\r\n")
    return head.encode() + raw


async def read_response(reader: asyncio.StreamReader) -> tuple[int, float | None]:
    """Read one response; returns (status, time of the first body byte)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    first_body: float | None = None
    if b"transfer-encoding: chunked" in lower:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if first_body is None:
                first_body = time.perf_counter()
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            await reader.readexactly(size + 2)
    else:
        idx = lower.find(b"content-length:")
        length = int(lower[idx + 15: lower.find(b"\r\n", idx)]) if idx >= 0 else 0
        if length:
            await reader.readexactly(length)
        first_body = time.perf_counter()
    return status, first_body


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's live threads so far, in nanosecond resolution (schedstat;
    /proc/PID/stat counts 10 ms ticks, too coarse for one-second turns). 0 when it is gone."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9


class Slice:
    """One proxy's turn: its connections all start on one schedule and stop at its end, so
    a fixed rate stays evenly spread (connections firing together would queue)."""

    def __init__(self, connections: int, seconds: float) -> None:
        self.waiting = connections
        self.seconds = seconds
        self.ready = asyncio.Event()
        self.epoch = 0.0

    async def wait(self) -> float:
        self.waiting -= 1
        if self.waiting == 0:
            self.epoch = time.perf_counter()
            self.ready.set()
        await self.ready.wait()
        return self.epoch


class Connection:
    """A keep-alive HTTPS connection through one proxy (CONNECT, then TLS to the target)."""

    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.sent = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, proxy: str, target: str, ctx: ssl.SSLContext) -> None:
        phost, pport = proxy.rsplit(":", 1)
        self.reader, self.writer = await asyncio.open_connection(phost, int(pport))
        self.writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        await self.reader.readuntil(b"\r\n\r\n")
        await self.writer.start_tls(ctx, server_hostname=target.rsplit(":", 1)[0])

    async def run(self, turn: Slice, interval: float | None, offset: float,
                  results: list[tuple[float, float, int]]) -> None:
        assert self.reader is not None and self.writer is not None
        epoch = await turn.wait()
        stop_at = epoch + turn.seconds
        next_at = epoch + offset
        while True:
            if interval is not None:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                begun = next_at
                next_at += interval
            else:
                begun = time.perf_counter()
            if begun >= stop_at:
                break
            self.writer.write(self.requests[self.sent % len(self.requests)])
            self.sent += 1
            status, first = await read_response(self.reader)
            end = time.perf_counter()
            results.append((end - begun, (first or end) - begun, status))


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else float("nan")


async def main_async(args: argparse.Namespace) -> list[dict]:
    """Load every proxy in turn, ``--slice`` seconds each, until each has had ``--duration``.

    Turns alternate so that every proxy sees the machine in the same state: the speed of a
    shared VM drifts by several per cent within a minute, which would otherwise end up in the
    ratios between proxies measured one after the other.
    """
    ctx = ssl.create_default_context(cafile=args.ca)
    proxies = args.proxy.split(",")
    pids = [[int(p) for p in group.split("+") if p] for group in args.pids.split(",")] \
        if args.pids else [[] for _ in proxies]
    # Every prompt differs, as in real traffic (repeats would flatter any caching on the path);
    # all are built before any connection starts, so building costs nothing while measuring.
    pools = [[Connection([build_request(args.target, args.mode, (k * 1000 + i) * 100_000 + n)
                          for n in range(2048)]) for i in range(args.concurrency)]
             for k in range(len(proxies))]
    for proxy, pool in zip(proxies, pools, strict=True):
        await asyncio.gather(*(c.open(proxy, args.target, ctx) for c in pool))
    interval = args.concurrency / args.rate if args.rate else None
    slice_s = min(args.slice, args.duration) if args.slice else args.duration
    turns = max(1, round(args.duration / slice_s))
    stats = [{"results": [], "seconds": 0.0, "cpu": [0.0] * len(group), "slices": []}
             for group in pids]

    async def turn(k: int, seconds: float, record: bool) -> None:
        pool = pools[k]
        results: list[tuple[float, float, int]] = []
        cpu0 = [cpu_seconds(p) for p in pids[k]]
        t0 = time.perf_counter()
        one = Slice(len(pool), seconds)
        await asyncio.gather(*(c.run(one, interval, (i * interval / len(pool)) if interval else 0.0,
                                     results) for i, c in enumerate(pool)))
        elapsed = time.perf_counter() - t0
        if record:
            st = stats[k]
            cpu = [cpu_seconds(p) - c for p, c in zip(pids[k], cpu0, strict=True)]
            st["results"] += results
            st["seconds"] += elapsed
            st["cpu"] = [a + b for a, b in zip(st["cpu"], cpu, strict=True)]
            st["slices"].append({"requests": len(results), "seconds": elapsed, "cpu": cpu,
                                 "p50_ms": _pct(sorted(r[0] for r in results), 0.5)})

    for k in range(len(proxies)):  # warm-up: TLS sessions, caches, the capture worker
        await turn(k, min(1.0, slice_s), record=False)
    for i in range(turns):
        order = range(len(proxies)) if i % 2 == 0 else reversed(range(len(proxies)))
        for k in order:  # ABBA order: neither proxy always follows the other
            await turn(k, slice_s, record=True)
    for pool in pools:
        for c in pool:
            if c.writer is not None:
                c.writer.close()
    out = []
    for st in stats:
        results = st["results"]
        lat = sorted(r[0] for r in results)
        ttfb = sorted(r[1] for r in results)
        n = max(len(results), 1)
        out.append({
            "requests": len(results), "seconds": st["seconds"],
            "rps": len(results) / st["seconds"] if st["seconds"] else 0.0,
            "p50_ms": _pct(lat, 0.50), "p99_ms": _pct(lat, 0.99), "ttfb_p50_ms": _pct(ttfb, 0.50),
            "errors": sum(1 for r in results if r[2] >= 400),
            "cpu_ms_per_req": [c * 1000 / n for c in st["cpu"]],
            "slices": st["slices"],
        })
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proxy", required=True, help="host:port, or several comma-separated: "
                   "loaded in turns, --slice seconds each")
    p.add_argument("--target", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--mode", choices=["chat", "stream"], default="chat")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=0.0, help="total requests/s (0: as fast as possible)")
    p.add_argument("--slice", type=float, default=0.0,
                   help="seconds per turn when several proxies are given (0: one turn each)")
    p.add_argument("--pids", default="",
                   help="per proxy, '+'-joined pids whose CPU is counted during its turns")
    args = p.parse_args()
    results = asyncio.run(main_async(args))
    print(json.dumps(results if "," in args.proxy else results[0]))


if __name__ == "__main__":
    main()
