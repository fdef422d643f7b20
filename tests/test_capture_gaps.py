"""Capture paths no other test walks: the demo command, plain ``mitmdump -s`` with a dead
upstream, streamed responses journaled before their end is relayed, timed and counted Parquet
flushes, intercept hosts from the config file, and the proxy-auth user.

Everything is real: mitmdump with the addon, the openai SDK through it, the bundled mock LLM
server over TLS, all on loopback.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import openai
import pyarrow.parquet as pq
import pytest
from e2e_support import OPENAI_KEY, openai_client, records, store_text

from llm_proxy.addon import SCRIPT
from llm_proxy.cli.proxy_process import ProxyProcess, free_port
from llm_proxy.mock.certs import ensure_certificates
from llm_proxy.store.journal import list_segments, read_segment

pytestmark = pytest.mark.e2e

MSG = [{"role": "user", "content": "Write a haiku about audit logs"}]


def parquet_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "flows").glob("date=*/hour=*/*.parquet")
                  if re.fullmatch(r"date=\d{4}-\d{2}-\d{2}", p.parent.parent.name)
                  and re.fullmatch(r"hour=\d{2}", p.parent.name))


def parquet_ids(store: Path) -> set[str]:
    return {i for f in parquet_files(store) for i in pq.read_table(f, columns=["id"])["id"].to_pylist()}


def journal_ids(store: Path) -> set[str]:
    return {r["id"] for _i, _s, path in list_segments(store / "journal") for r in read_segment(path)}


def worker_pid(proxy: ProxyProcess) -> int:
    assert proxy.proc is not None
    children = Path(f"/proc/{proxy.proc.pid}/task/{proxy.proc.pid}/children").read_text().split()
    assert children, "the proxy runs a capture worker process"
    return int(children[0])


# 1. ----------------------------------------------------------------------------------------------
DEMO_PASTED_KEY = "sk-proj-DEMOabcdefghijklmnopqrstuvwxyz0123456789"
DEMO_CLIENT_KEYS = ("sk-proj-demo0000000000000000000000000000000001",
                    "sk-ant-api03-demo00000000000000000000000000000002")


def test_demo_command_runs_end_to_end(tmp_path: Path):
    """`llm-audit demo` with no flags: a summary of OpenAI and Anthropic records (streamed, a 429
    retried, a 500) in a new temporary store it names; no key reaches any file in clear."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    res = subprocess.run([sys.executable, "-m", "llm_proxy", "demo"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp)})
    out = res.stdout
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    # what happened to each call
    assert "ok     openai chat (stream)" in out and "ok     anthropic messages (stream)" in out
    assert "ok     openai 429 then retry" in out  # the SDK retried and succeeded
    assert "error  openai 500: InternalServerError" in out
    # the summary table
    title = re.search(r"(\d+) audit records", out)
    assert title, out
    rows = [[c.strip() for c in line.split("│")[1:-1]]
            for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == int(title.group(1)) >= 11  # 10 calls, one of them retried once
    # columns: time, call, model, status, stream, tokens, cost, ms, error, redacted
    calls = [r[1] for r in rows]
    assert any(c.startswith("openai ") for c in calls) and any(c.startswith("anthropic ") for c in calls)
    assert {r[1].split()[0] for r in rows if r[4] == "yes"} == {"openai", "anthropic"}
    assert [r[3] for r in rows if r[8] == "rate_limit"] == ["429"]
    assert [r[3] for r in rows if r[8] == "server_error"] == ["500"]
    assert any("api_key" in r[9] for r in rows)  # the pasted key was redacted
    # the store it used: printed, in the new temporary folder, and queryable
    match = re.search(r"The records are in (\S+)\.", out)
    assert match, out
    store = Path(match.group(1))
    assert store.is_dir() and tmp in store.parents
    assert len(records(store, "true", columns="id")) == len(rows)
    assert parquet_files(store), "the demo stops the proxy cleanly: records are in Parquet"
    # no secret in clear anywhere the demo wrote (store, proxy log, mock and mitmproxy state)
    text = store_text(tmp)  # Parquet decoded, other files raw
    assert "[API_KEY]" in text
    for secret in (DEMO_PASTED_KEY, *DEMO_CLIENT_KEYS):
        assert secret not in text, f"{secret} on disk under {tmp}"


# 2. ----------------------------------------------------------------------------------------------
def test_plain_mitmdump_records_a_refused_upstream_with_its_request(tmp_path: Path):
    """Plain `mitmdump -s SCRIPT` (mitmproxy's default eager connection strategy): a request to a
    refused upstream still yields a record with its body; the addon switches to lazy itself."""
    port, dead = free_port(), free_port()  # nothing listens on `dead`
    store, conf = tmp_path / "store", tmp_path / "mitm"
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or "mitmdump"
    proc = subprocess.Popen([mitmdump, "-s", SCRIPT, "--listen-host", "127.0.0.1",
                             "--listen-port", str(port), "--set", f"audit_store={store}",
                             "--set", f"confdir={conf}", "--set", "audit_intercept=127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bundle = conf / "llm-audit-ca-bundle.pem"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, "mitmdump exited early"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                if bundle.exists():
                    break
            except OSError:
                pass
            time.sleep(0.05)
        client = openai_client(f"https://127.0.0.1:{dead}", f"http://127.0.0.1:{port}", bundle,
                               max_retries=0, default_headers={"x-user-id": "plain-down"})
        with pytest.raises(openai.APIError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        [r] = records(store, "user_id = 'plain-down'", expect=1)
    finally:
        proc.terminate()
        proc.wait(30)
    assert r["error_type"] == "connection" and r["status_code"] is None and r["error_message"]
    assert "haiku about audit logs" in r["request_body"]
    assert r["request_model"] == "gpt-4o-mini" and r["endpoint"] == "/v1/chat/completions"


# 3. ----------------------------------------------------------------------------------------------
def sse_text(lines: list[str]) -> tuple[str, bool]:
    """The assembled content of OpenAI chat SSE lines, and whether `data: [DONE]` was among them."""
    text, done = [], False
    for line in lines:
        if line == "data: [DONE]":
            done = True
        elif line.startswith("data: "):
            chunk = json.loads(line[len("data: "):])
            text += [c["delta"].get("content") or "" for c in chunk.get("choices", [])]
    return "".join(text), done


def test_streamed_record_is_journaled_before_the_stream_end_is_relayed(mock, tmp_path: Path):
    """An SSE response's chunks are relayed as they come, but its end only once the record is in
    the journal: the moment the client has read a whole stream, the record is queryable; with
    the capture worker stopped, the client gets every event (up to `[DONE]`) but not the end.

    The openai SDK reads the raw stream here (``with_streaming_response``): its parsed Stream
    stops reading at `[DONE]` and closes without reading the end of the HTTP body."""
    store = tmp_path / "store"
    with ProxyProcess(store=store, confdir=tmp_path / "mitm",
                      upstream_ca=Path(mock.ca_cert_path)) as proxy:
        def stream(user: str):
            client = openai_client(mock.url, proxy.url, proxy.ca_bundle, max_retries=0,
                                   timeout=2.0, default_headers={"x-user-id": user})
            return client.chat.completions.with_streaming_response.create(
                model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True})

        with stream("sse-live") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            text, done = sse_text(list(resp.iter_lines()))  # to the end of the body
        assert text and done
        # one look, no polling: it was journaled before the client could see the stream end
        [r] = records(store, "user_id = 'sse-live'")
        assert r["stream"] is True and r["status_code"] == 200 and r["finish_reason"] == "stop"
        assert json.loads(r["response_body"])["choices"][0]["message"]["content"] == text

        worker = worker_pid(proxy)
        os.kill(worker, signal.SIGSTOP)
        got: list[str] = []
        try:
            with stream("sse-held") as resp:
                with pytest.raises(httpx2.ReadTimeout):
                    for line in resp.iter_lines():
                        got.append(line)
            assert not records(store, "user_id = 'sse-held'")  # nobody journaled it yet
        finally:
            os.kill(worker, signal.SIGCONT)
        # every event reached the client, `[DONE]` included; only the end of the body waited
        assert sse_text(got) == (text, True)
        [held] = records(store, "user_id = 'sse-held'", expect=1)
    assert held["stream"] is True and held["status_code"] == 200 and held["finish_reason"] == "stop"
    assert json.loads(held["response_body"])["choices"][0]["message"]["content"] == text



@pytest.mark.parametrize("ack", ["journaled", "received"])
def test_a_stream_is_handed_over_before_its_last_event_reaches_the_sdk(mock, tmp_path: Path,
                                                                       ack: str):
    """The openai SDK returns at `data: [DONE]` and closes, without waiting for the end of the
    HTTP body (which, with ack = "journaled", the journal wait holds back). The capture goes to
    the worker before that last event is relayed: a `kill -9` of the proxy the moment the SDK
    has its answer loses nothing, and the record is the whole successful stream (not a client
    abort)."""
    store = tmp_path / "store"
    config = tmp_path / "audit.toml"
    config.write_text(f'ack = "{ack}"\n')
    proxy = ProxyProcess(store=store, confdir=tmp_path / "mitm", config=config,
                         upstream_ca=Path(mock.ca_cert_path)).start()
    try:
        worker = worker_pid(proxy)
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle, max_retries=0,
                               default_headers={"x-user-id": "sdk-done",
                                                # the upstream ends its body 0.4 s after [DONE]
                                                "x-mock-scenario": "chunk_delay:400"})
        stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                stream_options={"include_usage": True})
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        proxy.kill()  # the SDK has its answer; the end of the HTTP body has not come yet
    finally:
        proxy.kill()
    deadline = time.monotonic() + 20
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker journals what was in its socket, flushes and exits
    [r] = records(store, "user_id = 'sdk-done'", expect=1)
    assert text and json.loads(r["response_body"])["choices"][0]["message"]["content"] == text
    assert r["error_type"] is None and r["status_code"] == 200 and r["finish_reason"] == "stop"
    assert r["output_tokens"] and r["stream"] is True


def test_flows_handed_over_at_their_last_event_can_still_be_saved(mock, tmp_path: Path):
    """mitmproxy copies a flow's metadata to save it (``save_stream_file``, mitmweb's
    duplicate and replay): what the addon leaves there must be copyable, also for a stream
    the SDK closed after its last event (the error hook, not the response hook, then runs)."""
    from mitmproxy.io import FlowReader

    saved = tmp_path / "flows.mitm"
    proxy = ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         upstream_ca=Path(mock.ca_cert_path),
                         extra_args=["--set", f"save_stream_file={saved}"])
    with proxy:
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle, max_retries=0,
                               default_headers={"x-user-id": "saved",
                                                "x-mock-scenario": "chunk_delay:300"})
        stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.close()  # gone before the upstream's body end, 0.3 s after [DONE]
        [r] = records(proxy.store, "user_id = 'saved'", expect=1)
        time.sleep(0.6)
    with saved.open("rb") as fh:
        flows = [f for f in FlowReader(fh).stream() if f.request.path == "/v1/chat/completions"]
    assert len(flows) == 1 and flows[0].response is not None and r["error_type"] is None
    assert "Traceback" not in proxy.log_tail(200)

