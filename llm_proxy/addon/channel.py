"""The proxy's end of the channel to the capture worker process.

Frames (``marshal``) go out over a socketpair, coalesced per event-loop pass; acknowledgements
come back cumulatively. Unacknowledged captures are kept, so a worker that dies is restarted and
sent them again; one watchdog fails the captures that are not journaled in time, and the addon
then fails their requests rather than relay them unrecorded.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import subprocess
import sys
import time
from collections import deque
from typing import Any

from llm_proxy.addon.worker import ACK, ACK_NOW_FRAME, FRAME_HEADER, encode_frame
from llm_proxy.audit import AuditConfig

__all__ = ["ACK_TIMEOUT_S", "WorkerClient"]

log = logging.getLogger("llm_proxy")

ACK_TIMEOUT_S = 30.0


class WorkerClient(asyncio.Protocol):
    """The proxy's end of the socketpair to the capture worker; restarts it if it dies."""

    def __init__(self, config: AuditConfig, store: str, instance: str) -> None:
        self._setup = pickle.dumps({"config": config, "store": store, "instance": instance})
        self._transport: asyncio.Transport | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        # (seq, frame, future or None when nobody waits, loop time sent), oldest first:
        # acknowledgements are cumulative
        self._pending: deque[tuple[int, bytes, asyncio.Future[None] | None, float]] = deque()
        self._seq = 0
        self._buf = bytearray()
        self._closing = False
        self._restarts: deque[float] = deque(maxlen=5)
        self._watching = False
        self._outbox: list[bytes] = []

    def _watchdog(self) -> None:
        """Fail captures not journaled in time (one timer for all, not one per flow)."""
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - ACK_TIMEOUT_S
        for _seq, _frame, fut, sent_at in self._pending:
            if sent_at > cutoff:
                break
            if fut is not None and not fut.done():
                fut.set_exception(TimeoutError("capture worker did not journal the record"))
        loop.call_later(1.0, self._watchdog)

    async def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "llm_proxy.addon.worker", str(child.fileno())],
            pass_fds=(child.fileno(),),
        )
        child.close()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_unix_connection(lambda: self, sock=parent)
        # Nothing else may reach the new worker before its setup frame, and nothing twice:
        # captures submitted while it was connecting are in _pending (resent below), so the
        # frames queued meanwhile are dropped, and _send only uses the pipe from here on.
        transport.write(FRAME_HEADER.pack(len(self._setup)) + self._setup)
        for _seq, frame, _fut, _at in self._pending:  # resend what a dead worker did not journal
            transport.write(frame)
        if any(fut is not None for _seq, _frame, fut, _at in self._pending):
            transport.write(ACK_NOW_FRAME)  # responses wait for these: no lazy acknowledgement
        self._outbox.clear()
        if self._closing:  # close() ran while this worker was connecting: let it finish
            if transport.can_write_eof():
                transport.write_eof()
            return
        self._transport = transport  # type: ignore[assignment]
        if not self._watching:
            self._watching = True
            loop.call_later(1.0, self._watchdog)

    def _send(self, frame: bytes) -> None:
        """Queue a frame; all frames queued in one event-loop pass go out in one write."""
        if self._transport is None:
            return
        self._outbox.append(frame)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        if self._transport is not None and self._outbox:
            self._transport.write(b"".join(self._outbox))
        self._outbox.clear()

    def prefetch(self, request_part: dict[str, Any]) -> None:
        """Send a request early so the worker decodes and redacts it while the upstream works.

        Not acknowledged and not resent: the full capture carries the request again.
        """
        self._send(encode_frame(request_part))

    def submit(self, capture: dict[str, Any]) -> asyncio.Future[None]:
        """Queue a capture; the future resolves once the worker acknowledges it (with
        ``ack = "journaled"``: once its record is in the journal)."""
        frame = self._number(capture)
        fut = self._awaited(frame, asyncio.get_running_loop())
        if not self._closing:
            self._send(frame)
        return fut

    def hand_over(self, capture: dict[str, Any], *,
                  acknowledged: bool = False) -> asyncio.Future[None] | None:
        """Write a capture into the worker's socket now (``ack = "received"``).

        ``None`` when the whole frame is in the kernel's buffer for the worker: the worker
        reads it even if this process is killed the next instant, so the response may be
        relayed without waiting for the worker (waiting cost ~1 ms of p50 and ~5 % of
        throughput in benchmarks/proxy_overhead.py). When the socket is full (the worker is
        behind), the rest waits in the transport: a future as from ``submit``. Either way the
        frame is kept until the worker acknowledges its record as journaled, and resent to a
        restarted worker: ``kill -9`` of the worker loses nothing either.

        ``acknowledged``: a future for the acknowledgement comes back even when the frame went
        whole into the socket (a stream's capture handed over at its last event with ``ack =
        "journaled"``: written before that event is relayed, waited for before the end).
        """
        frame = self._number(capture)
        loop = asyncio.get_running_loop()
        transport = self._transport
        # a closing transport discards writes and reports an empty buffer: no fast path then
        if not self._closing and transport is not None and not transport.is_closing():
            self._flush_outbox()  # frames queued earlier in this pass go first
            transport.write(frame)
            if not transport.get_write_buffer_size() and not transport.is_closing():
                fut = loop.create_future() if acknowledged else None
                self._pending.append((self._seq, frame, fut, loop.time()))
                return fut
            # the socket is full: this response waits, and the worker (which acknowledges
            # lazily in this mode) must answer as soon as it has this capture
            transport.write(ACK_NOW_FRAME)
        return self._awaited(frame, loop)

    def _awaited(self, frame: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Keep the frame until the worker acknowledges it; the future says when. After
        close() nothing reaches a worker: the future fails, and the request with it."""
        fut: asyncio.Future[None] = loop.create_future()
        if self._closing:
            fut.set_exception(RuntimeError("the proxy is shutting down"))
        else:
            self._pending.append((self._seq, frame, fut, loop.time()))
        return fut

    def _number(self, capture: dict[str, Any]) -> bytes:
        self._seq += 1
        capture["seq"] = self._seq
        return encode_frame(capture)

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass  # start() takes the transport into use once the setup frame is written

    def data_received(self, data: bytes) -> None:
        self._buf += data
        usable = len(self._buf) - len(self._buf) % ACK.size
        if not usable:
            return
        (acked,) = ACK.unpack_from(self._buf, usable - ACK.size)
        del self._buf[:usable]
        pending = self._pending
        while pending and pending[0][0] <= acked:
            fut = pending.popleft()[2]
            if fut is not None and not fut.done():
                fut.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._outbox.clear()  # what matters is in _pending and is resent to the next worker
        if self._closing:
            return
        now = time.monotonic()
        self._restarts.append(now)
        if len(self._restarts) == self._restarts.maxlen and now - self._restarts[0] < 60:
            log.error("llm-audit: capture worker keeps dying; not restarting. Records pending: "
                      "%d. Check the store's disk and permissions.", len(self._pending))
            for _seq, _frame, fut, _at in self._pending:
                if fut is not None and not fut.done():
                    fut.set_exception(RuntimeError("capture worker unavailable"))
            return
        log.error("llm-audit: capture worker exited (code %s); restarting and resending %d "
                  "unacknowledged records", self._proc.poll() if self._proc else None,
                  len(self._pending))
        asyncio.get_running_loop().create_task(self.start())

    async def close(self) -> None:
        """Stop sending; the worker flushes everything to Parquet on EOF, then exits."""
        self._closing = True
        self._flush_outbox()  # frames queued in this loop pass go out before the EOF
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()
        if self._proc is not None:
            deadline = time.monotonic() + 60
            while self._proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self._proc.poll() is None:
                log.error("llm-audit: capture worker did not finish its flush in 60 s")
        if self._transport is not None:
            self._transport.close()
