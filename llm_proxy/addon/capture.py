"""The mitmproxy addon: a thin lifecycle shell that captures LLM exchanges.

On the event loop it does as little as possible per flow: decide whether the host is an LLM API
(cached), tee streamed responses, and hand the raw exchange to the capture worker process. By
default (config ``ack = "journaled"``) a response is relayed only once the worker has its record
in the write-ahead journal (``response`` returns an awaitable for mitmproxy to wait on), which
makes a relayed exchange survive ``kill -9`` of the proxy and of the worker. With
``ack = "received"`` it is relayed as soon as the capture sits in the worker's socket, which
survives ``kill -9`` of the proxy; the proxy keeps the capture until the worker has journaled it
(and resends it to a restarted worker), which survives ``kill -9`` of the worker.

Usage: mitmdump -s "$(python -c 'import llm_proxy.addon as a; print(a.SCRIPT)')" \
           --set audit_store=./audit
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http, tls
from mitmproxy.connection import ConnectionState

from llm_proxy.addon.cabundle import write_ca_bundle
from llm_proxy.addon.channel import WorkerClient
from llm_proxy.addon.credentials import sanitize_query
from llm_proxy.addon.last_event import LastEventWatch, last_event_markers
from llm_proxy.audit import AuditConfig, load_config
from llm_proxy.errors import ConfigError, StoreError
from llm_proxy.providers import is_llm_host
from llm_proxy.redact import RedactionPolicy
from llm_proxy.store.layout import (
    default_instance_name,
    prepare_writable_store,
    sanitize_instance,
)

__all__ = ["AuditAddon"]

log = logging.getLogger("llm_proxy")

# Raw bytes kept per body before decoding; the worker decodes and applies max_body_bytes.
_RAW_CAP_FACTOR = 4
_PREFETCH_MIN = 16 * 1024
_STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream")
# Chunks whose arrival is noted for the first-token time: the first token nearly always comes
# within a few chunks, and a bound keeps a long stream's capture small.
_MARKS_CAP = 64
_now = time.time  # mitmproxy's timestamps are time.time() too
# mitmproxy closes a connection silent for tcp_timeout seconds and reports it to the flow as
# "Client disconnected."; an exchange silent this close to the limit (at most a tenth of it)
# was timed out.
_IDLE_SLACK_S = 1.0


class _Tee:
    """``flow.response.stream`` callable: relays each chunk unchanged and keeps a bounded copy.

    It also notes when the first ``_MARKS_CAP`` chunks arrived, as (bytes so far, time)
    pairs: the worker finds which chunk brought the first token (a stream's first chunk is
    usually framing — Anthropic's ``message_start``, OpenAI's role-only delta) and takes its
    time as ``ttfb_ms``. Working out where that token is belongs off the event loop; here it
    costs one clock read and one append per early chunk.
    """

    __slots__ = ("cap", "chunks", "kept", "last", "marks", "on_last_event", "size", "watch")

    def __init__(self, cap: int, on_last_event: Callable[[], None] | None = None,
                 watch: LastEventWatch | None = None) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.kept = 0
        self.cap = cap
        self.marks: list[tuple[int, float]] = []
        self.last = 0.0  # when the latest chunk arrived: a stalled stream is told by it
        # called once (the watch is dropped then), before the chunk that completes a stream's
        # last event is relayed
        self.on_last_event = on_last_event
        self.watch = watch if on_last_event is not None else None

    def __call__(self, chunk: bytes) -> bytes:
        if chunk:
            self.last = now = _now()
            self.size += len(chunk)
            if len(self.marks) < _MARKS_CAP:
                self.marks.append((self.size, now))
            if self.kept < self.cap:
                self.chunks.append(chunk)
                self.kept += len(chunk)
            if self.watch is not None and self.watch.completes(chunk):
                self.watch = None
                self.on_last_event()  # type: ignore[misc]  # (set whenever a watch is)
        return chunk


class AuditAddon:
    """Records one audit record per exchange with an intercepted LLM API host."""

    def __init__(self) -> None:
        self.config: AuditConfig | None = None
        self.client: WorkerClient | None = None
        self._intercept_cache: dict[str, bool] = {}
        self._extra_hosts: tuple[str, ...] = ()
        self._raw_cap = 4 * 1024 * 1024
        self._live: dict[str, http.HTTPFlow] = {}  # intercepted exchanges not yet recorded
        # acknowledgements of captures handed over at a stream's last event, by flow id (not in
        # flow.metadata: mitmproxy copies that, and a future cannot be copied)
        self._handed: dict[str, asyncio.Future[None] | None] = {}
        self._relay_at_once = False
        self._stream_large = False  # mitmproxy's stream_large_bodies is set
        self._idle_limit = 600.0  # mitmproxy's tcp_timeout

    # lifecycle ----------------------------------------------------------------------------------
    def load(self, loader: Any) -> None:
        loader.add_option("audit_store", str, "", "Audit store: a folder (required).")
        loader.add_option("audit_config", str, "",
                          "Audit config: .py defining `config = AuditConfig(...)` or .toml.")
        loader.add_option("audit_intercept", Sequence[str], [],
                          "Extra hosts to intercept and audit (exact or *.suffix).")
        loader.add_option("audit_instance", str, "",
                          "Name of this proxy instance in file names and records (default: host name).")

    def configure(self, updated: set[str]) -> None:
        if "stream_large_bodies" in updated:  # read once here, not per flow
            self._stream_large = bool(ctx.options.stream_large_bodies)
        if "tcp_timeout" in updated:
            self._idle_limit = float(ctx.options.tcp_timeout)
        if not updated & {"audit_store", "audit_config", "audit_intercept", "audit_instance"}:
            return
        try:
            cfg = load_config(ctx.options.audit_config or None)
            RedactionPolicy.from_config(cfg)  # bad rules fail at start, not on traffic
        except ConfigError as exc:
            raise exceptions.OptionsError(str(exc)) from None
        if ctx.options.audit_intercept:
            cfg.intercept = [*cfg.intercept, *ctx.options.audit_intercept]
        store = ctx.options.audit_store or cfg.store
        if not store:
            raise exceptions.OptionsError(
                "llm-audit: no store given: pass --set audit_store=PATH (or `store` in the config)")
        cfg.store = str(Path(store).expanduser().resolve())
        try:  # before any traffic: a store it cannot write would leave it relaying unrecorded
            prepare_writable_store(Path(cfg.store))
        except StoreError as exc:
            raise exceptions.OptionsError(f"llm-audit: {exc}") from None
        self.config = cfg
        self._relay_at_once = cfg.ack == "received"
        self._extra_hosts = tuple(h.lower() for h in cfg.intercept)
        self._intercept_cache.clear()
        self._raw_cap = max(cfg.max_body_bytes * _RAW_CAP_FACTOR, 1024 * 1024)
        # The default eager upstream connect fails the CONNECT when the upstream is down, before
        # the client sends its request: the attempt would never be recorded.
        if ctx.options.connection_strategy != "lazy":
            ctx.options.connection_strategy = "lazy"

    async def running(self) -> None:
        assert self.config is not None and self.config.store is not None
        instance = sanitize_instance(ctx.options.audit_instance or self.config.instance_name
                                     or default_instance_name())
        self.client = WorkerClient(self.config, self.config.store, instance)
        await self.client.start()
        bundle = write_ca_bundle(ctx.options.confdir)
        log.info("llm-audit: recording to %s as instance %s; CA bundle for clients: %s",
                 self.config.store, instance, bundle)

    async def done(self) -> None:
        """Record what is still in flight, then let the worker flush everything and exit."""
        if self.client is None:
            return
        for flow in list(self._live.values()):  # mitmproxy sends no error hook for these
            self._record_unfinished(flow, "proxy shutdown: the exchange was still in progress")
        await self.client.close()

    # connection hooks ----------------------------------------------------------------------------
    def intercepted(self, host: str) -> bool:
        hit = self._intercept_cache.get(host)
        if hit is None:
            if len(self._intercept_cache) > 10_000:  # bounded, whatever hosts clients try
                self._intercept_cache.clear()
            hit = self._intercept_cache[host] = is_llm_host(host, self._extra_hosts)
        return hit

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """Hosts that are not LLM APIs are tunnelled without decryption."""
        host = data.client_hello.sni or (data.context.server.address or ("",))[0]
        if not self.intercepted(host.lower()):
            data.ignore_connection = True

    # flow hooks ------------------------------------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> None:
        """Hand a large request to the worker now, so its redaction overlaps the upstream's
        answer (a 100 KiB RAG prompt takes milliseconds to redact; a small one is cheaper to
        redact with its response). (``requestheaders`` already tracks the exchange.)"""
        if self.client is None or not self.intercepted(flow.request.host):
            return
        if len(flow.request.raw_content or b"") >= _PREFETCH_MIN:
            part = self._request_part(flow)
            part["kind"] = "request"
            self.client.prefetch(part)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Relay event streams chunk by chunk while keeping a copy for the record."""
        response = flow.response
        if response is None or not self.intercepted(flow.request.host):
            return
        ctype = response.headers.get("content-type", "")
        if ctype.startswith("text/event-stream"):
            response.stream = _Tee(self._raw_cap, partial(self._hand_over_at_last_event, flow.id),
                                   LastEventWatch(last_event_markers(flow.request.path)))
        elif ctype.startswith(_STREAM_TYPES) or self._streamed_unbuffered(response):
            response.stream = _Tee(self._raw_cap)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Track the exchange from its headers on (an upload still arriving when the proxy
        stops gets its record too), and tee a request body mitmproxy streams
        (``stream_large_bodies``) for the record."""
        if self.client is None or not self.intercepted(flow.request.host):
            return
        self._live[flow.id] = flow
        if self._streamed_unbuffered(flow.request):
            flow.request.stream = _Tee(self._raw_cap)

    def _streamed_unbuffered(self, message: http.Message) -> bool:
        """Whether mitmproxy streams this body because of ``stream_large_bodies``: then it keeps
        none of it, and only a tee gives the record its body. mitmproxy decides before the
        headers hooks when a Content-Length is over the limit (``stream`` is True here), but
        for a body of unknown size (chunked, HTTP/2) only once the limit is passed, after
        them: such a body is teed from the start whenever the option is set."""
        if message.stream is True:
            return True
        return self._stream_large and "content-length" not in message.headers

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Hand the capture over; mitmproxy relays the response once this returns or, when
        an awaitable is returned, once that finishes (the worker's acknowledgement)."""
        if self.client is None or not self.intercepted(flow.request.host):
            return None
        if flow.id in self._handed:  # handed over at the stream's last event; the end waits
            fut = self._handed.pop(flow.id)
            return None if fut is None else self._relay_when_acknowledged(flow, fut)
        capture = self._capture(flow)
        flow.metadata["llm_audit"] = True
        self._live.pop(flow.id, None)
        if self._relay_at_once:
            fut = self.client.hand_over(capture)
            return None if fut is None else self._relay_when_acknowledged(flow, fut)
        return self._relay_when_acknowledged(flow, self.client.submit(capture))

    def _hand_over_at_last_event(self, flow_id: str) -> None:
        """Hand the capture to the worker before a stream's last event is relayed (the tee
        calls this): an SDK returns at that event, before the HTTP end that the ``response``
        hook holds back, so only this puts the record beyond ``kill -9`` of the proxy by the
        time the client has its answer. The record is the stream up to that event; with ``ack =
        "journaled"`` the end of the body still waits for the journal."""
        flow = self._live.get(flow_id)
        if flow is None or self.client is None or flow.response is None:
            return
        try:
            fut = self.client.hand_over(self._capture(flow), acknowledged=not self._relay_at_once)
        except Exception:  # never into mitmproxy's relay: the response hook records it instead
            log.exception("llm-audit: capture at the last event of %s failed", flow.request.host)
            return
        del self._live[flow_id]
        flow.metadata["llm_audit"] = True
        self._handed[flow_id] = fut

    async def _relay_when_acknowledged(self, flow: http.HTTPFlow, fut: asyncio.Future[None]) -> None:
        try:
            await fut  # the channel's watchdog fails it after ACK_TIMEOUT_S
        except (TimeoutError, RuntimeError) as exc:
            # An audit log fails closed: the client does not get an unrecorded response.
            log.error("llm-audit: record of %s %s%s not journaled (%s); failing the request",
                      flow.request.method, flow.request.host, sanitize_query(flow.request.path),
                      exc or "timeout")
            flow.kill()

    def error(self, flow: http.HTTPFlow) -> None:
        if (fut := self._handed.pop(flow.id, None)) is not None:  # recorded at its last event
            fut.add_done_callback(_settled)  # nobody waits for it now: no unretrieved error
        if (self.client is None or flow.metadata.get("llm_audit")
                or not self.intercepted(flow.request.host)):
            return
        self._record_unfinished(flow, None)

    def _record_unfinished(self, flow: http.HTTPFlow, reason: str | None) -> None:
        """One record for an exchange that ended without a relayed response (not awaited)."""
        assert self.client is not None
        flow.metadata["llm_audit"] = True
        self._live.pop(flow.id, None)
        capture = self._capture(flow)
        if reason and not capture.get("err"):
            capture["err"] = reason
        self.client.submit(capture)

    # the raw capture ---------------------------------------------------------------------------
    def _request_part(self, flow: http.HTTPFlow) -> dict[str, Any]:
        req = flow.request
        if isinstance(req.stream, _Tee):  # streamed by mitmproxy: what the tee kept
            tee = req.stream
            return {"fid": flow.id, "rqh": req.headers.fields, "rqb": b"".join(tee.chunks),
                    "rqcut": tee.size > tee.kept, "rql": tee.size}
        raw_req = req.raw_content or b""
        return {
            "fid": flow.id,
            "rqh": req.headers.fields,
            "rqb": raw_req[: self._raw_cap],
            # (streamed without a tee: mitmproxy kept nothing, so what is missing is marked)
            "rqcut": len(raw_req) > self._raw_cap or req.stream is True,
            "rql": len(raw_req),
        }

    def _capture(self, flow: http.HTTPFlow) -> dict[str, Any]:
        req = flow.request
        cap = self._request_part(flow)
        cap.update(
            t0=req.timestamp_start,
            method=req.method,
            host=req.host,
            port=req.port,
            path=req.path,
            hv=req.http_version,
            cip=flow.client_conn.peername[0] if flow.client_conn.peername else None,
        )
        if user := flow.metadata.get("proxyauth"):
            cap["pauser"] = user[0] if isinstance(user, tuple) else str(user)
        resp = flow.response
        if resp is not None:
            tee = resp.stream if isinstance(resp.stream, _Tee) else None
            cap["status"] = resp.status_code
            cap["rsh"] = resp.headers.fields
            if tee is not None:
                body = b"".join(tee.chunks)
                cap.update(t1=tee.marks[0][1] if tee.marks else resp.timestamp_start, rsb=body,
                           rscut=tee.size > tee.kept, rsl=tee.size, tm=tee.marks,
                           # (not a body teed only because stream_large_bodies streams it)
                           sm=resp.headers.get("content-type", "").startswith(_STREAM_TYPES))
            else:
                raw = resp.raw_content or b""
                cap.update(t1=resp.timestamp_start, rsb=raw[: self._raw_cap],
                           rscut=len(raw) > self._raw_cap or resp.stream is True,
                           rsl=len(raw))
            cap["t2"] = resp.timestamp_end or time.time()
        else:
            cap["t2"] = time.time()
        if flow.error is not None:
            cap["err"] = flow.error.msg
            client = flow.client_conn.state
            if not client & ConnectionState.CAN_READ:
                # the client had hung up (or mitmproxy closed it): mitmproxy's text alone does
                # not say whose side it was
                cap["cgone"] = True
            if client == ConnectionState.CLOSED and self._timed_out(flow):
                cap["idle"] = self._idle_limit
        return cap

    def _timed_out(self, flow: http.HTTPFlow) -> bool:
        """Whether mitmproxy's tcp_timeout closed this exchange's connection: the whole request
        had arrived and nothing has moved since for (nearly) that long. (A client closing by
        itself leaves its side half-open; mitmproxy's own close leaves it CLOSED.)"""
        if flow.request.timestamp_end is None:
            return False
        slack = min(_IDLE_SLACK_S, 0.1 * self._idle_limit)
        return _now() - _last_moved(flow) >= self._idle_limit - slack


def _settled(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


def _last_moved(flow: http.HTTPFlow) -> float:
    """When the exchange last moved, as far as the addon sees: the request's end, the
    response's headers, the latest teed chunk (a buffered body's chunks are not seen)."""
    moved = flow.request.timestamp_end or flow.request.timestamp_start
    resp = flow.response
    if resp is not None:
        moved = max(moved, resp.timestamp_start or 0.0)
        if isinstance(resp.stream, _Tee):
            moved = max(moved, resp.stream.last)
    return moved



