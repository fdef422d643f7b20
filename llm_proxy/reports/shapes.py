"""Pure: the machine shapes of a report (json document, csv rows). Documented and stable.

json::

    {"report": "cost", "by": "model", "since": "…Z" | null, "until": "…Z" | null,
     "generated_at": "…Z", "bucket": "day" | "hour",
     "totals": {metric: value, …},
     "groups": [{"group": …, metric: value, …}, …],
     "<section>": [{…}, …],            # per report: timeline, top_spenders, top_errors, …
     "notes": ["…"]}

csv: one header line, then one row per group: ``group`` and every metric of ``groups`` in the
order of the json keys. Times are ISO 8601 UTC; fractions (share, error_rate) are 0..1; money
is US dollars; latency is milliseconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from llm_proxy.reports.fmt import iso
from llm_proxy.reports.model import Report, Section

__all__ = ["section_records", "to_csv", "to_json"]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def section_records(section: Section) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in section.dicts()]


def to_json(report: Report) -> dict[str, Any]:
    """The report as one JSON-ready dict (see the module docstring for the shape)."""
    doc: dict[str, Any] = {
        "report": report.kind,
        "by": report.by,
        "since": iso(report.since),
        "until": iso(report.until),
        "generated_at": iso(report.generated_at),
        "bucket": report.bucket,
        "totals": section_records(report.totals)[0] if report.totals.rows else {},
        "groups": section_records(report.groups),
    }
    for section in report.sections:
        doc[section.key] = section_records(section)
    doc["notes"] = list(report.notes)
    return doc


def to_csv(report: Report) -> str:
    """The ``groups`` table as CSV text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.key for c in report.groups.columns])
    for row in report.groups.rows:
        writer.writerow(["" if v is None else _plain(v) for v in row])
    return buf.getvalue()
