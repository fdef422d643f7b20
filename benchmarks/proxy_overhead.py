"""Proxy overhead: the same load through bare mitmdump and through mitmdump + the audit addon.

Loads (HTTPS through the proxy to the bundled mock server, keep-alive connections):
  chat-moderate    non-streaming chat at a fixed rate        (latency added at normal load)
  chat-saturate    non-streaming chat, closed loop           (throughput, CPU per request)
  stream-moderate  SSE streaming chat at a fixed rate
  stream-saturate  SSE streaming chat, closed loop
Prints requests/s, p50/p99 latency, the proxy's CPU ms per request (mitmdump process; with the
addon also its capture worker) and the ratios addon/bare, all measured in this one run.

Two baselines for the streaming loads: bare mitmdump buffers an SSE response and delivers it
whole at the end (the client's first token arrives with the last), while the addon relays it
chunk by chunk; ``bare-stream`` is bare mitmdump told to stream every body
(``stream_large_bodies=1``), the same relay behaviour without the addon — the fair comparison.

Usage: python benchmarks/proxy_overhead.py [--duration 10] [--rounds 2] [--memory-flows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_proxy.cli.proxy_process import ProxyProcess, free_port
from llm_proxy.mock.certs import CA_FILE

TICK = os.sysconf("SC_CLK_TCK")
LOADS = {
    "chat-moderate": ("chat", 4, 100.0),
    "chat-saturate": ("chat", 16, 0.0),
    "stream-moderate": ("stream", 4, 50.0),
    "stream-saturate": ("stream", 16, 0.0),
}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except FileNotFoundError:
        return []


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_load(proxy: ProxyProcess, target: str, ca: str, mode: str, conc: int, rate: float,
             duration: float) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), "--proxy",
           f"127.0.0.1:{proxy.port}", "--target", target, "--ca", ca, "--mode", mode,
           "--concurrency", str(conc), "--duration", str(duration), "--rate", str(rate)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 120)
    return json.loads(out.stdout)


def measure(tag: str, load: str, args, mock_port: int, mock_ca: str, tmp: Path) -> dict:
    mode, conc, rate = LOADS[load]
    extra = ["--set", "stream_large_bodies=1"] if tag == "bare-stream" else []
    config = tmp / "audit.toml"
    config.write_text(f'ack = "{args.ack}"\n')
    proxy = ProxyProcess(store=tmp / f"store-{tag}-{load}", confdir=tmp / "mitm",
                         upstream_ca=Path(mock_ca), bare=tag != "addon", extra_args=extra,
                         config=config if tag == "addon" else None)
    proxy.start()
    try:
        ca = str(proxy.mitm_ca)
        target = f"127.0.0.1:{mock_port}"
        run_load(proxy, target, ca, mode, conc, rate, 2.0)  # warm-up: TLS, caches, worker
        pids = [proxy.proc.pid] + children(proxy.proc.pid)
        before = {p: cpu_seconds(p) for p in pids}
        result = run_load(proxy, target, ca, mode, conc, rate, args.duration)
        after = {p: cpu_seconds(p) for p in pids}
    finally:
        proxy.stop()
    n = max(result["requests"], 1)
    result["cpu_ms_per_req"] = (after[pids[0]] - before[pids[0]]) * 1000 / n
    result["worker_cpu_ms_per_req"] = sum(after[p] - before[p] for p in pids[1:]) * 1000 / n
    return result


def memory_run(flows: int, mock_port: int, mock_ca: str, tmp: Path) -> list[tuple[int, float, float]]:
    """RSS of proxy and worker sampled while ``flows`` requests pass (saturating load)."""
    proxy = ProxyProcess(store=tmp / "store-memory", confdir=tmp / "mitm", upstream_ca=Path(mock_ca))
    proxy.start()
    samples = []
    done = 0
    try:
        worker = children(proxy.proc.pid)
        samples.append((0, rss_mb(proxy.proc.pid), rss_mb(worker[0]) if worker else 0.0))
        while done < flows:
            res = run_load(proxy, f"127.0.0.1:{mock_port}", str(proxy.mitm_ca), "chat", 16, 0.0, 10.0)
            done += res["requests"]
            worker = children(proxy.proc.pid)
            samples.append((done, rss_mb(proxy.proc.pid), rss_mb(worker[0]) if worker else 0.0))
            print(f"  {done:>7} flows: proxy {samples[-1][1]:.1f} MB, worker {samples[-1][2]:.1f} MB",
                  flush=True)
    finally:
        proxy.stop()
    return samples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--rounds", type=int, default=3, help="alternating bare/addon rounds per load")
    p.add_argument("--loads", default=",".join(LOADS), help="comma-separated subset of loads")
    p.add_argument("--memory-flows", type=int, default=0, help="also sample RSS over N flows")
    p.add_argument("--ack", choices=["journaled", "received"], default="journaled",
                   help="the addon's config `ack`: relay once journaled (default) or received")
    p.add_argument("--upstream-latency-ms", type=float, default=0.0,
                   help="the mock's delay before each answer (a real LLM API takes 100s of ms; "
                        "with some, the capture's request work overlaps it)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llm-audit-bench-"))
    mock_port = free_port()
    mock = subprocess.Popen([sys.executable, "-m", "llm_proxy.mock", "--port", str(mock_port),
                             "--cert-dir", str(tmp / "mockcerts"),
                             "--latency-ms", str(args.upstream_latency_ms)],
                            stdout=subprocess.DEVNULL)
    mock_ca = tmp / "mockcerts" / CA_FILE
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", mock_port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        print(f"{'load':<16} {'proxy':<11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'ttfb p50':>8} {'cpu ms/req':>10} {'worker ms/req':>13}")
        summary = []
        for load in args.loads.split(","):
            tags = ["bare", "bare-stream", "addon"] if LOADS[load][0] == "stream" else ["bare", "addon"]
            rounds: list[dict[str, dict]] = []
            for _ in range(args.rounds):
                measured = {}
                for tag in tags:
                    r = measure(tag, load, args, mock_port, str(mock_ca), tmp)
                    measured[tag] = r
                    print(f"{load:<16} {tag:<11} {r['rps']:>8.1f} {r['p50_ms']:>8.2f} "
                          f"{r['p99_ms']:>8.2f} {r['ttfb_p50_ms']:>8.2f} {r['cpu_ms_per_req']:>10.3f} "
                          f"{r['worker_cpu_ms_per_req']:>13.3f}", flush=True)
                rounds.append(measured)
            # Paired: each round's addon run against the baseline run just before it, so that
            # drift of the shared machine between rounds cancels out; the median of the pairs.
            for base in tags[:-1]:
                pairs = [(m["addon"], m[base]) for m in rounds]
                summary.append((load, base,
                                median(a["rps"] / b["rps"] for a, b in pairs),
                                median(a["p50_ms"] - b["p50_ms"] for a, b in pairs),
                                median(a["cpu_ms_per_req"] - b["cpu_ms_per_req"] for a, b in pairs),
                                median(a["worker_cpu_ms_per_req"] for a, _ in pairs)))
        print("\nratios (addon vs baseline, same run, median of paired rounds):")
        print(f"{'load':<16} {'baseline':<11} {'throughput':>10} {'p50 added ms':>13} "
              f"{'proxy cpu added ms/req':>23} {'worker cpu ms/req':>18}")
        for load, base, ratio, p50, cpu, worker in summary:
            print(f"{load:<16} {base:<11} {ratio:>9.3f}x {p50:>13.3f} {cpu:>23.3f} {worker:>18.3f}")
        if args.memory_flows:
            print(f"\nmemory over {args.memory_flows} flows (RSS):")
            memory_run(args.memory_flows, mock_port, str(mock_ca), tmp)
    finally:
        mock.terminate()
        mock.wait(10)


if __name__ == "__main__":
    main()
