"""Pure parts of the capture pipeline: bodies, credentials, rate limits, ids, error classes."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from llm_proxy.addon.bodies import decode_body
from llm_proxy.addon.credentials import (
    auth_from_headers,
    basic_auth_user,
    fingerprint,
    sanitize_headers,
    sanitize_query,
)
from llm_proxy.addon.record import classify_transport_error, ratelimit_usage_pct, ulid

TEXT = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "héllo"}]}'


@pytest.mark.parametrize("encoding,encode", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("br", brotli.compress),
    ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_every_content_encoding_is_decoded(encoding, encode):
    body = decode_body(encode(TEXT.encode()), content_encoding=encoding,
                       content_type="application/json", cap=1 << 20)
    assert body.stored == TEXT and not body.truncated


def test_corrupt_encoding_keeps_what_it_can():
    body = decode_body(b"not gzip at all", content_encoding="gzip", content_type=None, cap=100)
    assert body.stored == "not gzip at all" and "content-encoding" in body.note


def test_binary_and_non_utf8():
    assert decode_body(b"\x00\x01\x02" * 50, content_encoding=None, content_type=None,
                       cap=100).stored.startswith("[binary body: 150 bytes")
    latin = decode_body("café".encode("latin-1"), content_encoding=None,
                        content_type="text/plain; charset=iso-8859-1", cap=100)
    assert latin.stored == "café"
    bad = decode_body(b"caf\xe9 ok", content_encoding=None, content_type="text/plain", cap=100)
    assert bad.stored == "caf\ufffd ok" and "UTF-8" in bad.note


def test_huge_body_is_truncated_and_marked():
    body = decode_body(b"a" * 5000, content_encoding=None, content_type=None, cap=1000)
    assert body.truncated and body.stored.startswith("a" * 1000)
    assert "truncated: 5000 characters, 1000 kept" in body.stored
    assert len(body.text) == 5000  # the parser still sees the whole body


def _streamed_bomb(encoding: str, megabytes: int) -> bytes:
    """``megabytes`` MiB of zeros compressed chunk by chunk (never held whole in memory)."""
    zeros = bytes(1 << 20)
    if encoding == "br":
        c = brotli.Compressor(quality=1)
        return b"".join(c.process(zeros) for _ in range(megabytes)) + c.finish()
    if encoding == "zstd":
        z = zstandard.ZstdCompressor().compressobj()
        return b"".join(z.compress(zeros) for _ in range(megabytes)) + z.flush()
    d = zlib.compressobj(1, zlib.DEFLATED, 31 if encoding == "gzip" else zlib.MAX_WBITS)
    return b"".join(d.compress(zeros) for _ in range(megabytes)) + d.flush()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_decompression_bomb_is_bounded(encoding, monkeypatch):
    """A few hundred KB that inflate to 256 MiB: decoded up to the limit and marked
    truncated, never inflated whole (a worker out of memory would be restarted and sent the
    same capture again). The limit is lowered to 1 MiB so that the bound shows."""
    import tracemalloc

    from llm_proxy.addon import bodies

    monkeypatch.setattr(bodies, "DECOMPRESS_LIMIT", 1 << 20)
    bomb = _streamed_bomb(encoding, 256)
    assert len(bomb) < 2 << 20
    tracemalloc.start()
    try:
        body = decode_body(bomb, content_encoding=encoding, content_type=None, cap=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert body.truncated
    assert peak < 16 << 20, f"{encoding}: {peak / 2**20:.0f} MiB held while decoding"


def test_fingerprint_shows_prefix_last4_and_hash_only():
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ"
    fp = fingerprint(key)
    assert fp.startswith("sk-proj-…WXYZ#") and len(fp.split("#")[1]) == 10
    assert "abcdefghij" not in fp
    assert fingerprint(key) == fp and fingerprint(key + "x") != fp
    assert fingerprint("short").startswith("…#")  # too short to reveal any part


@pytest.mark.parametrize("headers,method", [
    ({"authorization": "Bearer sk-proj-abcdefghijklmnopqrstuvwxyz"}, "api_key"),
    ({"x-api-key": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz"}, "api_key"),
    ({"api-key": "0123456789abcdef0123456789abcdef"}, "api_key"),
    ({"authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}, "oauth"),
    ({"authorization": "Bearer opaque-token-value-123456"}, "bearer"),
    ({"authorization": "Basic dXNlcjpwYXNz"}, "basic"),
    ({}, "none"),
])
def test_auth_method(headers, method):
    got, key_id = auth_from_headers(headers)
    assert got == method
    assert (key_id is None) == (method == "none")


def test_sanitize_headers_replaces_every_credential():
    fields = ((b"Authorization", b"Bearer sk-secretsecretsecret1234"), (b"Cookie", b"session=abc"),
              (b"X-Custom-Key", b"topsecretvalue99"), (b"Content-Type", b"application/json"))
    out = sanitize_headers(fields, frozenset({"authorization", "cookie", "x-custom-key"}))
    assert out["authorization"].startswith("Bearer [REDACTED sk-…1234#")
    assert out["cookie"] == "[REDACTED]"
    assert "topsecretvalue99" not in out["x-custom-key"]
    assert out["content-type"] == "application/json"


def test_query_credentials_are_masked():
    path = "/v1beta/models/gemini-2.0-flash:generateContent?key=AIzaSyA-1234567890abcdefghijklmnopqrstu&alt=sse"
    masked = sanitize_query(path)
    assert "AIzaSyA-1234567890" not in masked and "alt=sse" in masked and "REDACTED" in masked
    assert sanitize_query("/v1/models?limit=5") == "/v1/models?limit=5"


def test_basic_auth_user():
    assert basic_auth_user("Basic YWxpY2U6czNjcjN0") == "alice"
    assert basic_auth_user("Bearer x") is None


def test_ratelimit_usage_pct_takes_the_fullest_window():
    assert ratelimit_usage_pct({"x-ratelimit-limit-requests": "100",
                                "x-ratelimit-remaining-requests": "75",
                                "x-ratelimit-limit-tokens": "1000",
                                "x-ratelimit-remaining-tokens": "100"}) == 90.0
    assert ratelimit_usage_pct({"anthropic-ratelimit-requests-limit": "50",
                                "anthropic-ratelimit-requests-remaining": "49"}) == 2.0
    assert ratelimit_usage_pct({"x-ratelimit-limit-requests": "garbage"}) is None


def test_ulid_is_time_sortable_and_deterministic():
    a, b = ulid(1_700_000_000.0, "flow-a"), ulid(1_700_000_001.0, "flow-a")
    assert len(a) == 26 and a < b
    assert ulid(1_700_000_000.0, "flow-a") == a != ulid(1_700_000_000.0, "flow-b")


@pytest.mark.parametrize("message,kind", [
    ("Connection refused", "connection"),
    ("Client disconnected.", "client_abort"),
    ("TLS handshake failed: certificate verify failed", "tls"),
    ("Server disconnected.", "connection_reset"),
    ("server closed connection", "connection_reset"),  # mid-upload: not a failed connect
    ("connection timed out", "timeout"),
])
def test_transport_errors_are_classified(message, kind):
    assert classify_transport_error(message) == kind


def test_whose_hang_up_it_was_comes_from_the_client_connection_not_the_text():
    """mitmproxy words a hang-up alike whichever side it comes from; whether the client's
    connection was still readable when the error came tells the two apart."""
    for text in ("HTTP/1 protocol error: peer closed connection without sending complete "
                 "message body (received 20 bytes, expected 10000)",
                 "peer closed connection",
                 "HTTP/2 connection closed: <ConnectionTerminated error_code:0, "
                 "last_stream_id:0, additional_data:None>",
                 "stream reset by client (INTERNAL_ERROR)"):
        assert classify_transport_error(text, client_gone=True) == "client_abort", text
        assert classify_transport_error(text, client_gone=False) == "connection_reset", text
    # CANCEL is a client's way to give up on one stream and keep its connection
    assert classify_transport_error("stream reset by client (CANCEL)") == "client_abort"
    assert classify_transport_error("Server disconnected.", client_gone=False) == "connection_reset"


@pytest.mark.parametrize("fsync,ack", [("interval", "journaled"), ("always", "journaled"),
                                       ("interval", "received")])
def test_worker_acknowledges_a_burst_as_it_builds(tmp_path, monkeypatch, fsync, ack):
    """A burst of captures arriving together is journaled and acknowledged record by record,
    not all at the end: the first response of the burst need not wait for the last record.
    With fsync = "always" the burst shares one fsync and one acknowledgement (group commit).
    With ack = "received" nothing waits for the acknowledgement, but the proxy keeps each
    capture until it comes (to resend it if the worker dies): never before the journal has it,
    one per burst."""
    import socket
    import struct
    import threading
    import time

    from llm_proxy.addon import worker as worker_mod
    from llm_proxy.audit import AuditConfig
    from llm_proxy.store.journal import list_segments, read_segment

    slow = 0.004  # a build that takes this long makes a burst visible
    real_build = worker_mod.RecordBuilder.build

    def slow_build(self, cap):
        time.sleep(slow)
        return real_build(self, cap)

    monkeypatch.setattr(worker_mod.RecordBuilder, "build", slow_build)
    proxy_end, worker_end = socket.socketpair()
    store = tmp_path / "store"

    def serve() -> None:
        worker_mod.serve(worker_end, AuditConfig(flush_seconds=60, fsync=fsync, ack=ack),
                         store, "unit")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    n = 10
    frames = [worker_mod.encode_frame({
        "seq": i, "fid": f"f{i}", "t0": 1_700_000_000.0 + i, "t2": 1_700_000_000.5 + i,
        "method": "POST", "host": "api.openai.com", "port": 443, "path": "/v1/chat/completions",
        "rqh": ((b"content-type", b"application/json"),), "rqb": b'{"model":"gpt-4o-mini"}',
        "rql": 23, "status": 200, "rsh": (), "rsb": b"{}", "rsl": 2}) for i in range(1, n + 1)]
    # one burst, in which the proxy (resending after a restart) sent one capture twice
    proxy_end.sendall(b"".join(frames[:4] + frames[3:]))
    acks: list[int] = []
    proxy_end.settimeout(10)
    while not acks or acks[-1] < n:
        data = proxy_end.recv(8 * 64)
        acks += [v for (v,) in struct.iter_unpack("!Q", data)]
        segments = list_segments(store / "journal")
        journaled = sum(1 for _, _, seg in segments for _ in read_segment(seg))
        assert journaled >= acks[-1], "acknowledged before it was journaled"
    proxy_end.shutdown(socket.SHUT_WR)
    thread.join(30)
    if fsync == "always" or ack == "received":
        assert acks == [n]
    else:
        assert acks == list(range(1, n + 1)), acks  # one per record, as soon as it is built
    import pyarrow.parquet as pq  # EOF flushed everything: one record per capture
    ids = [i for f in store.rglob("*.parquet") for i in pq.read_table(f, columns=["id"])["id"]]
    assert len(ids) == len(set(ids)) == n


@pytest.mark.parametrize("ack", ["journaled", "received"])
def test_worker_reads_everything_a_killed_proxy_had_sent(tmp_path, monkeypatch, ack):
    """The proxy dies while the worker builds a burst: its acknowledgement then fails, but
    the captures the proxy wrote meanwhile (with ack = "received", relayed responses) are
    still in the socket and must all be recorded, up to EOF."""
    import socket
    import threading
    import time

    import pyarrow.parquet as pq

    from llm_proxy.addon import worker as worker_mod
    from llm_proxy.audit import AuditConfig

    real_build = worker_mod.RecordBuilder.build
    building = threading.Event()

    def slow_build(self, cap):
        building.set()
        time.sleep(0.05)
        return real_build(self, cap)

    monkeypatch.setattr(worker_mod.RecordBuilder, "build", slow_build)
    proxy_end, worker_end = socket.socketpair()
    store = tmp_path / "store"
    thread = threading.Thread(target=worker_mod.serve, daemon=True, args=(
        worker_end, AuditConfig(flush_seconds=60, ack=ack), store, "unit"))
    thread.start()

    def frame(i: int) -> bytes:
        return worker_mod.encode_frame({
            "seq": i, "fid": f"f{i}", "t0": 1_700_000_000.0 + i, "t2": 1_700_000_000.5 + i,
            "method": "POST", "host": "api.openai.com", "port": 443,
            "path": "/v1/chat/completions", "rqh": (), "rqb": b"{}", "rql": 2, "status": 200,
            "rsh": (), "rsb": b"{}", "rsl": 2})

    proxy_end.sendall(b"".join(frame(i) for i in range(1, 5)))
    assert building.wait(10)
    proxy_end.sendall(b"".join(frame(i) for i in range(5, 9)))  # written while it builds
    proxy_end.close()  # kill -9 of the proxy: its end of the socket closes
    thread.join(30)
    assert not thread.is_alive()
    ids = [i for f in store.rglob("*.parquet") for i in pq.read_table(f, columns=["id"])["id"]]
    assert len(ids) == len(set(ids)) == 8


def test_received_mode_acknowledges_lazily_but_at_once_when_the_proxy_may_wait(
        tmp_path, monkeypatch):
    """With ack = "received" an acknowledgement only lets the proxy forget captures it keeps
    for a resend, and each one wakes the proxy's idle event loop: small captures are journaled
    at once but acknowledged later. A capture that filled the socket (the proxy then waits for
    its acknowledgement before relaying) is acknowledged at once, and the worker settles up
    before it stops polling and blocks."""
    import socket
    import threading

    from llm_proxy.addon import worker as worker_mod
    from llm_proxy.store.journal import list_segments, read_segment

    proxy_end, thread = _lazy_worker(tmp_path, monkeypatch)
    store = tmp_path / "store"

    def journaled() -> int:
        return sum(1 for _, _, seg in list_segments(store / "journal") for _ in read_segment(seg))

    proxy_end.sendall(b"".join(_small_frame(i) for i in (1, 2, 3)))
    assert _acks_until(proxy_end, 0, 0.5) is None  # journaled, acknowledgement deferred
    assert journaled() == 3
    big = b'{"input": "' + b"x" * 400_000 + b'"}'  # more than the socket holds at once
    sender = threading.Thread(target=proxy_end.sendall, args=(_small_frame(4, big),))
    sender.start()
    assert _acks_until(proxy_end, 4, 10) == 4  # at once: the proxy may be waiting for it
    sender.join(10)
    proxy_end.sendall(_small_frame(5))
    assert _acks_until(proxy_end, 0, 0.5) is None
    monkeypatch.setattr(worker_mod, "RECEIVED_POLL_FOR_S", 0.2)  # now idle: it stops polling
    assert _acks_until(proxy_end, 5, 10) == 5  # ... and settles up before it blocks
    proxy_end.shutdown(socket.SHUT_WR)
    thread.join(30)
    assert not thread.is_alive()


def _lazy_worker(tmp_path, monkeypatch, **cfg):
    """A received-mode worker in a thread whose lazy acknowledgements would take a minute."""
    import socket
    import threading

    from llm_proxy.addon import worker as worker_mod
    from llm_proxy.audit import AuditConfig

    monkeypatch.setattr(worker_mod, "RECEIVED_ACK_DELAY_S", 60.0)
    monkeypatch.setattr(worker_mod, "RECEIVED_POLL_FOR_S", 60.0)
    proxy_end, worker_end = socket.socketpair()
    thread = threading.Thread(target=worker_mod.serve, daemon=True, args=(
        worker_end, AuditConfig(flush_seconds=60, ack="received", **cfg), tmp_path / "store",
        "unit"))
    thread.start()
    return proxy_end, thread


def _small_frame(i: int, body: bytes = b"{}") -> bytes:
    from llm_proxy.addon.worker import encode_frame

    return encode_frame({
        "seq": i, "fid": f"f{i}", "t0": 1_700_000_000.0 + i, "t2": 1_700_000_000.5 + i,
        "method": "POST", "host": "api.openai.com", "port": 443, "path": "/v1/chat/completions",
        "rqh": (), "rqb": body, "rql": len(body), "status": 200, "rsh": (), "rsb": b"{}",
        "rsl": 2})


def _acks_until(sock, want: int, timeout: float) -> int | None:
    import struct

    sock.settimeout(timeout)
    got = None
    try:
        while got is None or got < want:
            got = struct.unpack("!Q", sock.recv(8))[0]
    except TimeoutError:
        pass
    return got


def test_a_capture_the_proxy_waits_for_is_acknowledged_at_once(tmp_path, monkeypatch):
    """A small, frame-aligned capture queued behind a full socket: the proxy waits for its
    acknowledgement, says so with an ack-now frame, and the worker answers at once."""
    import socket

    from llm_proxy.addon.worker import ACK_NOW_FRAME

    proxy_end, thread = _lazy_worker(tmp_path, monkeypatch)
    proxy_end.sendall(_small_frame(1))
    assert _acks_until(proxy_end, 1, 0.5) is None  # lazily
    proxy_end.sendall(_small_frame(2) + ACK_NOW_FRAME)
    assert _acks_until(proxy_end, 2, 10) == 2
    proxy_end.shutdown(socket.SHUT_WR)
    thread.join(30)


def test_a_frame_of_an_unknown_kind_is_not_taken_for_a_capture(tmp_path, monkeypatch):
    """A newer proxy may send frames this worker does not know: they are skipped, not built
    into audit_error records (nor do they crash the worker into restarts)."""
    import socket

    from llm_proxy.addon.worker import encode_frame
    from llm_proxy.store.journal import list_segments, read_segment

    proxy_end, thread = _lazy_worker(tmp_path, monkeypatch)
    proxy_end.sendall(encode_frame({"kind": "something_new"}) + _small_frame(1))
    proxy_end.shutdown(socket.SHUT_WR)
    thread.join(30)
    records = [r for _, _, seg in list_segments(tmp_path / "store" / "journal")
               for r in read_segment(seg)]
    import pyarrow.parquet as pq
    records += [r for f in (tmp_path / "store").rglob("*.parquet")
                for r in pq.read_table(f, columns=["id", "error_type"]).to_pylist()]
    assert len(records) == 1 and records[0]["error_type"] is None


def test_owed_acknowledgements_go_out_before_the_batch_is_flushed(tmp_path, monkeypatch):
    """Once a batch is in Parquet its segment is gone, and a capture resent after a worker
    crash would no longer be recognised as journaled (a double record): acknowledge first."""
    import socket

    proxy_end, thread = _lazy_worker(tmp_path, monkeypatch, flush_records=2)
    proxy_end.sendall(_small_frame(1) + _small_frame(2))
    assert _acks_until(proxy_end, 2, 10) == 2
    proxy_end.shutdown(socket.SHUT_WR)
    thread.join(30)


def test_hand_over_asks_for_an_acknowledgement_when_the_socket_is_full(tmp_path):
    """When a capture does not fit into the worker's socket the response waits: the proxy
    follows the capture with an ack-now frame, so the lazy worker answers at once."""
    import asyncio
    import socket

    from llm_proxy.addon.channel import WorkerClient
    from llm_proxy.addon.worker import ACK_NOW_FRAME
    from llm_proxy.audit import AuditConfig

    async def scenario() -> tuple[int, bytes]:
        client = WorkerClient(AuditConfig(ack="received"), str(tmp_path), "unit")
        client.connection_lost = lambda exc: None
        ours, theirs = socket.socketpair()
        transport, _ = await asyncio.get_running_loop().create_unix_connection(
            lambda: client, sock=ours)
        client._transport = transport
        relayed = 0
        while client.hand_over({"fid": f"f{relayed}", "pad": b"x" * 4096}) is None:
            relayed += 1  # until the socket is full (nobody reads it)
            assert relayed < 10_000
        theirs.setblocking(False)
        received = bytearray()
        for _ in range(200):  # drain what the transport writes once there is room
            try:
                received += theirs.recv(1 << 20)
            except BlockingIOError:
                await asyncio.sleep(0.01)
        transport.close()
        return relayed, bytes(received)

    relayed, received = asyncio.run(scenario())
    assert relayed > 0
    assert received.endswith(ACK_NOW_FRAME)  # right after the capture that waits


def test_received_mode_never_relays_past_a_dead_worker_socket(tmp_path):
    """hand_over relays without waiting only when the frame is in a live socket: once the
    worker's end is gone the transport discards writes, and the capture must wait (and be
    resent to the next worker) instead."""
    import asyncio
    import socket

    from llm_proxy.addon.channel import WorkerClient
    from llm_proxy.audit import AuditConfig

    async def scenario() -> tuple[object, object, int]:
        client = WorkerClient(AuditConfig(ack="received"), str(tmp_path), "unit")
        client.connection_lost = lambda exc: None  # no restart of a real worker here
        ours, theirs = socket.socketpair()
        transport, _ = await asyncio.get_running_loop().create_unix_connection(
            lambda: client, sock=ours)
        client._transport = transport  # as start() does once the setup frame is written
        alive = client.hand_over({"fid": "a"})
        theirs.close()  # the worker dies; the proxy has not noticed yet
        dead = client.hand_over({"fid": "b"})  # the send fails and the transport drops it
        pending = len(client._pending)
        transport.close()
        return alive, dead, pending

    alive, dead, pending = asyncio.run(scenario())
    assert alive is None  # in the worker's socket: relayed at once
    assert isinstance(dead, asyncio.Future) and not dead.done()  # waits for a new worker
    assert pending == 2  # both kept for a resend