# 4. ----------------------------------------------------------------------------------------------
def test_worker_flushes_to_parquet_every_flush_seconds_while_running(mock, tmp_path: Path):
    """flush_seconds = 1: a Parquet file appears while the proxy runs, and the journal segment
    that held the record is gone. (The wait is bounded below the 10 s default, so a config
    value that were ignored would fail this.)"""
    store = tmp_path / "store"
    config = tmp_path / "audit.toml"
    config.write_text("flush_seconds = 1\n")
    with ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path),
                      config=config) as proxy:
        openai_client(mock.url, proxy.url, proxy.ca_bundle, default_headers={"x-user-id": "timer"}
                      ).chat.completions.create(model="gpt-4o-mini", messages=MSG)
        [r] = records(store, "user_id = 'timer'", expect=1, columns="id")
        deadline = time.monotonic() + 8
        while r["id"] not in parquet_ids(store) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proxy.proc is not None and proxy.proc.poll() is None, "still running"
        assert r["id"] in parquet_ids(store), "flushed by the timer, without a shutdown"
        assert r["id"] not in journal_ids(store), "its journal segment was deleted"
        assert [x["id"] for x in records(store, "user_id = 'timer'", columns="id")] == [r["id"]]


def test_worker_flushes_to_parquet_after_flush_records(mock, tmp_path: Path):
    """flush_records = 2 (timer an hour): one record stays in the journal, the second one
    makes a Parquet file with both, while the proxy runs."""
    store = tmp_path / "store"
    config = tmp_path / "audit.toml"
    config.write_text("flush_records = 2\nflush_seconds = 3600\n")
    with ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path),
                      config=config) as proxy:
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle,
                               default_headers={"x-user-id": "counted"})
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        [first] = records(store, "user_id = 'counted'", expect=1, columns="id")
        assert first["id"] in journal_ids(store) and not parquet_files(store)
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        both = {x["id"] for x in records(store, "user_id = 'counted'", expect=2, columns="id")}
        assert len(both) == 2
        deadline = time.monotonic() + 15
        while not both <= parquet_ids(store) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proxy.proc is not None and proxy.proc.poll() is None, "still running"
        assert both <= parquet_ids(store)
        assert not both & journal_ids(store)
        # one batch of two: one file (two when the requests straddled an hour)
        assert 1 <= len(parquet_files(store)) <= 2


