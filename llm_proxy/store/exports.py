"""The store's register of the exports it made, so ``rescan`` can prove them clean too.

Exports leave the store (``--output`` is anywhere the user says), yet they are files the
project wrote: an auditor's "no file we wrote holds personal data" must cover them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from llm_proxy.store.layout import FILE_MODE, make_dirs

__all__ = ["EXPORTS_FILE", "note_export", "export_paths"]

EXPORTS_FILE = "exports.jsonl"


def note_export(store: Path, output: Path, *, rows: int, fmt: str) -> None:
    """Append one line: where, when, how many records, which format."""
    make_dirs(store)
    line = json.dumps({"path": str(output.resolve()), "ts": time.time(), "rows": rows,
                       "format": fmt}) + "\n"
    fd = os.open(store / EXPORTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def export_paths(store: Path) -> list[Path]:
    """Exports still on disk, oldest first, each once."""
    try:
        lines = (store / EXPORTS_FILE).read_text().splitlines()
    except FileNotFoundError:
        return []
    seen: dict[str, None] = {}
    for line in lines:
        try:
            seen[json.loads(line)["path"]] = None
        except (ValueError, KeyError, TypeError):
            continue
    return [Path(p) for p in seen if Path(p).is_file()]
