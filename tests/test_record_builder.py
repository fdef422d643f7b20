"""RecordBuilder: a raw capture in, one redacted record out (pure, no proxy needed)."""

from __future__ import annotations

import gzip
import json

from llm_proxy.addon.record import RecordBuilder
from llm_proxy.audit import AuditConfig
from llm_proxy.schema import COLUMNS

KEY = "sk-proj-UNITkey0123456789abcdefghijklmnopqrstuvwxyz"


def capture(**over) -> dict:
    req = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "user": "u-body"}
    resp = {"id": "c1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
                      "prompt_tokens_details": {"cached_tokens": 4}}}
    cap = {
        "fid": "flow-1", "t0": 1_764_140_000.0, "t1": 1_764_140_000.05, "t2": 1_764_140_000.2,
        "method": "POST", "host": "api.openai.com", "port": 443, "path": "/v1/chat/completions",
        "hv": "HTTP/1.1", "cip": "10.0.0.5",
        "rqh": ((b"Authorization", f"Bearer {KEY}".encode()), (b"Content-Type", b"application/json"),
                (b"x-stainless-retry-count", b"0")),
        "rqb": json.dumps(req).encode(), "rql": 100, "status": 200,
        "rsh": ((b"content-type", b"application/json"), (b"content-encoding", b"gzip"),
                (b"x-ratelimit-limit-requests", b"100"), (b"x-ratelimit-remaining-requests", b"60")),
        "rsb": gzip.compress(json.dumps(resp).encode()), "rsl": 50,
    }
    cap.update(over)
    return cap


def build(cap: dict, **cfg) -> dict:
    return RecordBuilder.from_config(AuditConfig(**cfg), "unit").build(cap)


def test_full_record():
    r = build(capture())
    assert set(r) == set(COLUMNS)
    assert r["provider"] == "openai" and r["operation"] == "chat"
    assert r["input_tokens"] == 10 and r["cached_input_tokens"] == 4 and r["cache_status"] == "partial"
    assert r["usage_source"] == "provider" and r["finish_reason"] == "stop"
    assert r["latency_ms"] == 200.0 and r["ttfb_ms"] == 50.0
    assert r["ratelimit_usage_pct"] == 40.0 and r["retry_count"] == 0
    assert r["user_id"] == "u-body" and r["client_ip"] == "10.0.0.5"
    assert KEY not in json.dumps(r) and r["key_id"].endswith(r["key_id"].split("#")[1])
    assert json.loads(r["response_body"])["choices"][0]["message"]["content"] == "hi"
    assert r["proxy_instance"] == "unit" and len(r["id"]) == 26


def test_configured_user_header_wins():
    cap = capture(rqh=capture()["rqh"] + ((b"X-User-Id", b"alice"),))
    assert build(cap)["user_id"] == "alice"


def test_error_event_inside_a_200_stream_is_recorded():
    sse = ('event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
           '"role":"assistant","model":"claude-sonnet-4-6","content":[],"usage":{"input_tokens":5,'
           '"output_tokens":1}}}\n\nevent: error\ndata: {"type":"error","error":{"type":'
           '"overloaded_error","message":"Overloaded"}}\n\n')
    r = build(capture(host="api.anthropic.com", path="/v1/messages", sm=True,
                      rsh=((b"content-type", b"text/event-stream"),), rsb=sse.encode()))
    assert r["status_code"] == 200 and r["error_type"] == "overloaded"
    assert r["error_message"] == "Overloaded"


def test_log_groups_can_be_switched_off():
    r = build(capture(), log_requests=False, log_security=False)
    assert r["request_body"] is None and r["request_headers"] is None and r["key_id"] is None
    assert r["id"] and r["ts"] and r["input_tokens"] == 10  # identity and response stay


def test_transport_error_without_response():
    r = build(capture(status=None, rsh=None, rsb=None, err="[Errno 111] Connection refused"))
    assert r["error_type"] == "connection" and r["status_code"] is None
    assert r["request_model"] == "gpt-4o" and r["resolution"] == "failed"