# 5. ----------------------------------------------------------------------------------------------
def test_intercept_hosts_from_the_config_file(mock, tmp_path: Path):
    """`intercept = ["localhost"]` in the TOML config (no --intercept at all): localhost is
    decrypted and recorded; 127.0.0.1, the same server but not listed, is tunnelled untouched."""
    store = tmp_path / "store"
    config = tmp_path / "audit.toml"
    config.write_text('intercept = ["localhost"]\n')
    with ProxyProcess(store=store, confdir=tmp_path / "mitm", intercept=[],
                      upstream_ca=Path(mock.ca_cert_path), config=config) as proxy:
        assert "--intercept" not in proxy.command()
        # not listed: the client talks TLS with the mock itself (trusting only the mock's CA)
        with httpx2.Client(proxy=proxy.url,
                          verify=ssl.create_default_context(cafile=mock.ca_cert_path)) as http:
            resp = http.post(f"https://127.0.0.1:{mock.port}/v1/chat/completions",
                             headers={"authorization": f"Bearer {OPENAI_KEY}",
                                      "x-user-id": "cfg-tunnel"},
                             json={"model": "gpt-4o-mini", "messages": MSG})
        assert resp.status_code == 200
        # listed in the config: decrypted by the proxy (the client trusts only its CA bundle)
        reply = openai_client(f"https://localhost:{mock.port}", proxy.url, proxy.ca_bundle,
                              default_headers={"x-user-id": "cfg-listed"}
                              ).chat.completions.create(model="gpt-4o-mini", messages=MSG)
        [r] = records(store, "user_id = 'cfg-listed'", expect=1)
        assert r["host"] == "localhost" and r["status_code"] == 200
        assert r["output_tokens"] == reply.usage.completion_tokens
    # after a clean stop everything is flushed: still that one record, none for the tunnel
    assert [x["user_id"] for x in records(store, "true", columns="user_id")] == ["cfg-listed"]


