"""Delivering alerts: Slack incoming webhook, generic JSON webhook, e-mail (``reports.mail``).

Every text that leaves the machine is built from the rule and the numbers only (never a body or
an error message) and then passes through the configured ``Redactor``, so a user id that is an
e-mail address, or a key pasted into a model name, reaches nobody. HTTP uses ``urllib`` with a
10 s timeout; a failure is a ``DeliveryError`` with one line that never shows the webhook URL
(a Slack webhook URL is itself a secret) — only its host.
"""

from __future__ import annotations

import html
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from llm_proxy.alerts.evaluate import Fired
from llm_proxy.errors import AuditError

__all__ = ["HTTP_TIMEOUT_S", "DeliveryError", "Notifier", "iso"]

HTTP_TIMEOUT_S = 10.0


class DeliveryError(AuditError):
    """A notification could not be delivered (one line, no secret)."""


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


@dataclass(slots=True)
class Notifier:
    """Sends alerts to channels. ``redact`` is ``Redactor.redact_text`` (text -> (text, counts))."""

    redact: Any
    smtp: Mapping[str, Any]
    store: str

    def _r(self, text: str) -> str:
        return self.redact(text)[0]

    # --- message building -----------------------------------------------------------------------
    def summary(self, f: Fired) -> str:
        r = f.rule
        group = f" for {r.by}={f.group}" if r.by else ""
        return self._r(f"ALERT {r.name}{group}: {r.metric} = {_fmt(f.value)} {r.op} "
                       f"{_fmt(r.threshold)} over {r.window_text} ({f.requests} requests, "
                       f"{iso(f.since)} to {iso(f.until)}, store {self.store})")

    def payload(self, f: Fired) -> dict[str, Any]:
        r = f.rule
        return {"type": "alert", "rule": self._r(r.name), "metric": r.metric, "op": r.op,
                "value": f.value, "threshold": r.threshold, "by": r.by,
                "group": None if f.group is None else self._r(f.group),
                "requests": f.requests, "window": r.window_text, "since": iso(f.since),
                "until": iso(f.until), "store": self._r(self.store),
                "text": self.summary(f)}

    def test_payload(self, channel: str, rule: str | None, now: datetime) -> dict[str, Any]:
        origin = f"rule {rule!r}" if rule else "every configured channel"
        text = self._r(f"[TEST] llm-audit alert delivery test ({channel}, {origin}, store "
                       f"{self.store}, {iso(now)}): no action needed.")
        return {"type": "test", "rule": None if rule is None else self._r(rule),
                "metric": None, "value": None, "threshold": None, "group": None,
                "window": None, "since": iso(now), "until": iso(now),
                "store": self._r(self.store), "text": text}

    # --- delivery --------------------------------------------------------------------------------
    def send(self, channel: str, settings: Mapping[str, Any], payload: dict[str, Any]) -> None:
        """Deliver one payload (from ``payload`` or ``test_payload``) to one channel."""
        if channel == "slack":
            self._post("Slack webhook", settings["webhook"], _slack_body(payload), {})
        elif channel == "webhook":
            self._post("webhook", settings["url"], payload, dict(settings.get("headers", {})))
        elif channel == "email":
            self._mail(settings["to"], payload)
        else:  # validated in rules.py
            raise DeliveryError(f"unknown alert channel {channel!r}")

    def _post(self, label: str, url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        host = urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1] or "?"
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "llm-audit-alerts", **headers})
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310
                resp.read(65536)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"alert delivery to {label} ({host}) failed: HTTP "
                                f"{exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"alert delivery to {label} ({host}) failed: "
                                f"{str(reason).splitlines()[0] if str(reason) else type(exc).__name__}"
                                ) from None

    def _mail(self, to: list[str], payload: dict[str, Any]) -> None:
        from llm_proxy.errors import ConfigError
        from llm_proxy.reports.mail import SmtpSettings, build_message, send

        try:
            settings = SmtpSettings.from_config(self.smtp)
            text = payload["text"]
            subject = ("[llm-audit] " + text)[:150]
            lines = [text, ""]
            if payload["type"] == "alert":
                lines += [f"{k}: {payload[k]}" for k in ("rule", "metric", "value", "threshold",
                                                          "group", "window", "since", "until",
                                                          "store") if payload[k] is not None]
            body = "\n".join(lines) + "\n"
            msg = build_message(sender=settings.sender, to=to, subject=subject,
                                text_body=body, html_body=f"<pre>{html.escape(body)}</pre>")
            send(settings, msg)
        except ConfigError as exc:
            raise DeliveryError(f"alert delivery by e-mail failed: {exc}") from None


def _slack_body(payload: dict[str, Any]) -> dict[str, Any]:
    text = payload["text"]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(text)}}]
    if payload["type"] == "alert":
        fields = [("Rule", payload["rule"]), ("Metric", payload["metric"]),
                  ("Value", _fmt(payload["value"])),
                  ("Threshold", f"{payload['op']} {_fmt(payload['threshold'])}"),
                  ("Window", payload["window"])]
        if payload["group"] is not None:
            fields.append(("Group", f"{payload['by']}={payload['group']}"))
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{k}*\n{_slack_escape(str(v))}"} for k, v in fields]})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(
            f"{payload['since']} to {payload['until']} · store {payload['store']}")}]})
    return {"text": _slack_escape(text), "blocks": blocks}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
