"""The one definition of an audit record: an Arrow schema, versioned, grouped.

Column names follow the OpenTelemetry GenAI semantic conventions flattened to snake_case.
Everything that writes or reads records (journal, Parquet writer, DuckDB views, exports)
takes its columns from here; ``tests/test_schema.py`` pins the exact list, so a change to it
is a deliberate, versioned act (bump ``SCHEMA_VERSION`` and append to ``SCHEMA_HISTORY``).
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_HISTORY",
    "RECORD_SCHEMA",
    "COLUMN_GROUPS",
    "COLUMNS",
    "empty_record",
]

SCHEMA_VERSION = 1

# Append-only: what each version changed, for readers of old files.
SCHEMA_HISTORY = {
    1: "initial schema",
}

_S = pa.string()
_I = pa.int64()
_F = pa.float64()
_B = pa.bool_()
_TS = pa.timestamp("us", tz="UTC")

# group -> [(column, type)]; "identity" columns belong to every group's SQL view.
_GROUPED: dict[str, list[tuple[str, pa.DataType]]] = {
    "identity": [
        ("id", _S),  # time-sortable (ULID), unique across instances
        ("ts", _TS),  # UTC request start
        ("latency_ms", _F),
        ("ttfb_ms", _F),  # first response byte; first token for streams
        ("proxy_instance", _S),
    ],
    "request": [
        ("method", _S),
        ("host", _S),
        ("path", _S),
        ("endpoint", _S),  # path without query
        ("http_version", _S),
        ("client_ip", _S),
        ("user_id", _S),
        ("request_headers", _S),  # JSON object, credentials fingerprinted
        ("request_body", _S),
        ("request_bytes", _I),
        ("request_truncated", _B),
        ("provider", _S),
        ("operation", _S),
        ("request_model", _S),
        ("stream", _B),
    ],
    "response": [
        ("status_code", _I),
        ("response_headers", _S),
        ("response_body", _S),  # for streams: the assembled message
        ("response_bytes", _I),
        ("response_truncated", _B),
        ("response_model", _S),
        ("finish_reason", _S),
        ("input_tokens", _I),  # includes cached input, as OpenTelemetry says
        ("output_tokens", _I),
        ("cached_input_tokens", _I),
        ("cache_write_tokens", _I),
        ("reasoning_tokens", _I),
        ("total_tokens", _I),
        ("cost_usd", _F),
        ("cost_input_usd", _F),
        ("cost_cached_input_usd", _F),
        ("cost_cache_write_usd", _F),
        ("cost_output_usd", _F),
        ("cost_reasoning_usd", _F),
        ("cost_request_usd", _F),
        ("price_version", _S),
        ("usage_source", _S),  # provider | estimated | missing
        ("cache_status", _S),  # hit | partial | miss | none
    ],
    "error": [
        ("error_type", _S),  # rate_limit, timeout, server_error, client_error, connection, tls, …
        ("error_message", _S),
        ("error_trace", _S),
        ("retry_count", _I),
        ("fallback_used", _B),
        ("resolution", _S),
    ],
    "security": [
        ("auth_method", _S),  # api_key | bearer | oauth | basic | none
        ("key_id", _S),  # fingerprint: short prefix, last 4, hash
        ("scopes", _S),
        ("ratelimit_usage_pct", _F),  # 0–100
        ("anomaly_score", _F),  # 0..1
        ("geo_country", _S),
        ("redactions", _S),  # JSON object kind -> count
    ],
}

RECORD_SCHEMA = pa.schema(
    [pa.field(name, typ) for cols in _GROUPED.values() for name, typ in cols],
    metadata={b"llm_proxy.schema_version": str(SCHEMA_VERSION).encode()},
)

COLUMNS: tuple[str, ...] = tuple(RECORD_SCHEMA.names)

# The four log types of the original design (request, response, error, security).
COLUMN_GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(name for name, _ in cols) for group, cols in _GROUPED.items()
}


def empty_record() -> dict[str, object]:
    """A record with every column present and null."""
    return dict.fromkeys(COLUMNS)
