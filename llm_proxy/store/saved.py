"""Saved queries: named searches kept in the store (``STORE/queries.json``).

They live with the store, not in a user's home, so a team sharing a store shares its queries and
a saved ``--since 7d`` means "the last seven days" whenever it runs. The file is rewritten
atomically (temp file, fsync, rename), owner-only (0600), under a lock so two saves never lose
one another.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_proxy.errors import QueryError, StoreError
from llm_proxy.store.layout import FILE_MODE, make_dirs
from llm_proxy.store.locks import LOCKS_DIR, file_lock
from llm_proxy.store.parquet import fsync_dir
from llm_proxy.store.search import Filters

__all__ = [
    "QUERIES_FILE",
    "SavedQuery",
    "delete_query",
    "get_query",
    "list_queries",
    "save_query",
]

QUERIES_FILE = "queries.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class SavedQuery:
    name: str
    filters: Filters
    limit: int | None
    saved_at: str

    def to_json(self) -> dict[str, Any]:
        return {"filters": self.filters.to_dict(), "limit": self.limit, "saved_at": self.saved_at}


def _path(store: Path) -> Path:
    return store / QUERIES_FILE


def _read(store: Path) -> dict[str, Any]:
    try:
        data = json.loads(_path(store).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise StoreError(f"{_path(store)} is not valid JSON: fix it or delete it") from None
    queries = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(queries, dict):
        raise StoreError(f"{_path(store)} has no \"queries\" object: fix it or delete it")
    return queries


def _write(store: Path, queries: dict[str, Any]) -> None:
    make_dirs(store)
    target = _path(store)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": 1, "queries": queries}, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(store)


def _parse(name: str, raw: Any) -> SavedQuery:
    if not isinstance(raw, dict):
        raise StoreError(f"saved query {name!r} is malformed in {QUERIES_FILE}")
    limit = raw.get("limit")
    return SavedQuery(name, Filters.from_dict(raw.get("filters") or {}),
                      int(limit) if limit is not None else None, str(raw.get("saved_at", "")))


def list_queries(store: Path) -> list[SavedQuery]:
    return [_parse(n, q) for n, q in sorted(_read(store).items())]


def get_query(store: Path, name: str) -> SavedQuery:
    queries = _read(store)
    if name not in queries:
        known = ", ".join(sorted(queries)) or "none saved yet"
        raise QueryError(f"no saved query {name!r} (saved: {known}); save one with "
                         "`llm-audit search … --save NAME`")
    return _parse(name, queries[name])


def save_query(store: Path, name: str, filters: Filters, limit: int | None) -> SavedQuery:
    """Store (or replace) ``name``."""
    if not _NAME.match(name):
        raise QueryError(f"query name {name!r} is not allowed: use letters, digits, '.', '_' "
                         "or '-' (at most 64, starting with a letter or digit)")
    saved = SavedQuery(name, filters, limit,
                       datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    with file_lock(store / LOCKS_DIR / "queries.lock", purpose="save query"):
        queries = _read(store)
        queries[name] = saved.to_json()
        _write(store, queries)
    return saved


def delete_query(store: Path, name: str) -> None:
    with file_lock(store / LOCKS_DIR / "queries.lock", purpose="delete query"):
        queries = _read(store)
        if name not in queries:
            raise QueryError(f"no saved query {name!r}: `llm-audit queries list` shows them")
        del queries[name]
        _write(store, queries)
