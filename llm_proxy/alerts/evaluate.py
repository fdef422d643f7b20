"""Running the rules over the store, and the re-notification state (``alerts-state.json``).

Each rule is one SQL query over ``flows`` for ``[now - window, now)`` (or ``[--since, now)``).
The state file remembers, per (rule, group, channel), when a notification was last delivered,
so that ``alerts check`` from cron every few minutes does not re-notify within the rule's
window. Groups are kept in the file only as a hash: a user id never lands there in clear.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llm_proxy.alerts.rules import Rule, compare, rule_sql
from llm_proxy.errors import StoreError

__all__ = ["STATE_FILE", "Fired", "evaluate", "load_state", "save_state", "state_key"]

STATE_FILE = "alerts-state.json"


@dataclass(frozen=True, slots=True)
class Fired:
    """One rule that fired, for one group (``group`` is None without ``by``)."""

    rule: Rule
    group: str | None
    value: float
    requests: int
    since: datetime
    until: datetime


def evaluate(store: str | os.PathLike[str], rules: Sequence[Rule], *, now: datetime,
             since: datetime | None = None) -> list[Fired]:
    """Every rule over its window ending at ``now``; ``since`` replaces each window's start."""
    from llm_proxy.store.views import connect, require_store, retrying

    root = Path(store)
    require_store(root)
    if not rules:
        return []
    starts = {r.name: since or now - r.window for r in rules}
    earliest = min(starts.values())

    def attempt() -> list[Fired]:
        con = connect(root, since=earliest, until=now)
        try:
            fired: list[Fired] = []
            for rule in rules:
                start = starts[rule.name]
                rows = con.execute(rule_sql(rule), [start, now]).fetchall()
                for grp, value, n in rows:
                    if compare(value, rule.op, rule.threshold):
                        fired.append(Fired(rule, None if grp is None else str(grp),
                                           float(value), int(n), start, now))
            return fired
        finally:
            con.close()

    return retrying(attempt)


def state_key(rule: str, group: str | None, channel: str) -> str:
    digest = hashlib.sha256((group if group is not None else "\x00").encode()).hexdigest()[:16]
    return f"{rule}|{digest}|{channel}"


def _state_path(store: str | os.PathLike[str]) -> Path:
    return Path(store) / STATE_FILE


def load_state(store: str | os.PathLike[str]) -> dict[str, datetime]:
    """Last delivery per state key; a missing file is empty, a corrupt one a ``StoreError``."""
    path = _state_path(store)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StoreError(f"alert state {str(path)!r} is unreadable ({type(exc).__name__}): "
                         "delete it to start afresh") from None
    notified = data.get("notified", {}) if isinstance(data, dict) else None
    if not isinstance(notified, dict):
        raise StoreError(f"alert state {str(path)!r} is not an alert state file: delete it")
    out: dict[str, datetime] = {}
    for key, value in notified.items():
        try:
            ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            continue
        out[key] = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return out


def save_state(store: str | os.PathLike[str], state: dict[str, datetime]) -> None:
    """Write the state atomically (temp file in the store, 0600, fsync, rename)."""
    path = _state_path(store)
    body = json.dumps({"version": 1, "notified": {
        k: v.astimezone(UTC).isoformat().replace("+00:00", "Z") for k, v in sorted(state.items())
    }}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".alerts-state.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
