"""Public configuration API: ``AuditConfig`` and ``LogExporter``.

The seed integration example (``examples/audit_log_config.py``) builds these directly; the
CLI loads them from a Python file that defines ``config`` or from a TOML file whose keys are
the ``AuditConfig`` field names. Every value is validated up front so that a typo fails at
start-up with a message naming the key, never later on live traffic.
"""

from __future__ import annotations

import dataclasses
import os
import runpy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_proxy.errors import ConfigError

__all__ = ["AuditConfig", "LogExporter", "load_config", "EXPORTER_KINDS", "FSYNC_POLICIES",
           "ACK_POLICIES"]

EXPORTER_KINDS = ("elasticsearch", "s3", "webhook")
FSYNC_POLICIES = ("always", "interval", "never")
# journaled: a response is relayed once its record is in the journal (survives kill -9 of the
# proxy and of its capture worker); received: as soon as the capture is in the worker's socket
# (survives kill -9 of the proxy or of the worker, which gets unjournaled captures resent; not
# of both at once; no wait for the worker at all)
ACK_POLICIES = ("journaled", "received")

_EXPORTER_REQUIRED = {"elasticsearch": "endpoint", "s3": "bucket", "webhook": "endpoint"}


class LogExporter:
    """A destination that ``llm-audit ship`` pushes records to (S3 bucket, Elasticsearch, webhook)."""

    __slots__ = ("kind", "options")

    def __init__(self, kind: str, **options: Any) -> None:
        if kind not in EXPORTER_KINDS:
            raise ConfigError(
                f"exporter kind {kind!r} is unknown: use one of {', '.join(EXPORTER_KINDS)}"
            )
        required = _EXPORTER_REQUIRED[kind]
        if not options.get(required):
            raise ConfigError(f"exporter {kind!r} needs {required}=…")
        self.kind = kind
        self.options = dict(options)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"LogExporter({self.kind!r}, {opts})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LogExporter)
            and other.kind == self.kind
            and other.options == self.options
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LogExporter:
        """Build from a TOML table such as ``{kind = "s3", bucket = "audit-logs"}``."""
        data = dict(data)
        kind = data.pop("kind", None) or data.pop("type", None)
        if not isinstance(kind, str):
            raise ConfigError("each [[exporters]] entry needs kind = \"s3\"|\"elasticsearch\"|\"webhook\"")
        return cls(kind, **data)


# Credential headers that never reach disk in clear, whatever the configuration says.
DEFAULT_SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "set-cookie",
    "x-goog-api-key",
)


