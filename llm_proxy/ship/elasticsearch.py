"""Ship to Elasticsearch with the ``_bulk`` API over ``urllib.request`` (no client library).

Records of every finalised Parquet file not yet in ``STORE/ship-state.json`` for this exporter
are indexed with ``_id`` = record ``id``, so re-shipping a file (after a crash, or after
compaction rewrote records into a new file) overwrites instead of duplicating. A file is marked
shipped only when every item of every bulk request for it succeeded. Journal records are not
shipped until the proxy flushes them into Parquet; records in the store are already redacted.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from llm_proxy.cli.output import json_default
from llm_proxy.ship import ShipError, ShipResult
from llm_proxy.ship.plan import LocalFile, local_parquet_files, plan_es
from llm_proxy.ship.state import ShipState, exporter_key

__all__ = ["ship_elasticsearch", "index_name", "bulk_body", "BATCH_BYTES"]

BATCH_BYTES = 5 * 1024 * 1024  # Elastic's advice: bulk requests of a few MB
TIMEOUT_S = 60


def index_name(options: dict[str, Any], ts: Any) -> str:
    """The configured ``index``, else ``llm-audit-YYYY.MM.DD`` of the record's UTC date."""
    if options.get("index"):
        return str(options["index"])
    if isinstance(ts, datetime):
        day = ts.astimezone(UTC) if ts.tzinfo else ts
    else:
        day = datetime.now(UTC)
    return f"llm-audit-{day:%Y.%m.%d}"


def bulk_body(options: dict[str, Any], records: list[dict[str, Any]]) -> Iterator[bytes]:
    """NDJSON ``_bulk`` bodies of at most about ``BATCH_BYTES`` each."""
    chunk: list[bytes] = []
    size = 0
    for rec in records:
        action = json.dumps({"index": {"_index": index_name(options, rec.get("ts")),
                                       "_id": rec["id"]}})
        doc = json.dumps(rec, default=json_default, ensure_ascii=False)
        pair = f"{action}\n{doc}\n".encode()
        if chunk and size + len(pair) > BATCH_BYTES:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(pair)
        size += len(pair)
    if chunk:
        yield b"".join(chunk)


def _headers(options: dict[str, Any]) -> dict[str, str]:
    headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json"}
    if options.get("api_key"):
        headers["Authorization"] = f"ApiKey {options['api_key']}"
    elif options.get("username"):
        token = f"{options['username']}:{options.get('password') or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
    return headers


def _post_bulk(endpoint: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    req = urllib.request.Request(f"{endpoint}/_bulk", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace")
        raise ShipError(f"{endpoint}/_bulk answered HTTP {exc.code}: "
                        f"{' '.join(detail.split())}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ShipError(f"{endpoint}/_bulk unreachable: {reason}") from None
    except ValueError:
        raise ShipError(f"{endpoint}/_bulk answered something that is not JSON") from None


def _item_errors(answer: dict[str, Any]) -> list[str]:
    """One message per failed item of a ``_bulk`` answer (``errors: true``)."""
    if not answer.get("errors"):
        return []
    failed = []
    for item in answer.get("items", []):
        op = next(iter(item.values()), {}) if isinstance(item, dict) else {}
        if op.get("error") or int(op.get("status", 200)) >= 300:
            err = op.get("error") or {}
            reason = err.get("reason") if isinstance(err, dict) else str(err)
            kind = err.get("type") if isinstance(err, dict) else "error"
            failed.append(f"_id {op.get('_id')}: {kind}: {reason}")
    return failed or ["errors: true without a failed item"]


def _open(f: LocalFile) -> pq.ParquetFile | None:
    try:
        return pq.ParquetFile(f.path)
    except FileNotFoundError:  # compacted or archived away since the listing
        return None


def ship_elasticsearch(store: Path, options: dict[str, Any], label: str, *,
                       dry_run: bool = False) -> ShipResult:
    """Index every not-yet-shipped Parquet file; item errors leave the file for the next run."""
    endpoint = str(options["endpoint"]).rstrip("/")
    key = exporter_key("elasticsearch", options)
    state = ShipState(store)
    local = local_parquet_files(store)
    shipped = state.shipped(key)
    plan = plan_es(local, shipped)
    result = ShipResult(label, "elasticsearch", skipped=len(plan.skipped))
    if dry_run:
        for f in plan.todo:
            result.planned.append((f.rel, f.size))
            result.files += 1
            result.bytes += f.size
            result.records += pq.ParquetFile(f.path).metadata.num_rows
        return result
    present = {f.rel for f in local}
    done = shipped & present  # forget files that compaction or retention removed
    headers = _headers(options)
    for f in plan.todo:
        parquet = _open(f)
        if parquet is None:
            continue
        failed: list[str] = []
        rows = 0
        for batch in parquet.iter_batches(batch_size=2000):  # an archive day may be large
            records = batch.to_pylist()
            rows += len(records)
            for body in bulk_body(options, records):
                failed += _item_errors(_post_bulk(endpoint, headers, body))
                result.bytes += len(body)
        if failed:
            more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            result.problems.append(f"{f.rel}: {len(failed)} item(s) failed, first {failed[0]}"
                                   f"{more}; will retry next run")
            continue
        done.add(f.rel)
        result.files += 1
        result.records += rows
        state.set_shipped(key, done)
        state.save()
    if done != shipped:
        state.set_shipped(key, done)
        state.save()
    return result
