"""Legal holds: records that must not be deleted or erased while a case is open.

A hold selects records by any of ``user``, ``key_id`` and a ``[since, until)`` time window
(all given criteria must match; a hold with none holds everything). Holds live in
``STORE/holds.json`` (owner-only, replaced atomically); every add and release is also a signed
integrity-chain entry, so ``llm-audit verify`` notices a hold edited or dropped behind the tool's
back. Released holds stay in the file as history.

Changes take the store's maintenance lock, so a hold added while ``retention apply`` runs takes
effect before that run can delete anything it covers (the add waits for the run to finish).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from llm_proxy.errors import StoreError, UsageError
from llm_proxy.store.chain import actor
from llm_proxy.store.digest import iso
from llm_proxy.store.finalize import record_event
from llm_proxy.store.layout import FILE_MODE, make_dirs
from llm_proxy.store.locks import maintenance_lock

__all__ = ["HOLDS_FILE", "Hold", "load_holds", "active_holds", "add_hold", "release_hold",
           "held_mask", "holds_overlapping"]

HOLDS_FILE = "holds.json"
_LOCK_WAIT_S = 600.0


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True, slots=True)
class Hold:
    name: str
    reason: str
    user: str | None = None
    key_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    created_by: str = ""
    released_at: datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Could records with ``start <= ts < end`` fall under this hold?"""
        return (self.since is None or self.since < end) and (self.until is None or self.until > start)

    def scope(self) -> str:
        """Human summary of what the hold selects."""
        parts = [f"user={self.user}" if self.user else "", f"key_id={self.key_id}" if self.key_id else ""]
        if self.since or self.until:
            parts.append(f"{iso(self.since) or '…'} to {iso(self.until) or '…'}")
        return ", ".join(p for p in parts if p) or "all records"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("since", "until", "created_at", "released_at"):
            data[key] = iso(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hold:
        values = dict(data)
        for key in ("since", "until", "created_at", "released_at"):
            values[key] = _parse(values.get(key))
        return cls(**values)


def _path(store: Path) -> Path:
    return Path(store) / HOLDS_FILE


def load_holds(store: Path) -> list[Hold]:
    """Every hold ever placed on the store, released ones included."""
    try:
        data = json.loads(_path(store).read_text())
        return [Hold.from_json(h) for h in data["holds"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{_path(store)} is damaged ({exc}): restore it from backup; "
                         "`llm-audit verify` shows the holds the chain recorded") from None


def active_holds(store: Path) -> list[Hold]:
    return [h for h in load_holds(store) if h.active]


def _save(store: Path, holds: Sequence[Hold]) -> None:
    make_dirs(Path(store))
    path = _path(store)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        json.dump({"holds": [h.to_json() for h in holds]}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _who() -> str:
    a = actor()
    return f"{a['user']}@{a['host']}"


def add_hold(store: Path, *, name: str, reason: str, user: str | None = None,
             key_id: str | None = None, since: datetime | None = None,
             until: datetime | None = None) -> Hold:
    """Place a hold; effective (written) before it is recorded in the chain."""
    if not name.strip():
        raise UsageError("--name must not be empty")
    if not reason.strip():
        raise UsageError("--reason must say why the hold is placed (case number, counsel, …)")
    if since and until and since >= until:
        raise UsageError(f"--since ({iso(since)}) must be before --until ({iso(until)})")
    hold = Hold(name=name, reason=reason, user=user, key_id=key_id, since=since, until=until,
                created_by=_who())
    with maintenance_lock(store, purpose=f"hold add {name}", wait=_LOCK_WAIT_S):
        holds = load_holds(store)
        if any(h.name == name and h.active for h in holds):
            raise UsageError(f"hold {name!r} already exists: pick another --name, or "
                             f"`llm-audit hold release {name}` first")
        _save(store, [*holds, hold])
        record_event(store, "hold_add", {"hold": hold.to_json()})
    return hold


def release_hold(store: Path, name: str, *, reason: str) -> Hold:
    """Release an active hold; the record of it stays."""
    if not reason.strip():
        raise UsageError("--reason must say why the hold is released")
    with maintenance_lock(store, purpose=f"hold release {name}", wait=_LOCK_WAIT_S):
        holds = load_holds(store)
        for i, h in enumerate(holds):
            if h.name == name and h.active:
                released = replace(h, released_at=datetime.now(UTC), released_by=_who(),
                                   release_reason=reason)
                holds[i] = released
                _save(store, holds)
                record_event(store, "hold_release", {"name": name, "reason": reason,
                                                     "released_at": iso(released.released_at)})
                return released
    active = ", ".join(h.name for h in holds if h.active) or "none"
    raise UsageError(f"no active hold named {name!r} (active holds: {active})")


def holds_overlapping(holds: Iterable[Hold], start: datetime, end: datetime) -> list[Hold]:
    return [h for h in holds if h.active and h.overlaps(start, end)]


def held_mask(table: pa.Table, holds: Sequence[Hold]) -> pa.BooleanArray:
    """Which rows of ``table`` (needs ``user_id``, ``key_id``, ``ts``) any hold covers."""
    n = table.num_rows
    result = pa.array([False] * n, type=pa.bool_())
    for hold in holds:
        mask = pa.array([True] * n, type=pa.bool_())
        if hold.user is not None:
            mask = pc.and_(mask, pc.equal(table.column("user_id"), hold.user))
        if hold.key_id is not None:
            mask = pc.and_(mask, pc.equal(table.column("key_id"), hold.key_id))
        ts_type = table.schema.field("ts").type
        if hold.since is not None:
            mask = pc.and_(mask, pc.greater_equal(table.column("ts"), pa.scalar(hold.since, ts_type)))
        if hold.until is not None:
            mask = pc.and_(mask, pc.less(table.column("ts"), pa.scalar(hold.until, ts_type)))
        result = pc.or_(result, pc.fill_null(mask, False))
    return result.combine_chunks() if isinstance(result, pa.ChunkedArray) else result
