"""The one way Parquet files enter or leave the store.

Every writer of finalised files — the capture worker's flush, compaction, archival, retention,
erasure — goes through ``publish``: new files are written atomically and read-only, removed
files are deleted after the new ones are durable. Keeping this in one place is what lets the
integrity chain (``llm-audit verify``) see every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa

from llm_proxy.store.parquet import fsync_dir, write_parquet_atomic

__all__ = ["publish"]


def publish(store: Path, new_files: Sequence[tuple[pa.Table, Path]], *,
            remove: Iterable[Path] = (), reason: str) -> list[Path]:
    """Write ``new_files`` (table, absolute path) atomically, then delete ``remove``.

    ``reason`` says why (``flush``, ``compact``, ``archive``, ``retention``, ``erase``).
    Returns the paths written.
    """
    written = []
    for table, path in new_files:
        write_parquet_atomic(table, path)
        written.append(path)
    parents = set()
    for path in remove:
        path.unlink(missing_ok=True)
        parents.add(path.parent)
    for parent in parents:
        if parent.exists():
            fsync_dir(parent)
    return written
