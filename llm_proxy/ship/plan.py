"""Pure "what is missing" decisions of ``llm-audit ship``.

Local files are named by their *tier path* (``flows/date=…/hour=…/x.parquet``,
``archive/date=…/x.parquet``) plus ``chain/chain.jsonl`` and ``chain/signing.pub.pem``; an S3
key is that path under the exporter's prefix, so the bucket keeps the store's Hive layout.
Never listed: the journal, lock files, temp files and the signing key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llm_proxy.store.chain import chain_path
from llm_proxy.store.finalize import PUBLIC_KEY_FILE
from llm_proxy.store.signing import CHAIN_DIR
from llm_proxy.store.tiers import Tiers, list_partitions, partition_files

__all__ = [
    "LocalFile",
    "S3Plan",
    "EsPlan",
    "local_parquet_files",
    "local_s3_files",
    "s3_key",
    "normalise_prefix",
    "plan_s3",
    "plan_es",
]


@dataclass(frozen=True, slots=True)
class LocalFile:
    """One shippable file: ``rel`` is its store-relative (tier) path, ``kind`` what it is."""

    rel: str
    path: Path
    size: int
    kind: str  # "parquet" | "chain" | "pubkey"


@dataclass(slots=True)
class S3Plan:
    upload: list[LocalFile] = field(default_factory=list)
    skipped: list[LocalFile] = field(default_factory=list)
    mismatched: list[tuple[LocalFile, int]] = field(default_factory=list)  # (local, remote size)


@dataclass(slots=True)
class EsPlan:
    todo: list[LocalFile] = field(default_factory=list)
    skipped: list[LocalFile] = field(default_factory=list)


def local_parquet_files(store: Path) -> list[LocalFile]:
    """Every finalised Parquet file of both tiers, oldest partition first."""
    tiers = Tiers.of(Path(store))
    found: list[LocalFile] = []
    for partition in list_partitions(tiers):
        for path in partition_files(partition):
            try:
                size = path.stat().st_size
            except FileNotFoundError:  # removed by compaction/retention since the listing
                continue
            found.append(LocalFile(tiers.tier_path(path), path, size, "parquet"))
    return found


def local_s3_files(store: Path) -> list[LocalFile]:
    """Parquet files plus the chain and the public key (when they exist)."""
    files = local_parquet_files(store)
    chain = chain_path(Path(store))
    pub = Path(store) / CHAIN_DIR / PUBLIC_KEY_FILE
    for path, rel, kind in ((chain, f"{CHAIN_DIR}/chain.jsonl", "chain"),
                            (pub, f"{CHAIN_DIR}/{PUBLIC_KEY_FILE}", "pubkey")):
        try:
            files.append(LocalFile(rel, path, path.stat().st_size, kind))
        except FileNotFoundError:
            continue
    return files


def normalise_prefix(prefix: str | None) -> str:
    """``""`` or ``"a/b/"``: no leading slash, exactly one trailing slash."""
    prefix = (prefix or "").strip("/")
    return f"{prefix}/" if prefix else ""


def s3_key(prefix: str | None, rel: str) -> str:
    return normalise_prefix(prefix) + rel


def plan_s3(local: Iterable[LocalFile], remote: Mapping[str, int], prefix: str | None) -> S3Plan:
    """Decide uploads from the bucket listing ``remote`` (key -> size).

    Parquet files never change in place, so a present key is the same file; a different size is
    reported, never overwritten. The chain only grows: a longer local chain is re-uploaded, a
    shorter one is reported (the bucket copy is evidence). A different public key is reported.
    """
    plan = S3Plan()
    for f in local:
        size = remote.get(s3_key(prefix, f.rel))
        if size is None:
            plan.upload.append(f)
        elif size == f.size:
            plan.skipped.append(f)
        elif f.kind == "chain" and f.size > size:
            plan.upload.append(f)
        else:
            plan.mismatched.append((f, size))
    return plan


def plan_es(local: Iterable[LocalFile], shipped: Iterable[str]) -> EsPlan:
    """Parquet files whose tier path is not in ``shipped`` are to be indexed."""
    done = set(shipped)
    plan = EsPlan()
    for f in local:
        if f.kind != "parquet":
            continue
        (plan.skipped if f.rel in done else plan.todo).append(f)
    return plan
