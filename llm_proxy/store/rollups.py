"""Report roll-ups cached beside the immutable Parquet files: ``STORE/.cache/rollups/``.

A report's partial aggregates over one day of the store (its sums, counts, maxima and
latency histograms per group) never change while that day's files do not, and Parquet files
are never modified in place: compaction, archiving, reprice and erasure publish *new* files and
remove the old ones. So a partial is cached under

    STORE/.cache/rollups/<signature>/<YYYY-MM-DD>-<members>.parquet

where ``signature`` hashes the SQL that computed it (``llm_proxy.reports.scan``) and
``members`` the identity — tier folder, name, size and mtime — of every file of that day in both
tiers. The day entries of an ISO week are also merged into one **week entry**,
``w<YYYY>-<WW>-<digest>.parquet``, whose digest covers the members of each of its days: a report
over a month reads four week entries and a few days instead of thirty days of partials (per-user
histograms shrink the most: the same buckets recur from day to day). Consecutive whole weeks are
merged once more into a **span entry**, ``s<first week>_<last week>-<digest>.parquet``. Any change to a day's files changes ``members``, so a stale entry is never *read*; it is
deleted by the next write for that day or by ``prune`` (called by erase, retention, compaction
and reprice, so erased user ids and messages leave the cache with the files they came from).

The cache is only ever an optimisation: an unreadable entry is recomputed, a store without write
permission is simply not cached, and writes go through a temporary file and a rename, so
concurrent reports never see half an entry. Folders are created 0700, files 0600, like the rest
of the store. ``verify``, ``ship``, ``rescan`` and the views list only the tiers (``flows/``,
the archive), never this dot-folder.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llm_proxy.store.layout import FILE_MODE, make_dirs

__all__ = ["CACHE_DIR", "cache_root", "clear", "day_members", "entry_columns", "entry_path",
           "prune", "span_name", "span_weeks", "week_dates", "week_digest", "week_of",
           "write_entry"]

CACHE_DIR = ".cache/rollups"
_TEMP_MAX_AGE = 3600.0  # seconds: a temp file this old belongs to a process that died


def cache_root(store: Path) -> Path:
    return Path(store) / CACHE_DIR


def day_members(files: Iterable[Path]) -> str:
    """Digest of a day's files (folder/name, size, mtime): changes with any file of the day.

    Raises ``FileNotFoundError`` when a file vanished (compaction swapped it): the caller
    reads that day live and, if the file is really gone, re-lists (``views.retrying``).
    """
    ids = []
    for f in files:
        st = os.stat(f)
        ids.append(f"{f.parent.name}/{f.name}\0{st.st_size}\0{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:20]


def week_of(day: str) -> str:
    """``w2026-45``: the ISO week of a ``YYYY-MM-DD`` day."""
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"w{year:04d}-{week:02d}"


def week_dates(week: str) -> list[str]:
    """The seven ``YYYY-MM-DD`` days of an ISO week named by ``week_of``."""
    year, number = (int(x) for x in week[1:].split("-"))
    return [date.fromisocalendar(year, number, d).isoformat() for d in range(1, 8)]


def week_digest(members: Mapping[str, str]) -> str:
    """Digest of a week entry: every one of its days with that day's members (and of a span
    entry: every one of its weeks with that week's digest)."""
    text = "\n".join(f"{day}:{m}" for day, m in sorted(members.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def span_name(first_week: str, last_week: str) -> str:
    """``s2026-44_2026-47``: consecutive whole weeks merged into one entry."""
    return f"s{first_week[1:]}_{last_week[1:]}"


def span_weeks(span: str) -> list[str]:
    """The weeks of a span named by ``span_name``, first to last (at most ~10 years)."""
    first, _, last = span[1:].partition("_")
    day = date.fromisoformat(week_dates("w" + first)[0])
    end = date.fromisoformat(week_dates("w" + last)[0])
    weeks = []
    while day <= end and len(weeks) < 520:
        weeks.append(week_of(day.isoformat()))
        day += timedelta(days=7)
    return weeks


def entry_path(store: Path, signature: str, day: str, members: str) -> Path:
    return cache_root(store) / signature / f"{day}-{members}.parquet"


def entry_columns(path: Path) -> list[str] | None:
    """Column names of a cache entry (its footer only), or None when absent or unreadable; an
    unreadable entry is deleted, so it is recomputed."""
    try:
        return pq.read_schema(path).names
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException):
        try:
            path.unlink()
        except OSError:
            pass
        return None


def write_entry(path: Path, table: pa.Table) -> bool:
    """Write atomically (temp + rename) and drop older entries of the same day; False if the
    store is not writable (the report is then just not cached)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        make_dirs(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        return False
    prefix = path.name.rsplit("-", 1)[0] + "-"  # the day (or week) before the digest
    try:
        for other in os.scandir(path.parent):
            if other.name.startswith(prefix) and other.name != path.name \
                    and other.name.rsplit("-", 1)[0] + "-" == prefix \
                    and other.name.endswith(".parquet"):
                Path(other.path).unlink(missing_ok=True)
    except OSError:
        pass
    return True


def _current_members(store: Path) -> dict[str, str]:
    from llm_proxy.store.views import scan_partitions

    by_day: dict[str, list[Path]] = defaultdict(list)
    for part in scan_partitions(store):
        by_day[part.partition.date].extend(part.files)
    members = {}
    for day, files in by_day.items():
        try:
            members[day] = day_members(files)
        except FileNotFoundError:
            continue  # changing right now: its entries are stale either way
    return members


def prune(store: Path) -> int:
    """Delete entries whose day's files changed or are gone, and dead temp files; the count.

    Called after every operation that rewrites or removes Parquet files, so that cached partials
    of erased records do not outlive them.
    """
    root = cache_root(store)
    if not root.is_dir():
        return 0
    current = _current_members(Path(store))
    removed = 0
    now = time.time()
    for sig in os.scandir(root):
        if not sig.is_dir():
            continue
        for entry in os.scandir(sig.path):
            name = entry.name
            if name.endswith(".tmp"):
                stale = now - entry.stat().st_mtime > _TEMP_MAX_AGE
            elif name.startswith("w"):
                stale = _stale_week(name, current)
            elif name.startswith("s"):
                stale = _stale_span(name, current)
            else:
                day = name[:10]
                stale = current.get(day) != name[11:].removesuffix(".parquet")
            if stale:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        try:
            os.rmdir(sig.path)  # only succeeds when empty
        except OSError:
            pass
    return removed


def _stale_week(name: str, current: Mapping[str, str]) -> bool:
    week, _, digest = name.removesuffix(".parquet").rpartition("-")
    try:
        members = {d: current[d] for d in week_dates(week) if d in current}
    except ValueError:
        return True
    return not members or week_digest(members) != digest


def _week_now(week: str, current: Mapping[str, str]) -> str | None:
    members = {d: current[d] for d in week_dates(week) if d in current}
    return week_digest(members) if members else None


def _stale_span(name: str, current: Mapping[str, str]) -> bool:
    span, _, digest = name.removesuffix(".parquet").rpartition("-")
    try:
        weeks = {w: _week_now(w, current) for w in span_weeks(span)}
    except ValueError:
        return True
    if not weeks or None in weeks.values():
        return True
    return week_digest(weeks) != digest  # type: ignore[arg-type]


def clear(store: Path) -> None:
    """Remove the whole cache (it is rebuilt on demand)."""
    shutil.rmtree(cache_root(store), ignore_errors=True)
