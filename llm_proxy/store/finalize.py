"""The one way Parquet files enter or leave the store, and the integrity chain that sees it all.

Every writer of finalised files — the capture worker's flush, compaction, archival, retention,
erasure — goes through ``publish``. Keeping this in one place is what lets ``llm-audit verify``
vouch for every file: a file the chain does not describe was not put there by the project.

The protocol makes a ``kill -9`` at any instant leave a store that verifies and loses nothing:

1. *Stage* (no lock): each new file is written to ``.<name>.<stage>.tmp`` in its final folder,
   fsynced, made read-only (0400) and hashed. Files to remove are hashed.
2. Under ``locks.chain_lock``: *roll forward* whatever the chain's last entry announced but a
   crash did not finish; check the files to remove are still there (another process may have
   rewritten them: then nothing happens and the caller is told to re-run); *append* one signed
   entry listing the files added and removed (fsync) — this is the commit point;
3. *apply* the entry: rename staged files into place, delete removed ones, fsync the folders,
   drop partition folders left empty.

A crash before the append leaves only dot-temp files (ignored by queries and ``verify``); a crash
after it is completed by the next process that takes the lock (``recover``). Because the rename
follows the entry, a file's existence under its final name always implies a chain entry for it.
Nothing is ever rewritten in place: a changed file is a new file plus a removal.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from llm_proxy.errors import StoreError
from llm_proxy.store import chain as chainlog
from llm_proxy.store.digest import FileDigest, describe_file, sha256_file
from llm_proxy.store.layout import FILE_MODE, FINAL_FILE_MODE, make_dirs
from llm_proxy.store.locks import chain_lock
from llm_proxy.store.parquet import PARQUET_OPTIONS, encode_parquet, fsync_dir
from llm_proxy.store.signing import (
    b64,
    create_private_key,
    key_path,
    load_private_key,
    public_pem,
    public_raw,
)
from llm_proxy.store.tiers import Tiers, is_temp_name, list_partitions, partition_files

__all__ = ["publish", "record_event", "recover", "sweep_temps", "PUBLIC_KEY_FILE", "DELAY_ENV"]

PUBLIC_KEY_FILE = "signing.pub.pem"
# Test hook: seconds to sleep between the protocol's steps, so a test can SIGKILL inside them.
DELAY_ENV = "LLM_AUDIT_TEST_PUBLISH_DELAY"
_ADOPT_BATCH = 1000
_ROW_GROUP_ROWS = 128 * 1024
_ROW_GROUP_BYTES = 64 << 20

_genesis_keys: dict[Path, str] = {}


@dataclass(frozen=True, slots=True)
class _Staged:
    final: Path
    tmp: Path
    digest: FileDigest
    fd: int  # open with flock held: tells ``sweep_temps`` its owner is alive


def _temp_for(final: Path, stage: str) -> Path:
    return final.with_name(f".{final.name}.{stage}.tmp")


def _delay() -> None:
    if seconds := os.environ.get(DELAY_ENV):
        time.sleep(float(seconds))


def _encode_stream(data: pa.RecordBatchReader, fh: BinaryIO) -> None:
    # A stream (archive merges): bounded memory whatever the day's volume, while small input
    # batches (one per hourly file) are coalesced so the file gets few, large row groups.
    with pq.ParquetWriter(fh, data.schema, **PARQUET_OPTIONS) as writer:
        pending: list[pa.RecordBatch] = []
        rows = size = 0
        for batch in data:
            pending.append(batch)
            rows += batch.num_rows
            size += batch.nbytes
            if rows >= _ROW_GROUP_ROWS or size >= _ROW_GROUP_BYTES:
                writer.write_table(pa.Table.from_batches(pending, schema=data.schema))
                pending, rows, size = [], 0, 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema=data.schema))


def _stage(data: pa.Table | pa.RecordBatchReader, final: Path, stage: str) -> _Staged:
    """Write a stage file, holding ``flock`` on it until the publish ends (see ``sweep_temps``)."""
    tmp = _temp_for(final, stage)
    for attempt in range(3):
        make_dirs(final.parent)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            break
        except FileNotFoundError:  # retention removed the empty folder in between: again
            if attempt == 2:
                raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            ours = os.path.samestat(os.fstat(fd), os.stat(tmp))
        except FileNotFoundError:
            ours = False
        if not ours:
            # a sweep took it for a dead process's file before the lock was ours
            raise StoreError(f"stage file {tmp} was removed while being created; run again")
        if isinstance(data, pa.Table):
            # Arrow opens the file itself: its writes need no GIL (a Python file object took
            # it for every page) and no copy of the file in memory
            encode_parquet(data, str(tmp))
        else:
            with os.fdopen(fd, "wb", closefd=False) as fh:
                _encode_stream(data, fh)
                fh.flush()
        os.fsync(fd)
        os.fchmod(fd, FINAL_FILE_MODE)
        return _Staged(final, tmp, describe_file(tmp), fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def _prune_empty_dirs(tiers: Tiers, folders: Iterable[Path]) -> None:
    """Remove partition folders a removal left empty (never a tier root)."""
    roots = {tiers.hot, tiers.archive}
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        while folder not in roots and any(r in folder.parents for r in roots):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop climbing
                break
            folder = folder.parent


def _apply(tiers: Tiers, entry: Mapping[str, Any]) -> None:
    """Make the files match a ``publish`` entry. Idempotent: also the crash roll-forward."""
    if entry.get("op") != "publish":
        return
    stage = entry.get("stage", "")
    touched: set[Path] = set()
    emptied: set[Path] = set()
    for item in entry.get("add", ()):
        final = tiers.absolute(item["path"])
        tmp = _temp_for(final, stage)
        if stage and not os.path.lexists(final) and os.path.lexists(tmp):
            os.replace(tmp, final)
            touched.add(final.parent)
    if entry.get("remove"):
        _delay()
    for item in entry.get("remove", ()):
        path = tiers.absolute(item["path"])
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        touched.add(path.parent)
        emptied.add(path.parent)
    for folder in touched:
        if folder.exists():
            fsync_dir(folder)
    _prune_empty_dirs(tiers, emptied)


def _drop_stale_temps(final: Path, keep: Path) -> None:
    """Temps of the same target left by a process killed before it committed."""
    prefix = f".{final.name}."
    try:
        names = os.listdir(final.parent)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(".tmp") and name != keep.name:
            _remove_if_orphaned(final.parent / name)


def _check_key(store: Path, path: Path, key: Ed25519PrivateKey) -> None:
    """The key must be the one in the genesis entry (read once per process)."""
    expected = _genesis_keys.get(path)
    if expected is None:
        with open(path, "rb") as fh:
            first = fh.readline()
        try:
            expected = json.loads(first)["public_key"]
        except (ValueError, KeyError, TypeError):
            raise StoreError(f"the first entry of {path} is unreadable: run `llm-audit verify`"
                             ) from None
        _genesis_keys[path] = expected
    if b64(public_raw(key)) != expected:
        raise StoreError(
            f"signing key {key_path(store)} is not the key this store's chain was started with: "
            "restore the original key (LLM_AUDIT_SIGNING_KEY / config signing_key_path)"
        )


def _adopt(tiers: Tiers, path: Path, key: Ed25519PrivateKey,
           tail: chainlog.Tail) -> chainlog.Tail:
    """Record files that predate the chain, so a store upgraded in place verifies clean."""
    batch: list[dict[str, Any]] = []
    for partition in list_partitions(tiers):
        for file in partition_files(partition):
            batch.append(describe_file(file).entry(tiers.tier_path(file)))
            if len(batch) == _ADOPT_BATCH:
                tail = chainlog.append(path, key, tail,
                                       {"op": "publish", "reason": "adopt", "add": batch})
                batch = []
    if batch:
        tail = chainlog.append(path, key, tail, {"op": "publish", "reason": "adopt", "add": batch})
    return tail


def _start_chain(store: Path, tiers: Tiers, path: Path) -> tuple[Ed25519PrivateKey, chainlog.Tail]:
    marker = path.parent / PUBLIC_KEY_FILE
    if marker.exists():
        raise StoreError(
            f"the integrity chain {path} is missing but this store had one ({marker} exists): "
            "restore chain.jsonl from backup; `llm-audit verify` lists what is unaccounted for"
        )
    key = create_private_key(key_path(store))
    tail = chainlog.append(path, key, None, {"op": "genesis", "public_key": b64(public_raw(key))})
    tail = _adopt(tiers, path, key, tail)
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(public_pem(public_raw(key)))
    return key, tail


def _open_chain(store: Path, tiers: Tiers) -> tuple[Path, Ed25519PrivateKey, chainlog.Tail]:
    """Under the chain lock: the key and the tail, after finishing a crashed publish."""
    path = chainlog.chain_path(store)
    tail = chainlog.read_tail(path)
    if tail is None:
        key, tail = _start_chain(store, tiers, path)
        return path, key, tail
    key = load_private_key(key_path(store))
    _check_key(store, path, key)
    _apply(tiers, tail.entry)
    return path, key, tail


def publish(store: Path, new_files: Sequence[tuple[pa.Table | pa.RecordBatchReader, Path]], *,
            remove: Iterable[Path] = (), reason: str,
            detail: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``new_files`` (data, absolute path) and delete ``remove``, as one chain entry.

    ``reason`` says why (``flush``, ``compact``, ``archive``, ``retention``, ``erase``);
    ``detail`` is stored with the entry (e.g. which erasure a rewrite belongs to). A target that
    already exists is left alone (a flush replayed after a crash finds its file in place).
    Raises ``StoreError`` without changing anything if a file to remove is already gone —
    another process rewrote it; re-run. Returns the paths of ``new_files``.
    """
    store = Path(store)
    tiers = Tiers.of(store)
    stage = secrets.token_hex(4)
    staged: list[_Staged] = []
    committed = False
    try:
        for data, target in new_files:
            staged.append(_stage(data, Path(target), stage))
        removing: list[tuple[Path, str]] = []
        for target in remove:
            try:
                removing.append((Path(target), sha256_file(Path(target))))
            except FileNotFoundError:
                raise StoreError(_gone_message(target)) from None
        _delay()
        with chain_lock(store):
            path, key, tail = _open_chain(store, tiers)
            for target, _ in removing:
                if not target.exists():
                    raise StoreError(_gone_message(target))
            fresh = []
            for item in staged:
                if not item.tmp.exists():
                    raise StoreError(f"staging file {item.tmp} vanished before it was published "
                                     "(removed by hand?); nothing was changed, re-run")
                if os.path.lexists(item.final):
                    item.tmp.unlink(missing_ok=True)
                else:
                    _drop_stale_temps(item.final, keep=item.tmp)
                    fresh.append(item)
            if not fresh and not removing:
                return [item.final for item in staged]
            fields: dict[str, Any] = {
                "op": "publish",
                "reason": reason,
                "stage": stage,
                "add": [item.digest.entry(tiers.tier_path(item.final)) for item in fresh],
                "remove": [{"path": tiers.tier_path(p), "sha256": digest}
                           for p, digest in removing],
            }
            if detail:
                fields["detail"] = dict(detail)
            tail = chainlog.append(path, key, tail, fields)
            committed = True
            _delay()
            _apply(tiers, tail.entry)
    except BaseException:
        if not committed:
            for item in staged:
                item.tmp.unlink(missing_ok=True)
        raise
    finally:
        for item in staged:
            os.close(item.fd)
    return [item.final for item in staged]


