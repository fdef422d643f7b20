"""Pure: an e-mail body for a report that mail clients render (inline styles, tables, no SVG).

Mail clients strip ``<style>``, scripts and often SVG, so the body is tables with inline styles
and bars drawn as coloured cells; the full page with charts goes along as an attachment.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from llm_proxy.reports.fmt import human, scope_line
from llm_proxy.reports.html import kpis
from llm_proxy.reports.model import Report, Section
from llm_proxy.reports.text import to_markdown

__all__ = ["email_html", "email_subject", "email_text"]

_TD = "padding:4px 8px;border-bottom:1px solid #e2e8f0;font:13px Arial,sans-serif;"
_NUMERIC = frozenset({"int", "tokens", "usd", "pct", "ms"})
_BAR_METRIC = {"usage": "requests", "cost": "cost_usd", "latency": "latency_p95_ms",
               "errors": "errors"}


def email_subject(reports: Sequence[Report]) -> str:
    first = reports[0]
    what = first.title if len(reports) == 1 else "Usage dashboard"
    return f"LLM {what.lower()} report ({scope_line(first.by, first.since, first.until)})"


def _table(section: Section, bar_key: str | None, limit: int = 25) -> str:
    cols = [(i, c) for i, c in enumerate(section.columns) if c.human]
    bar_i = next((i for i, c in enumerate(section.columns) if c.key == bar_key), None)
    top = max((row[bar_i] or 0 for row in section.rows), default=0) if bar_i is not None else 0
    head = "".join(f'<th style="{_TD}background:#f1f5f9;text-align:'
                   f'{"right" if c.kind in _NUMERIC else "left"}">{escape(c.label)}</th>'
                   for _i, c in cols)
    if bar_i is not None:
        head += f'<th style="{_TD}background:#f1f5f9"></th>'
    rows = []
    for row in section.rows[:limit]:
        cells = "".join(f'<td style="{_TD}text-align:{"right" if c.kind in _NUMERIC else "left"}">'
                        f"{escape(human(row[i], c.kind))}</td>" for i, c in cols)
        if bar_i is not None:
            width = int(120 * (row[bar_i] or 0) / top) if top else 0
            cells += (f'<td style="{_TD}"><div style="background:#2563eb;height:10px;'
                      f'width:{max(width, 1)}px"></div></td>')
        rows.append(f"<tr>{cells}</tr>")
    return (f'<table cellspacing="0" cellpadding="0" style="border-collapse:collapse">'
            f"<tr>{head}</tr>{''.join(rows)}</table>")


def email_html(reports: Sequence[Report]) -> str:
    """The message body: headline numbers, each report's main table and its notes."""
    first = reports[0]
    cards = "".join(f'<td style="padding:8px 16px 8px 0;font:12px Arial,sans-serif;color:#64748b">'
                    f"{escape(label)}<br><b style=\"font-size:18px;color:#0f172a\">"
                    f"{escape(value)}</b></td>" for label, value in kpis(reports))
    parts = [(f'<div style="font:14px Arial,sans-serif;color:#0f172a">'
              f'<h2 style="margin:0 0 4px">{escape(email_subject(reports))}</h2>'
              f'<p style="color:#64748b;margin:0 0 12px">Generated '
              f"{first.generated_at.strftime('%Y-%m-%d %H:%M')} UTC. The full report with charts "
              "and the CSV data are attached.</p>"
              f"<table><tr>{cards}</tr></table>")]
    for report in reports:
        parts.append(f'<h3 style="margin:18px 0 6px">{escape(report.groups.title)}</h3>')
        parts.append(_table(report.groups, _BAR_METRIC.get(report.kind)))
        unknown = report.section("unknown_models")
        if unknown is not None and unknown.rows:
            parts.append(f'<h3 style="margin:18px 0 6px">{escape(unknown.title)}</h3>')
            parts.append(_table(unknown, None))
        for note in report.notes:
            parts.append(f'<p style="color:#64748b;font-size:12px">{escape(note)}</p>')
    parts.append("</div>")
    return "".join(parts)


def email_text(reports: Sequence[Report]) -> str:
    """The plain-text alternative: the markdown rendering."""
    return "\n\n".join(to_markdown(r) for r in reports)
