"""Sending reports by e-mail through the SMTP server in the configuration (``smtp = {…}``).

Config keys (TOML table ``[smtp]`` or ``smtp = {...}`` in a Python config):
``host`` (required), ``port`` (587, or 465 with ``ssl``), ``username``, ``password`` (or the
environment variable ``LLM_AUDIT_SMTP_PASSWORD``, to keep it out of the file), ``from``
(required), ``starttls`` (true), ``ssl`` (false: implicit TLS, port 465), ``timeout`` (30 s),
``cafile`` (a CA bundle to trust for the server's certificate, e.g. a corporate relay's CA).
Failures raise ``ConfigError`` with the server and the reason, so cron mails one line.
"""

from __future__ import annotations

import os
import smtplib
import ssl as _ssl  # the settings have a field named ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from llm_proxy.errors import ConfigError, UsageError

__all__ = ["Attachment", "SmtpSettings", "build_message", "check_addresses", "send"]

_KEYS = frozenset({"host", "port", "username", "password", "from", "starttls", "ssl", "timeout",
                   "cafile"})


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    mime: str  # e.g. "text/csv"
    data: bytes


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the SMTP server; built from the config's ``smtp`` table."""

    host: str
    sender: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    ssl: bool = False
    timeout: float = 30.0
    cafile: str | None = None

    def tls_context(self) -> _ssl.SSLContext:
        """Certificate-verifying TLS (the system CAs, or ``cafile``)."""
        return _ssl.create_default_context(cafile=self.cafile)

    @classmethod
    def from_config(cls, smtp: Mapping[str, Any] | None) -> SmtpSettings:
        """Validate the ``smtp`` config table; a missing or bad key is a ``ConfigError``."""
        if not smtp:
            raise ConfigError("--email needs an SMTP server: set smtp = {host = \"…\", "
                              "from = \"reports@example.com\"} in the config")
        for key in smtp:
            if key not in _KEYS:
                raise ConfigError(f"config key 'smtp.{key}' is unknown: use "
                                  f"{', '.join(sorted(_KEYS))}")
        host, sender = smtp.get("host"), smtp.get("from")
        if not isinstance(host, str) or not host:
            raise ConfigError("config key 'smtp.host' is required (the SMTP server's name)")
        if not isinstance(sender, str) or "@" not in sender:
            raise ConfigError("config key 'smtp.from' must be the sender's e-mail address")
        use_ssl = smtp.get("ssl", False)
        port = smtp.get("port", 465 if use_ssl else 587)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"config key 'smtp.port' must be a port number, got {port!r}")
        for key in ("starttls", "ssl"):
            if not isinstance(smtp.get(key, False), bool):
                raise ConfigError(f"config key 'smtp.{key}' must be true or false")
        timeout = smtp.get("timeout", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError("config key 'smtp.timeout' must be a positive number of seconds")
        cafile = smtp.get("cafile")
        if cafile is not None and not (isinstance(cafile, str) and os.path.isfile(cafile)):
            raise ConfigError(f"config key 'smtp.cafile' must name a CA file, got {cafile!r}")
        password = smtp.get("password") or os.environ.get("LLM_AUDIT_SMTP_PASSWORD") or None
        return cls(host=host, sender=sender, port=port, username=smtp.get("username") or None,
                   password=password, starttls=bool(smtp.get("starttls", True)),
                   ssl=bool(use_ssl), timeout=float(timeout), cafile=cafile)


def check_addresses(addresses: Sequence[str]) -> list[str]:
    """The recipients, or a ``UsageError`` naming one that is not an address."""
    for a in addresses:
        if "@" not in a or any(ch.isspace() for ch in a) or a.startswith("@") or a.endswith("@"):
            raise UsageError(f"--email {a!r} is not an e-mail address")
    return list(addresses)


def build_message(*, sender: str, to: Sequence[str], subject: str, html_body: str,
                  text_body: str, attachments: Sequence[Attachment] = ()) -> EmailMessage:
    """A multipart message: plain text and HTML alternatives, then the attachments."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    msg.set_content(text_body)
    msg.add_alternative(html_body, subtype="html")
    for att in attachments:
        maintype, _, subtype = att.mime.partition("/")
        msg.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=att.filename)
    return msg


def send(settings: SmtpSettings, message: EmailMessage) -> None:
    """Deliver ``message``; any SMTP, TLS or network failure is one ``ConfigError`` line."""
    where = f"{settings.host}:{settings.port}"
    try:
        if settings.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port,
                                                    timeout=settings.timeout,
                                                    context=settings.tls_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            client.ehlo()
            if settings.starttls and not settings.ssl:
                if not client.has_extn("starttls"):
                    raise ConfigError(f"SMTP server {where} does not offer STARTTLS: set "
                                      "smtp.starttls = false only for a trusted local relay")
                client.starttls(context=settings.tls_context())
                client.ehlo()
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(message)
    except ConfigError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise ConfigError(f"SMTP server {where} refused the login for "
                          f"{settings.username!r}: {exc.smtp_code} (check smtp.username and "
                          "smtp.password)") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise ConfigError(f"SMTP server {where} refused the recipients "
                          f"{', '.join(exc.recipients)}") from None
    except (TimeoutError, smtplib.SMTPException, OSError, _ssl.SSLError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot send e-mail through {where}: {reason} (check config key "
                          "'smtp')") from None
