"""Realistic synthetic audit records, generated fast and written through the real store layout.

Shared by the benchmarks. Records look like a company's LLM traffic: a few providers and models,
a skewed population of users and API keys, JSON request/response bodies built from a Zipf-ish
vocabulary (about 1 KiB of body per record on average), ~5 % errors (429s, 5xx, 4xx), a few
redaction placeholders, and rare "needle" phrases a search can look for (``project Falcon``).

Generation is vectorised: numpy draws the values and bodies are assembled by gathering byte
segments from a pool, so ten million records take minutes, not hours. Each hour becomes an Arrow
table of ``llm_proxy.schema.RECORD_SCHEMA`` (checked against ``records_to_table`` on a sample, so
it is what the writer would have produced) and is written with ``llm_proxy.store.finalize.publish``
under ``llm_proxy.store.layout`` names: the same encoder, compression and partitions as the proxy.

Usage: python benchmarks/synth.py STORE [--records 1000000] [--days 30] [--files-per-hour 1]
       [--compacted]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_proxy.schema import RECORD_SCHEMA
from llm_proxy.store.compact import indexed_table
from llm_proxy.store.finalize import publish
from llm_proxy.store.layout import parquet_name, partition_dir
from llm_proxy.store.parquet import records_to_table

__all__ = ["NEEDLES", "SynthSpec", "generate_hours", "hour_table", "write_store"]

HOUR_US = 3_600_000_000

# (provider, host, endpoint, operation, models, share)
_ROUTES = [
    ("openai", "api.openai.com", "/v1/chat/completions", "chat",
     ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini"], 0.55),
    ("anthropic", "api.anthropic.com", "/v1/messages", "messages",
     ["claude-sonnet-4-5", "claude-3-5-haiku-latest"], 0.25),
    ("openai", "api.openai.com", "/v1/embeddings", "embeddings", ["text-embedding-3-small"], 0.08),
    ("azure_openai", "corp-eastus.openai.azure.com",
     "/openai/deployments/gpt-4o/chat/completions", "chat", ["gpt-4o"], 0.07),
    ("mistral", "api.mistral.ai", "/v1/chat/completions", "chat", ["mistral-large-latest"], 0.05),
]

# Rare phrases to search for: (text, records per million).
NEEDLES = [
    ("Status update on project Falcon: the vendor contract renewal is blocked on legal.", 5.0),
    ("Please reconcile the quarterly invoice batch before the audit closes.", 2000.0),
]

_WORDS_BASE = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "they", "you", "were", "her", "she", "there", "been", "one", "all", "we", "their", "has", "would", "when", "if", "so", "no", "will", "can", "more", "about", "what", "up", "said", "out", "do", "into", "time", "only", "some", "could", "new", "them", "other", "than", "then", "now", "may", "its", "like", "just", "over", "also", "back", "after", "use", "two", "how", "our", "work", "first", "well", "way", "even", "because", "any", "these", "give", "day", "most", "us", "data", "model", "user", "customer", "order", "invoice", "payment", "account", "report", "query", "table", "service", "request", "response", "error", "latency", "deploy", "release", "build", "test", "review", "summary", "draft", "email", "meeting", "schedule", "project", "team", "budget", "forecast", "revenue", "churn", "ticket", "incident", "outage", "database", "cluster", "kubernetes", "python", "function", "class", "return", "value", "list", "string", "number", "translate", "explain", "rewrite", "improve", "summarize", "classify", "extract", "sentiment", "policy", "contract", "legal", "compliance", "security", "access", "token", "password", "rotate", "migrate", "upgrade", "version", "document", "analysis", "chart", "metric", "dashboard", "quarterly", "annual", "growth", "market", "product", "feature", "roadmap", "priority", "bug", "fix", "patch", "pull", "merge", "branch", "commit", "pipeline", "staging", "production", "rollback"]


@dataclass(frozen=True, slots=True)
class SynthSpec:
    """What to generate: ``records`` spread over ``days`` of hourly partitions ending at ``end``."""

    records: int = 1_000_000
    days: int = 30
    end: datetime | None = None  # default: now
    seed: int = 7
    files_per_hour: int = 1
    instance: str = "synth"
    compacted: bool = False  # write each hour as `llm-audit compact` leaves it (one indexed file)


class _Pool:
    """Byte segments (literals, names, sentences) that bodies are assembled from."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def add(self, text: str) -> int:
        self._parts.append(text.encode())
        return len(self._parts) - 1

    def freeze(self) -> None:
        lengths = np.fromiter((len(p) for p in self._parts), dtype=np.int64, count=len(self._parts))
        self.lengths = lengths
        self.starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        self.data = np.frombuffer(b"".join(self._parts), dtype=np.uint8)


