"""A lean HTTPS load generator through an HTTP proxy (CONNECT + TLS), for the benchmarks.

It runs in its own process so that it does not share a GIL with anything it measures. Requests
are pre-built bytes (2,048 distinct prompts per connection) on keep-alive connections that all
start on one schedule; responses are parsed only as far as framing needs
(Content-Length or chunked). Prints one JSON object with the results.

Usage: python benchmarks/loadgen.py --proxy 127.0.0.1:8080 --target 127.0.0.1:9000 \
           --ca ca.pem --mode chat|stream --concurrency 16 --duration 10 [--rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


class Start:
    """One schedule for every connection: they all begin once all are connected, each at its
    offset, so a fixed rate stays evenly spread (connections set up at different moments would
    otherwise fire together and queue behind each other)."""

    def __init__(self, connections: int, duration: float) -> None:
        self.waiting = connections
        self.duration = duration
        self.event = asyncio.Event()
        self.epoch = 0.0

    async def wait(self) -> float:
        self.waiting -= 1
        if self.waiting == 0:
            self.epoch = time.perf_counter()
            self.event.set()
        await self.event.wait()
        return self.epoch


async def connection(args: argparse.Namespace, ctx: ssl.SSLContext, start: Start,
                     interval: float | None, offset: float, results: list[tuple[float, float, int]],
                     requests: list[bytes]) -> None:
    phost, pport = args.proxy.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(phost, int(pport))
    writer.write(f"CONNECT {args.target} HTTP/1.1\r\nHost: {args.target}\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    await writer.start_tls(ctx, server_hostname=args.target.rsplit(":", 1)[0])
    epoch = await start.wait()
    stop_at = epoch + start.duration
    n = 0
    next_at = epoch + offset
    while True:
        if interval is not None:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            start = next_at
            next_at += interval
        else:
            start = time.perf_counter()
        if start >= stop_at:
            break
        writer.write(requests[n % len(requests)])
        n += 1
        status, first = await read_response(reader)
        end = time.perf_counter()
        results.append((end - start, (first or end) - start, status))
    writer.close()


async def main_async(args: argparse.Namespace) -> dict:
    ctx = ssl.create_default_context(cafile=args.ca)
    results: list[tuple[float, float, int]] = []
    # Every prompt differs, as in real traffic (repeats would flatter any caching on the path);
    # all are built before any connection starts, so building costs nothing while measuring.
    prompts = [[build_request(args.target, args.mode, ident * 100_000 + i) for i in range(2048)]
               for ident in range(args.concurrency)]
    start = Start(args.concurrency, args.duration)
    interval = args.concurrency / args.rate if args.rate else None
    tasks = [connection(args, ctx, start, interval,
                        (i * interval / args.concurrency) if interval else 0.0, results, prompts[i])
             for i in range(args.concurrency)]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start.epoch
    lat = sorted(r[0] for r in results)
    ttfb = sorted(r[1] for r in results)

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else float("nan")

    return {"requests": len(results), "seconds": elapsed, "rps": len(results) / elapsed,
            "p50_ms": pct(lat, 0.50), "p99_ms": pct(lat, 0.99), "ttfb_p50_ms": pct(ttfb, 0.50),
            "errors": sum(1 for r in results if r[2] >= 400)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proxy", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--mode", choices=["chat", "stream"], default="chat")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=0.0, help="total requests/s (0: as fast as possible)")
    args = p.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
