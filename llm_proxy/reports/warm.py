"""Warm the report roll-up cache: every report kind × every ``--by`` × hour and day buckets.

``llm-audit compact`` (cron, every 30 minutes) calls this after merging, so interactive reports
find the partials of every closed day already cached; capture itself never pays for it. Only
days lacking an entry are computed (the rows of those days, one statement per report branch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from llm_proxy.reports import BUILDERS, GROUPINGS, Scope
from llm_proxy.reports.scan import warming
from llm_proxy.store.views import connect, retrying

__all__ = ["WarmReport", "warm"]


@dataclass(slots=True)
class WarmReport:
    entries: int = 0  # cache entries written
    days: int = 0  # days that lacked some entry
    files: int = 0  # Parquet files of those days
    seconds: float = 0.0

    @property
    def per_file(self) -> float:
        return self.seconds / self.files if self.files else 0.0

    def summary(self) -> str:
        if not self.entries:
            return f"report roll-ups already warm ({self.seconds:.2f} s to check)"
        return (f"warmed {self.entries} report roll-up(s) for {self.days} day(s), "
                f"{self.files} file(s), in {self.seconds:.1f} s "
                f"({self.per_file * 1000:.0f} ms per file)")


def warm(store: Path) -> WarmReport:
    """Compute and cache the missing per-day partials of the standard reports."""
    started = time.perf_counter()

    def attempt() -> WarmReport:
        con = connect(store, with_journal=False)
        try:
            with warming() as stats:
                for build in BUILDERS.values():
                    for by in GROUPINGS:
                        for bucket in ("hour", "day"):
                            build(con, Scope(by=by, bucket=bucket))
        finally:
            con.close()
        return WarmReport(stats.entries, len(stats.days), len(stats.files))

    report = retrying(attempt)
    report.seconds = time.perf_counter() - started
    return report
