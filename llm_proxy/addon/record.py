"""Pure: one captured exchange (raw bytes and timings) → one audit record (a dict of columns).

This is the capture pipeline's work that does not belong on mitmproxy's event loop: decoding,
provider parsing, redaction, fingerprints, error classification. It runs in the capture worker
process (``llm_proxy.addon.worker``); given the same capture it always yields the same record,
including the same time-sortable ``id``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import traceback
from bisect import bisect_right
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qsl

import pyarrow as pa

from llm_proxy.addon.bodies import DecodedBody, decode_body
from llm_proxy.addon.credentials import (
    auth_from_headers,
    basic_auth_user,
    fingerprint,
    headers_json,
    sanitize_headers,
    sanitize_query,
)
from llm_proxy.audit import AuditConfig
from llm_proxy.pricing import FREE_OPERATIONS, PriceTable, estimate_usage
from llm_proxy.providers import first_token_offset, parse_exchange
from llm_proxy.redact import ADDRESS_HEADERS, RedactionPolicy, Redactor, merge_counts
from llm_proxy.schema import COLUMN_GROUPS, RECORD_SCHEMA, empty_record
from llm_proxy.store.layout import CROCKFORD

__all__ = ["RecordBuilder", "classify_transport_error", "first_token_at", "ratelimit_usage_pct",
           "ulid"]



def ulid(ts_s: float, seed: str) -> str:
    """A ULID whose 80 random bits come from ``seed`` (the flow id): deterministic per flow."""
    ms = int(ts_s * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=10).digest(), "big")
    value = (ms << 80) | rand
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def classify_transport_error(message: str, client_gone: bool = False) -> str:
    """Map mitmproxy's error text to an ``error_type``.

    mitmproxy words a hang-up alike whichever side it comes from: "peer closed connection
    (without sending complete message body)" over HTTP/1 and HTTP/2, "HTTP/2 connection
    closed" for a GOAWAY, "stream reset by client (CODE)" for either side's RST_STREAM.
    ``client_gone`` (the client's connection could no longer be read when the error came) says
    it was the client: a ``client_abort``, mid-upload or mid-stream. A reset stream with
    CANCEL is how a client gives up on one stream and keeps its connection (an upstream fails
    one with INTERNAL_ERROR, REFUSED_STREAM, …).
    """
    m = message.lower()
    if "client disconnected" in m or "client closed" in m or "client aborted" in m:
        return "client_abort"
    if client_gone and ("peer closed" in m or "connection closed" in m or "incomplete" in m
                        or "reset" in m):
        return "client_abort"
    if "stream reset" in m and "(cancel)" in m:
        return "client_abort"
    if "timed out" in m or "timeout" in m:
        return "timeout"
    if "tls" in m or "ssl" in m or "certificate" in m or "handshake" in m:
        return "tls"
    if "reset" in m or "disconnected" in m or "peer closed" in m or "connection closed" in m \
            or "server closed" in m or "incomplete" in m or "eof" in m:
        return "connection_reset"
    if "refused" in m or "unreachable" in m or "name or service" in m or "resolve" in m \
            or "connect" in m:
        return "connection"
    if "killed" in m:
        return "killed"
    if "shutdown" in m:
        return "proxy_shutdown"
    return "proxy_error"


def first_token_at(marks: list[tuple[int, float]] | None, body: bytes | None,
                   content_type: str | None, content_encoding: str | None) -> float | None:
    """When the chunk that brought a streamed response's first token arrived; ``None`` when
    that cannot be told, and the first chunk's time stands.

    ``marks`` are the tee's (bytes received so far, arrival time) pairs for the first chunks
    of the stream, ``body`` the raw bytes it kept. The first token's byte offset in the body
    (``first_token_offset``) falls in the first chunk whose running total passes it.
    """
    if not marks or not body or "event-stream" not in (content_type or "").lower():
        return None  # not SSE: NDJSON and AWS event streams are timed by their first chunk
    if (content_encoding or "identity").strip().lower() != "identity":
        # The tee saw the bytes still compressed (a gzip SSE stream): an offset in the decoded
        # text says nothing about which compressed chunk carried it.
        return None
    offset = first_token_offset(body, limit=marks[-1][0])
    if offset is None:
        return None
    index = bisect_right(marks, offset, key=itemgetter(0))
    return float(marks[index][1]) if index < len(marks) else None  # past the noted chunks


def _status_error_type(status: int) -> str | None:
    if status == 429:
        return "rate_limit"
    if status in (408, 504):
        return "timeout"
    if status == 529:
        return "overloaded"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return None


def _num(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


_RATELIMIT_PAIRS = (
    ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests"),
    ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"),
    ("anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining"),
    ("anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining"),
    ("anthropic-ratelimit-input-tokens-limit", "anthropic-ratelimit-input-tokens-remaining"),
    ("anthropic-ratelimit-output-tokens-limit", "anthropic-ratelimit-output-tokens-remaining"),
    ("x-ratelimit-limit", "x-ratelimit-remaining"),
)


def ratelimit_usage_pct(headers: dict[str, str]) -> float | None:
    """The most used rate-limit window as a percentage (0–100), from provider headers."""
    best: float | None = None
    for limit_name, remaining_name in _RATELIMIT_PAIRS:
        limit, remaining = _num(headers.get(limit_name)), _num(headers.get(remaining_name))
        if limit and remaining is not None and limit > 0:
            pct = max(0.0, min(100.0, 100.0 * (1.0 - remaining / limit)))
            best = pct if best is None else max(best, pct)
    return None if best is None else round(best, 2)


def _int_header(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT_COLUMNS = frozenset(f.name for f in RECORD_SCHEMA if pa.types.is_integer(f.type) and f.name != "ts")


def _storable(record: dict[str, Any]) -> dict[str, Any]:
    """Make hostile values storable: out-of-range integers become null, and strings that
    cannot be UTF-8 (lone surrogates from JSON escapes) get replacement characters — so a
    record can never make the journal or the Parquet flush fail."""
    for name, value in record.items():
        if value.__class__ is str:
            if value.isascii():  # a C scan, no copy: most values, and most bodies
                continue
            try:
                value.encode()
            except UnicodeEncodeError:
                record[name] = value.encode("utf-8", "replace").decode()
        elif name in _INT_COLUMNS and value is not None and (
                not isinstance(value, int) or isinstance(value, bool)
                or not _INT64[0] <= value <= _INT64[1]):
            record[name] = None
    return record


# Large requests are sent ahead (see ``prefetch``); what waits for its response is bounded in
# count and in raw bytes, the oldest going first (flows that never complete, or a burst of
# long streams): an evicted part is simply computed again when its response arrives.
_PREFETCH_LIMIT = 4096
_PREFETCH_BYTES = 64 * 1024 * 1024
_PREFETCH_MAX_BODY = 256 * 1024  # larger requests are done with their response
_HEADER_CACHE_LIMIT = 4096


@dataclass(slots=True)
class _RequestPart:
    """The request's decoded and redacted pieces, computed once (see ``prefetch``)."""

    rqh: Any
    rqb: bytes | None
    raw_headers: dict[str, str]
    decoded: DecodedBody
    body: str | None
    body_counts: dict[str, int]
    headers_json: str | None
    header_counts: dict[str, int]


@dataclass(slots=True)
class RecordBuilder:
    """Holds what every record needs (config, redactor, instance); ``build`` is pure per capture."""

    config: AuditConfig
    instance: str
    redactor: Redactor
    prices: PriceTable
    _prefetched: dict[str, _RequestPart] = field(default_factory=dict)
    _prefetched_bytes: int = 0
    _header_cache: dict[tuple[str, str, str], tuple[str, dict[str, int]]] = field(
        default_factory=dict)
    _failures: int = 0

    @classmethod
    def from_config(cls, config: AuditConfig, instance: str) -> RecordBuilder:
        return cls(config, instance, Redactor(RedactionPolicy.from_config(config)),
                   PriceTable.load(config.prices))

    def build(self, cap: dict[str, Any]) -> dict[str, Any]:
        """The record for one capture; never raises (a failure is recorded in error_trace)."""
        try:
            return _storable(self._build(cap))
        except Exception as exc:  # the proxy must never lose a record to a parsing bug
            record = self._skeleton(cap)
            record["error_type"] = record["error_type"] or "audit_error"
            # A parser's exception can quote the body it choked on (a JSON error, a KeyError's
            # value): the trace and the log line get the same redaction as the body would.
            record["error_trace"] = self._redact_log(traceback.format_exc(limit=8))
            self._failures += 1
            if self._failures <= 5 or self._failures % 1000 == 0:  # loud, but not a flood
                print(f"llm-audit worker: record {record['id']} built from what could be read "
                      f"({type(exc).__name__}: {self._redact_log(str(exc))}); "
                      f"{self._failures} so far; the trace is in its error_trace column",
                      file=sys.stderr, flush=True)
            return _storable(record)

    def _redact_log(self, text: str) -> str:
        """``text`` redacted for a log or the error_trace column; if the redactor fails too,
        a placeholder (the text itself may hold what redaction was for)."""
        try:
            return self.redactor.redact_text(text)[0]
        except Exception as exc:
            return f"[text withheld: redaction failed with {type(exc).__name__}]"

    def _skeleton(self, cap: dict[str, Any]) -> dict[str, Any]:
        record = empty_record()
        t0 = cap["t0"]
        record["id"] = ulid(t0, cap["fid"])
        record["ts"] = int(t0 * 1_000_000)
        record["proxy_instance"] = self.instance
        record["method"] = cap["method"]
        record["host"] = cap["host"]
        record["path"] = sanitize_query(cap["path"])
        record["endpoint"] = cap["path"].partition("?")[0]
        if cap.get("err"):
            kind = classify_transport_error(cap["err"], cap.get("cgone", False))
            message = cap["err"]
            if cap.get("idle") and kind == "client_abort":
                # mitmproxy's inactivity timeout, reported to the flow as the client leaving
                kind = "timeout"
                message = (f"the upstream sent nothing for {cap['idle']:g} s, so the proxy closed "
                           f"the connection (mitmproxy's tcp_timeout): {message}")
            record["error_type"] = kind
            record["error_message"] = self._redact_log(message)
        return record

    def _build(self, cap: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        record = self._skeleton(cap)
        t0, t_end = cap["t0"], cap.get("t2")
        if t_end:
            record["latency_ms"] = round((t_end - t0) * 1000, 3)
        record["http_version"] = cap.get("hv")
        record["client_ip"] = cap.get("cip")

        part = self._prefetched.pop(cap["fid"], None)
        if part is not None:
            self._prefetched_bytes -= len(part.rqb or b"")
        if part is None or part.rqh != cap["rqh"] or part.rqb != cap.get("rqb"):
            part = self._request_part(cap)
        raw_req_h, req = part.raw_headers, part.decoded
        status = cap.get("status")
        resp_h = (sanitize_headers(cap["rsh"], cfg.secret_headers)
                  if cap.get("rsh") is not None else None)
        resp_ct = resp_h.get("content-type") if resp_h else None
        resp_ce = resp_h.get("content-encoding") if resp_h else None
        # ttfb_ms: the first token's time for a stream (captures from before the tee noted
        # chunk times, "tm", have only the first chunk's), else the first response byte's
        t_first = first_token_at(cap.get("tm"), cap.get("rsb"), resp_ct, resp_ce) or cap.get("t1")
        if t_first:
            record["ttfb_ms"] = round((t_first - t0) * 1000, 3)
        resp = decode_body(cap.get("rsb"), content_encoding=resp_ce,
                           content_type=resp_ct, cap=cfg.max_body_bytes,
                           raw_truncated=cap.get("rscut", False))
        parsed = parse_exchange(host=cap["host"], path=cap["path"], method=cap["method"],
                                status_code=status, request_body=req.text,
                                response_body=resp.text, response_content_type=resp_ct)

        # identity of the caller: configured header, proxy-auth user, provider body field
        user = raw_req_h.get(cfg.user_header.lower()) if cfg.user_header else None
        if not user and (proxy_auth := raw_req_h.get("proxy-authorization")):
            user = basic_auth_user(proxy_auth)
        user = user or cap.get("pauser") or parsed.user_id

        counts: list[dict[str, int]] = [part.body_counts, part.header_counts]
        red = self.redactor
        req_body, req_h_json = part.body, part.headers_json
        resp_stored = resp.stored
        if parsed.assembled_response is not None:
            resp_stored = parsed.assembled_response
            if len(resp_stored) > cfg.max_body_bytes:
                resp_stored = resp_stored[: cfg.max_body_bytes] + "…[truncated]"
        resp_body, c = red.redact_body(resp_stored, field="response_body")
        counts.append(c)
        resp_h_json = None
        if resp_h is not None:
            resp_h_json, c = self._redact_headers(resp_h, "response_headers")
            counts.append(c)
        path, c = self._redact_query(record["path"])
        record["path"] = path
        counts.append(c)

        record.update(
            user_id=user,
            request_headers=req_h_json,
            request_body=req_body,
            request_bytes=cap.get("rql"),
            request_truncated=req.truncated,
            provider=parsed.provider,
            operation=parsed.operation,
            request_model=parsed.request_model,
            stream=parsed.stream if parsed.stream is not None else cap.get("sm", False),
            status_code=status,
            response_headers=resp_h_json,
            response_body=resp_body,
            response_bytes=cap.get("rsl"),
            response_truncated=resp.truncated if cap.get("rsb") else None,
            response_model=parsed.response_model,
            finish_reason=parsed.finish_reason,
            input_tokens=parsed.input_tokens,
            output_tokens=parsed.output_tokens,
            cached_input_tokens=parsed.cached_input_tokens,
            cache_write_tokens=parsed.cache_write_tokens,
            reasoning_tokens=parsed.reasoning_tokens,
            total_tokens=parsed.total_tokens,
            usage_source="provider" if parsed.usage_reported else "missing",
            cache_status=parsed.cache_status,
            retry_count=_int_header(raw_req_h, "x-stainless-retry-count"),
        )
        failed = status is not None and status >= 400
        if record["error_type"] is None and (failed or parsed.error_type):
            # an error body, or an error event inside a 200 stream (overloaded, throttled, …)
            record["error_type"] = parsed.error_type or _status_error_type(status or 0)
            msg = parsed.error_message or f"HTTP {status}"
            record["error_message"] = red.redact_text(msg)[0]
        if record["error_type"] is not None:
            record["resolution"] = "failed"
        elif record["retry_count"]:
            record["resolution"] = "succeeded_after_retry"
        if for_notes := [n for n in (req.note, resp.note) if n and n != "binary"]:
            record["error_trace"] = "; ".join(for_notes)

        self._usage_and_cost(record, parsed.usage_reported, req.text,
                             parsed.assembled_response or resp.text)

        auth_method, key_id = auth_from_headers(raw_req_h)
        if auth_method == "none":
            query = dict(parse_qsl(cap["path"].partition("?")[2]))
            if query.get("key"):
                auth_method, key_id = "api_key", fingerprint(query["key"])
        record["auth_method"] = auth_method
        record["key_id"] = key_id
        if resp_h:
            record["ratelimit_usage_pct"] = ratelimit_usage_pct(resp_h)
        merged = merge_counts(*counts)
        record["redactions"] = json.dumps(merged, sort_keys=True) if merged else None
        self._apply_log_groups(record)
        return record

    def prefetch(self, cap: dict[str, Any]) -> None:
        """Do the request's share of the work while the upstream is still answering.

        The proxy sends the request part as soon as it has it; when the full capture arrives
        (and its acknowledgement holds the client's response back), only the response remains
        to decode and redact. The full capture still carries the request, so a lost or stale
        prefetch (a restarted worker, another addon changing the request) costs only time.
        """
        size = len(cap.get("rqb") or b"")
        if size > _PREFETCH_MAX_BODY:  # keep the worker's memory small
            return
        held = self._prefetched
        while held and (len(held) >= _PREFETCH_LIMIT
                        or self._prefetched_bytes + size > _PREFETCH_BYTES):
            self._prefetched_bytes -= len(held.pop(next(iter(held))).rqb or b"")
        try:
            part = self._request_part(cap)
        except Exception:  # the full capture will compute it again, and record any failure
            return
        old = held.pop(cap["fid"], None)
        if old is not None:
            self._prefetched_bytes -= len(old.rqb or b"")
        held[cap["fid"]] = part
        self._prefetched_bytes += size

    def _request_part(self, cap: dict[str, Any]) -> _RequestPart:
        cfg = self.config
        raw_headers = {k.decode("latin-1").lower(): v.decode("utf-8", "replace")
                       for k, v in cap["rqh"]}
        decoded = decode_body(cap.get("rqb"), content_encoding=raw_headers.get("content-encoding"),
                              content_type=raw_headers.get("content-type"),
                              cap=cfg.max_body_bytes, raw_truncated=cap.get("rqcut", False))
        body, body_counts = self.redactor.redact_body(decoded.stored, field="request_body")
        headers_json, header_counts = self._redact_headers(
            sanitize_headers(cap["rqh"], cfg.secret_headers), "request_headers")
        return _RequestPart(cap["rqh"], cap.get("rqb"), raw_headers, decoded, body, body_counts,
                            headers_json, header_counts)

    def _usage_and_cost(self, record: dict[str, Any], reported: bool, request_text: str | None,
                        response_text: str | None) -> None:
        """Tokens the provider did not report are estimated (and marked so); then cost.

        Estimation runs on the clear text (before redaction), only for 2xx exchanges of
        operations that bill tokens, so an HTTP error or a model listing never gets a guess.
        """
        model = record["response_model"] or record["request_model"]
        operation = record["operation"]
        status = record["status_code"]
        # 2xx even with an error: a stream the client hung up on was still billed
        if (not reported and status is not None and 200 <= status < 300
                and operation not in FREE_OPERATIONS and (request_text or response_text)):
            est_in, est_out = estimate_usage(provider=record["provider"], operation=operation,
                                             request_body=request_text,
                                             response_body=response_text, model=model)
            if est_in or est_out:
                if record["input_tokens"] is None:
                    record["input_tokens"] = est_in
                if record["output_tokens"] is None:
                    record["output_tokens"] = est_out
                record["total_tokens"] = record["input_tokens"] + record["output_tokens"]
                record["usage_source"] = "estimated"
        cost = self.prices.cost(
            provider=record["provider"], model=model, operation=operation,
            input_tokens=record["input_tokens"], output_tokens=record["output_tokens"],
            cached_input_tokens=record["cached_input_tokens"],
            cache_write_tokens=record["cache_write_tokens"],
            reasoning_tokens=record["reasoning_tokens"], at=record["ts"])
        if cost is not None:
            record.update(cost.as_columns())
        else:  # tokens used by a model with no price: null cost, listed by `report cost`
            record["price_version"] = self.prices.version

    def _redact_headers(self, headers: dict[str, str], field: str) -> tuple[str | None, dict[str, int]]:
        mode = self.redactor.field_mode(field)
        if mode == "drop":
            return None, {}
        counts: list[dict[str, int]] = []
        out = {}
        cache = self._header_cache
        for name, value in headers.items():
            if name in ADDRESS_HEADERS or value.startswith(("[REDACTED", "Bearer [RED",
                                                             "Basic [RED")):
                out[name] = value  # an address is not PII; a fingerprint stays as it is
                continue
            key = (mode, name, value)  # most header values repeat from call to call
            hit = cache.get(key)
            if hit is None:
                redact = self.redactor.mask_secrets if mode == "keep" else self.redactor.redact_text
                hit = redact(value)
                if len(cache) >= _HEADER_CACHE_LIMIT:
                    cache.clear()
                cache[key] = hit
            out[name], c = hit
            if c:
                counts.append(c)
        return headers_json(out), merge_counts(*counts)

    def _redact_query(self, path: str) -> tuple[str, dict[str, int]]:
        base, sep, query = path.partition("?")
        if not sep:
            return path, {}
        mode = self.redactor.field_mode("query")
        if mode == "drop":
            return base, {}
        redact = self.redactor.mask_secrets if mode == "keep" else self.redactor.redact_text
        query, counts = redact(query)
        return f"{base}?{query}", counts

    def _apply_log_groups(self, record: dict[str, Any]) -> None:
        """``log_requests=False`` etc. empty that column group (identity columns stay)."""
        cfg = self.config
        keep = set(COLUMN_GROUPS["identity"])
        for group, enabled in (("request", cfg.log_requests), ("response", cfg.log_responses),
                               ("error", cfg.log_errors), ("security", cfg.log_security)):
            if not enabled:
                for col in COLUMN_GROUPS[group]:
                    if col not in keep:
                        record[col] = None
