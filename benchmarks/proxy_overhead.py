"""Proxy overhead: the same load through bare mitmdump and through mitmdump + the audit addon.

Loads (HTTPS through the proxy to the bundled mock server, keep-alive connections):
  chat-moderate    non-streaming chat at a fixed rate        (latency added at normal load)
  chat-saturate    non-streaming chat, closed loop           (throughput, CPU per request)
  stream-moderate  SSE streaming chat at a fixed rate
  stream-saturate  SSE streaming chat, closed loop
Prints requests/s, p50/p99 latency, the proxy's CPU ms per request (mitmdump process; with the
addon also its capture worker) and the ratios addon/bare, all measured in this one run.

Every proxy of a load runs at once and one load generator loads them in turns of ``--slice``
seconds (ABBA order), counting each proxy's CPU during its own turns only. This VM's speed
drifts by 5-15 % within a minute; proxies measured one after the other (as this script did
before) carried that drift into their ratios, turns a second long cancel it.

Two baselines for the streaming loads: bare mitmdump buffers an SSE response and delivers it
whole at the end (the client's first token arrives with the last), while the addon relays it
chunk by chunk; ``bare-stream`` is bare mitmdump told to stream every body
(``stream_large_bodies=1``), the same relay behaviour without the addon — the fair comparison.

``--other-tree DIR`` also runs the addon from another checkout (say ``git worktree add
/tmp/before HEAD~1``) as ``other`` (and ``other-received``) proxies of the same run: an A/B of a
change, free of the drift between runs.

Usage: python benchmarks/proxy_overhead.py [--duration 20] [--slice 1] [--received] [--floors]
           [--loads chat-moderate,...] [--memory-flows 100000] [--other-tree DIR]
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

LOADS = {
    "chat-moderate": ("chat", 4, 100.0),
    "chat-saturate": ("chat", 16, 0.0),
    "stream-moderate": ("stream", 4, 50.0),
    "stream-saturate": ("stream", 16, 0.0),
}


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


def start_proxy(tag: str, load: str, args, mock_ca: str, tmp: Path) -> ProxyProcess:
    """``bare``, ``bare-stream``, ``addon`` (config ack = --ack), ``addon-received``, the same
    two from ``--other-tree`` (``other``, ``other-received``), or a floor (``floor-hooks``,
    ``floor-defer``, ``floor-echo``: see floor_addons.py)."""
    extra: list[str] = []
    if tag == "bare-stream":
        extra = ["--set", "stream_large_bodies=1"]
    elif tag.startswith("floor-"):
        extra = ["-s", str(ROOT / "benchmarks" / "floor_addons.py"), "--set", f"floor={tag[6:]}"]
    with_addon = tag.startswith(("addon", "other"))
    config = None
    if with_addon:
        config = tmp / f"audit-{tag}.toml"
        config.write_text(f'ack = "{"received" if tag.endswith("-received") else args.ack}"\n')
    proxy = ProxyProcess(store=tmp / f"store-{tag}-{load}", confdir=tmp / "mitm",
                         upstream_ca=Path(mock_ca), bare=not with_addon,
                         extra_args=extra, config=config)
    # ``python -m llm_proxy`` imports from its working directory first: the proxy (and the
    # worker it spawns) runs the code of the tree it is started in
    tree = Path(args.other_tree).resolve() if tag.startswith("other") else ROOT
    if not (tree / "llm_proxy" / "__init__.py").is_file():  # else the installed one would run
        raise SystemExit(f"{tree}: no llm_proxy package in this tree")
    cwd, env_path = os.getcwd(), os.environ.get("PYTHONPATH")
    try:
        os.chdir(tree)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(tree), env_path)))
        proxy.start()
    finally:
        os.chdir(cwd)
        if env_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_path
    # proxies of one run share a confdir, so the CA bundle that start() waits for may be an
    # earlier proxy's: wait for this one's capture worker too, whose CPU is counted
    deadline = time.monotonic() + 30
    while (with_addon or tag == "floor-echo") and not children(proxy.proc.pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{tag}: no capture worker after 30 s: {proxy.log_tail()}")
        time.sleep(0.05)
    return proxy


def measure(tags: list[str], load: str, args, mock_port: int, mock_ca: str, tmp: Path) -> dict:
    """All proxies up at once, loaded in alternating turns by one load generator."""
    mode, conc, rate = LOADS[load]
    proxies: list[ProxyProcess] = []
    try:
        for tag in tags:
            proxies.append(start_proxy(tag, load, args, mock_ca, tmp))
        pids = [[p.proc.pid, *children(p.proc.pid)] for p in proxies]
        cmd = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"),
               "--proxy", ",".join(f"127.0.0.1:{p.port}" for p in proxies),
               "--pids", ",".join("+".join(map(str, group)) for group in pids),
               "--target", f"127.0.0.1:{mock_port}", "--ca", str(proxies[0].mitm_ca),
               "--mode", mode, "--concurrency", str(conc), "--rate", str(rate),
               "--duration", str(args.duration), "--slice", str(args.slice)]
        timeout = len(tags) * (args.duration + 5) + 120
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout)
    finally:
        for p in proxies:
            p.stop()
    results = {}
    for tag, r in zip(tags, json.loads(out.stdout), strict=True):
        cpu = r.pop("cpu_ms_per_req")
        r["cpu_ms_per_req"] = cpu[0]
        r["worker_cpu_ms_per_req"] = sum(cpu[1:])
        results[tag] = r
    return results


def turn_ratio(a: dict, b: dict) -> float:
    """Median over turns of a's requests/s over b's in the same cycle (turns alternate)."""
    ratios = [(x["requests"] / x["seconds"]) / (y["requests"] / y["seconds"])
              for x, y in zip(a["slices"], b["slices"], strict=True) if y["requests"]]
    return median(ratios) if ratios else float("nan")


def memory_run(flows: int, mock_port: int, mock_ca: str, tmp: Path,
               ack: str) -> list[tuple[int, float, float]]:
    """RSS of proxy and worker sampled while ``flows`` requests pass (saturating load)."""
    config = tmp / "audit-memory.toml"
    config.write_text(f'ack = "{ack}"\n')
    proxy = ProxyProcess(store=tmp / "store-memory", confdir=tmp / "mitm", upstream_ca=Path(mock_ca),
                         config=config)
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
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds of load per proxy and load, in turns of --slice seconds")
    p.add_argument("--slice", type=float, default=1.0, help="seconds per turn")
    p.add_argument("--loads", default=",".join(LOADS), help="comma-separated subset of loads")
    p.add_argument("--memory-flows", type=int, default=0, help="also sample RSS over N flows")
    p.add_argument("--ack", choices=["journaled", "received"], default="journaled",
                   help="config `ack` of the `addon` proxy (default journaled)")
    p.add_argument("--received", action="store_true",
                   help="also measure an addon proxy with ack = received")
    p.add_argument("--floors", action="store_true",
                   help="also measure the reference addons of floor_addons.py (hooks, defer, echo) "
                        "under the chat loads")
    p.add_argument("--upstream-latency-ms", type=float, default=0.0,
                   help="the mock's delay before each answer (a real LLM API takes 100s of ms; "
                        "with some, the capture's request work overlaps it)")
    p.add_argument("--other-tree", default="",
                   help="also measure the addon of this checkout (A/B of a change, same run)")
    p.add_argument("--json", default="", help="append every measurement, turn by turn, to "
                   "this file (JSON lines)")
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
        print(f"{'load':<16} {'proxy':<15} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'ttfb p50':>8} {'cpu ms/req':>10} {'worker ms/req':>13}")
        summary = []
        for load in filter(None, args.loads.split(",")):  # --loads "": the memory run only
            stream = LOADS[load][0] == "stream"
            tags = ["bare", *(["bare-stream"] if stream else []), "addon",
                    *(["addon-received"] if args.received else []),
                    *(["other"] if args.other_tree else []),
                    *(["other-received"] if args.other_tree and args.received else []),
                    *(["floor-hooks", "floor-defer", "floor-echo"] if args.floors and not stream
                      else [])]
            measured = measure(tags, load, args, mock_port, str(mock_ca), tmp)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps({"load": load, "results": measured}) + "\n")
            for tag, r in measured.items():
                print(f"{load:<16} {tag:<15} {r['rps']:>8.1f} {r['p50_ms']:>8.2f} "
                      f"{r['p99_ms']:>8.2f} {r['ttfb_p50_ms']:>8.2f} {r['cpu_ms_per_req']:>10.3f} "
                      f"{r['worker_cpu_ms_per_req']:>13.3f}", flush=True)
            base = measured["bare-stream" if stream else "bare"]
            for tag, r in measured.items():
                if tag.startswith("bare"):
                    continue
                summary.append((load, tag, "bare-stream" if stream else "bare",
                                turn_ratio(r, base), r["p50_ms"] - base["p50_ms"],
                                r["cpu_ms_per_req"] - base["cpu_ms_per_req"],
                                r["worker_cpu_ms_per_req"]))
            if stream:  # bare mitmdump buffers the stream: faster, but no first token early
                summary.append((load, "addon", "bare (buffers)",
                                turn_ratio(measured["addon"], measured["bare"]),
                                float("nan"), float("nan"), float("nan")))
        print("\nratios against the baseline, same run, turns alternating "
              f"({args.slice:g} s each, {args.duration:g} s per proxy; throughput: median of "
              "the per-cycle ratios):")
        print(f"{'load':<16} {'proxy':<15} {'baseline':<15} {'throughput':>10} "
              f"{'p50 added ms':>13} {'proxy cpu added ms/req':>23} {'worker cpu ms/req':>18}")
        for load, tag, base, ratio, p50, cpu, worker in summary:
            print(f"{load:<16} {tag:<15} {base:<15} {ratio:>9.3f}x {p50:>13.3f} {cpu:>23.3f} "
                  f"{worker:>18.3f}")
        if args.memory_flows:
            print(f"\nmemory over {args.memory_flows} flows (RSS), ack = {args.ack}:")
            memory_run(args.memory_flows, mock_port, str(mock_ca), tmp, args.ack)
    finally:
        mock.terminate()
        mock.wait(10)


if __name__ == "__main__":
    main()
