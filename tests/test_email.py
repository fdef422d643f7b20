"""``--email``: the report goes out through a real SMTP server (aiosmtpd on loopback).

One server speaks STARTTLS with a throw-away certificate and requires a login, as a corporate
relay would; the client trusts it through ``smtp.cafile``. The received message is parsed
back: HTML body with the numbers, the CSV and the full HTML report attached.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import ssl
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from test_report_support import SINCE, UNTIL, cli, fill_known_store, llm_audit

from llm_proxy.cli.proxy_process import free_port
from llm_proxy.errors import ConfigError
from llm_proxy.reports.mail import SmtpSettings


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


def _certificate(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and \
        (auth_data.login, auth_data.password) == (b"reports", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@pytest.fixture
def smtp_server(tmp_path: Path):
    """A STARTTLS + AUTH SMTP server on 127.0.0.1; yields (inbox, port, CA file)."""
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=_authenticator,
                            auth_required=True)
    controller.start()
    try:
        yield inbox, port, cert
    finally:
        controller.stop()


def _config(tmp_path: Path, port: int, cafile: Path) -> Path:
    lines = ['host = "127.0.0.1"', f"port = {port}", 'from = "llm-audit@example.com"',
             'username = "reports"', 'password = "s3cret"', f'cafile = "{cafile}"']
    path = tmp_path / "config.toml"
    path.write_text("[smtp]\n" + "\n".join(lines) + "\n")
    return path


def test_cost_report_is_mailed_with_html_body_and_csv(store: Path, tmp_path: Path, smtp_server):
    inbox, port, ca = smtp_server
    fill_known_store(store)
    config = _config(tmp_path, port, ca)
    res = llm_audit("report", "cost", "--store", str(store), "--config", str(config),
                    "--since", SINCE, "--until", UNTIL, "--email", "finance@example.com",
                    "--email", "lead@example.com")
    assert res.returncode == 0, res.stderr
    assert "sent the cost report to finance@example.com, lead@example.com" in res.stderr
    assert res.stdout == ""  # cron mails nothing extra
    [(rcpt, msg)] = inbox.messages
    assert rcpt == ["finance@example.com", "lead@example.com"]
    assert msg["Subject"].startswith("LLM cost report (by model")
    assert msg["From"] == "llm-audit@example.com"
    html = msg.get_body(("html",)).get_content()
    assert "$0.0381" in html and "claude-sonnet-4-5" in html and "corp-llm-13b" in html
    assert "<svg" not in html  # mail clients drop SVG: the body is tables
    text = msg.get_body(("plain",)).get_content()
    assert "# Cost report" in text
    attachments = {part.get_filename(): part for part in msg.iter_attachments()}
    csv_name = next(n for n in attachments if n.endswith(".csv"))
    assert csv_name.startswith("llm-cost-by-model-")
    rows = list(csv.DictReader(io.StringIO(attachments[csv_name].get_content())))
    assert {r["group"] for r in rows} >= {"gpt-4o", "claude-sonnet-4-5", "o4-mini"}
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(0.03805)
    page = next(p for n, p in attachments.items() if n.endswith(".html")).get_content()
    assert "<svg" in page and "Cost over time" in page


def test_dashboard_mail_and_output_file(store: Path, tmp_path: Path, smtp_server):
    inbox, port, ca = smtp_server
    fill_known_store(store)
    out = tmp_path / "dash.html"
    code, _o, err = cli("dashboard", "--store", str(store), "--since", SINCE, "--until", UNTIL,
                        "--config", str(_config(tmp_path, port, ca)), "--output", str(out),
                        "--email", "sre@example.com")
    assert code == 0, err
    assert out.exists()
    [(_rcpt, msg)] = inbox.messages
    names = sorted(p.get_filename() for p in msg.iter_attachments())
    assert sum(n.endswith(".csv") for n in names) == 4  # usage, cost, latency, errors
    assert any(n.startswith("llm-dashboard-") and n.endswith(".html") for n in names)


def test_wrong_password_is_one_line_exit_2(store: Path, tmp_path: Path, smtp_server):
    inbox, port, ca = smtp_server
    fill_known_store(store)
    config = _config(tmp_path, port, ca)
    config.write_text(config.read_text().replace("s3cret", "wrong"))
    res = llm_audit("report", "usage", "--store", str(store), "--config", str(config),
                    "--email", "x@example.com")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "refused the login" in res.stderr
    assert inbox.messages == []


def test_untrusted_certificate_is_refused(store: Path, tmp_path: Path, smtp_server):
    _inbox, port, _ca = smtp_server
    fill_known_store(store)
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _key = _certificate(other)  # a CA the client was not told to trust
    res = llm_audit("report", "usage", "--store", str(store), "--config",
                    str(_config(tmp_path, port, other_ca)), "--email", "x@example.com")
    assert res.returncode == 2
    assert "cannot send e-mail through 127.0.0.1" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("smtp,needle", [
    ({}, "--email needs an SMTP server"),
    ({"from": "a@example.com"}, "'smtp.host' is required"),
    ({"host": "mail", "from": "nobody"}, "'smtp.from' must be"),
    ({"host": "mail", "from": "a@example.com", "port": "25"}, "'smtp.port' must be"),
    ({"host": "mail", "from": "a@example.com", "relay": "x"}, "'smtp.relay' is unknown"),
])
def test_bad_smtp_config_names_the_key(smtp: dict, needle: str):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        SmtpSettings.from_config(smtp)


def test_bad_address_fails_before_querying(store: Path):
    fill_known_store(store)
    code, _out, err = cli("report", "cost", "--store", str(store), "--email", "not-an-address")
    assert code == 2 and "'not-an-address' is not an e-mail address" in err