def _gone_message(path: Path | str) -> str:
    return (f"{path} disappeared while it was being rewritten: another process (compaction, "
            "retention or erase) changed the store at the same time; nothing was changed, re-run")


def record_event(store: Path, op: str, payload: Mapping[str, Any]) -> int:
    """Append a non-file entry (``hold_add``, ``hold_release``, ``erase``); returns its seq."""
    store = Path(store)
    with chain_lock(store):
        path, key, tail = _open_chain(store, Tiers.of(store))
        return chainlog.append(path, key, tail, {"op": op, **payload}).seq


def _remove_if_orphaned(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live publish is staging it
            return 0
        path.unlink(missing_ok=True)
        return 1
    finally:
        os.close(fd)


def sweep_temps(store: Path, folders: Iterable[Path] | None = None) -> int:
    """Delete stage files of processes killed before their commit; returns how many.

    A live stager holds ``flock`` on its stage file, so a file whose lock is free belongs to a
    dead process. Runs under the chain lock after the roll-forward, so a committed stage file
    (its entry is the chain's tail) is renamed into place, never swept. Erasure sweeps the whole
    store (a dead stage file may hold the subject's records); retention the folders it touches.
    """
    store = Path(store)
    tiers = Tiers.of(store)
    removed = 0
    with chain_lock(store):
        tail = chainlog.read_tail(chainlog.chain_path(store))
        if tail is not None:
            _apply(tiers, tail.entry)
        if folders is None:
            folders = [p.path for p in list_partitions(tiers)]
        for folder in folders:
            try:
                names = os.listdir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if is_temp_name(name):
                    removed += _remove_if_orphaned(Path(folder) / name)
    return removed


def recover(store: Path) -> None:
    """Finish a publish a crash interrupted after its commit point (no-op without a chain)."""
    store = Path(store)
    path = chainlog.chain_path(store)
    if not path.exists():
        return
    with chain_lock(store):
        tail = chainlog.read_tail(path)
        if tail is not None:
            _apply(Tiers.of(store), tail.entry)

