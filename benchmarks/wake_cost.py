"""What a send() into the capture worker's socket costs the sender, with and without a wake-up.

mitmproxy's event loop is the proxy's bottleneck, so whatever it pays per request counts. When
the receiving process is blocked on the socket (select), the kernel must wake it: on a VM that
is an inter-processor interrupt, paid by the sender. When the receiver is asleep on a timer
instead, nobody waits on the socket and the send only copies. The capture worker, in
``ack = "received"`` mode, looks at the socket every few milliseconds instead of waiting on it
for this reason (worker.py, RECEIVED_POLL_S). The sender here is busy between sends, as a loaded event loop is.

Usage: python benchmarks/wake_cost.py [--sends 3000] [--gap-ms 1.5]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import time


def sender_cpu_us(receiver: str, sends: int, gap_s: float) -> float:
    """Mean thread CPU µs of one 2.2 KB send() while the receiver waits on ``receiver``."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the receiver: drains the socket until EOF, and never returns into main()
        try:
            ours.close()
            buf = bytearray(1 << 20)
            while True:
                if receiver == "select":
                    select.select([theirs], [], [])
                else:
                    time.sleep(0.02)
                if not theirs.recv_into(buf):
                    break
        finally:
            os._exit(0)
    theirs.close()
    payload = b"x" * 2200
    cpu = 0.0
    for _ in range(sends):
        start = time.thread_time()
        ours.send(payload)
        cpu += time.thread_time() - start
        busy_until = time.perf_counter() + gap_s
        while time.perf_counter() < busy_until:
            pass
    ours.close()
    os.waitpid(pid, 0)
    return cpu / sends * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sends", type=int, default=3000)
    p.add_argument("--gap-ms", type=float, default=1.5,
                   help="busy time between sends (>= 0.5: shorter fills the socket within the "
                        "sleeping receiver's 20 ms, and the baseline send would block)")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    if args.sends < 1 or args.gap_ms < 0.5:
        p.error("--sends must be at least 1 and --gap-ms at least 0.5")
    for _ in range(args.rounds):
        woken = sender_cpu_us("select", args.sends, args.gap_ms / 1000)
        asleep = sender_cpu_us("sleep", args.sends, args.gap_ms / 1000)
        print(f"send() CPU: receiver blocked on the socket {woken:.1f} µs, receiver asleep on a "
              f"timer (baseline) {asleep:.1f} µs: {woken / asleep:.1f}x")


if __name__ == "__main__":
    main()
