"""Config values of the wrong type are one-line errors naming the key; credential headers
(built in or configured) never reach a record in clear."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llm_proxy.addon.credentials import fingerprint
from llm_proxy.addon.record import RecordBuilder
from llm_proxy.audit import AuditConfig, LogExporter, load_config
from llm_proxy.cli.app import app
from llm_proxy.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

# Every AuditConfig field with a value of the wrong type, each expressible in TOML and Python.
WRONG_TYPES: dict[str, Any] = {
    "log_requests": 1,  # an int is not a bool
    "log_responses": "yes",
    "log_errors": 0,
    "log_security": [True],
    "retention_days": True,  # a bool is not an int
    "archive_after": 1.5,
    "archive_path": 7,
    "redact_pii": "true",
    "redact_headers": "authorization",  # a string is not a list of strings
    "redact_kinds": ["email", 3],
    "redact_disabled_kinds": {"email": True},
    "redact_rules": ["EMP-[0-9]+"],
    "redact_allow": [1],
    "redact_pseudonyms": "no",
    "pseudonym_secret": 123456789,
    "redact_fields": "drop",
    "metadata_only": 1,
    "signing_key_path": True,
    "exporters": "s3",
    "store": 5,
    "intercept": "api.example.com",
    "max_body_bytes": 1.5,
    "user_header": ["x-user-id"],
    "instance_name": 7,
    "ack": True,
    "fsync": False,
    "fsync_interval_s": "1s",
    "flush_records": 10.0,
    "flush_seconds": True,  # a bool is not a number
    "prices": ["prices.toml"],
    "alerts": {"name": "r"},
    "smtp": "mail.example.com",
}


def _toml(value: Any) -> str:
    """A TOML literal for the plain values of the table above."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _write(tmp_path: Path, loader: str, key: str, value: Any) -> Path:
    if loader == "toml":
        path = tmp_path / "c.toml"
        path.write_text(f"{key} = {_toml(value)}\n")
    else:
        path = tmp_path / "c.py"
        path.write_text(f"from llm_proxy.audit import AuditConfig\nconfig = AuditConfig({key}={value!r})\n")
    return path


def _assert_one_line_naming(message: str, key: str) -> None:
    assert "\n" not in message.strip(), message
    assert f"'{key}'" in message, message
    assert "Traceback" not in message


def test_the_table_covers_every_field():
    assert set(WRONG_TYPES) == {f.name for f in dataclasses.fields(AuditConfig)}


@pytest.mark.parametrize("loader", ["toml", "py"])
@pytest.mark.parametrize("key", sorted(WRONG_TYPES))
def test_wrong_type_is_one_line_naming_key_expected_and_given(tmp_path: Path, key: str, loader: str):
    path = _write(tmp_path, loader, key, WRONG_TYPES[key])
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    _assert_one_line_naming(message, key)
    assert message.startswith(f"{path}: ") and " must be " in message and ", got " in message
    if key == "pseudonym_secret":  # a secret of the wrong type is still not echoed
        assert "123456789" not in message


@pytest.mark.parametrize("loader", ["toml", "py"])
@pytest.mark.parametrize("key", sorted(WRONG_TYPES))
def test_wrong_type_through_the_cli_is_exit_2(tmp_path: Path, key: str, loader: str,
                                              monkeypatch: pytest.MonkeyPatch):
    import mitmproxy.tools.main

    def started(*_: Any) -> None:
        raise AssertionError("the config was accepted and mitmdump started")

    monkeypatch.setattr(mitmproxy.tools.main, "mitmdump", started)
    path = _write(tmp_path, loader, key, WRONG_TYPES[key])
    res = CliRunner().invoke(app, ["proxy", "--store", str(tmp_path / "s"), "--config", str(path)])
    assert res.exit_code == 2, (res.output, res.exception)
    _assert_one_line_naming(res.stderr, key)


