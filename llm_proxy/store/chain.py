"""The integrity chain: an append-only, hash-linked, Ed25519-signed log of every store change.

Modelled on AWS CloudTrail's log file integrity validation. ``STORE/chain/chain.jsonl`` holds one
JSON object per line. Every entry carries ``seq`` (0, 1, 2, …), ``prev`` (SHA-256 of the previous
line's bytes), ``time``, ``op``, who did it (``actor``) and ``sig``, an Ed25519 signature over the
canonical JSON of the entry without ``sig``. Operations:

- ``genesis`` (seq 0): the public key; every later entry must verify with it.
- ``publish``: files added (tier path, SHA-256, bytes, records, ``ts`` range) and removed (tier
  path, SHA-256 at removal) by one ``publish`` call, with its ``reason`` (flush, compact,
  archive, retention, erase, adopt).
- ``hold_add`` / ``hold_release`` / ``erase``: legal-hold changes and erasure summaries.

Appending is cheap by design — the writer reads only the last line (for ``seq`` and ``prev``),
never the whole chain — because the proxy's flusher appends every few seconds. Callers hold
``locks.chain_lock`` around ``read_tail`` + ``append``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from llm_proxy.errors import StoreError
from llm_proxy.store.digest import iso
from llm_proxy.store.layout import FILE_MODE, make_dirs
from llm_proxy.store.parquet import fsync_dir
from llm_proxy.store.signing import CHAIN_DIR, b64

__all__ = [
    "CHAIN_VERSION",
    "GENESIS_PREV",
    "Tail",
    "chain_path",
    "canonical",
    "line_hash",
    "signed_bytes",
    "read_tail",
    "append",
    "iter_lines",
    "actor",
]

CHAIN_VERSION = 1
GENESIS_PREV = "0" * 64


def chain_path(store: Path) -> Path:
    return Path(store) / CHAIN_DIR / "chain.jsonl"


def canonical(obj: dict[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 — what is hashed and signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def signed_bytes(entry: dict[str, Any]) -> bytes:
    """The bytes an entry's signature covers: the canonical entry without ``sig``."""
    return canonical({k: v for k, v in entry.items() if k != "sig"})


def actor() -> dict[str, Any]:
    """Who is changing the store: OS user, host and process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid()}


@dataclass(frozen=True, slots=True)
class Tail:
    """The chain's last entry: what the next append links to."""

    seq: int
    hash: str
    entry: dict[str, Any]


def _last_newline(fd: int, end: int) -> int:
    """Offset of the last ``\\n`` in ``[0, end)``, or -1; reads backwards in blocks."""
    block = 1 << 16
    while end > 0:
        start = max(0, end - block)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            return start + found
        end = start
        block = min(block * 4, 1 << 24)
    return -1


def read_tail(path: Path, *, repair: bool = True) -> Tail | None:
    """The last complete entry, reading backwards from the end (cost independent of length).

    A last line without its newline is an append torn by a crash (power loss): with ``repair``
    (the caller holds the chain lock) it is cut off — it was never acknowledged to anyone.
    """
    try:
        fd = os.open(path, os.O_RDWR if repair else os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            size = _last_newline(fd, size) + 1
            if repair:
                os.ftruncate(fd, size)
                os.fsync(fd)
        if size == 0:
            return None
        begin = _last_newline(fd, size - 1) + 1
        line = os.pread(fd, size - 1 - begin, begin)
    finally:
        os.close(fd)
    try:
        entry = json.loads(line)
        seq = int(entry["seq"])
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"the last entry of {path} is unreadable: run `llm-audit verify`") from None
    return Tail(seq, line_hash(line), entry)


def append(path: Path, key: Ed25519PrivateKey, tail: Tail | None,
           fields: dict[str, Any]) -> Tail:
    """Link, sign and append one entry (caller holds the chain lock); durable on return."""
    entry: dict[str, Any] = {
        "v": CHAIN_VERSION,
        "seq": 0 if tail is None else tail.seq + 1,
        "prev": GENESIS_PREV if tail is None else tail.hash,
        "time": iso(datetime.now(UTC)),
        "actor": actor(),
        **fields,
    }
    entry["sig"] = b64(key.sign(signed_bytes(entry)))
    line = canonical(entry)
    if tail is None:
        make_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        data = line + b"\n"
        written = os.write(fd, data)  # one write: an append is whole or (after a crash) torn
        if written != len(data):
            os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
    if tail is None:
        fsync_dir(path.parent)
    return Tail(entry["seq"], line_hash(line), entry)


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, raw line without newline) for every line of the chain."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            yield number, raw.rstrip(b"\n")

