"""Advisory file locks (``fcntl.flock``) that serialise writers of one local store.

Two locks exist, both files under ``STORE/locks/`` that are never deleted (deleting a lock file
while someone waits on it would let two holders in):

- ``chain.lock`` — held for the few milliseconds in which ``publish`` appends to the integrity
  chain and moves files into place. Every process that finalises files takes it: the proxy's
  flusher, compaction, retention, erasure, and ``verify`` while it snapshots the store.
- ``maintenance.lock`` — held for a whole ``retention apply``, ``erase``, ``hold add|release``
  or ``compact`` run, so two of them never rewrite the same partitions at once. Cron may start
  ``retention apply`` while the previous one still runs: the second gets ``LockBusy`` and
  exits cleanly.

``flock`` locks belong to the open file, so they vanish with the process — a ``kill -9`` never
leaves a stale lock behind, which is why no pid-file liveness checks are needed.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from llm_proxy.errors import StoreError
from llm_proxy.store.layout import FILE_MODE, make_dirs

__all__ = ["LOCKS_DIR", "LockBusy", "file_lock", "chain_lock", "maintenance_lock"]

LOCKS_DIR = "locks"


class LockBusy(StoreError):
    """Another process holds the lock; ``holder`` says who, as the lock file records it."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


def _describe_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 512).decode("utf-8", "replace").strip() or "unknown process"
    except OSError:
        return "unknown process"


@contextmanager
def file_lock(path: Path, *, shared: bool = False, wait: float | None = None,
              purpose: str = "") -> Iterator[None]:
    """Hold ``flock`` on ``path``; ``wait=None`` blocks, ``wait=0`` fails at once (``LockBusy``).

    The exclusive holder writes ``purpose``, pid, host and start time into the file so that a
    process that cannot get the lock can say who has it.
    """
    make_dirs(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if wait is None:
            fcntl.flock(fd, mode)
        else:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = _describe_holder(fd)
                        raise LockBusy(f"{path.name} is held by {holder}", holder) from None
                    time.sleep(0.05)
        if not shared:
            note = (f"{purpose or 'llm-audit'} (pid {os.getpid()} on {socket.gethostname()}, "
                    f"since {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, note, 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def chain_lock(store: Path, *, shared: bool = False) -> AbstractContextManager[None]:
    """The short lock around integrity-chain appends (see module docstring)."""
    return file_lock(Path(store) / LOCKS_DIR / "chain.lock", shared=shared, purpose="publish")


def maintenance_lock(store: Path, *, purpose: str,
                     wait: float | None = 0) -> AbstractContextManager[None]:
    """The long lock of one rewriting run: retention, erase, hold changes, compaction."""
    return file_lock(Path(store) / LOCKS_DIR / "maintenance.lock", wait=wait, purpose=purpose)
