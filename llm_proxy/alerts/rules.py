"""Alert rules: parsing, validation and SQL building. Pure: no I/O, no database.

The config's ``alerts`` list holds rules (tables with ``metric``) and at most one channel entry
(a table with ``channels`` and no ``metric``)::

    alerts = [
      {channels = {slack = {webhook = "https://hooks.slack.com/services/…"},
                   webhook = {url = "https://ops.example.com/hook", headers = {X-Token = "…"}},
                   email = {to = ["sec@example.com"]}}},
      {name = "error-rate", metric = "error_rate", op = ">", threshold = 0.05, window = "15m",
       by = "model", min_requests = 20, notify = ["slack", "email"]},
    ]

A rule may carry its own ``channels`` table too; its entries replace the shared ones of the same
kind for that rule. Every problem is a ``ConfigError`` naming the rule and the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from llm_proxy.errors import ConfigError
from llm_proxy.timeparse import parse_duration

__all__ = ["CHANNEL_KINDS", "GROUPS", "METRICS", "OPS", "Channels", "Rule", "compare",
           "metric_sql", "parse_alerts", "rule_sql"]

_ERROR = "(error_type IS NOT NULL OR coalesce(status_code, 0) >= 400)"
_TOKENS = ("coalesce(total_tokens, coalesce(input_tokens, 0) + coalesce(output_tokens, 0))")

# metric -> one SQL aggregate over the rows of ``flows`` in the window (and group)
METRICS: dict[str, str] = {
    "requests": "count(*)",
    "errors": f"count(*) FILTER (WHERE {_ERROR})",
    "error_rate": f"(count(*) FILTER (WHERE {_ERROR}))::DOUBLE / nullif(count(*), 0)",
    "rate_limited": "count(*) FILTER (WHERE status_code = 429)",
    "server_errors": "count(*) FILTER (WHERE status_code BETWEEN 500 AND 599)",
    "p95_latency_ms": "quantile_cont(latency_ms, 0.95)",
    "cost_usd": "coalesce(sum(cost_usd), 0)::DOUBLE",
    "tokens": f"coalesce(sum({_TOKENS}), 0)",
    "redactions": "count(*) FILTER (WHERE redactions IS NOT NULL AND redactions NOT IN ('', '{}'))",
    "unpriced": f"count(*) FILTER (WHERE cost_usd IS NULL AND {_TOKENS} > 0)",
}

# by -> the grouping expression
GROUPS: dict[str, str] = {
    "user": "user_id",
    "model": "coalesce(response_model, request_model)",
    "provider": "provider",
    "endpoint": "endpoint",
    "key": "key_id",
}

OPS = (">", ">=", "<", "<=", "==", "!=")
CHANNEL_KINDS = ("slack", "webhook", "email")

_RULE_KEYS = frozenset({"name", "metric", "op", "threshold", "window", "by", "min_requests",
                        "notify", "channels", "description"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Channels:
    """Channel settings: ``slack`` {webhook}, ``webhook`` {url, headers}, ``email`` {to}."""

    slack: Mapping[str, Any] | None = None
    webhook: Mapping[str, Any] | None = None
    email: Mapping[str, Any] | None = None

    def get(self, kind: str) -> Mapping[str, Any] | None:
        return getattr(self, kind)

    def configured(self) -> list[str]:
        return [k for k in CHANNEL_KINDS if self.get(k) is not None]

    def merged(self, override: Channels) -> Channels:
        return Channels(**{k: override.get(k) or self.get(k) for k in CHANNEL_KINDS})


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    metric: str
    op: str
    threshold: float
    window: timedelta
    window_text: str
    by: str | None = None
    min_requests: int = 0
    notify: tuple[str, ...] = ()
    channels: Channels = field(default_factory=Channels)
    description: str = ""


def compare(value: float | None, op: str, threshold: float) -> bool:
    """``value op threshold``; a missing value (no rows, no latency) never fires."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold,
            "<=": value <= threshold, "==": value == threshold,
            "!=": value != threshold}[op]


def metric_sql(metric: str) -> str:
    return METRICS[metric]


def rule_sql(rule: Rule) -> str:
    """A query with two parameters (since, until) returning ``(grp, value, n)`` rows."""
    group = GROUPS[rule.by] if rule.by else "NULL"
    sql = (f"SELECT {group} AS grp, {METRICS[rule.metric]} AS value, count(*) AS n "
           "FROM flows WHERE ts >= ? AND ts < ?")
    if rule.by:
        sql += f" GROUP BY {group}"
    if rule.min_requests:
        sql += f" HAVING count(*) >= {int(rule.min_requests)}"
    return sql + " ORDER BY 1 NULLS LAST"


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^\s/]+", value) is not None


