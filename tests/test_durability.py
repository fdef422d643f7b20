"""Durability: a relayed response's record survives kill -9; secrets never reach any file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from e2e_support import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    anthropic_client,
    openai_client,
    records,
    store_text,
)

from llm_proxy.cli.proxy_process import ProxyProcess

pytestmark = pytest.mark.e2e

MSG = [{"role": "user", "content": "count me"}]


@pytest.mark.parametrize("kill,ack", [("proxy", "journaled"), ("group", "journaled"),
                                      ("proxy", "received")])
def test_kill9_loses_no_completed_exchange(mock, tmp_path: Path, kill: str, ack: str):
    """Requests run until the proxy is SIGKILLed; every response a client got has its record.

    With ack = "journaled" (default) that holds even when the capture worker dies too; with
    ack = "received" it holds for the proxy process alone.
    """
    store = tmp_path / "store"
    config = tmp_path / "audit.toml"
    config.write_text(f'ack = "{ack}"\n')
    proxy = ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path),
                         config=config)
    proxy.start()
    completed = 0
    attempted = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal completed, attempted
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle, max_retries=0, timeout=5,
                               default_headers={"x-user-id": "kill9"})
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            attempted += 1
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
            except Exception:
                return
            completed += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    proxy.kill() if kill == "proxy" else proxy.kill_group()
    stop.set()
    for t in threads:
        t.join(10)
    assert completed > 20
    # whatever is still in the journal is queryable now, and replayed into Parquet on restart
    restarted = ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path),
                             config=config)
    with restarted:
        pass
    rows = records(store, "user_id = 'kill9'", columns="id")
    assert completed <= len(rows) <= attempted
    assert len({r["id"] for r in rows}) == len(rows)
    assert not list((store / "journal").glob("*.jsonl"))  # all replayed into Parquet


def test_no_secret_in_any_file_after_flush(mock, tmp_path: Path):
    store = tmp_path / "store"
    pasted = ["AKIAIOSFODNN7EXAMPLE", "sk-ant-api03-PASTEDsecret0123456789abcdefghijklmnop",
              "ghp_abcdefghijklmnopqrstuvwxyz0123456789"]
    with ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path)) as proxy:
        oai = openai_client(mock.url, proxy.url, proxy.ca_bundle,
                            default_headers={"x-mock-scenario": "echo_secret"})
        oai.chat.completions.create(model="gpt-4o-mini",
                                    messages=[{"role": "user", "content": " ".join(pasted)}])
        list(oai.chat.completions.create(model="gpt-4o-mini", stream=True,
                                         messages=[{"role": "user", "content": " ".join(pasted)}]))
        anthropic_client(mock.url, proxy.url, proxy.ca_bundle).messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=MSG)
    assert list(store.rglob("*.parquet")), "clean shutdown flushes to Parquet"
    text = store_text(store)
    assert "[API_KEY]" in text or "[AWS_ACCESS_KEY]" in text
    for secret in [OPENAI_KEY, ANTHROPIC_KEY, *pasted]:
        assert secret not in text


@pytest.mark.parametrize("ack", ["journaled", "received"])
def test_worker_killed_is_restarted_and_nothing_is_lost(mock, tmp_path: Path, ack: str):
    """SIGKILL the capture worker: the proxy restarts it and resends what was not journaled.
    With ack = "received" the worker is first stopped, so that responses are relayed whose
    captures it never journaled: the proxy keeps those until acknowledged, and resends them."""
    import os
    import signal

    store = tmp_path / "store"
    config = tmp_path / "audit.toml"
    config.write_text(f'ack = "{ack}"\n')
    with ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path),
                      config=config) as proxy:
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle, max_retries=0,
                               default_headers={"x-user-id": "restart"})
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        children = Path(f"/proc/{proxy.proc.pid}/task/{proxy.proc.pid}/children").read_text().split()
        assert children, "the proxy runs a capture worker process"
        if ack == "received":
            os.kill(int(children[0]), signal.SIGSTOP)
            for _ in range(3):  # relayed at once, into the stopped worker's socket
                client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        os.kill(int(children[0]), signal.SIGKILL)
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert "restarting" in proxy.log_tail(50)
    rows = records(store, "user_id = 'restart'", columns="id")
    expected = 13 if ack == "received" else 10
    assert len(rows) == expected and len({r["id"] for r in rows}) == expected


def test_two_proxies_share_one_store(mock, tmp_path: Path):
    """Same host name, same store: file names never collide and every record is kept."""
    store = tmp_path / "store"
    a = ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path))
    b = ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path))
    with a, b:
        for proxy, user in ((a, "shared-a"), (b, "shared-b")):
            client = openai_client(mock.url, proxy.url, proxy.ca_bundle,
                                   default_headers={"x-user-id": user})
            for _ in range(5):
                client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    files = list(store.rglob("*.parquet"))
    assert len(files) == len({f.name for f in files}) >= 2
    rows = records(store, "user_id like 'shared-%'", columns="id, user_id")
    assert len(rows) == 10 and len({r["id"] for r in rows}) == 10


def outcome_across_a_stop(proxy: ProxyProcess, call, after_stop=None) -> list[str]:
    """Run ``call`` in a thread, stop the proxy cleanly a second later (then ``after_stop``)
    and return how the call ended: ``["answered"]`` or the exception's name."""
    outcome: list[str] = []

    def run() -> None:
        try:
            call()
            outcome.append("answered")
        except Exception as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)
    assert proxy.stop() == 0
    if after_stop is not None:
        after_stop()
    thread.join(35)
    return outcome


