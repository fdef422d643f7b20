"""``RedactionPolicy``: what to redact, validated once from ``AuditConfig``.

Every mistake a user can make in the redaction settings (an unknown kind, a regex that does
not compile, pseudonyms without a secret) is a ``ConfigError`` here, at start-up, never a
surprise on live traffic.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from llm_proxy.audit import AuditConfig
from llm_proxy.errors import ConfigError
from llm_proxy.redact.kinds import BUILTIN_KINDS, PII_KINDS, SECRET_KINDS

__all__ = [
    "ADDRESS_HEADERS",
    "BODY_FIELDS",
    "FIELDS",
    "FIELD_MODES",
    "PSEUDONYM_SECRET_ENV",
    "RedactionPolicy",
]

# Record fields whose treatment is configurable with ``redact_fields``.
FIELDS = ("request_body", "response_body", "request_headers", "response_headers", "query",
          "error_message")
BODY_FIELDS = frozenset({"request_body", "response_body"})
# Headers that say where a request went, not who sent it: secrets are masked, PII rules skip
# them (an IP host would read as personal data; the host is a column of its own anyway).
ADDRESS_HEADERS = frozenset({"host", ":authority"})
# redact: secrets and the configured PII kinds; drop: not stored at all;
# keep: stored as sent, except that secrets are still masked (they never reach disk).
FIELD_MODES = ("redact", "drop", "keep")
PSEUDONYM_SECRET_ENV = "LLM_AUDIT_PSEUDONYM_SECRET"

_RULE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """The resolved redaction settings. Build it with ``from_config``."""

    kinds: frozenset[str] = frozenset(BUILTIN_KINDS)  # always includes every secret kind
    rules: tuple[tuple[str, re.Pattern[str]], ...] = ()  # (kind, compiled regex)
    allow: frozenset[str] = frozenset()  # case-folded values that are never redacted
    field_modes: tuple[tuple[str, str], ...] = ()
    metadata_only: bool = False
    pseudonym_secret: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, cfg: AuditConfig) -> RedactionPolicy:
        """Validate the ``redact_*`` settings of ``cfg``; errors name the offending key."""
        rules = _compile_rules(cfg.redact_rules)
        known = set(BUILTIN_KINDS) | {name for name, _ in rules}
        disabled = set(_check_kinds("redact_disabled_kinds", cfg.redact_disabled_kinds, known))
        always = disabled & set(SECRET_KINDS)
        if always:
            raise ConfigError(
                f"config key 'redact_disabled_kinds': secret kinds are always redacted "
                f"({', '.join(sorted(always))}); list a value you trust in redact_allow instead"
            )
        pii: set[str] = set(PII_KINDS) if cfg.redact_pii else set()
        if cfg.redact_kinds is not None:
            pii &= set(_check_kinds("redact_kinds", cfg.redact_kinds, known))
        return cls(
            kinds=frozenset(SECRET_KINDS) | frozenset(pii - disabled),
            rules=tuple((name, rx) for name, rx in rules if name not in disabled),
            allow=frozenset(v.strip().casefold() for v in cfg.redact_allow if v.strip()),
            field_modes=_check_fields(cfg.redact_fields),
            metadata_only=cfg.metadata_only,
            pseudonym_secret=_pseudonym_secret(cfg) if cfg.redact_pseudonyms else None,
        )


def _check_kinds(key: str, names: list[str], known: set[str]) -> list[str]:
    lowered = [n.lower() for n in names]
    unknown = [n for n, low in zip(names, lowered) if low not in known]
    if unknown:
        raise ConfigError(
            f"config key {key!r}: unknown kind {', '.join(map(repr, unknown))}; valid kinds: "
            f"{', '.join(sorted(known))}"
        )
    return lowered


def _compile_rules(rules: dict[str, str]) -> list[tuple[str, re.Pattern[str]]]:
    """Custom rules: ``name = "regex"``; a ``(?P<value>…)`` group limits what is replaced."""
    compiled = []
    for name, pattern in rules.items():
        if not isinstance(name, str) or not _RULE_NAME.fullmatch(name):
            raise ConfigError(
                f"config key 'redact_rules': rule name {name!r} must be letters, digits and _ "
                "(it becomes the placeholder, e.g. employee_id -> [EMPLOYEE_ID])"
            )
        if not isinstance(pattern, str):
            raise ConfigError(f"config key 'redact_rules.{name}' must be a regex string")
        try:
            compiled.append((name.lower(), re.compile(pattern)))
        except re.error as exc:
            raise ConfigError(f"config key 'redact_rules.{name}': invalid regex: {exc}") from None
    return compiled


def _check_fields(fields: dict[str, str]) -> tuple[tuple[str, str], ...]:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"config key 'redact_fields': unknown field {', '.join(map(repr, unknown))}; "
            f"valid fields: {', '.join(FIELDS)}"
        )
    return tuple(sorted(fields.items()))


def _pseudonym_secret(cfg: AuditConfig) -> bytes:
    secret = cfg.pseudonym_secret or os.environ.get(PSEUDONYM_SECRET_ENV)
    if not secret:
        raise ConfigError(
            "redact_pseudonyms = true needs a secret: set 'pseudonym_secret' in the config "
            f"or the {PSEUDONYM_SECRET_ENV} environment variable"
        )
    return secret.encode("utf-8")