@dataclass(slots=True)
class AuditConfig:
    """Everything the proxy, the store and the CLI can be told.

    Field names are also the TOML keys. Defaults are the embedded defaults the README documents.
    """

    # --- the four log types of the original design: the four column groups -------------------
    log_requests: bool = True
    log_responses: bool = True
    log_errors: bool = True
    log_security: bool = True
    # --- retention -------------------------------------------------------------------------------
    retention_days: int = 365
    archive_after: int = 90
    archive_path: str | None = None
    # --- redaction -------------------------------------------------------------------------------
    redact_pii: bool = True
    redact_headers: list[str] = field(default_factory=list)
    redact_kinds: list[str] | None = None  # None: every kind the engine knows
    redact_disabled_kinds: list[str] = field(default_factory=list)
    redact_rules: dict[str, str] = field(default_factory=dict)  # name -> regex
    redact_allow: list[str] = field(default_factory=list)  # values never redacted
    redact_pseudonyms: bool = False
    pseudonym_secret: str | None = field(default=None, repr=False)  # or LLM_AUDIT_PSEUDONYM_SECRET
    redact_fields: dict[str, str] = field(default_factory=dict)  # field -> redact|drop|keep
    metadata_only: bool = False
    # --- integrity ---------------------------------------------------------------------------
    signing_key_path: str | None = None  # Ed25519 key of the chain; default inside the store
    # --- exporters -------------------------------------------------------------------------------
    exporters: list[LogExporter] = field(default_factory=list)
    # --- capture ---------------------------------------------------------------------------------
    store: str | None = None
    intercept: list[str] = field(default_factory=list)  # extra hosts to intercept
    max_body_bytes: int = 1024 * 1024
    user_header: str = "x-user-id"
    instance_name: str | None = None
    # --- durability and batching ----------------------------------------------------------------
    ack: str = "journaled"  # when the proxy may relay a response: journaled | received
    fsync: str = "interval"
    fsync_interval_s: float = 1.0
    flush_records: int = 5000
    flush_seconds: float = 10.0
    # --- pricing, alerts ------------------------------------------------------------------------
    prices: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    smtp: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad key."""
        for name in ("log_requests", "log_responses", "log_errors", "log_security",
                     "redact_pii", "redact_pseudonyms", "metadata_only"):
            _expect(name, getattr(self, name), bool)
        for name in ("retention_days", "archive_after", "max_body_bytes", "flush_records"):
            value = getattr(self, name)
            _expect(name, value, int)
            if value < 0 or (name in ("max_body_bytes", "flush_records") and value == 0):
                raise ConfigError(f"config key {name!r} must be a positive integer, got {value!r}")
        for name in ("fsync_interval_s", "flush_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"config key {name!r} must be a positive number, got {value!r}")
        if self.ack not in ACK_POLICIES:
            raise ConfigError(
                f"config key 'ack' must be one of {', '.join(ACK_POLICIES)}, got {self.ack!r}"
            )
        if self.fsync not in FSYNC_POLICIES:
            raise ConfigError(
                f"config key 'fsync' must be one of {', '.join(FSYNC_POLICIES)}, got {self.fsync!r}"
            )
        for name in ("redact_headers", "intercept", "redact_disabled_kinds", "redact_allow"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"config key {name!r} must be a list of strings, got {value!r}")
        if self.redact_kinds is not None and (
            not isinstance(self.redact_kinds, list)
            or not all(isinstance(v, str) for v in self.redact_kinds)
        ):
            raise ConfigError("config key 'redact_kinds' must be a list of strings")
        if not isinstance(self.redact_rules, dict):
            raise ConfigError("config key 'redact_rules' must be a table of name = \"regex\"")
        for fld, mode in self.redact_fields.items():
            if mode not in ("redact", "drop", "keep"):
                raise ConfigError(
                    f"config key 'redact_fields.{fld}' must be redact, drop or keep, got {mode!r}"
                )
        if not isinstance(self.exporters, list) or not all(
            isinstance(e, LogExporter) for e in self.exporters
        ):
            raise ConfigError("config key 'exporters' must be a list of LogExporter(...)")
        if self.archive_after and self.retention_days and self.archive_after > self.retention_days:
            raise ConfigError(
                f"config key 'archive_after' ({self.archive_after}) must not exceed "
                f"'retention_days' ({self.retention_days})"
            )

    @property
    def secret_headers(self) -> frozenset[str]:
        """Header names (lower-case) whose values are fingerprinted or dropped, never stored."""
        return frozenset(DEFAULT_SECRET_HEADERS) | {h.lower() for h in self.redact_headers}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> AuditConfig:
        """Build from a parsed TOML document; unknown keys are an error naming the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown config key {key!r}")
            if key == "exporters":
                if not isinstance(value, list):
                    raise ConfigError(f"{source}: 'exporters' must be an array of tables")
                value = [v if isinstance(v, LogExporter) else LogExporter.from_mapping(v)
                         for v in value]
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def _expect(name: str, value: Any, kind: type) -> None:
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"config key {name!r} must be {kind.__name__}, got {value!r}")


def load_config(path: str | os.PathLike[str] | None = None) -> AuditConfig:
    """Load the configuration from ``path`` (``.py`` defining ``config``, or ``.toml``).

    With no path, ``LLM_AUDIT_CONFIG`` is used; with neither, the embedded defaults.
    """
    if path is None:
        path = os.environ.get("LLM_AUDIT_CONFIG") or None
    if path is None:
        return AuditConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    if p.suffix == ".toml":
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
        return AuditConfig.from_mapping(data, source=str(p))
    if p.suffix == ".py":
        try:
            namespace = runpy.run_path(str(p))
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
        except Exception as exc:  # a user's Python file may raise anything
            raise ConfigError(f"{p}: {type(exc).__name__}: {exc}") from None
        config = namespace.get("config")
        if not isinstance(config, AuditConfig):
            raise ConfigError(f"{p}: must define `config = AuditConfig(...)`")
        return config
    raise ConfigError(f"config file {str(p)!r} must end in .py or .toml")
