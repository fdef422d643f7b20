"""Ship to S3 with boto3: every finalised Parquet file of both tiers, the chain, the public key.

Keys are store-relative paths under the exporter's ``prefix``, so the bucket keeps the store's
Hive layout (``flows/date=…/hour=…/*.parquet``, ``archive/date=…/*.parquet``) and Athena,
Trino, Spark or DuckDB read it as is. What the bucket lacks is found by listing the prefix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from llm_proxy.ship import ShipError, ShipResult
from llm_proxy.ship.plan import local_s3_files, normalise_prefix, plan_s3, s3_key

__all__ = ["ship_s3", "make_client", "list_remote"]


def make_client(options: dict[str, Any]) -> Any:
    import boto3

    endpoint = options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint,
                        region_name=options.get("region") or None)


def list_remote(client: Any, bucket: str, prefix: str | None) -> dict[str, int]:
    """Every key under ``prefix`` with its size (paginated)."""
    remote: dict[str, int] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=normalise_prefix(prefix)):
        for obj in page.get("Contents", []):
            remote[obj["Key"]] = int(obj["Size"])
    return remote


def _rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError):
        return 0


def ship_s3(store: Path, options: dict[str, Any], label: str, *, dry_run: bool = False,
            client: Any = None) -> ShipResult:
    """Upload what the bucket lacks; raise ``ShipError`` if the bucket cannot be reached."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = str(options["bucket"])
    prefix = options.get("prefix")
    result = ShipResult(label, "s3")
    try:
        client = client or make_client(options)
        plan = plan_s3(local_s3_files(store), list_remote(client, bucket, prefix), prefix)
        result.skipped = len(plan.skipped)
        for f, remote_size in plan.mismatched:
            result.problems.append(f"s3://{bucket}/{s3_key(prefix, f.rel)} is {remote_size} "
                                   f"bytes, local {f.rel} is {f.size}: left as is")
        for f in plan.upload:
            if dry_run:
                result.planned.append((f.rel, f.size))
                result.files += 1
                result.bytes += f.size
                continue
            key = s3_key(prefix, f.rel)
            try:
                if f.kind == "parquet":  # immutable: stream it (multipart when large)
                    rows = _rows(f.path)
                    client.upload_file(str(f.path), bucket, key)
                    sent = f.size
                else:  # a snapshot: the chain may grow while we upload
                    rows, body = 0, f.path.read_bytes()
                    client.put_object(Bucket=bucket, Key=key, Body=body)
                    sent = len(body)
            except FileNotFoundError:  # compacted or archived away since the listing
                continue
            result.files += 1
            result.bytes += sent
            result.records += rows
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        raise ShipError(f"s3://{bucket}: {_one_line(exc)}") from None
    return result


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
