"""GDPR Art. 17 erasure: make one data subject's records disappear from every tier.

Erasure *rewrites* each affected Parquet file without the subject's rows (``publish`` with
``reason="erase"``: the new file and the removal of the old one are chain entries) and then
appends one ``erase`` entry: who ran it (OS user, host, pid), when, why, the criteria used, the
counts per tier — and, instead of the subject's identifier, a keyed digest of it
(HMAC-SHA256 under a key derived from the store's signing key), so that "was alice erased?" can
be answered by whoever holds the key while the chain itself keeps no identifier in clear.

The journal: segments no live proxy holds are flushed first (``writer.replay``), so their
records are erased like any other. Records of the subject in a segment a running proxy still
writes are waited for (it flushes every ``flush_seconds``); if they are still there after
``journal_wait`` seconds the erasure stops *before changing anything*, telling the user to wait
for the flush or stop the proxy. Records captured after the erasure started are not erased —
stop capturing the subject first.

Refused, before any change, while an active legal hold covers any of the records.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives import serialization

from llm_proxy.errors import StoreError, UsageError
from llm_proxy.store import rollups
from llm_proxy.store.chain import canonical
from llm_proxy.store.digest import iso
from llm_proxy.store.finalize import publish, record_event, recover, sweep_temps
from llm_proxy.store.holds import Hold, active_holds, held_mask
from llm_proxy.store.journal import list_segments
from llm_proxy.store.layout import JOURNAL_DIR, parquet_name, record_time_us
from llm_proxy.store.locks import maintenance_lock
from llm_proxy.store.signing import key_path, load_private_key
from llm_proxy.store.tiers import Tiers, list_partitions
from llm_proxy.store.writer import replay, unflushed_records

__all__ = ["Erasure", "erase", "subject_digest"]

_ROUNDS = 4  # a pass, then re-checks for records in flight when it started


@dataclass(slots=True)
class Erasure:
    """What an erasure did (or, dry, would do)."""

    records: int = 0
    files: int = 0
    by_tier: Counter[str] = field(default_factory=Counter)
    journal_flushed: int = 0
    chain_seq: int | None = None
    dry_run: bool = False
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def summary(self, who: str) -> str:
        verb = "would erase" if self.dry_run else "erased"
        tiers = ", ".join(f"{t} {n}" for t, n in sorted(self.by_tier.items())) or "none"
        text = (f"{verb} {self.records} record(s) of {who} from {self.files} file(s) "
                f"(records per tier: {tiers})")
        if self.journal_flushed:
            text += f"; flushed {self.journal_flushed} journal record(s) first"
        if self.chain_seq is not None:
            text += f"; recorded as chain entry #{self.chain_seq}"
        return text


def _criteria(user: str | None, key_id: str | None) -> dict[str, str]:
    return {k: v for k, v in (("user_id", user), ("key_id", key_id)) if v is not None}


def subject_digest(store: Path, criteria: dict[str, str]) -> str | None:
    """Keyed digest of the erased subject: checkable with the key, meaningless without it."""
    path = key_path(store)
    if not path.exists():
        return None
    raw = load_private_key(path).private_bytes(serialization.Encoding.Raw,
                                               serialization.PrivateFormat.Raw,
                                               serialization.NoEncryption())
    secret = hashlib.sha256(b"llm-audit erasure subject\0" + raw).digest()
    return "hmac-sha256:" + hmac.new(secret, canonical(criteria), hashlib.sha256).hexdigest()


def _matches(table: pa.Table, criteria: dict[str, str]) -> pa.BooleanArray:
    mask = pa.array([True] * table.num_rows, type=pa.bool_())
    for column, value in criteria.items():
        mask = pc.and_(mask, pc.equal(table.column(column), value))
    result = pc.fill_null(mask, False)
    return result.combine_chunks() if isinstance(result, pa.ChunkedArray) else result


def _affected_files(tiers: Tiers, criteria: dict[str, str], *,
                    before: datetime) -> dict[Path, int]:
    """Files holding subject records older than ``before``, with the subject's record counts.

    Only records older than the erasure's start decide which files are affected, so a proxy
    still capturing the subject cannot keep the erasure from finishing; the rewrite removes the
    subject's newer rows from those files as well. DuckDB prunes by column statistics.
    """
    globs = []
    kinds = {p.tier for p in list_partitions(tiers)}
    if "hot" in kinds:
        globs.append(str(tiers.hot / "*" / "*" / "*.parquet"))
    if "archive" in kinds:
        globs.append(str(tiers.archive / "*" / "*.parquet"))
    if not globs:
        return {}
    where = " AND ".join(f"{col} = ?" for col in criteria)
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute(
            f"SELECT filename, count(*) FROM read_parquet(?, filename = true, "
            f"union_by_name = true) WHERE {where} GROUP BY filename "
            f"HAVING min(ts) < ?",
            [globs, *criteria.values(), before],
        ).fetchall()
    except duckdb.IOException:  # every file of a tier vanished under us: nothing there
        return {}
    finally:
        con.close()
    return {Path(name): count for name, count in rows if not Path(name).name.startswith(".")}


def _count_dry(store: Path, tiers: Tiers, files: dict[Path, int], criteria: dict[str, str],
               result: Erasure) -> None:
    for path, count in files.items():
        result.records += count
        result.files += 1
        result.by_tier["archive" if tiers.tier_path(path).startswith("archive/") else "hot"] += count
    if in_journal := _journal_matches(store, criteria, datetime.now(UTC)):
        result.by_tier["journal"] += in_journal
        result.records += in_journal


def _journal_matches(store: Path, criteria: dict[str, str], before: datetime) -> int:
    """Subject records still in segments a live proxy holds (replay flushed the others)."""
    cutoff = int(before.timestamp() * 1_000_000)
    found = 0
    for _instance, _seq, segment in list_segments(Path(store) / JOURNAL_DIR):
        try:
            fd = os.open(segment, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # held by a live writer: exactly the case to look into
            for record in unflushed_records(store, segment):
                if (record_time_us(record) or 0) < cutoff and all(
                        record.get(col) == val for col, val in criteria.items()):
                    found += 1
        finally:
            os.close(fd)
    return found


def _refuse_if_held(files: dict[Path, int], criteria: dict[str, str], holds: list[Hold]) -> None:
    if not holds:
        return
    held: Counter[str] = Counter()
    for path in files:
        table = pq.read_table(path, columns=["user_id", "key_id", "ts"])
        subject = _matches(table, criteria)
        for hold in holds:
            both = pc.and_(subject, held_mask(table, [hold]))
            held[hold.name] += pc.sum(both).as_py() or 0
    if held := +held:
        names = ", ".join(f"{n} ({c} record(s))" for n, c in held.items())
        raise UsageError(
            f"erasure refused: legal hold {names} covers records of this subject; nothing was "
            f"erased. Release the hold first (`llm-audit hold release NAME --reason …`)"
        )


def _rewrite(store: Path, tiers: Tiers, files: dict[Path, int], criteria: dict[str, str],
             op_id: str, result: Erasure) -> None:
    seq = time.time_ns() // 1000
    for i, (path, _count) in enumerate(sorted(files.items())):
        table = pq.read_table(path)
        subject = _matches(table, criteria)
        erased = pc.sum(subject).as_py() or 0
        if not erased:
            continue
        keep = table.filter(pc.invert(subject))
        new = [(keep, path.with_name(parquet_name("erase", seq + i)))] if keep.num_rows else []
        publish(store, new, remove=[path], reason="erase", detail={"erasure": op_id})
        result.records += erased
        result.files += 1
        result.by_tier["archive" if tiers.tier_path(path).startswith("archive/") else "hot"] += erased


def erase(store: Path, *, user: str | None, key_id: str | None, reason: str,
          dry_run: bool = False, journal_wait: float = 30.0, lock_wait: float = 600.0) -> Erasure:
    """Erase every record matching all given criteria (``user`` → ``user_id``, ``key_id``)."""
    criteria = _criteria(user, key_id)
    if not criteria:
        raise UsageError("say whose records to erase: --user and/or --key-id")
    if not reason.strip():
        raise UsageError("--reason must say why (e.g. the data-subject request reference)")
    store = Path(store)
    result = Erasure(dry_run=dry_run)
    op_id = secrets.token_hex(8)
    with maintenance_lock(store, purpose="erase", wait=lock_wait):
        tiers = Tiers.of(store)
        holds = active_holds(store)
        if not dry_run:
            recover(store)
            sweep_temps(store)  # a dead process's stage file may hold the subject's records
        converged = False
        try:
            for _round in range(_ROUNDS):
                if not dry_run:
                    result.journal_flushed += _flush_journal(store, criteria, result.started,
                                                             journal_wait)
                files = _affected_files(tiers, criteria, before=result.started)
                _refuse_if_held(files, criteria, holds)
                if dry_run:
                    _count_dry(store, tiers, files, criteria, result)
                    return result
                if not files:
                    converged = True
                    break
                _rewrite(store, tiers, files, criteria, op_id, result)
        finally:
            if not dry_run and (converged or result.files):
                result.chain_seq = record_event(store, "erase", {
                    "erasure": op_id,
                    "reason": reason,
                    "criteria": sorted(criteria),
                    "subject": subject_digest(store, criteria),
                    "records": result.records,
                    "files": result.files,
                    "by_tier": dict(result.by_tier),
                    "journal_flushed": result.journal_flushed,
                    "as_of": iso(result.started),
                    "complete": converged,
                })
        if result.files:  # cached report roll-ups of the rewritten days hold the subject too
            rollups.prune(store)
        if not converged:
            raise StoreError("erasure incomplete: records of this subject kept reaching the store "
                             "while it ran; stop the proxy (or the subject's traffic) and re-run")
    return result


def _flush_journal(store: Path, criteria: dict[str, str], started: datetime,
                   wait: float) -> int:
    """Flush idle segments; wait for live ones holding the subject, else refuse."""
    deadline = time.monotonic() + wait
    flushed = 0
    while True:
        flushed += replay(store)
        pending = _journal_matches(store, criteria, started)
        if not pending:
            return flushed
        if time.monotonic() >= deadline:
            raise StoreError(
                f"{pending} record(s) of this subject are still in the journal of a running "
                "proxy; nothing was erased. Re-run after its next flush (config flush_seconds), "
                "or stop the proxy and re-run"
            )
        time.sleep(0.5)
