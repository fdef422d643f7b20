"""``STORE/ship-state.json``: per exporter, the Parquet files already shipped.

Parquet files are immutable and uniquely named, so a file name is the identity of its records.
Written owner-only (0600) through a temp file and ``os.replace``, so a crash never leaves a torn
file; a lost update only means a file is re-shipped, which is idempotent (``_id`` = record id).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llm_proxy.errors import StoreError
from llm_proxy.store.layout import FILE_MODE, make_dirs

__all__ = ["STATE_FILE", "ShipState", "exporter_key"]

STATE_FILE = "ship-state.json"
_VERSION = 1


def exporter_key(kind: str, options: dict[str, Any]) -> str:
    """A stable name for an exporter's entry: kind, endpoint and index."""
    if kind == "elasticsearch":
        return f"elasticsearch:{str(options['endpoint']).rstrip('/')}|{options.get('index') or ''}"
    return f"{kind}:{options.get('endpoint') or options.get('bucket')}"


class ShipState:
    """The state file of one store, loaded once and saved after every shipped file."""

    def __init__(self, store: Path) -> None:
        self.path = Path(store) / STATE_FILE
        self.data: dict[str, Any] = {"version": _VERSION, "exporters": {}}
        try:
            loaded = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (ValueError, OSError) as exc:
            raise StoreError(f"{self.path} is unreadable ({exc}): delete it to re-ship "
                             "everything (re-shipping is idempotent)") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("exporters"), dict):
            raise StoreError(f"{self.path} is not a ship state file: delete it to re-ship")
        self.data = loaded

    def shipped(self, key: str) -> set[str]:
        return set(self.data["exporters"].get(key, {}).get("files", []))

    def set_shipped(self, key: str, files: set[str]) -> None:
        self.data["exporters"].setdefault(key, {})["files"] = sorted(files)

    def save(self) -> None:
        make_dirs(self.path.parent)
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
