from datetime import UTC, datetime, timedelta

import pytest

from llm_proxy.errors import QueryError
from llm_proxy.timeparse import parse_time

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text,expected", [
    ("15m", NOW - timedelta(minutes=15)),
    ("2h", NOW - timedelta(hours=2)),
    ("7d", NOW - timedelta(days=7)),
    ("2w", NOW - timedelta(days=14)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T14:30:00Z", datetime(2026, 11, 1, 14, 30, tzinfo=UTC)),
    ("2026-11-01T14:30:00+02:00", datetime(2026, 11, 1, 12, 30, tzinfo=UTC)),
    ("now", NOW),
])
def test_forms(text, expected):
    assert parse_time(text, now=NOW) == expected


def test_bad_time_names_option_and_forms():
    with pytest.raises(QueryError, match=r"--until 'yesterday-ish' is not a time: use 15m"):
        parse_time("yesterday-ish", now=NOW, option="--until")