# 6. ----------------------------------------------------------------------------------------------
def test_proxy_auth_user_is_the_user_id_and_the_password_is_nowhere(mock, tmp_path: Path):
    """mitmproxy's proxyauth: the Basic user name becomes `user_id`; the password (and the
    encoded credential) reach no file of the store, nor the proxy's log."""
    password = "pw-Zq8rT3vLx91mKd"
    credential = base64.b64encode(f"audit-alice:{password}".encode()).decode()
    store = tmp_path / "store"
    with ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path),
                      extra_args=["--set", f"proxyauth=audit-alice:{password}"]) as proxy:
        # without the credential the proxy refuses
        with pytest.raises(openai.APIConnectionError):
            openai_client(mock.url, proxy.url, proxy.ca_bundle, max_retries=0
                          ).chat.completions.create(model="gpt-4o-mini", messages=MSG)
        authed = f"http://audit-alice:{password}@127.0.0.1:{proxy.port}"
        client = openai_client(mock.url, authed, proxy.ca_bundle)  # no x-user-id, no body user
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        [r] = records(store, "user_id = 'audit-alice'", expect=1)
        assert r["status_code"] == 200 and r["request_model"] == "gpt-4o-mini"
        log = proxy.log_path
    assert parquet_files(store)
    text = store_text(store) + "\n" + (log.read_text(errors="replace") if log else "")
    for secret in (password, credential, OPENAI_KEY):
        assert secret not in text


