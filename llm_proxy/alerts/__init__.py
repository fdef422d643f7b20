"""Alert rules over the store: ``llm-audit alerts check`` and ``llm-audit alerts test``.

``rules`` parses and validates the config's ``alerts`` list (pure, no I/O) and builds one SQL
query per rule; ``evaluate`` runs them over the ``flows`` view and keeps the re-notification
state; ``notify`` delivers redacted messages to Slack, a generic webhook or e-mail.
See ``docs/alerts.md``.
"""

from llm_proxy.alerts.rules import CHANNEL_KINDS, METRICS, Channels, Rule, parse_alerts

__all__ = ["CHANNEL_KINDS", "METRICS", "Channels", "Rule", "parse_alerts"]
