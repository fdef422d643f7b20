"""Records per second the capture worker's stages sustain on one core, against a baseline.

Stages, each over the same synthetic captures (2 KiB prompts, JSON responses):
  build      RecordBuilder.build: decode, provider parse, redaction, fingerprints
  journal    encode_record + append to a journal segment (fsync=interval)
  parquet    records_to_table + zstd Parquet written atomically (the flusher thread's job)
  baseline   json.dumps of the same records to a JSONL file (the simplest possible log writer)
The writer (journal + parquet) must never be the bottleneck: target 50,000 records/s.

Usage: python benchmarks/writer_throughput.py [--records 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_proxy.addon.record import RecordBuilder  # noqa: E402
from llm_proxy.audit import AuditConfig  # noqa: E402
from llm_proxy.store.journal import JournalSegment, encode_record  # noqa: E402
from llm_proxy.store.writer import flush_records  # noqa: E402

WORDS = ("the quarterly report shows revenue growth across regions while costs in the "
         "platform team rose due to model usage please summarise risks and next steps").split()


def synthetic_captures(n: int) -> list[dict]:
    rng = random.Random(7)
    caps = []
    t0 = time.time() - 3600
    for i in range(n):
        prompt = " ".join(rng.choice(WORDS) for _ in range(300))  # ~2 KiB
        req = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}],
               "user": f"user-{i % 50}"}
        resp = {"id": f"c{i}", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": prompt[:400]}}],
                "usage": {"prompt_tokens": 300, "completion_tokens": 60, "total_tokens": 360}}
        caps.append({
            "fid": f"flow-{i}", "t0": t0 + i * 0.01, "t1": t0 + i * 0.01 + 0.2,
            "t2": t0 + i * 0.01 + 0.5, "method": "POST", "host": "api.openai.com", "port": 443,
            "path": "/v1/chat/completions", "hv": "HTTP/1.1", "cip": "10.1.2.3",
            "rqh": ((b"authorization", b"Bearer sk-proj-BENCH0123456789abcdefghijklmnopqrstuvwx"),
                    (b"content-type", b"application/json")),
            "rqb": json.dumps(req).encode(), "rql": 2100, "status": 200,
            "rsh": ((b"content-type", b"application/json"),
                    (b"x-ratelimit-limit-requests", b"1000"),
                    (b"x-ratelimit-remaining-requests", b"900")),
            "rsb": json.dumps(resp).encode(), "rsl": 700,
        })
    return caps


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} records/s  ({seconds / n * 1e6:7.1f} µs/record)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=20_000)
    args = p.parse_args()
    n = args.records
    caps = synthetic_captures(n)
    builder = RecordBuilder.from_config(AuditConfig(), "bench")
    tmp = Path(tempfile.mkdtemp(prefix="llm-audit-writer-"))

    t = time.perf_counter()
    records = [builder.build(c) for c in caps]
    build_s = time.perf_counter() - t

    seg = JournalSegment(tmp / "store" / "journal", "bench", 1, fsync="interval", fsync_interval_s=1)
    t = time.perf_counter()
    for i in range(0, n, 64):  # the worker appends what one recv() brought, in one write
        chunk = records[i:i + 64]
        seg.append(b"".join(encode_record(r) for r in chunk), len(chunk))
    journal_s = time.perf_counter() - t

    t = time.perf_counter()
    for i in range(0, n, 5000):  # flush_records default batch
        flush_records(tmp / "store", seg.path, "bench", 1 + i, records[i:i + 5000])
    parquet_s = time.perf_counter() - t
    seg.close()

    t = time.perf_counter()
    with open(tmp / "baseline.jsonl", "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    baseline_s = time.perf_counter() - t

    writer_s = journal_s + parquet_s
    print(f"{n} records, one core")
    print(f"build (decode+parse+redact) {rate(n, build_s)}")
    print(f"journal append              {rate(n, journal_s)}")
    print(f"parquet flush               {rate(n, parquet_s)}")
    print(f"writer = journal + parquet  {rate(n, writer_s)}")
    print(f"baseline json.dumps→JSONL   {rate(n, baseline_s)}")
    print(f"writer vs baseline: {baseline_s / writer_s:.2f}x the baseline's records/s; "
          f"whole worker (build+writer): {n / (build_s + writer_s):,.0f} records/s")


if __name__ == "__main__":
    main()