# 7. ----------------------------------------------------------------------------------------------
def test_bodies_mitmproxy_streams_for_stream_large_bodies_are_still_recorded(mock, tmp_path: Path):
    """`--set stream_large_bodies=8k` makes mitmproxy stream bigger bodies unbuffered; without a
    tee the record had no request or response body, tokens or model. Both are teed instead."""
    proxy = ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         upstream_ca=Path(mock.ca_cert_path),
                         extra_args=["--set", "stream_large_bodies=8k"])
    prompt = "Summarise these notes. " + "quarterly revenue grew in every region " * 1200
    with proxy:
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle,
                               default_headers={"x-user-id": "large", "x-mock-scenario": "big:60000"})
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        assert len(reply.choices[0].message.content) >= 50_000
        [r] = records(proxy.store, "user_id = 'large'", expect=1)
    assert r["request_bytes"] > 40_000 and "quarterly revenue grew" in r["request_body"]
    assert r["request_model"] == "gpt-4o-mini" and r["response_model"]
    assert r["response_bytes"] >= 50_000 and r["response_body"]
    assert r["input_tokens"] and r["output_tokens"] and r["usage_source"] == "provider"


def test_a_chunked_request_over_the_stream_limit_is_recorded(mock, tmp_path: Path):
    """A body of unknown size (chunked upload, no Content-Length) is streamed by mitmproxy only
    once stream_large_bodies is passed — after the hooks that could tee it — so the addon tees
    such bodies from the start whenever the option is set."""
    proxy = ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         upstream_ca=Path(mock.ca_cert_path),
                         extra_args=["--set", "stream_large_bodies=8k"])
    body = json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "chunked upload " + "notes on the quarter " * 2500}]}).encode()

    def chunks():
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    with proxy:
        with httpx2.Client(proxy=proxy.url,
                           verify=ssl.create_default_context(cafile=proxy.ca_bundle)) as client:
            res = client.post(f"{mock.url}/v1/chat/completions", content=chunks(),
                              headers={"authorization": f"Bearer {OPENAI_KEY}",
                                       "content-type": "application/json",
                                       "x-user-id": "chunked"})
            assert res.status_code == 200 and "content-length" not in res.request.headers
        [r] = records(proxy.store, "user_id = 'chunked'", expect=1)
    assert r["request_bytes"] == len(body) and not r["request_truncated"]
    assert "chunked upload" in r["request_body"] and r["request_model"] == "gpt-4o-mini"


