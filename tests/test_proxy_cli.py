"""`llm-audit proxy` and plain `mitmdump -s`: both load the addon and record."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_support import openai_client, records

from llm_proxy.addon import SCRIPT
from llm_proxy.cli.proxy import ensure_port_free, mitmdump_args
from llm_proxy.cli.proxy_process import ProxyProcess, free_port
from llm_proxy.errors import StoreError, UsageError
from llm_proxy.store.layout import prepare_writable_store

ROOT = Path(__file__).resolve().parent.parent
MSG = [{"role": "user", "content": "hi"}]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "proxy exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("proxy did not listen")


@pytest.mark.e2e
def test_plain_mitmdump_with_the_script(mock, tmp_path: Path):
    port = free_port()
    store, conf = tmp_path / "store", tmp_path / "mitm"
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or "mitmdump"
    proc = subprocess.Popen([mitmdump, "-s", SCRIPT, "--listen-port", str(port),
                             "--set", f"audit_store={store}", "--set", f"confdir={conf}",
                             "--set", "audit_intercept=127.0.0.1",
                             "--set", f"ssl_verify_upstream_trusted_ca={mock.ca_cert_path}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        deadline = time.monotonic() + 10
        while not (conf / "llm-audit-ca-bundle.pem").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        client = openai_client(mock.url, f"http://127.0.0.1:{port}", conf / "llm-audit-ca-bundle.pem",
                               default_headers={"x-user-id": "plain-mitmdump"})
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert records(store, "user_id = 'plain-mitmdump'", expect=1)
    finally:
        proc.terminate()
        proc.wait(30)
    assert list(store.rglob("*.parquet")), "clean shutdown flushed the journal"


@pytest.mark.e2e
def test_proxy_with_the_seed_config_prints_client_setup(mock, tmp_path: Path):
    proxy = ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         upstream_ca=Path(mock.ca_cert_path),
                         config=ROOT / "examples" / "audit_log_config.py")
    with proxy:
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle,
                               default_headers={"x-user-id": "seed", "api-key": "azure-style-secret-123456"})
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        [r] = records(proxy.store, "user_id = 'seed'", expect=1)
    out = proxy.log_tail(100)
    assert f"export HTTPS_PROXY=http://127.0.0.1:{proxy.port}" in out
    assert "llm-audit-ca-bundle.pem" in out
    # a store other than the default: the line that lets a bare `llm-audit sql` find it
    assert f"export LLM_AUDIT_STORE={proxy.store}" in out
    assert "azure-style-secret-123456" not in r["request_headers"]
    bundle = proxy.ca_bundle.read_text()
    assert bundle.count("BEGIN CERTIFICATE") > 10, "system CAs + the mitmproxy CA, not the bare CA"
    assert (proxy.confdir / "mitmproxy-ca-cert.pem").read_text().strip() in bundle


def test_bad_config_stops_the_proxy_with_one_line(tmp_path: Path):
    bad = tmp_path / "c.toml"
    bad.write_text("redact_pii = 'yes'\n")
    res = subprocess.run([sys.executable, "-m", "llm_proxy", "proxy", "--config", str(bad),
                          "--store", str(tmp_path / "s")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "redact_pii" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("how", ["llm-audit", "mitmdump"])
def test_a_store_that_cannot_be_written_stops_the_proxy_at_start(tmp_path: Path, how: str):
    """A store path that is a file (or any store this user cannot write): the proxy does not
    start relaying traffic it could not record; `llm-audit proxy` says so in one line."""
    not_a_folder = tmp_path / "audit"
    not_a_folder.write_text("a file, not a folder\n")
    port = str(free_port())
    if how == "llm-audit":
        cmd = [sys.executable, "-m", "llm_proxy", "proxy", "--store", str(not_a_folder),
               "--port", port]
    else:
        mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or "mitmdump"
        cmd = [mitmdump, "-s", SCRIPT, "--listen-port", port, "--set", f"audit_store={not_a_folder}",
               "--set", f"confdir={tmp_path / 'mitm'}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert f"cannot write the store {not_a_folder}" in res.stdout + res.stderr
    if how == "llm-audit":
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.strip().count("\n") == 0, res.stderr
    assert not_a_folder.read_text() == "a file, not a folder\n"


def test_a_port_in_use_stops_the_proxy_with_one_line_before_any_instructions(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "llm_proxy", "proxy", "--store",
                              str(tmp_path / "s"), "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "HTTPS_PROXY" not in res.stdout
    assert res.stderr.strip() == (f"Error: cannot listen on 127.0.0.1:{port}: Address already in "
                                  "use; pick another port with --port (or --host)")


def test_the_port_check_judges_only_a_taken_address_it_knows():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(UsageError, match=f"cannot listen on {host}:{port}"):
                ensure_port_free(host, port, [])
        # a listen address set through mitmproxy's own options: that one is mitmproxy's to judge
        ensure_port_free("127.0.0.1", port, [f"listen_port={free_port()}"])
        ensure_port_free("127.0.0.1", port, [f"mode=regular@{free_port()}"])
    ensure_port_free("no-such-host.invalid", 8080, [])  # left to mitmproxy to report
    ensure_port_free("127.0.0.1", free_port(), [])


def test_prepare_writable_store_makes_owner_only_folders(tmp_path: Path):
    store = tmp_path / "new" / "store"
    prepare_writable_store(store)
    assert (store / "journal").is_dir() and list((store / "journal").iterdir()) == []
    assert (store.stat().st_mode & 0o777, (store / "journal").stat().st_mode & 0o777) == (0o700, 0o700)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(StoreError, match=f"cannot write the store {a_file}: Not a directory"):
        prepare_writable_store(a_file)


def test_a_worker_that_cannot_write_its_store_stops_with_one_line(tmp_path: Path, capfd,
                                                                  monkeypatch):
    """The capture worker, should its store become unwritable, exits with one line on stderr
    (the proxy logs that it keeps dying and fails requests closed), not a traceback."""
    import os
    import pickle
    import signal

    from llm_proxy.addon import worker
    from llm_proxy.audit import AuditConfig

    monkeypatch.setattr(signal, "signal", lambda *_: None)  # main() ignores SIGINT: not here
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    proxy_end, worker_end = socket.socketpair()
    setup = pickle.dumps({"config": AuditConfig(), "store": str(a_file), "instance": "unit"})
    proxy_end.sendall(worker.FRAME_HEADER.pack(len(setup)) + setup)
    umask = os.umask(0o022)
    try:
        assert worker.main([str(worker_end.detach())]) == 3
    finally:
        os.umask(umask)
        proxy_end.close()
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "Not a directory" in err and "Traceback" not in err


def test_mitmdump_args():
    args = mitmdump_args(host="0.0.0.0", port=9999, store="/s", config=None, intercept=["a.b"],
                         upstream_ca=None, insecure_upstream=True, sets=["stream_large_bodies=1m"])
    assert "connection_strategy=lazy" in args and "audit_intercept=a.b" in args
    assert "ssl_insecure=true" in args and "stream_large_bodies=1m" in args
    with pytest.raises(UsageError):
        mitmdump_args(host="h", port=1, store="/s", config=None, intercept=[], upstream_ca=Path("/x"),
                      insecure_upstream=True, sets=[])
    with pytest.raises(UsageError, match="option=value"):
        mitmdump_args(host="h", port=1, store="/s", config=None, intercept=[], upstream_ca=None,
                      insecure_upstream=False, sets=["novalue"])
