"""Pure parsing of the CLI's time expressions: ``15m``, ``2h``, ``7d``, ``2w``, ``2026-11-01``, ISO.

Shared by every command with ``--since``/``--until``/``--now`` so they all read time the same
way: relative durations count back from ``now``; dates are UTC midnight; ISO timestamps without
an offset are UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from llm_proxy.errors import QueryError

__all__ = ["parse_time", "parse_duration", "utcnow"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|days|w|wk|weeks?)\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400,
                 "day": 86400, "days": 86400, "w": 604800, "wk": 604800, "week": 604800,
                 "weeks": 604800}


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta | None:
    """``15m`` → 15 minutes; None when ``text`` is not a duration."""
    m = _DURATION.match(text)
    if not m:
        return None
    return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])


def parse_time(text: str, *, now: datetime | None = None, option: str = "--since") -> datetime:
    """A UTC datetime from a duration ago, a date, or an ISO 8601 timestamp.

    Raises ``QueryError`` naming the option and the accepted forms.
    """
    now = now or utcnow()
    value = text.strip()
    if (delta := parse_duration(value)) is not None:
        return now - delta
    if value.lower() == "now":
        return now
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{option} {text!r} is not a time: use 15m, 2h, 7d, 2w, 2026-11-01 or an ISO "
            "timestamp like 2026-11-01T14:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
