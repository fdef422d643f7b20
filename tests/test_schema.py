"""The record schema is a contract: this pins it column by column."""

import pyarrow as pa

from llm_proxy.schema import COLUMN_GROUPS, COLUMNS, RECORD_SCHEMA, SCHEMA_HISTORY, SCHEMA_VERSION

PINNED_V1 = [
    ("id", "string"), ("ts", "timestamp[us, tz=UTC]"), ("latency_ms", "double"),
    ("ttfb_ms", "double"), ("proxy_instance", "string"),
    ("method", "string"), ("host", "string"), ("path", "string"), ("endpoint", "string"),
    ("http_version", "string"), ("client_ip", "string"), ("user_id", "string"),
    ("request_headers", "string"), ("request_body", "string"), ("request_bytes", "int64"),
    ("request_truncated", "bool"), ("provider", "string"), ("operation", "string"),
    ("request_model", "string"), ("stream", "bool"),
    ("status_code", "int64"), ("response_headers", "string"), ("response_body", "string"),
    ("response_bytes", "int64"), ("response_truncated", "bool"), ("response_model", "string"),
    ("finish_reason", "string"), ("input_tokens", "int64"), ("output_tokens", "int64"),
    ("cached_input_tokens", "int64"), ("cache_write_tokens", "int64"),
    ("reasoning_tokens", "int64"), ("total_tokens", "int64"), ("cost_usd", "double"),
    ("cost_input_usd", "double"), ("cost_cached_input_usd", "double"),
    ("cost_cache_write_usd", "double"), ("cost_output_usd", "double"),
    ("cost_reasoning_usd", "double"), ("cost_request_usd", "double"),
    ("price_version", "string"), ("usage_source", "string"), ("cache_status", "string"),
    ("error_type", "string"), ("error_message", "string"), ("error_trace", "string"),
    ("retry_count", "int64"), ("fallback_used", "bool"), ("resolution", "string"),
    ("auth_method", "string"), ("key_id", "string"), ("scopes", "string"),
    ("ratelimit_usage_pct", "double"), ("anomaly_score", "double"), ("geo_country", "string"),
    ("redactions", "string"),
]


def test_schema_is_pinned():
    assert SCHEMA_VERSION == 1
    assert [(f.name, str(f.type)) for f in RECORD_SCHEMA] == PINNED_V1
    assert RECORD_SCHEMA.metadata[b"llm_proxy.schema_version"] == b"1"
    assert set(SCHEMA_HISTORY) == set(range(1, SCHEMA_VERSION + 1))


def test_every_spec_column_is_present():
    spec = """id ts latency_ms ttfb_ms proxy_instance method host path endpoint client_ip user_id
    request_headers request_body request_bytes provider operation request_model stream status_code
    response_headers response_body response_bytes response_model finish_reason input_tokens
    output_tokens cached_input_tokens total_tokens cost_usd price_version usage_source cache_status
    error_type error_message error_trace retry_count fallback_used resolution auth_method key_id
    scopes ratelimit_usage_pct anomaly_score geo_country redactions""".split()
    assert set(spec) <= set(COLUMNS)


def test_groups_partition_the_columns():
    flat = [c for cols in COLUMN_GROUPS.values() for c in cols]
    assert sorted(flat) == sorted(COLUMNS) and len(flat) == len(set(flat))
    assert set(COLUMN_GROUPS) == {"identity", "request", "response", "error", "security"}
    assert isinstance(RECORD_SCHEMA, pa.Schema)
