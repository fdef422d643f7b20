"""The capture worker: a child process that turns raw captures into durable records.

mitmproxy runs every addon on one Python event loop, and a thread would share its GIL, so the
heavy per-record work — decoding, provider parsing, redaction, JSON and Parquet encoding — runs
here, on the machine's other core. The proxy sends length-prefixed ``marshal`` frames over a
socketpair; this process builds each record, appends it to the write-ahead journal and only then
acknowledges it (cumulatively, by sequence number), so the proxy relays a response only once its
record is journaled (with ``ack = "received"`` it relays at once and keeps the capture until
then, to resend it should this process die). Raw, unredacted data only ever crosses the socket: it never touches disk.

Two flusher threads turn full journal segments into Parquet. On EOF (the proxy stopped or was
killed) everything is flushed and the process exits.
"""

from __future__ import annotations

import marshal
import os
import pickle
import queue
import select
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llm_proxy.addon.record import RecordBuilder
from llm_proxy.audit import AuditConfig
from llm_proxy.errors import StoreError
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.layout import JOURNAL_DIR, prepare_writable_store
from llm_proxy.store.parquet import segment_to_table
from llm_proxy.store.writer import flush_table, replay

__all__ = ["ACK", "ACK_NOW_FRAME", "FRAME_HEADER", "encode_frame", "serve"]

FRAME_HEADER = struct.Struct("!I")
ACK = struct.Struct("!Q")
# With ack = "journaled", each record is journaled and acknowledged as soon as it is built,
# even amid a burst: acknowledging a whole burst at its end held its first response back by the
# build time of all the others (+3.3 ms p50 at saturation, +12 ms at 64 concurrent requests).
# Measured in one run at saturation: per record 0.954x bare throughput and +0.93 ms p50;
# groups of 0.3 ms of work 0.942x / +1.42 ms; of 1 ms 0.942x / +1.67 ms; the two syscalls per
# record did not show in the worker's CPU. With fsync = "always" a whole burst still shares one
# fsync (group commit): an fsync per record would cost far more than the wait.

# With ack = "received" no response waits for the worker, so it runs at a lower priority and
# the load generator, mitmproxy and the upstream go first when they wake: measured at 100 req/s
# +0.52 ms p50 at nice 0, +0.37 ms at 10, +0.30 ms at 19 (throughput at saturation the same
# within noise). 10, not 19: against a busy process on its core the worker still gets ~10 %.
RECEIVED_NICE = 10
# ... and it does not wait on the socket while captures keep coming: it looks, and when nothing
# is there it sleeps RECEIVED_POLL_S. A send() that wakes a process blocked on the socket cost
# the *sender* — mitmproxy's event loop, the bottleneck — 31 µs of CPU on this VM (the
# inter-processor wake-up), one into a socket nobody waits on 8 µs (benchmarks/wake_cost.py).
# Sleeping only after a burst (session 4) spared that under load; at a moderate rate every
# capture still found the worker blocked. After RECEIVED_POLL_FOR_S without a capture it
# blocks again (an idle proxy should not keep a process waking 200 times a second).
# Not after a large read (big bodies fill the socket and the proxy waits): then it waits on
# the socket for at most RECEIVED_POLL_S. Never with ack = "journaled", where each response
# waits for the worker.
RECEIVED_POLL_S = 0.005
RECEIVED_POLL_FOR_S = 1.0
_LARGE_READ = 64 * 1024
# ... and it acknowledges lazily: an acknowledgement only lets the proxy forget captures it
# keeps for a resend, yet each one wakes the proxy's idle event loop. At most every
# RECEIVED_ACK_DELAY_S, or at once: after RECEIVED_ACK_RECORDS records, a large read or a frame
# that spanned reads (the socket was full), an ACK_NOW_FRAME (the proxy says a response
# waits), before a batch goes to Parquet, and before blocking.
RECEIVED_ACK_DELAY_S = 0.1
RECEIVED_ACK_RECORDS = 256


def encode_frame(obj: Any) -> bytes:
    payload = marshal.dumps(obj)
    return FRAME_HEADER.pack(len(payload)) + payload


# ack = "received": the proxy sends this after a capture it could not put into the socket
# whole (a response then waits for its acknowledgement), and after resending to a restarted
# worker: acknowledge everything built so far at once, not lazily.
ACK_NOW_FRAME = encode_frame({"kind": "ack_now"})


class _Batch:
    """The open journal segment and how many records it holds (the flush reads them back)."""

    def __init__(self, journal_dir: Path, instance: str, cfg: AuditConfig, seq: int) -> None:
        self.segment = JournalSegment(journal_dir, instance, seq, fsync=cfg.fsync,
                                      fsync_interval_s=cfg.fsync_interval_s)
        self.count = 0
        self.opened = time.monotonic()


