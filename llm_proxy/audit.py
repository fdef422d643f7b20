"""Public configuration API: ``AuditConfig`` and ``LogExporter``.

The seed integration example (``examples/audit_log_config.py``) builds these directly; the
CLI loads them from a Python file that defines ``config`` or from a TOML file whose keys are
the ``AuditConfig`` field names. Every value is validated up front so that a typo fails at
start-up with a message naming the key, never later on live traffic.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import runpy
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

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
        if not isinstance(kind, str):
            raise ConfigError(f"exporter kind must be str (one of {', '.join(EXPORTER_KINDS)}), "
                              f"got {_given(kind)}")
        if kind not in EXPORTER_KINDS:
            raise ConfigError(
                f"exporter kind {kind!r} is unknown: use one of {', '.join(EXPORTER_KINDS)}"
            )
        required = _EXPORTER_REQUIRED[kind]
        if not options.get(required):
            raise ConfigError(f"exporter {kind!r} needs {required}=…")
        if not isinstance(options[required], str):
            raise ConfigError(f"exporter {kind!r}: {required} must be str, "
                              f"got {_given(options[required])}")
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
        if not isinstance(data, Mapping):
            raise ConfigError(f"each [[exporters]] entry must be a table, got {_given(data)}")
        data = dict(data)
        kind = data.pop("kind", None) or data.pop("type", None)
        if not isinstance(kind, str):
            raise ConfigError("each [[exporters]] entry needs kind = \"s3\"|\"elasticsearch\"|\"webhook\"")
        return cls(kind, **data)


# Credential headers that never reach disk in clear, whatever the configuration says.
DEFAULT_SECRET_HEADERS = (
    "authorization",
    "ocp-apim-subscription-key",  # Azure API Management in front of Azure OpenAI
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "set-cookie",
    "x-goog-api-key",
    "x-amz-security-token",  # AWS session token (Bedrock with temporary credentials)
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
        """Raise ``ConfigError`` naming the first bad key: its type, then its value."""
        hints = _field_types()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, os.PathLike) and _fits("", hints[f.name]):
                value = os.fspath(value)  # store=Path(...) in a Python config: a path is fine
                setattr(self, f.name, value)
            _check_type(f.name, value, hints[f.name], show=f.repr)
        for name in ("retention_days", "archive_after", "max_body_bytes", "flush_records"):
            value = getattr(self, name)
            if value < 0 or (name in ("max_body_bytes", "flush_records") and value == 0):
                raise ConfigError(f"config key {name!r} must be a positive integer, got {value!r}")
        for name in ("fsync_interval_s", "flush_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"config key {name!r} must be a positive number, got {value!r}")
        if self.ack not in ACK_POLICIES:
            raise ConfigError(
                f"config key 'ack' must be one of {', '.join(ACK_POLICIES)}, got {self.ack!r}"
            )
        if self.fsync not in FSYNC_POLICIES:
            raise ConfigError(
                f"config key 'fsync' must be one of {', '.join(FSYNC_POLICIES)}, got {self.fsync!r}"
            )
        for fld, mode in self.redact_fields.items():
            if mode not in ("redact", "drop", "keep"):
                raise ConfigError(
                    f"config key 'redact_fields.{fld}' must be redact, drop or keep, got {mode!r}"
                )
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
            kwargs[key] = value
        try:
            if "exporters" in kwargs:
                kwargs["exporters"] = _exporters_from(kwargs["exporters"])
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def _exporters_from(value: Any) -> list[LogExporter]:
    """The ``[[exporters]]`` tables of a TOML file as ``LogExporter`` objects."""
    if not isinstance(value, list):
        raise ConfigError(f"config key 'exporters' must be an array of tables "
                          f"([[exporters]]), got {_given(value)}")
    return [v if isinstance(v, LogExporter) else LogExporter.from_mapping(v) for v in value]


@functools.cache
def _field_types() -> dict[str, Any]:
    """``AuditConfig``'s annotations, resolved (the module uses postponed annotations)."""
    return get_type_hints(AuditConfig)


def _check_type(name: str, value: Any, hint: Any, *, show: bool = True) -> None:
    """Raise a one-line ``ConfigError`` unless ``value`` fits the annotation ``hint``."""
    if _fits(value, hint):
        return
    given = _given(value) if show else type(value).__name__  # never echo a secret
    detail = _culprit(value, hint) if show else ""
    raise ConfigError(f"config key {name!r} must be {_expected(hint)}, got {given}{detail}")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` matches ``hint`` (bool is not an int here, nor an int a bool)."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arm) for arm in args)
    if origin is list:
        item = args[0] if args else Any
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(map(_fits, value, args)))
    if origin is dict:
        key, val = args or (Any, Any)
        return isinstance(value, dict) and all(_fits(k, key) and _fits(v, val)
                                               for k, v in value.items())
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # TOML writes 10 for 10.0
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _expected(hint: Any) -> str:
    """The annotation in words: ``int``, ``str or None``, ``list of str``, ``table``."""
    if hint is Any:
        return "anything"
    if hint is None or hint is type(None):
        return "None"
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(arm) for arm in args)
    if origin in (list, tuple):
        item = _expected(args[0]) if args else "anything"
        return f"{origin.__name__} of {'tables' if item == 'table' else item}"
    if origin is dict:
        val = args[1] if args else Any
        return "table" if val is Any else f"table of {_expected(val)} values"
    if hint is LogExporter:
        return "LogExporter(...)"
    return getattr(hint, "__name__", str(hint))


def _given(value: Any) -> str:
    """What was given, short enough for one line: ``list ['x-user-id']``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "…"
    return f"{type(value).__name__} {text}"


def _culprit(value: Any, hint: Any) -> str:
    """Inside a list or table, the first entry of the wrong type (empty when not a container)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        return _culprit(value, arms[0]) if len(arms) == 1 else ""
    if origin is list and isinstance(value, list) and args:
        for i, v in enumerate(value, 1):
            if not _fits(v, args[0]):
                return f" (item {i} is {_given(v)})"
    if origin is dict and isinstance(value, dict) and args:
        for k, v in value.items():
            if not _fits(k, args[0]):
                return f" (key {k!r} is {type(k).__name__})"
            if not _fits(v, args[1]):
                return f" ({k!r} is {_given(v)})"
    return ""


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
        try:
            config.validate()  # again: the file may have changed a field after building it
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
        return config
    raise ConfigError(f"config file {str(p)!r} must end in .py or .toml")
