"""The store's two tiers of Parquet files and the partitions in them.

- **hot**: ``STORE/flows/date=YYYY-MM-DD/hour=HH/*.parquet`` — what the proxy writes, hourly.
- **archive**: ``ARCHIVE/date=YYYY-MM-DD/*.parquet`` — one merged zstd file per day, written by
  ``retention apply`` once a day is older than ``archive_after``. ``ARCHIVE`` is config
  ``archive_path``, default ``STORE/archive``.

An archive outside the store is recorded in ``STORE/tiers.json`` the first time retention uses
it, so every reader (the DuckDB views, ``verify``, ``erase``) finds both tiers from the store
path alone, without needing the configuration file that retention ran with.

Integrity-chain entries name files by *tier path* (``flows/…`` or ``archive/…``), relative to
the tier root, so an archive tier moved as a whole stays verifiable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from llm_proxy.errors import ConfigError, StoreError
from llm_proxy.store.layout import FILE_MODE, FLOWS_DIR, make_dirs

__all__ = [
    "ARCHIVE_DIR",
    "TIERS_FILE",
    "Partition",
    "Tiers",
    "archive_dir",
    "day_start",
    "configure_archive",
    "is_temp_name",
    "list_partitions",
    "partition_files",
]

ARCHIVE_DIR = "archive"
TIERS_FILE = "tiers.json"


def is_temp_name(name: str) -> bool:
    """A file being staged (``.<name>.tmp`` / ``.<name>.<nonce>.tmp``): not part of the log yet."""
    return name.startswith(".") and name.endswith(".tmp")


def archive_dir(store: Path) -> Path:
    """Where the archive tier of ``store`` lives (``tiers.json``, else ``STORE/archive``)."""
    store = Path(store)
    try:
        recorded = json.loads((store / TIERS_FILE).read_text()).get("archive")
    except FileNotFoundError:
        recorded = None
    except (ValueError, AttributeError):
        raise StoreError(f"{store / TIERS_FILE} is not valid JSON: fix or delete it") from None
    return Path(recorded) if recorded else store / ARCHIVE_DIR


def configure_archive(store: Path, archive_path: str | None) -> Path:
    """Resolve config ``archive_path`` against what the store already uses, recording it.

    Changing the archive location once files are there would hide them from queries, so that
    is refused with the steps to take instead.
    """
    store = Path(store)
    current = archive_dir(store)
    if archive_path is None:
        return current
    if archive_path.startswith("s3://"):
        raise ConfigError(
            "archive_path on s3:// is not supported yet: use a local or mounted path, and "
            "`llm-audit ship` for an off-site copy"
        )
    wanted = Path(archive_path).expanduser().absolute()
    if wanted == current.absolute():
        return current
    if _has_files(current):
        raise ConfigError(
            f"archive_path {str(wanted)!r} differs from the archive in use at {str(current)!r}, "
            "which holds files: set archive_path back, or move the folder and edit "
            f"{store / TIERS_FILE}"
        )
    if wanted != (store / ARCHIVE_DIR).absolute():
        make_dirs(store)
        tmp = store / f".{TIERS_FILE}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w") as fh:
            json.dump({"archive": str(wanted)}, fh)
        os.replace(tmp, store / TIERS_FILE)
    return wanted


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(True for _ in folder.rglob("*.parquet"))


@dataclass(frozen=True, slots=True)
class Tiers:
    """Tier roots of one store, and the mapping between absolute and tier paths."""

    store: Path
    hot: Path
    archive: Path

    @classmethod
    def of(cls, store: Path) -> Tiers:
        store = Path(store)
        return cls(store, store / FLOWS_DIR, archive_dir(store))

    def tier_path(self, path: Path) -> str:
        """``flows/date=…/x.parquet`` or ``archive/date=…/x.parquet`` for an absolute path."""
        path = Path(path)
        for prefix, root in ((FLOWS_DIR, self.hot), (ARCHIVE_DIR, self.archive)):
            try:
                return f"{prefix}/{path.relative_to(root).as_posix()}"
            except ValueError:
                continue
        raise StoreError(f"{path} is outside the store's tiers ({self.hot}, {self.archive})")

    def absolute(self, tier_path: str) -> Path:
        prefix, _, rest = tier_path.partition("/")
        root = {FLOWS_DIR: self.hot, ARCHIVE_DIR: self.archive}.get(prefix)
        if root is None:
            raise StoreError(f"chain path {tier_path!r} names no tier")
        return root / rest


@dataclass(frozen=True, slots=True)
class Partition:
    """One hourly (hot) or daily (archive) partition folder."""

    tier: str  # "hot" | "archive"
    date: str  # YYYY-MM-DD
    hour: int | None  # None for a daily archive partition
    path: Path

    @property
    def start(self) -> datetime:
        day = day_start(self.date)
        return day + timedelta(hours=self.hour) if self.hour else day

    @property
    def end(self) -> datetime:
        """Exclusive end: every record in the partition is older than this."""
        return self.start + (timedelta(days=1) if self.hour is None else timedelta(hours=1))

    @property
    def label(self) -> str:
        return self.date if self.hour is None else f"{self.date} {self.hour:02d}h"


@lru_cache(maxsize=8192)
def day_start(date: str) -> datetime:
    """UTC midnight of ``YYYY-MM-DD`` (cached: 7 years of partitions share 2,557 dates)."""
    return datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)


def _date_of(name: str) -> str | None:
    if not name.startswith("date=") or len(name) != 15:
        return None
    try:
        day_start(name[5:])
    except ValueError:
        return None
    return name[5:]


def list_partitions(tiers: Tiers) -> list[Partition]:
    """Every partition folder of both tiers, from directory listings only (no file is opened).

    Cheap by design: 7 years of hourly partitions (≈61,000 folders) list in well under a second,
    which is what lets cron run ``retention apply`` every few minutes.
    """
    found: list[Partition] = []
    if tiers.hot.is_dir():
        for day in os.scandir(tiers.hot):
            date = _date_of(day.name)
            if date is None or not day.is_dir():
                continue
            for hour in os.scandir(day.path):
                name = hour.name
                if name.startswith("hour=") and name[5:].isdigit() and hour.is_dir():
                    found.append(Partition("hot", date, int(name[5:]), Path(hour.path)))
    if tiers.archive.is_dir():
        for day in os.scandir(tiers.archive):
            date = _date_of(day.name)
            if date is not None and day.is_dir():
                found.append(Partition("archive", date, None, Path(day.path)))
    found.sort(key=lambda p: (p.start, p.tier))
    return found


def partition_files(partition: Partition) -> list[Path]:
    """The finalised Parquet files of a partition, oldest name first."""
    try:
        entries = list(os.scandir(partition.path))
    except FileNotFoundError:
        return []
    return sorted(Path(e.path) for e in entries
                  if e.name.endswith(".parquet") and not e.name.startswith("."))