class _Flusher:
    """Writes sealed batches to Parquet in order, off the receive loop, in two threads: one
    reads a sealed segment into Arrow while the other encodes and publishes the batch before.
    Both stages run in Arrow's C++ without the GIL, so they overlap each other and the thread
    that journals and acknowledges. At most one converted batch waits between them."""

    def __init__(self, store: Path, instance: str) -> None:
        self.store = store
        self.instance = instance
        self.jobs: queue.Queue[_Batch | None] = queue.Queue()
        self._converted: queue.Queue[tuple[_Batch, Any] | None] = queue.Queue(maxsize=1)
        self._threads = (threading.Thread(target=self._convert, name="llm-audit-convert", daemon=True),
                         threading.Thread(target=self._write, name="llm-audit-flusher", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _convert(self) -> None:
        try:
            while (batch := self.jobs.get()) is not None:
                try:
                    batch.segment.sync()
                    table: Any = segment_to_table(batch.segment.path)
                except Exception as exc:  # reported (and the journal kept) by _write, in order
                    table = exc
                self._hand_on((batch, table))
        finally:  # whatever happened, the writer ends and join() returns
            self._hand_on(None)

    def _hand_on(self, item: tuple[_Batch, Any] | None) -> None:
        """Queue for the writer unless it has died (its batches stay in the journal)."""
        while self._threads[1].is_alive():
            try:
                self._converted.put(item, timeout=1.0)
                return
            except queue.Full:
                continue

    def _write(self) -> None:
        while (item := self._converted.get()) is not None:
            batch, table = item
            try:
                if isinstance(table, Exception):
                    raise table
                flush_table(self.store, batch.segment.path, self.instance, batch.segment.seq, table)
            except Exception as exc:  # the segment stays and is replayed on the next start
                _warn(f"Parquet flush failed, journal kept: {exc}")
            finally:
                try:
                    batch.segment.close()
                except OSError as exc:
                    _warn(f"closing a journal segment failed: {exc}")


def _warn(message: str) -> None:
    try:
        print(f"llm-audit worker: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # no stderr left: the journal is what matters
        pass


def _complete_frames(buf: bytearray) -> tuple[list[dict[str, Any]], int]:
    """The complete frames at the start of ``buf`` and how many bytes they took."""
    caps = []
    offset = 0
    while len(buf) - offset >= FRAME_HEADER.size:
        (size,) = FRAME_HEADER.unpack_from(buf, offset)
        end = offset + FRAME_HEADER.size + size
        if end > len(buf):
            break
        caps.append(marshal.loads(bytes(buf[offset + FRAME_HEADER.size:end])))
        offset = end
    return caps, offset


def _ack(sock: socket.socket, seq: int) -> bool:
    """Acknowledge every capture up to ``seq``; False when the proxy is gone."""
    try:
        sock.sendall(ACK.pack(seq))
        return True
    except OSError:  # what was received is still journaled and flushed
        return False


def _next_seq(last: int) -> int:
    return max(time.time_ns() // 1000, last + 1)


def serve(sock: socket.socket, cfg: AuditConfig, store: Path, instance: str) -> None:
    """Receive captures until EOF; journal, acknowledge, batch and flush them."""
    prepare_writable_store(store)  # fails before any thread starts
    if cfg.ack == "received":  # nothing waits for this process: let the request path go first
        os.nice(RECEIVED_NICE)  # before any thread starts: Linux applies nice per thread
    # The flusher turns batches into Parquet while this thread journals and acks: when
    # a capture arrives during a flush, this thread must get the GIL within a fraction of a
    # millisecond, not the default 5 ms switch interval (every waiting client would pay it).
    sys.setswitchinterval(0.0005)
    if cfg.signing_key_path:  # the integrity chain signs with the configured key
        os.environ.setdefault("LLM_AUDIT_SIGNING_KEY", cfg.signing_key_path)
    journal_dir = store / JOURNAL_DIR
    already_journaled: set[str] = set()
    replay(store, already_journaled)
    builder = RecordBuilder.from_config(cfg, instance)
    flusher = _Flusher(store, instance)
    flusher.start()
    seq = _next_seq(0)
    batch = _Batch(journal_dir, instance, cfg, seq)
    buf = bytearray()
    built_seq = -1  # captures arrive in sequence order
    chunk = bytearray(1 << 20)
    chunk_view = memoryview(chunk)
    eof = False
    # Once the proxy is gone, acknowledgements fail, but what it wrote before dying is still in
    # the socket (with ack = "received" those responses were relayed): read it all, up to EOF.
    proxy_gone = False

    def journal_and_ack(lines: list[bytes], seq: int) -> None:
        """Append ``lines`` to the journal, then acknowledge every capture up to ``seq``."""
        nonlocal proxy_gone
        if lines:
            batch.segment.append(b"".join(lines), len(lines))
        if seq >= 0 and not proxy_gone:
            proxy_gone = not _ack(sock, seq)

    def settle_owed() -> None:
        """received: acknowledge what was journaled but not yet acknowledged."""
        nonlocal owed_seq, owed_count
        if owed_seq >= 0:
            journal_and_ack([], owed_seq)
            owed_seq, owed_count = -1, 0

    # journaled: each record acknowledged as soon as it is built (the first response of a burst
    # must not wait for the last record). received: lazily (see RECEIVED_ACK_DELAY_S).
    ack_each = cfg.ack == "journaled" and cfg.fsync != "always"
    polling = cfg.ack == "received"

    def rotate() -> None:
        nonlocal batch, seq
        if batch.count:
            flusher.jobs.put(batch)
            seq = _next_seq(batch.segment.seq)
            batch = _Batch(journal_dir, instance, cfg, seq)
        else:
            batch.opened = time.monotonic()

    got = 0
    last_capture = time.monotonic()
    owed_seq = -1  # received: journaled, not yet acknowledged
    owed_count = 0
    owed_since = 0.0
    while not eof:
        deadline = batch.opened + cfg.flush_seconds
        timeout = max(0.0, deadline - time.monotonic())
        if polling:
            if got >= _LARGE_READ:  # the proxy may be waiting to write the rest: be woken
                timeout = min(timeout, RECEIVED_POLL_S)
            elif time.monotonic() - last_capture < RECEIVED_POLL_FOR_S:
                if not select.select([sock], [], [], 0)[0]:
                    time.sleep(RECEIVED_POLL_S)
                timeout = 0.0
            else:  # about to block: settle up first
                settle_owed()
        ready, _, _ = select.select([sock], [], [], timeout)
        had_partial = bool(buf)
        if ready:
            # into one reused buffer: ``recv(1 MiB)`` would map, shrink and unmap a fresh
            # megabyte per call (three syscalls and page faults per wake-up)
            try:
                got = sock.recv_into(chunk)
            except OSError:  # reset: the kernel hands out what was queued before the error
                got = 0
            if not got:
                eof = True
            buf += chunk_view[:got]
        else:
            got = 0
        caps, offset = _complete_frames(buf)
        if offset:
            del buf[:offset]
        lines: list[bytes] = []
        group_seq = acked = -1  # the last capture built; the last acknowledged
        ack_now = False
        built = 0
        for cap in caps:
            kind = cap.get("kind")
            if kind == "request":  # an early request part: work ahead, no ack
                builder.prefetch(cap)
                continue
            if kind == "ack_now":
                ack_now = True
                continue
            if kind is not None:  # a frame of a newer proxy: not a capture
                continue
            cap_seq = cap.get("seq")
            if cap_seq is not None:
                if cap_seq <= built_seq:  # sent twice (the proxy resends what is unacknowledged)
                    continue
                built_seq = group_seq = cap_seq
            record = builder.build(cap)
            if not (already_journaled and record["id"] in already_journaled):
                # (else resent by the proxy after a worker crash; replay has it already)
                batch.count += 1
                lines.append(encode_record(record))
            built += 1
            if ack_each:
                journal_and_ack(lines, group_seq)
                lines, acked = [], group_seq
        if caps:
            last_capture = time.monotonic()
        if not polling:  # journaled: the proxy may relay these responses now
            journal_and_ack(lines, group_seq if group_seq > acked else -1)
        else:  # received: the proxy may forget these captures (kept until then, for a resend)
            journal_and_ack(lines, -1)
            if group_seq >= 0:
                if owed_seq < 0:
                    owed_since = time.monotonic()
                owed_seq, owed_count = group_seq, owed_count + built
            if (ack_now or got >= _LARGE_READ or (had_partial and offset) or eof
                    or owed_count >= RECEIVED_ACK_RECORDS
                    or time.monotonic() - owed_since >= RECEIVED_ACK_DELAY_S):
                settle_owed()
        if batch.count >= cfg.flush_records or time.monotonic() >= deadline:
            # before the batch goes to Parquet and its segment is deleted: a capture the proxy
            # resent after a crash is recognised only while its segment exists
            settle_owed()
            rotate()
    rotate()
    if not batch.count:  # the empty segment opened by the last rotation
        batch.segment.close()
        batch.segment.path.unlink(missing_ok=True)
    flusher.jobs.put(None)
    flusher.join()


def main(argv: list[str]) -> int:
    """``python -m llm_proxy.addon.worker FD``: the config arrives pickled as the first frame."""
    # The proxy owns shutdown: Ctrl-C in a terminal reaches the whole process group, and the
    # worker must not die before it has flushed what the proxy sent. EOF ends it instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.umask(0o077)  # every file of the store is owner-only
    sock = socket.socket(fileno=int(argv[0]))
    header = _recv_exact(sock, FRAME_HEADER.size)
    (size,) = FRAME_HEADER.unpack(header)
    setup = pickle.loads(_recv_exact(sock, size))
    try:
        serve(sock, setup["config"], Path(setup["store"]), setup["instance"])
    except (OSError, StoreError) as exc:  # the store's disk, permissions or signing key: one
        _warn(f"stopped: {exc}; check the store's disk and permissions")  # line, not a trace
        return 3
    return 0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit(0)
        data += chunk
    return bytes(data)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