def test_an_upstream_silent_until_the_proxy_gives_up_is_a_timeout(mock, tmp_path: Path):
    """mitmproxy closes a connection that stays silent for ``tcp_timeout`` and tells the flow
    "Client disconnected."; the record says what happened: a ``timeout``, before the response
    headers (a hung upstream) or in the middle of a stream that stalled. A client that gives up
    by itself sooner is still a ``client_abort``."""
    proxy = ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         upstream_ca=Path(mock.ca_cert_path), extra_args=["--set", "tcp_timeout=2"])

    def call(user: str, scenario: str, timeout: float, *, stream: bool = False) -> str:
        with httpx2.Client(proxy=proxy.url, timeout=timeout,
                           verify=ssl.create_default_context(cafile=proxy.ca_bundle)) as client:
            try:
                res = client.post(f"{mock.url}/v1/chat/completions",
                                  json={"model": "gpt-4o-mini", "messages": MSG, "stream": stream},
                                  headers={"authorization": f"Bearer {OPENAI_KEY}",
                                           "x-user-id": user, "x-mock-scenario": scenario})
                return f"HTTP {res.status_code}"
            except httpx2.HTTPError as exc:
                return type(exc).__name__

    with proxy:
        started = time.monotonic()
        assert call("hung", "hang", 30.0) == "RemoteProtocolError"  # the proxy hung up
        assert 1.5 < time.monotonic() - started < 10
        assert call("stalled", "chunk_delay:8000", 30.0, stream=True) != "HTTP 200"
        assert call("impatient", "hang", 0.3) == "ReadTimeout"
        # a stream still flowing after longer than tcp_timeout, left by its reader: not a timeout
        with httpx2.Client(proxy=proxy.url, timeout=30,
                           verify=ssl.create_default_context(cafile=proxy.ca_bundle)) as client:
            with client.stream("POST", f"{mock.url}/v1/chat/completions",
                               json={"model": "gpt-4o-mini", "messages": MSG, "stream": True},
                               headers={"authorization": f"Bearer {OPENAI_KEY}",
                                        "x-user-id": "left", "x-mock-scenario": "chunk_delay:300"}
                               ) as res:
                opened = time.monotonic()
                for _ in res.iter_raw():
                    if time.monotonic() - opened > 2.6:
                        break
                else:
                    pytest.fail("the stream ended before the reader left it")
        hung, stalled, impatient, left = (
            records(proxy.store, f"user_id = '{u}'", expect=1)[0]
            for u in ("hung", "stalled", "impatient", "left"))
    assert hung["error_type"] == "timeout" and hung["status_code"] is None
    assert "sent nothing for 2 s" in hung["error_message"] and hung["latency_ms"] >= 1900
    assert stalled["error_type"] == "timeout" and stalled["status_code"] == 200
    assert stalled["stream"] is True
    assert impatient["error_type"] == "client_abort" and impatient["latency_ms"] < 1500
    assert left["error_type"] == "client_abort" and left["latency_ms"] > 2500


def test_an_upstream_hanging_up_while_the_client_still_uploads_is_not_a_client_abort(
        tmp_path: Path):
    """With stream_large_bodies, mitmproxy streams an upload to the upstream as it arrives; an
    upstream that resets the connection half-way is the upstream's failure, though the request
    never arrived whole (mitmproxy words it like a client's hang-up mid-upload)."""
    certs = ensure_certificates(tmp_path / "certs")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    got_headers = []

    def upstream() -> None:  # reads the request head and a little body, then resets
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                data += tls.recv(65536)
            got_headers.append(data.split(b"\r\n\r\n")[0])
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # (closing with SO_LINGER 0 sends a TCP RST)

    server = threading.Thread(target=upstream, daemon=True)
    server.start()

    def slow_upload():
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            time.sleep(0.1)
            yield b"a slow upload " * 100

    proxy = ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         upstream_ca=certs.ca_cert, extra_args=["--set", "stream_large_bodies=1"])
    with proxy, listener:
        with httpx2.Client(proxy=proxy.url, timeout=10,
                           verify=ssl.create_default_context(cafile=proxy.ca_bundle)) as client:
            try:
                outcome = client.post(f"https://127.0.0.1:{port}/v1/chat/completions",
                                      content=slow_upload(),
                                      headers={"authorization": f"Bearer {OPENAI_KEY}",
                                               "content-type": "application/json",
                                               "x-user-id": "upstream-gone"}).status_code
            except httpx2.HTTPError as exc:
                outcome = type(exc).__name__
        [r] = records(proxy.store, "user_id = 'upstream-gone'", expect=1)
    assert got_headers, "the upstream saw the request while it was still being uploaded"
    assert outcome != 200
    assert r["error_type"] == "connection_reset", r["error_message"]