def test_exchange_in_flight_at_shutdown_is_recorded(mock, tmp_path: Path):
    """A request still waiting for its upstream when the proxy stops gets its record too."""
    store = tmp_path / "store"
    proxy = ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path))
    proxy.start()
    client = openai_client(mock.url, proxy.url, proxy.ca_bundle, max_retries=0, timeout=30,
                           default_headers={"x-mock-scenario": "hang", "x-user-id": "inflight"})
    outcome = outcome_across_a_stop(
        proxy, lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MSG))
    assert outcome and outcome[0] != "answered"
    [r] = records(store, "user_id = 'inflight'")
    assert r["error_type"] == "proxy_shutdown" and r["request_model"] == "gpt-4o-mini"


def test_upload_still_arriving_at_shutdown_is_recorded(mock, tmp_path: Path):
    """A request whose body is still arriving when the proxy stops (mitmproxy has not called
    the request hook yet, and sends no error hook at shutdown) gets its record too."""
    import ssl

    import httpx2

    store = tmp_path / "store"
    proxy = ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path))
    proxy.start()
    release = threading.Event()

    def body():
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * 4096
        release.wait(30)  # the rest never comes while the proxy runs
        yield b'"}]}'

    def upload() -> None:
        with httpx2.Client(proxy=proxy.url, timeout=30,
                           verify=ssl.create_default_context(cafile=proxy.ca_bundle)) as http:
            http.post(f"{mock.url}/v1/chat/completions", content=body(),
                      headers={"authorization": "Bearer sk-test-upload",
                               "content-type": "application/json", "x-user-id": "uploading"})

    outcome = outcome_across_a_stop(proxy, upload, after_stop=release.set)
    assert outcome and outcome[0] != "answered"
    [r] = records(store, "user_id = 'uploading'")
    assert r["error_type"] == "proxy_shutdown" and r["method"] == "POST"


@pytest.mark.parametrize("ack", ["journaled", "received"])
def test_what_a_response_waits_for(mock, tmp_path: Path, ack: str):
    """With the capture worker stopped (SIGSTOP), ack = "received" still relays at once: the
    capture sits in the worker's socket, which outlives the proxy. ack = "journaled" holds the
    response until the record is in the journal. Either way the record is kept."""
    import os
    import signal

    import openai

    store = tmp_path / "store"
    config = tmp_path / "audit.toml"
    config.write_text(f'ack = "{ack}"\n')
    with ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path),
                      config=config) as proxy:
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle, max_retries=0, timeout=2.0,
                               default_headers={"x-user-id": f"stopped-{ack}"})
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # worker running
        worker = int(Path(f"/proc/{proxy.proc.pid}/task/{proxy.proc.pid}/children")
                     .read_text().split()[0])
        # nothing waits for a "received" worker: it yields the CPU to the request path (once
        # it has started: in that mode the first response did not wait for it)
        expected = 10 if ack == "received" else 0
        deadline = time.monotonic() + 15
        while True:
            niced = (os.getpriority(os.PRIO_PROCESS, worker)
                     - os.getpriority(os.PRIO_PROCESS, proxy.proc.pid))
            if niced == expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert niced == expected
        os.kill(worker, signal.SIGSTOP)
        try:
            if ack == "received":
                started = time.monotonic()
                client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
                assert time.monotonic() - started < 1.5
            else:
                with pytest.raises(openai.APITimeoutError):
                    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        finally:
            os.kill(worker, signal.SIGCONT)
    rows = records(store, f"user_id = 'stopped-{ack}'", columns="id")
    assert len(rows) == 2
