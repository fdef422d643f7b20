"""``llm-audit ship``: push to the configured exporters (S3, Elasticsearch) what they lack.

- ``plan``: pure functions deciding what is missing (no I/O beyond listing the local store).
- ``s3``: uploads Parquet files of both tiers, the chain and the public key with boto3.
- ``elasticsearch``: bulk-indexes records of Parquet files not yet shipped (urllib only).
- ``state``: ``STORE/ship-state.json``, which files each Elasticsearch exporter already has.
"""

from __future__ import annotations

from llm_proxy.errors import AuditError

__all__ = ["ShipError"]


class ShipError(AuditError):
    """One exporter could not be brought up to date; the message names it and the cause."""


from dataclasses import dataclass, field  # noqa: E402

__all__ += ["ShipResult"]


@dataclass(slots=True)
class ShipResult:
    """What one exporter run did (or, with ``dry_run``, would do)."""

    exporter: str
    kind: str
    files: int = 0  # files uploaded / indexed
    records: int = 0  # records indexed (Elasticsearch) or in the uploaded Parquet files (S3)
    skipped: int = 0  # files the destination already had
    bytes: int = 0
    planned: list[tuple[str, int]] = field(default_factory=list)  # (path, bytes), dry-run
    problems: list[str] = field(default_factory=list)  # mismatches, item errors: exit 2
