"""``llm-audit alerts check|test``: rules over a real store, real deliveries on loopback.

The store is filled through the real journal and writer. E-mail goes through a real SMTP server
(aiosmtpd on 127.0.0.1). Slack itself cannot run here (no network), so a loopback HTTP receiver
(``http.server`` in a thread on 127.0.0.1) stands in for the Slack incoming webhook and for the
generic webhook: it records every POST so the exact payloads can be asserted.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from llm_proxy.alerts.evaluate import STATE_FILE
from llm_proxy.alerts.rules import compare, parse_alerts
from llm_proxy.cli import alerts as alerts_cli
from llm_proxy.cli.proxy_process import free_port
from llm_proxy.errors import ConfigError, UsageError
from llm_proxy.schema import empty_record
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.writer import replay

PLANTED_EMAIL = "bob.secret@example.com"
PLANTED_KEY = "sk-proj-Abc123XyZ789Qwe456Rty012Uio345"


# --- fixtures -------------------------------------------------------------------------------------
def _app() -> typer.Typer:
    app = typer.Typer()
    alerts_cli.register(app)
    return app


def run(*args: str):
    return CliRunner().invoke(_app(), ["alerts", *args], catch_exceptions=True)


def fill(store: Path, minutes_ago: float = 2.0) -> None:
    """gpt-4o: 30 requests, 6 rate-limited (error rate 0.2); claude: 30 requests, 1 server error
    (0.033). The error messages hold a planted e-mail address and API key; 45 requests
    come from a user whose id is an e-mail address."""
    base = int((datetime.now(UTC) - timedelta(minutes=minutes_ago)).timestamp() * 1_000_000)
    rows = []
    for i in range(60):
        r = empty_record()
        model = "gpt-4o" if i < 30 else "claude-sonnet-4"
        r.update(id=f"01ALERT{i:04d}", ts=base + i, request_model=model, response_model=model,
                 provider="openai" if i < 30 else "anthropic", endpoint="/v1/chat/completions",
                 latency_ms=100.0 + i, status_code=200, input_tokens=10, output_tokens=5,
                 total_tokens=15, cost_usd=0.001, user_id=PLANTED_EMAIL if i < 45 else "u2")
        if i < 6:
            r.update(status_code=429, error_type="rate_limit",
                     error_message=f"quota exceeded for {PLANTED_EMAIL} with key {PLANTED_KEY}")
        if i == 40:
            r.update(status_code=503, error_type="server_error",
                     error_message=f"upstream down, key {PLANTED_KEY}")
        rows.append(r)
    seg = JournalSegment(store / "journal", "h", 1, fsync="never", fsync_interval_s=1)
    seg.append(b"".join(encode_record(r) for r in rows), len(rows))
    seg.close()
    replay(store)


class Receiver:
    """A loopback HTTP server that keeps every POST; paths starting /fail answer 500."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(500 if self.path.startswith("/fail") else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str) -> list[dict]:
        return [body for p, _, body in self.posts if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content,
                              message_from_bytes(envelope.original_content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def write_config(tmp_path: Path, receiver: Receiver, smtp_port: int, *, rules: str = "",
                 webhook_path: str = "/hook") -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(f"""
[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "llm-audit@example.com"
starttls = false
timeout = 10

[[alerts]]
channels = {{slack = {{webhook = "{receiver.url}/slack/T000/B000/XXXX"}}, webhook = {{url = "{receiver.url}{webhook_path}", headers = {{X-Token = "t0ken"}}}}, email = {{to = ["sec@example.com"]}}}}

[[alerts]]
name = "error-rate"
metric = "error_rate"
op = ">"
threshold = 0.05
window = "15m"
by = "model"
min_requests = 20
notify = ["slack", "webhook", "email"]

[[alerts]]
name = "too-many-errors"
metric = "errors"
op = ">"
threshold = 100
window = "15m"
notify = ["slack"]

[[alerts]]
name = "busy-user"
metric = "requests"
op = ">="
threshold = 20
window = "15m"
by = "user"
notify = ["webhook"]
{rules}""")
    return path


def _everything(receiver: Receiver, inbox: Inbox, *extra: str) -> str:
    parts = [json.dumps(body) for _, _, body in receiver.posts]
    parts += [raw.decode("utf-8", "replace") for _, raw, _ in inbox.messages]
    return "\n".join([*parts, *extra])


# --- rules: pure validation -----------------------------------------------------------------------
@pytest.mark.parametrize("rule,needle", [
    ({"name": "r", "metric": "latency", "threshold": 1}, "'r'.*'metric'"),
    ({"name": "r", "metric": "errors", "op": "=>", "threshold": 1}, "'r'.*'op'"),
    ({"name": "r", "metric": "errors", "threshold": 1, "by": "team"}, "'r'.*'by'"),
    ({"name": "r", "metric": "errors", "threshold": 1, "notify": ["pager"]}, "'r'.*'notify'.*pager"),
    ({"name": "r", "metric": "errors", "threshold": 1, "notify": ["slack"]}, "'r'.*channels.slack"),
    ({"name": "r", "metric": "errors", "threshold": 1, "window": "soon"}, "'r'.*'window'"),
    ({"name": "r", "metric": "errors", "threshold": 1, "window": "0m"}, "'r'.*'window'"),
    ({"name": "r", "metric": "errors"}, "'r'.*'threshold' is required"),
    ({"name": "r", "metric": "errors", "threshold": "high"}, "'r'.*'threshold'"),
    ({"name": "r", "metric": "errors", "threshold": 1, "treshold": 2}, "'r'.*'treshold'"),
    ({"name": "r", "threshold": 1}, "'r'.*'metric' is required"),
    ({"metric": "errors", "threshold": 1}, "'name' is required"),
    ({"name": "r", "metric": "errors", "threshold": 1, "min_requests": -1}, "'r'.*'min_requests'"),
])
def test_bad_rule_names_rule_and_key(rule: dict, needle: str):
    with pytest.raises(ConfigError, match=needle):
        parse_alerts([rule])


def test_bad_channels_and_email_without_smtp():
    with pytest.raises(ConfigError, match="channels.slack"):
        parse_alerts([{"channels": {"slack": {"webhook": "not a url"}}}])
    with pytest.raises(ConfigError, match="channels.sms"):
        parse_alerts([{"channels": {"sms": {}}}])
    with pytest.raises(ConfigError, match="'r'.*smtp"):
        parse_alerts([{"channels": {"email": {"to": ["a@example.com"]}}},
                      {"name": "r", "metric": "errors", "threshold": 1, "notify": ["email"]}])
    with pytest.raises(ConfigError, match="'r'.*used twice"):
        parse_alerts([{"name": "r", "metric": "errors", "threshold": 1}] * 2)
    rules, shared = parse_alerts([
        {"channels": {"webhook": {"url": "http://127.0.0.1:1/x"}}},
        {"name": "r", "metric": "cost_usd", "threshold": 5, "notify": "webhook",
         "channels": {"webhook": {"url": "http://127.0.0.1:1/own"}}}])
    assert rules[0].channels.webhook["url"].endswith("/own") and shared.webhook["url"].endswith("/x")
    assert compare(None, ">", 0) is False and compare(0.2, ">", 0.05) and not compare(5, "<", 5)


# --- check ----------------------------------------------------------------------------------------
def test_check_fires_per_group_notifies_and_redacts(store: Path, tmp_path: Path, receiver, smtp):
    inbox, port = smtp
    fill(store)
    cfg = write_config(tmp_path, receiver, port)
    res = run("check", "--store", str(store), "--config", str(cfg), "--format", "json")
    assert res.exit_code == 0, (res.output, res.exception)
    fired = json.loads(res.stdout)
    by_rule = {(f["rule"], f["group"]): f for f in fired}
    # per group: gpt-4o (0.2) fires, claude (1/30 = 0.033) stays under 0.05
    assert ("error-rate", "gpt-4o") in by_rule
    assert by_rule[("error-rate", "gpt-4o")]["value"] == pytest.approx(0.2)
    assert not any(f["group"] == "claude-sonnet-4" for f in fired if f["rule"] == "error-rate")
    # 7 errors is below the threshold of 100: no alert
    assert not any(f["rule"] == "too-many-errors" for f in fired)
    # per-user: the user id is an e-mail address, shown only redacted
    assert ("busy-user", "[EMAIL]") in by_rule and len(fired) == 2
    assert by_rule[("error-rate", "gpt-4o")]["notified"] == "slack,webhook,email"

    slack = [b for p, _, b in receiver.posts if p.startswith("/slack/")]
    assert len(slack) == 1
    assert set(slack[0]) == {"text", "blocks"} and "error-rate" in slack[0]["text"]
    assert "gpt-4o" in slack[0]["text"] and slack[0]["blocks"][0]["type"] == "section"
    hooks = receiver.on("/hook")
    assert {h["rule"] for h in hooks} == {"error-rate", "busy-user"}
    err = next(h for h in hooks if h["rule"] == "error-rate")
    assert err["metric"] == "error_rate" and err["value"] == pytest.approx(0.2)
    assert err["threshold"] == 0.05 and err["group"] == "gpt-4o" and err["window"] == "15m"
    assert err["since"].endswith("Z") and err["until"].endswith("Z")
    assert err["store"] == str(store)
    assert next(h for h in hooks if h["rule"] == "busy-user")["group"] == "[EMAIL]"
    assert all(hdrs.get("X-Token") == "t0ken" for p, hdrs, _ in receiver.posts if p == "/hook")

    assert len(inbox.messages) == 1
    rcpt, _, msg = inbox.messages[0]
    assert rcpt == ["sec@example.com"] and "error-rate" in msg["Subject"]
    assert "error_rate" in msg.get_body(("plain",)).get_content()

    everything = _everything(receiver, inbox, res.stdout)
    assert PLANTED_EMAIL not in everything and PLANTED_KEY not in everything
    assert "quota exceeded" not in everything  # no error messages, no bodies

    mode = stat.S_IMODE(os.stat(store / STATE_FILE).st_mode)
    assert mode == 0o600
    assert PLANTED_EMAIL not in (store / STATE_FILE).read_text()


def test_no_renotify_within_window(store: Path, tmp_path: Path, receiver, smtp):
    inbox, port = smtp
    fill(store)
    cfg = write_config(tmp_path, receiver, port)
    args = ("check", "--store", str(store), "--config", str(cfg), "--format", "json")
    assert run(*args).exit_code == 0
    posts, mails = len(receiver.posts), len(inbox.messages)
    assert posts == 3 and mails == 1
    second = run(*args)
    assert second.exit_code == 0
    assert len(receiver.posts) == posts and len(inbox.messages) == mails  # suppressed
    assert {f["notified"] for f in json.loads(second.stdout)} == {""}  # still reported as fired
    third = run(*args, "--renotify")
    assert third.exit_code == 0
    assert len(receiver.posts) == 2 * posts and len(inbox.messages) == 2 * mails


def test_fail_on_alert_and_quiet_check(store: Path, tmp_path: Path, receiver, smtp):
    _, port = smtp
    fill(store)
    cfg = write_config(tmp_path, receiver, port)
    res = run("check", "--store", str(store), "--config", str(cfg), "--fail-on-alert")
    assert res.exit_code == 1 and "error-rate" in res.stdout
    quiet = tmp_path / "quiet.toml"
    quiet.write_text('alerts = [{name = "cost", metric = "cost_usd", threshold = 100.0}]\n')
    res = run("check", "--store", str(store), "--config", str(quiet), "--fail-on-alert")
    assert res.exit_code == 0 and "no alerts fired" in res.stdout


def test_since_overrides_window(store: Path, tmp_path: Path):
    fill(store, minutes_ago=30)
    cfg = tmp_path / "c.toml"
    cfg.write_text('alerts = [{name = "rl", metric = "rate_limited", threshold = 5, op = ">=", '
                   'window = "10m"}, {name = "p95", metric = "p95_latency_ms", threshold = 150,'
                   ' window = "10m"}]\n')
    res = run("check", "--store", str(store), "--config", str(cfg), "--format", "json")
    assert json.loads(res.stdout) == []  # the records are older than the 10m window
    res = run("check", "--store", str(store), "--config", str(cfg), "--format", "json",
              "--since", "1h")
    fired = {f["rule"]: f for f in json.loads(res.stdout)}
    assert fired["rl"]["value"] == 6 and fired["p95"]["value"] > 150


def test_failed_delivery_is_one_line_exit_2_others_still_sent(store: Path, tmp_path: Path,
                                                              receiver, smtp):
    inbox, port = smtp
    fill(store)
    cfg = write_config(tmp_path, receiver, port, webhook_path="/fail/secret-token")
    res = run("check", "--store", str(store), "--config", str(cfg))
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2 and all("webhook" in line and "HTTP 500" in line for line in lines)
    assert "secret-token" not in res.stderr  # the URL itself is never printed
    assert len([p for p, _, _ in receiver.posts if p.startswith("/slack/")]) == 1
    assert len(inbox.messages) == 1
    # the failed channel is retried next run, the delivered ones are not
    before = len(receiver.posts)
    assert run("check", "--store", str(store), "--config", str(cfg)).exit_code == 2
    assert [p for p, _, _ in receiver.posts[before:]] == ["/fail/secret-token"] * 2


def test_bad_config_raises_config_error(store: Path, tmp_path: Path):
    fill(store)
    cfg = tmp_path / "c.toml"
    cfg.write_text('alerts = [{name = "x", metric = "errors", op = ">", window = "15m"}]\n')
    res = run("check", "--store", str(store), "--config", str(cfg))
    assert isinstance(res.exception, ConfigError) and "'threshold'" in str(res.exception)
    res = run("check", "--store", str(store), "--config", str(cfg), "--format", "csv")
    assert isinstance(res.exception, UsageError)


# --- test -----------------------------------------------------------------------------------------
def test_test_command_reaches_every_channel(store: Path, tmp_path: Path, receiver, smtp):
    inbox, port = smtp
    cfg = write_config(tmp_path, receiver, port)
    res = run("test", "--store", str(store), "--config", str(cfg))
    assert res.exit_code == 0, (res.output, res.exception)
    slack = [b for p, _, b in receiver.posts if p.startswith("/slack/")]
    assert len(slack) == 1 and slack[0]["text"].startswith("[TEST]")
    assert receiver.on("/hook")[0]["type"] == "test"
    assert receiver.on("/hook")[0]["text"].startswith("[TEST]")
    assert len(inbox.messages) == 1 and "[TEST]" in inbox.messages[0][2]["Subject"]
    before, mails = len(receiver.posts), len(inbox.messages)
    res = run("test", "--store", str(store), "--config", str(cfg), "--rule", "busy-user")
    assert res.exit_code == 0
    assert [p for p, _, _ in receiver.posts[before:]] == ["/hook"]
    assert len(inbox.messages) == mails
    res = run("test", "--store", str(store), "--config", str(cfg), "--rule", "nope")
    assert isinstance(res.exception, UsageError)


def test_registered_command_bad_config_is_one_line_exit_2(store: Path, tmp_path: Path):
    """Through the real ``llm-audit`` entry point, once ``llm_proxy.cli.alerts`` is registered."""
    from llm_proxy.cli.app import app

    if "alerts" not in {g.name for g in app.registered_groups}:
        pytest.skip("llm_proxy.cli.alerts is not registered in llm_proxy/cli/app.py yet")
    fill(store)
    cfg = tmp_path / "c.toml"
    cfg.write_text('alerts = [{name = "x", metric = "latency", threshold = 1}]\n')
    res = subprocess.run([sys.executable, "-m", "llm_proxy", "alerts", "check", "--store",
                          str(store), "--config", str(cfg)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "'x'" in res.stderr and "'metric'" in res.stderr and "Traceback" not in res.stderr
    quiet = tmp_path / "q.toml"
    quiet.write_text('alerts = [{name = "e", metric = "errors", threshold = 1}]\n')
    res = subprocess.run([sys.executable, "-m", "llm_proxy", "alerts", "check", "--store",
                          str(store), "--config", str(quiet), "--fail-on-alert"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "errors" in res.stdout
