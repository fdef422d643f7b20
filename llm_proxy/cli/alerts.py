"""``llm-audit alerts check`` and ``llm-audit alerts test``: rules from the config's ``alerts``.

``check`` evaluates every rule over its window ending now, prints what fired, notifies the
rule's channels (Slack, generic webhook, e-mail) unless the same (rule, group, channel) was
notified within the rule's window (state in ``STORE/alerts-state.json``; ``--renotify``
ignores it). Exit 0; 1 with ``--fail-on-alert`` when anything fired; 2 when the config is bad or
a delivery failed (one line per failed delivery on stderr; the other channels are still tried).
``test`` sends a clearly marked test message to every configured channel (or one rule's).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llm_proxy.cli.options import ConfigOpt, StoreOpt, resolve
from llm_proxy.errors import UsageError

__all__ = ["alerts_app", "register"]

alerts_app = typer.Typer(
    name="alerts",
    help="Alert rules from the config: check them (for cron) or test the delivery channels.",
    no_args_is_help=True,
)


def _redactor(cfg):
    from llm_proxy.redact import RedactionPolicy, Redactor

    return Redactor(RedactionPolicy.from_config(cfg)).redact_text


@alerts_app.command("check")
def check(
    since: Annotated[str | None, typer.Option(
        "--since", help="Evaluate from this time (15m, 2h, ISO) instead of each rule's window.",
        show_default=False)] = None,
    fail_on_alert: Annotated[bool, typer.Option(
        "--fail-on-alert", help="Exit 1 when any rule fired (for cron and CI).")] = False,
    renotify: Annotated[bool, typer.Option(
        "--renotify", help="Notify even if notified within the rule's window.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="Output format: table or json.")] = "table",
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Evaluate the alert rules now, print what fired and notify the rules' channels."""
    from llm_proxy.alerts.evaluate import evaluate, load_state, save_state, state_key
    from llm_proxy.alerts.notify import DeliveryError, Notifier
    from llm_proxy.alerts.rules import parse_alerts
    from llm_proxy.cli.output import emit
    from llm_proxy.timeparse import parse_time, utcnow

    if fmt not in ("table", "json"):
        raise UsageError(f"unknown --format {fmt!r}: use table or json")
    store_path, cfg = resolve(store, config)
    rules, _ = parse_alerts(cfg.alerts, cfg.smtp)
    if not rules:
        raise UsageError("no alert rules: add alerts = [{name = …, metric = …, threshold = …}] "
                         "to the config (see docs/alerts.md)")
    now = utcnow()
    start = parse_time(since, now=now, option="--since") if since else None
    if start is not None and start >= now:
        raise UsageError(f"--since {since!r} is not in the past")
    fired = evaluate(store_path, rules, now=now, since=start)

    notifier = Notifier(_redactor(cfg), cfg.smtp, str(store_path))
    state = load_state(store_path) if fired else {}
    failures = 0
    changed = False
    rows = []
    for f in fired:
        sent: list[str] = []
        for channel in f.rule.notify:
            key = state_key(f.rule.name, f.group, channel)
            last = state.get(key)
            if not renotify and last is not None and now - last < f.rule.window:
                continue
            try:
                notifier.send(channel, f.rule.channels.get(channel), notifier.payload(f))
            except DeliveryError as exc:
                failures += 1
                typer.echo(f"Error: {exc}", err=True)
                continue
            state[key] = now
            changed = True
            sent.append(channel)
        group = notifier._r(f.group) if f.group is not None else ""
        rows.append((f.rule.name, f.rule.by or "", group, f.rule.metric, f.value,
                     f"{f.rule.op} {f.rule.threshold:g}", f.requests, ",".join(sent)))
    if changed:
        save_state(store_path, state)
    columns = ("rule", "by", "group", "metric", "value", "threshold", "requests", "notified")
    if fmt == "table" and not rows:
        typer.echo(f"no alerts fired ({len(rules)} rules checked)")
    else:
        emit(columns, rows, fmt, title="alerts fired" if fmt == "table" else None)
    sys.stdout.flush()
    if failures:
        raise typer.Exit(2)
    if fired and fail_on_alert:
        raise typer.Exit(1)


@alerts_app.command("test")
def test_channels(
    rule: Annotated[str | None, typer.Option(
        "--rule", help="Only the channels this rule notifies.", show_default=False)] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Send a clearly marked test message to every configured channel (or one rule's)."""
    from llm_proxy.alerts.notify import DeliveryError, Notifier
    from llm_proxy.alerts.rules import CHANNEL_KINDS, parse_alerts
    from llm_proxy.timeparse import utcnow

    store_path, cfg = resolve(store, config)
    rules, shared = parse_alerts(cfg.alerts, cfg.smtp)
    if rule is not None:
        match = [r for r in rules if r.name == rule]
        if not match:
            raise UsageError(f"--rule {rule!r} is not an alert rule: use one of "
                             f"{', '.join(r.name for r in rules) or '(none configured)'}")
        targets = [(c, match[0].channels.get(c)) for c in match[0].notify]
        if not targets:
            raise UsageError(f"alert rule {rule!r} notifies no channel: add notify = [\"slack\", …]")
    else:
        merged: dict[str, list] = {}
        for c in CHANNEL_KINDS:
            for settings in [shared.get(c), *(r.channels.get(c) for r in rules)]:
                if settings is not None and settings not in merged.setdefault(c, []):
                    merged[c].append(settings)
        targets = [(c, s) for c, lst in merged.items() for s in lst]
    if not targets:
        raise UsageError("no alert channels configured: add an alerts entry with channels = "
                         "{slack = {webhook = …}, webhook = {url = …}, email = {to = […]}}")
    if any(c == "email" for c, _ in targets) and not cfg.smtp:
        raise UsageError("channel 'email' needs the config's smtp = {host = …, from = …} table")
    notifier = Notifier(_redactor(cfg), cfg.smtp, str(store_path))
    now = utcnow()
    failures = 0
    for channel, settings in targets:
        try:
            notifier.send(channel, settings, notifier.test_payload(channel, rule, now))
        except DeliveryError as exc:
            failures += 1
            typer.echo(f"Error: {exc}", err=True)
            continue
        typer.echo(f"sent test alert to {channel}")
    if failures:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