def _concat(pool: _Pool, segments: np.ndarray) -> pa.Array:
    """One string per row of ``segments`` (n × k pool ids): the concatenation of its segments."""
    n, k = segments.shape
    flat = segments.ravel()
    seg_len = pool.lengths[flat]
    row_len = seg_len.reshape(n, k).sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_len, out=offsets[1:])
    total = int(offsets[-1])
    out_start = np.zeros(flat.size, dtype=np.int64)
    np.cumsum(seg_len[:-1], out=out_start[1:])
    index = np.repeat(pool.starts[flat] - out_start, seg_len) + np.arange(total, dtype=np.int64)
    data = pool.data[index]
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(data)).cast(pa.string())


def _choice_strings(rng: np.random.Generator, values: list[str], n: int,
                    p: np.ndarray | None = None) -> tuple[np.ndarray, pa.Array]:
    idx = rng.choice(len(values), size=n, p=p)
    return idx, pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()),
                                               pa.array(values)).cast(pa.string())


_CROCKFORD = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)


def _ulids(rng: np.random.Generator, ts_us: np.ndarray) -> pa.Array:
    """Time-sortable ULIDs: 48 bits of milliseconds, 80 random bits, Crockford base32."""
    n = ts_us.size
    ms = (ts_us // 1000).astype(np.uint64)
    chars = np.empty((n, 26), dtype=np.uint8)
    for k in range(10):
        chars[:, k] = _CROCKFORD[((ms >> np.uint64(45 - 5 * k)) & np.uint64(31)).astype(np.int64)]
    chars[:, 10:] = _CROCKFORD[rng.integers(0, 32, size=(n, 16))]
    offsets = np.arange(0, 26 * (n + 1), 26, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


class _Generator:
    """Draws whole hours of records as Arrow tables."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        self.users = [f"user-{i:04d}" for i in range(2000)] + ["svc-billing", "svc-support",
                                                               "svc-search", "svc-etl"]
        w = 1.0 / np.arange(1, len(self.users) + 1) ** 0.9
        self.user_p = w / w.sum()
        self.keys = [f"sk-proj-…{rng.integers(0, 36**4):04x}#{rng.integers(0, 2**40):010x}"
                     for _ in range(40)]
        self.routes = _ROUTES
        shares = np.array([r[5] for r in _ROUTES])
        self.route_p = shares / shares.sum()
        self.model_names = sorted({m for r in _ROUTES for m in r[4]})
        self._build_pool()

    def _build_pool(self) -> None:
        rng = self.rng
        vocab = list(_WORDS_BASE) + [
            "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(4, 11)))
            for _ in range(20_000)]
        zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
        zipf /= zipf.sum()
        pool = _Pool()
        self.empty = pool.add("")
        sentences = []
        lengths = rng.integers(6, 18, size=120_000)
        word_ids = rng.choice(len(vocab), size=int(lengths.sum()), p=zipf)
        pos = 0
        for length in lengths:
            words = [vocab[i] for i in word_ids[pos:pos + length]]
            pos += length
            sentences.append(pool.add(" ".join(words).capitalize() + ". "))
        self.sentences = np.array(sentences)
        self.needles = np.array([pool.add(text + " ") for text, _ in NEEDLES])
        self.needle_rate = np.array([rate / 1e6 for _, rate in NEEDLES])
        self.email = pool.add("Contact me at [EMAIL] about this. ")
        self.systems = np.array([pool.add(s) for s in (
            "You are a helpful assistant.",
            "You are a support agent for Acme Corp. Answer politely and cite the knowledge base.",
            "You summarise documents for the finance team. Be concise.",
            "You are a senior Python reviewer. Point out bugs and suggest fixes.",
            "Classify the sentiment of the customer message as positive, negative or neutral.",
        )])
        self.model_seg = {m: pool.add(m) for m in self.model_names}
        self.user_seg = np.array([pool.add(u) for u in self.users])
        lit = pool.add
        self.req_a = lit('{"model":"')
        self.req_b = lit('","messages":[{"role":"system","content":"')
        self.req_c = lit('"},{"role":"user","content":"')
        self.req_d = lit('"}],"user":"')
        self.req_e = lit('"}')
        self.resp_a = lit('{"id":"chatcmpl-')
        self.resp_b = lit('","object":"chat.completion","model":"')
        self.resp_c = lit('","choices":[{"index":0,"message":{"role":"assistant","content":"')
        self.resp_d = lit('"},"finish_reason":"stop"}]}')
        self.err_body = {
            429: lit('{"error":{"message":"Rate limit reached for requests. Please try again in '
                     '20s.","type":"requests","code":"rate_limit_exceeded"}}'),
            400: lit('{"error":{"message":"This model\'s maximum context length is 128000 '
                     'tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}'),
            401: lit('{"error":{"message":"Incorrect API key provided.","type":'
                     '"invalid_request_error","code":"invalid_api_key"}}'),
            500: lit('{"error":{"message":"The server had an error while processing your '
                     'request.","type":"server_error"}}'),
            503: lit('{"error":{"message":"The engine is currently overloaded, please try again '
                     'later.","type":"server_error"}}'),
        }
        self.rand_ids = np.array([pool.add(f"{i:08x}") for i in
                                  rng.integers(0, 2**32, size=50_000)])
        pool.freeze()
        self.pool = pool

    def hour(self, start_us: int, n: int) -> pa.Table:
        # one generator per hour: the same store whichever worker makes which hour
        rng = self.rng = np.random.default_rng((self.seed, start_us // HOUR_US))
        ts = np.sort(rng.integers(start_us, start_us + HOUR_US, size=n))
        route_idx = rng.choice(len(self.routes), size=n, p=self.route_p)
        model_names = np.empty(n, dtype=object)
        for i, route in enumerate(self.routes):
            mask = route_idx == i
            model_names[mask] = np.array(route[4], dtype=object)[
                rng.integers(0, len(route[4]), size=int(mask.sum()))]
        name_to_idx = {m: i for i, m in enumerate(self.model_names)}
        midx = np.fromiter((name_to_idx[m] for m in model_names), dtype=np.int64, count=n)
        user_idx = rng.choice(len(self.users), size=n, p=self.user_p)
        status = rng.choice([200, 429, 400, 401, 500, 503], size=n,
                            p=[0.95, 0.025, 0.01, 0.003, 0.007, 0.005])
        ok = status == 200
        stream = rng.random(n) < 0.3

        # request body: system prompt + 2..12 sentences, sometimes a needle or an e-mail
        k = 12
        count = rng.integers(2, k + 1, size=n)
        sent = self.sentences[rng.integers(0, self.sentences.size, size=(n, k))]
        sent[np.arange(k)[None, :] >= count[:, None]] = self.empty
        for needle, rate in zip(self.needles, self.needle_rate, strict=True):
            hit = rng.random(n) < rate
            sent[hit, 0] = needle
        email = rng.random(n) < 0.03
        sent[email, 1] = self.email
        model_seg = np.array([self.model_seg[m] for m in self.model_names])[midx]
        req = np.column_stack([
            np.full(n, self.req_a), model_seg, np.full(n, self.req_b),
            self.systems[rng.integers(0, self.systems.size, size=n)], np.full(n, self.req_c),
            sent, np.full(n, self.req_d), self.user_seg[user_idx], np.full(n, self.req_e)])
        request_body = _concat(self.pool, req)

        # response body: 1..6 sentences, or the provider's error JSON
        k2 = 6
        count2 = rng.integers(1, k2 + 1, size=n)
        rsent = self.sentences[rng.integers(0, self.sentences.size, size=(n, k2))]
        rsent[np.arange(k2)[None, :] >= count2[:, None]] = self.empty
        resp = np.column_stack([
            np.full(n, self.resp_a), self.rand_ids[rng.integers(0, self.rand_ids.size, size=n)],
            np.full(n, self.resp_b), model_seg, np.full(n, self.resp_c), rsent,
            np.full(n, self.resp_d)])
        for code, seg in self.err_body.items():
            rows = status == code
            resp[rows] = self.empty
            resp[rows, 0] = seg
        response_body = _concat(self.pool, resp)

        req_bytes = pc.binary_length(request_body).to_numpy(zero_copy_only=False)
        resp_bytes = pc.binary_length(response_body).to_numpy(zero_copy_only=False)
        input_tokens = (req_bytes // 4).astype(np.int64)
        output_tokens = np.where(ok, resp_bytes // 4, 0).astype(np.int64)
        cached = np.where(rng.random(n) < 0.2, input_tokens // 2, 0)
        latency = np.round(rng.lognormal(6.3, 0.7, size=n), 1)
        price_in, price_out = 2.5e-6, 10e-6
        cost = np.where(ok, input_tokens * price_in + output_tokens * price_out, 0.0)
        key_idx = (user_idx * 7 + rng.integers(0, 2, size=n)) % len(self.keys)
        key_idx[user_idx == self.users.index("svc-billing")] = 0

        err_type = {429: "rate_limit", 400: "client_error", 401: "client_error",
                    500: "server_error", 503: "server_error"}
        err_msg = {429: "Rate limit reached for requests", 400: "maximum context length exceeded",
                   401: "Incorrect API key provided", 500: "The server had an error",
                   503: "The engine is currently overloaded"}
        codes = [200, *err_type]
        code_idx = np.searchsorted(np.array(sorted(codes)), status)
        sorted_codes = sorted(codes)

        def by_status(mapping: dict[int, str]) -> pa.Array:
            values = [mapping.get(c) for c in sorted_codes]
            return pa.DictionaryArray.from_arrays(pa.array(code_idx, pa.int32()),
                                                  pa.array(values, pa.string())).cast(pa.string())

        route_col = lambda j: pa.DictionaryArray.from_arrays(
            pa.array(route_idx, pa.int32()), pa.array([r[j] for r in self.routes])).cast(pa.string())
        str_of = lambda values, idx: pa.DictionaryArray.from_arrays(
            pa.array(idx, pa.int32()), pa.array(values)).cast(pa.string())
        ua = [f"OpenAI/Python 1.{v}.0" for v in range(40, 60)] + \
             [f"Anthropic/Python 0.{v}.0" for v in range(40, 50)]
        ua_idx = rng.integers(0, len(ua), size=n)
        req_headers = [
            f'{{"content-type":"application/json","user-agent":"{u}",'
            f'"authorization":"[REDACTED {k}]","x-stainless-retry-count":"0"}}'
            for u in ua for k in ("sk-proj-…",)]
        resp_headers = [
            '{"content-type":"application/json","x-ratelimit-limit-requests":"10000",'
            f'"x-ratelimit-remaining-requests":"{r}","openai-processing-ms":"{p}"}}'
            for r in range(9990, 10000) for p in (312, 640, 812)]
        redactions = np.where(email, 1, 0)

        cols = {
            "id": _ulids(rng, ts),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "latency_ms": pa.array(latency),
            "ttfb_ms": pa.array(np.round(latency * rng.uniform(0.1, 0.6, size=n), 1)),
            "proxy_instance": str_of(["proxy-a", "proxy-b"], rng.integers(0, 2, size=n)),
            "method": pa.array(np.full(n, "POST", dtype=object), pa.string()),
            "host": route_col(1),
            "path": route_col(2),
            "endpoint": route_col(2),
            "http_version": str_of(["HTTP/1.1", "HTTP/2.0"], rng.integers(0, 2, size=n)),
            "client_ip": str_of([f"10.0.{i // 250}.{i % 250 + 1}" for i in range(500)],
                                user_idx % 500),
            "user_id": str_of(self.users, user_idx),
            "request_headers": str_of(req_headers, ua_idx),
            "request_body": request_body,
            "request_bytes": pa.array(req_bytes.astype(np.int64)),
            "request_truncated": pa.array(np.zeros(n, dtype=bool)),
            "provider": route_col(0),
            "operation": route_col(3),
            "request_model": str_of(self.model_names, midx),
            "stream": pa.array(stream),
            "status_code": pa.array(status.astype(np.int64)),
            "response_headers": str_of(resp_headers, rng.integers(0, len(resp_headers), size=n)),
            "response_body": response_body,
            "response_bytes": pa.array(resp_bytes.astype(np.int64)),
            "response_truncated": pa.array(np.zeros(n, dtype=bool)),
            "response_model": str_of(self.model_names, midx),
            "finish_reason": by_status({200: "stop"}),
            "input_tokens": pa.array(input_tokens),
            "output_tokens": pa.array(output_tokens),
            "cached_input_tokens": pa.array(cached),
            "cache_write_tokens": pa.array(np.zeros(n, dtype=np.int64)),
            "reasoning_tokens": pa.array(np.zeros(n, dtype=np.int64)),
            "total_tokens": pa.array(input_tokens + output_tokens),
            "cost_usd": pa.array(np.round(cost, 8)),
            "cost_input_usd": pa.array(np.round(input_tokens * price_in, 8)),
            "cost_cached_input_usd": pa.array(np.zeros(n)),
            "cost_cache_write_usd": pa.array(np.zeros(n)),
            "cost_output_usd": pa.array(np.round(output_tokens * price_out, 8)),
            "cost_reasoning_usd": pa.array(np.zeros(n)),
            "cost_request_usd": pa.array(np.zeros(n)),
            "price_version": pa.array(np.full(n, "2026-11-01", dtype=object), pa.string()),
            "usage_source": str_of(["provider", "missing"], (~ok).astype(np.int64)),
            "cache_status": str_of(["none", "partial"], (cached > 0).astype(np.int64)),
            "error_type": by_status(err_type),
            "error_message": by_status(err_msg),
            "error_trace": pa.nulls(n, pa.string()),
            "retry_count": pa.array(np.where(status == 429, 1, 0).astype(np.int64)),
            "fallback_used": pa.array(np.zeros(n, dtype=bool)),
            "resolution": pa.nulls(n, pa.string()),
            "auth_method": pa.array(np.full(n, "api_key", dtype=object), pa.string()),
            "key_id": str_of(self.keys, key_idx),
            "scopes": pa.nulls(n, pa.string()),
            "ratelimit_usage_pct": pa.array(np.round(rng.uniform(0, 60, size=n), 1)),
            "anomaly_score": pa.array(np.round(rng.beta(1, 30, size=n), 3)),
            "geo_country": str_of(["US", "DE", "GB", "FR", "IN"], user_idx % 5),
            "redactions": str_of([None, '{"EMAIL": 1}'], redactions),
        }
        table = pa.table(cols, schema=RECORD_SCHEMA)
        return table.take(pc.sort_indices(table.column("id")))


def hour_table(start_us: int, n: int, seed: int = 7) -> pa.Table:
    """One hour of ``n`` records starting at ``start_us`` (UTC microseconds)."""
    return _make_hour((seed, start_us, n, False, 0))[1]


def _hour_counts(spec: SynthSpec) -> tuple[int, np.ndarray]:
    end = spec.end or datetime.now(UTC)
    end_us = int(end.timestamp() * 1_000_000)
    last_hour = end_us - end_us % HOUR_US
    hours = spec.days * 24
    first_hour = last_hour - (hours - 1) * HOUR_US
    # daily rhythm: business hours are busier
    hour_of_day = (np.arange(hours) + (first_hour // HOUR_US)) % 24
    weight = 0.4 + np.exp(-((hour_of_day - 14) ** 2) / 18.0)
    counts = np.floor(weight / weight.sum() * spec.records).astype(np.int64)
    counts[-1] += spec.records - counts.sum()
    return first_hour, counts


_WORKER: _Generator | None = None


def _make_hour(job: tuple[int, int, int, bool, int]) -> tuple[int, pa.Table, str | None]:
    """In a worker process: one hour's table (indexed when compacted) and its file name."""
    global _WORKER
    seed, start, n, compacted, seq = job
    if _WORKER is None or _WORKER.seed != seed:
        _WORKER = _Generator(seed)
    table = _WORKER.hour(start, n)
    if not compacted:
        return start, table, None
    name = parquet_name("compact", seq)
    return start, indexed_table(table, name), name


def generate_hours(spec: SynthSpec, workers: int = 2
                   ) -> Iterator[tuple[int, pa.Table, str | None]]:
    """(hour start in µs, table, compacted file name) for every hour of ``spec``, oldest first."""
    first_hour, counts = _hour_counts(spec)
    seq = int(time.time() * 1_000_000)
    jobs = [(spec.seed, first_hour + i * HOUR_US, int(n), spec.compacted, seq + i)
            for i, n in enumerate(counts) if n]
    if workers <= 1:
        yield from map(_make_hour, jobs)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_make_hour, jobs, chunksize=1)


def check_against_writer(table: pa.Table) -> None:
    """Assert the vectorised table is what ``records_to_table`` makes of the same records."""
    sample = table.slice(0, 50)
    rows = sample.to_pylist()
    for row in rows:
        row["ts"] = int(row["ts"].timestamp() * 1_000_000)
    assert records_to_table(rows).equals(sample), "synthetic table differs from the writer's"


def write_store(store: Path, spec: SynthSpec, progress: bool = True) -> dict[str, float]:
    """Fill ``store`` with ``spec``'s records; returns counts and timings."""
    t0 = time.perf_counter()
    written = records = files = 0
    checked = False
    seq = int(time.time() * 1_000_000) + 10_000_000
    for start, table, name in generate_hours(spec):
        if not checked:
            check_against_writer(table)
            checked = True
        dt = datetime.fromtimestamp(start / 1e6, tz=UTC)
        folder = store / partition_dir(dt.strftime("%Y-%m-%d"), dt.strftime("%H"))
        new_files = []
        if name is not None:
            new_files.append((table, folder / name))
        else:
            for part in np.array_split(np.arange(table.num_rows), spec.files_per_hour):
                if part.size:
                    seq += 1
                    new_files.append((table.slice(int(part[0]), int(part.size)),
                                      folder / parquet_name(spec.instance, seq)))
        publish(store, new_files, reason="flush")
        files += len(new_files)
        records += table.num_rows
        written += sum((p.stat().st_size for _, p in new_files))
        if progress:
            done = records / spec.records
            sys.stderr.write(f"\r  synth: {records:>11,} records ({done:5.1%}) "
                             f"{time.perf_counter() - t0:6.1f}s")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    return {"records": records, "files": files, "bytes": written,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--files-per-hour", type=int, default=1)
    parser.add_argument("--compacted", action="store_true",
                        help="one indexed file per hour, as `llm-audit compact` leaves it")
    args = parser.parse_args()
    stats = write_store(args.store, SynthSpec(records=args.records, days=args.days,
                                              files_per_hour=args.files_per_hour,
                                              compacted=args.compacted))
    print(f"{stats['records']:,} records, {stats['files']:,} files, "
          f"{stats['bytes'] / stats['records']:.0f} bytes/record, {stats['seconds']:.1f}s")


if __name__ == "__main__":
    main()