def _channels(data: Any, where: str) -> Channels:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: 'channels' must be a table of slack/webhook/email settings")
    for kind in data:
        if kind not in CHANNEL_KINDS:
            raise ConfigError(f"{where}: channel 'channels.{kind}' is unknown: use "
                              f"{', '.join(CHANNEL_KINDS)}")
    out: dict[str, Any] = {}
    slack = data.get("slack")
    if slack is not None:
        if not isinstance(slack, Mapping) or not _is_url(slack.get("webhook")) or \
                set(slack) - {"webhook"}:
            raise ConfigError(f"{where}: 'channels.slack' needs webhook = \"https://hooks.slack"
                              ".com/…\" (and nothing else)")
        out["slack"] = dict(slack)
    hook = data.get("webhook")
    if hook is not None:
        if not isinstance(hook, Mapping) or not _is_url(hook.get("url")) or \
                set(hook) - {"url", "headers"}:
            raise ConfigError(f"{where}: 'channels.webhook' needs url = \"https://…\" "
                              "(and optionally headers = {…})")
        headers = hook.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ConfigError(f"{where}: 'channels.webhook.headers' must be a table of strings")
        out["webhook"] = {"url": hook["url"], "headers": dict(headers)}
    email = data.get("email")
    if email is not None:
        to = email.get("to") if isinstance(email, Mapping) else None
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to or set(email) - {"to"} or not all(
                isinstance(a, str) and "@" in a and not any(c.isspace() for c in a) for a in to):
            raise ConfigError(f"{where}: 'channels.email' needs to = [\"sec@example.com\", …]")
        out["email"] = {"to": list(to)}
    return Channels(**out)


def _rule(item: Mapping[str, Any], index: int, shared: Channels, smtp: Mapping[str, Any]) -> Rule:
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"alert rule #{index + 1}: key 'name' is required (letters, digits, "
                          f"-, _ and .), got {name!r}")
    where = f"alert rule {name!r}"
    for key in item:
        if key not in _RULE_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}: use {', '.join(sorted(_RULE_KEYS))}")
    metric = item.get("metric")
    if metric not in METRICS:
        raise ConfigError(f"{where}: key 'metric' must be one of {', '.join(METRICS)}, "
                          f"got {metric!r}")
    op = item.get("op", ">")
    if op not in OPS:
        raise ConfigError(f"{where}: key 'op' must be one of {' '.join(OPS)}, got {op!r}")
    if "threshold" not in item:
        raise ConfigError(f"{where}: key 'threshold' is required")
    threshold = item["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or \
            not math.isfinite(threshold):
        raise ConfigError(f"{where}: key 'threshold' must be a number, got {threshold!r}")
    window_text = item.get("window", "15m")
    window = parse_duration(window_text) if isinstance(window_text, str) else None
    if window is None or window.total_seconds() <= 0:
        raise ConfigError(f"{where}: key 'window' must be a duration such as 15m, 1h or 1d, "
                          f"got {window_text!r}")
    by = item.get("by")
    if by is not None and by not in GROUPS:
        raise ConfigError(f"{where}: key 'by' must be one of {', '.join(GROUPS)}, got {by!r}")
    min_requests = item.get("min_requests", 0)
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 0:
        raise ConfigError(f"{where}: key 'min_requests' must be a whole number >= 0, "
                          f"got {min_requests!r}")
    notify = item.get("notify", [])
    if isinstance(notify, str):
        notify = [notify]
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        raise ConfigError(f"{where}: key 'notify' must be a list of channel names")
    own = _channels(item["channels"], where) if "channels" in item else Channels()
    channels = shared.merged(own)
    for n in notify:
        if n not in CHANNEL_KINDS:
            raise ConfigError(f"{where}: key 'notify' names unknown channel {n!r}: use "
                              f"{', '.join(CHANNEL_KINDS)}")
        if channels.get(n) is None:
            raise ConfigError(f"{where}: key 'notify' names {n!r} but no 'channels.{n}' "
                              "settings are configured (add an alerts entry with channels = {…})")
        if n == "email" and not smtp:
            raise ConfigError(f"{where}: key 'notify' names 'email' but the config has no "
                              "smtp = {host = …, from = …} table")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: key 'description' must be a string")
    return Rule(name=name, metric=metric, op=op, threshold=float(threshold), window=window,
                window_text=window_text, by=by, min_requests=min_requests,
                notify=tuple(dict.fromkeys(notify)), channels=channels, description=description)


def parse_alerts(alerts: Sequence[Any], smtp: Mapping[str, Any] | None = None
                 ) -> tuple[list[Rule], Channels]:
    """Validate the config's ``alerts`` list; returns the rules and the shared channels."""
    if not isinstance(alerts, (list, tuple)):
        raise ConfigError("config key 'alerts' must be a list of tables")
    smtp = smtp or {}
    shared = Channels()
    seen_channels = False
    for i, item in enumerate(alerts):
        if not isinstance(item, Mapping):
            raise ConfigError(f"alert rule #{i + 1}: each alerts entry must be a table")
        if "metric" not in item and "channels" in item:
            extra = set(item) - {"channels"}
            if extra:
                raise ConfigError(f"alerts channel entry: unknown key {sorted(extra)[0]!r} "
                                  "(the entry holds only channels = {…})")
            if seen_channels:
                raise ConfigError("alerts: only one entry may hold the shared channels = {…}")
            shared = _channels(item["channels"], "alerts channel entry")
            seen_channels = True
    rules: list[Rule] = []
    names: set[str] = set()
    for i, item in enumerate(alerts):
        if "metric" not in item and "channels" in item:
            continue
        if "metric" not in item:
            label = item.get("name", f"#{i + 1}")
            raise ConfigError(f"alert rule {label!r}: key 'metric' is required "
                              f"(one of {', '.join(METRICS)})")
        rule = _rule(item, i, shared, smtp)
        if rule.name in names:
            raise ConfigError(f"alert rule {rule.name!r}: key 'name' is used twice")
        names.add(rule.name)
        rules.append(rule)
    return rules, shared