@pytest.mark.parametrize("loader", ["toml", "py"])
def test_wrong_type_in_a_real_process(tmp_path: Path, loader: str):
    path = _write(tmp_path, loader, "user_header", ["x-user-id"])
    res = subprocess.run([sys.executable, "-m", "llm_proxy", "proxy", "--store", str(tmp_path / "s"),
                          "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    _assert_one_line_naming(res.stderr, "user_header")
    assert "must be str, got list ['x-user-id']" in res.stderr


@pytest.mark.parametrize("kwargs,needle", [
    ({"user_header": ["x-user-id"]}, "'user_header' must be str, got list ['x-user-id']"),
    ({"redact_fields": "drop"}, "'redact_fields' must be table of str values, got str 'drop'"),
    ({"instance_name": 7}, "'instance_name' must be str or None, got int 7"),
    ({"retention_days": True}, "'retention_days' must be int, got bool True"),
    ({"log_errors": 1}, "'log_errors' must be bool, got int 1"),
    ({"redact_headers": ["a", 2]}, "(item 2 is int 2)"),
    ({"redact_rules": {"r": 1}}, "('r' is int 1)"),
    ({"exporters": [{"kind": "s3"}]}, "'exporters' must be list of LogExporter(...)"),
    ({"alerts": ["x"]}, "'alerts' must be list of tables"),
    ({"flush_seconds": math.nan}, "'flush_seconds' must be a positive number"),
    ({"redact_fields": {"request_body": "hide"}}, "'redact_fields.request_body' must be redact"),
])
def test_messages_say_what_was_expected_and_given(kwargs: dict, needle: str):
    with pytest.raises(ConfigError) as err:
        AuditConfig(**kwargs)
    assert needle in str(err.value)


def test_right_types_still_load(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('flush_seconds = 10\nredact_kinds = ["email"]\ninstance_name = "a"\n'
                    'redact_fields = { request_body = "drop" }\nalerts = []\nsmtp = { port = 25 }\n')
    cfg = load_config(path)
    assert cfg.flush_seconds == 10 and cfg.redact_fields == {"request_body": "drop"}
    seed = load_config(ROOT / "examples" / "audit_log_config.py")
    assert seed.retention_days == 2555 and len(seed.exporters) == 2


def test_a_path_object_is_a_fine_path_in_a_python_config():
    cfg = AuditConfig(store=Path("/srv/audit"), prices=Path("/etc/prices.toml"))  # type: ignore[arg-type]
    assert cfg.store == "/srv/audit" and cfg.prices == "/etc/prices.toml"


def test_python_config_changed_after_building_is_checked(tmp_path: Path):
    path = tmp_path / "c.py"
    path.write_text("from llm_proxy.audit import AuditConfig\n"
                    "config = AuditConfig()\nconfig.user_header = ['x-user-id']\n")
    with pytest.raises(ConfigError, match=r"c\.py: config key 'user_header' must be str"):
        load_config(path)


@pytest.mark.parametrize("text,needle", [
    ('exporters = ["s3"]', "each [[exporters]] entry must be a table, got str 's3'"),
    ('exporters = "s3"', "'exporters' must be an array of tables"),
    ("[[exporters]]\nkind = 7\nbucket = 'b'", "each [[exporters]] entry needs kind"),
    ("[[exporters]]\nkind = 's3'\nbucket = 5", "exporter 's3': bucket must be str, got int 5"),
    ("[[exporters]]\nkind = 'webhook'\nendpoint = ['x']", "endpoint must be str, got list"),
])
def test_bad_exporter_tables_are_one_line(tmp_path: Path, text: str, needle: str):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_log_exporter_checks_its_types():
    with pytest.raises(ConfigError, match="exporter kind must be str .*got int 7"):
        LogExporter(7)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="bucket must be str"):
        LogExporter("s3", bucket=["b"])


# --- credential headers ------------------------------------------------------------------------
SESSION_TOKEN = ("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampleSessionToken"
                 "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _bedrock_capture(*extra: tuple[bytes, bytes]) -> dict:
    auth = (b"AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEYID0001/20250101/us-east-1/bedrock/"
            b"aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=abc123")
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hello"}]}
    return {
        "fid": "flow-b", "t0": 1_764_140_000.0, "t1": 1_764_140_000.05, "t2": 1_764_140_000.2,
        "method": "POST", "host": "bedrock-runtime.us-east-1.amazonaws.com", "port": 443,
        "path": "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke", "hv": "HTTP/1.1",
        "cip": "10.0.0.5",
        "rqh": ((b"Authorization", auth), (b"Content-Type", b"application/json"),
                (b"X-Amz-Date", b"20250101T000000Z"), *extra),
        "rqb": json.dumps(body).encode(), "rql": 100, "status": 200,
        "rsh": ((b"content-type", b"application/json"),),
        "rsb": b'{"id":"m","type":"message","content":[],"usage":{"input_tokens":3,"output_tokens":1}}',
        "rsl": 80,
    }


def _request_headers(record: dict) -> dict:
    return json.loads(record["request_headers"])


@pytest.mark.parametrize("header", ["X-Amz-Security-Token", "Ocp-Apim-Subscription-Key"])
def test_aws_session_token_is_a_fingerprint(header: str):
    """Bedrock with temporary credentials; Azure OpenAI behind API Management."""
    cap = _bedrock_capture((header.encode(), SESSION_TOKEN.encode()))
    record = RecordBuilder.from_config(AuditConfig(), "unit").build(cap)
    assert record["error_trace"] is None
    assert SESSION_TOKEN not in json.dumps(record, default=str)
    assert SESSION_TOKEN[-24:] not in json.dumps(record, default=str)
    assert _request_headers(record)[header.lower()] == f"[REDACTED {fingerprint(SESSION_TOKEN)}]"


def test_configured_redact_header_is_a_fingerprint_in_the_record():
    secret = "internal-team-token-0123456789abcdef"
    cap = _bedrock_capture((b"X-Internal-Token", secret.encode()))
    cfg = AuditConfig(redact_headers=["X-Internal-Token"])
    record = RecordBuilder.from_config(cfg, "unit").build(cap)
    assert secret not in json.dumps(record, default=str)
    assert _request_headers(record)["x-internal-token"] == f"[REDACTED {fingerprint(secret)}]"
    plain = RecordBuilder.from_config(AuditConfig(), "unit").build(cap)
    assert _request_headers(plain)["x-internal-token"] == secret  # only when configured