def test_garbage_never_raises():
    for body in (b"\xff\xfe\x00garbage", b"{not json", b"", None):
        r = build(capture(rqb=body, rsb=body, rsh=((b"content-encoding", b"br"),)))
        assert r["id"] and r["status_code"] == 200


def test_cost_is_priced_from_the_shipped_table():
    r = build(capture())
    assert r["price_version"] and r["cost_usd"] is not None and r["cost_usd"] > 0
    parts = ("cost_input_usd", "cost_cached_input_usd", "cost_cache_write_usd", "cost_output_usd",
             "cost_reasoning_usd", "cost_request_usd")
    assert abs(sum(r[p] for p in parts) - r["cost_usd"]) < 1e-12


def test_missing_usage_is_estimated_and_marked():
    resp = {"id": "c1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 40},
                         "finish_reason": "stop"}]}
    r = build(capture(rsh=((b"content-type", b"application/json"),), rsb=json.dumps(resp).encode()))
    assert r["usage_source"] == "estimated"
    assert r["input_tokens"] > 0 and r["output_tokens"] >= 20 and r["cost_usd"] > 0


def test_unknown_model_has_no_cost_but_a_price_version():
    cap = capture(rqb=json.dumps({"model": "house-model-7", "messages": []}).encode(),
                  rsb=gzip.compress(json.dumps({"model": "house-model-7", "choices": [],
                                                "usage": {"prompt_tokens": 5, "completion_tokens": 1}}).encode()))
    r = build(cap)
    assert r["cost_usd"] is None and r["price_version"] and r["input_tokens"] == 5


def test_failed_exchange_is_not_estimated():
    r = build(capture(status=500, rsh=((b"content-type", b"application/json"),),
                      rsb=b'{"error": {"message": "boom", "type": "server_error"}}'))
    assert r["usage_source"] == "missing" and r["output_tokens"] is None


def test_prefetched_request_gives_the_same_record_and_a_stale_one_is_ignored():
    builder = RecordBuilder.from_config(AuditConfig(), "unit")
    plain = builder.build(capture())
    builder.prefetch({"kind": "request", **{k: capture()[k] for k in ("fid", "rqh", "rqb", "rql")}})
    assert builder.build(capture()) == plain
    stale = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "OLD"}]}).encode()
    builder.prefetch({"kind": "request", "fid": "flow-1", "rqh": capture()["rqh"], "rqb": stale})
    again = builder.build(capture())
    assert again == plain and "OLD" not in again["request_body"]


def test_requests_waiting_for_their_response_are_bounded(monkeypatch):
    """Every request is sent ahead; flows whose response never comes (or a burst of long
    streams) must not grow the worker, and an evicted flow still gets its exact record."""
    from llm_proxy.addon import record as record_module

    monkeypatch.setattr(record_module, "_PREFETCH_LIMIT", 50)
    monkeypatch.setattr(record_module, "_PREFETCH_BYTES", 20_000)
    builder = RecordBuilder.from_config(AuditConfig(), "unit")
    plain = builder.build(capture())
    body = capture()["rqb"]
    for i in range(500):
        builder.prefetch({"kind": "request", "fid": f"never-{i}", "rqh": capture()["rqh"],
                          "rqb": body + b" " * (i % 7), "rql": len(body)})
        assert len(builder._prefetched) <= 50 and builder._prefetched_bytes <= 20_000
    assert builder._prefetched_bytes == sum(len(p.rqb) for p in builder._prefetched.values())
    assert builder.build(capture()) == plain  # flow-1 was never kept: computed with its response


def test_host_header_is_an_address_not_pii():
    cap = capture(rqh=capture()["rqh"] + ((b"Host", b"10.0.0.7:8000"),))
    r = build(cap)
    assert json.loads(r["request_headers"])["host"] == "10.0.0.7:8000"
    assert "ip_address" not in (r["redactions"] or "")
