"""Pure-ish: a report for people in a terminal (rich, at most 100 columns) or as markdown."""

from __future__ import annotations

from typing import TextIO

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from llm_proxy.reports.fmt import SPARK, human, scope_line
from llm_proxy.reports.model import Column, Report, Section

__all__ = ["MAX_WIDTH", "render_table", "rich_section", "sparkline", "to_markdown"]

MAX_WIDTH = 100
_NUMERIC = frozenset({"int", "tokens", "usd", "pct", "ms"})
# The side tables worth a terminal's space (the timeline becomes a sparkline instead).
_TERMINAL_SECTIONS = ("top_spenders", "by_model", "unknown_models", "top_errors", "by_type")
# What the sparkline under a report shows, per report.
_SPARK_METRIC = {"usage": "requests", "cost": "cost_usd", "latency": "latency_p95_ms",
                 "errors": "error_rate"}


def sparkline(values: list[float | None]) -> str:
    """``▁▃█▅``: one character per value, scaled between 0 and the maximum."""
    nums = [v or 0.0 for v in values]
    top = max(nums, default=0.0)
    if top <= 0:
        return SPARK[0] * len(nums)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in nums)


def _human_columns(section: Section) -> list[tuple[int, Column]]:
    return [(i, c) for i, c in enumerate(section.columns) if c.human]


def rich_section(section: Section, *, title: str | None = None) -> Table:
    """A compact rich table of a section's people-facing columns."""
    table = Table(title=title if title is not None else section.title, title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, expand=False,
                  title_style="bold")
    cols = _human_columns(section)
    for _i, c in cols:
        if c.kind in _NUMERIC:
            table.add_column(c.label, justify="right", no_wrap=True)
        else:
            table.add_column(c.label, overflow="ellipsis", no_wrap=True, max_width=44,
                             min_width=min(len(c.label), 12))
    for row in section.rows:
        table.add_row(*(human(row[i], c.kind) for i, c in cols))
    if not section.rows:
        table.add_row(*(["(none)"] + [""] * (len(cols) - 1)))
    return table


def _totals_text(report: Report) -> Text:
    totals = report.totals
    text = Text()
    if totals.rows:
        parts = [f"{c.label} {human(v, c.kind)}" for c, v in zip(totals.columns, totals.rows[0],
                                                                  strict=True) if c.human]
        text.append("  ·  ".join(parts))
    return text


def render_table(report: Report, out: TextIO, *, width: int | None = None) -> None:
    """Print the report as rich tables that fit ``MAX_WIDTH`` columns (or the terminal)."""
    probe = Console(file=out)
    console = Console(file=out, width=min(width or probe.width, MAX_WIDTH), soft_wrap=False,
                      highlight=False)
    parts: list = [
        Text(f"{report.title} report  {scope_line(report.by, report.since, report.until)}",
             style="bold"),
        _totals_text(report),
        rich_section(report.groups),
    ]
    timeline = report.section("timeline")
    metric = _SPARK_METRIC.get(report.kind)
    if timeline and timeline.rows and metric in [c.key for c in timeline.columns]:
        label = next(c.label for c in timeline.columns if c.key == metric)
        parts.append(Text(f"{label} per {report.bucket}: {sparkline(timeline.column(metric))}"))
    for key in _TERMINAL_SECTIONS:
        section = report.section(key)
        if section is not None and section.rows and not report.redundant(key):
            parts.append(Text(""))
            parts.append(rich_section(section))
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    console.print(Group(*parts))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(section: Section) -> list[str]:
    cols = _human_columns(section)
    lines = ["| " + " | ".join(c.label for _i, c in cols) + " |",
             "| " + " | ".join("---:" if c.kind in _NUMERIC else "---" for _i, c in cols) + " |"]
    for row in section.rows:
        lines.append("| " + " | ".join(_md_escape(human(row[i], c.kind)) for i, c in cols) + " |")
    if not section.rows:
        lines.append("| (none) |" + " |" * (len(cols) - 1))
    return lines


def to_markdown(report: Report) -> str:
    """The whole report as GitHub-flavoured markdown (for wikis, tickets, audit files)."""
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M")
    lines = [f"# {report.title} report", "",
             f"{scope_line(report.by, report.since, report.until)} · generated {generated} UTC",
             ""]
    if report.totals.rows:
        for c, v in zip(report.totals.columns, report.totals.rows[0], strict=True):
            lines.append(f"- **{c.label}**: {human(v, c.kind)}")
        lines.append("")
    lines += [f"## {report.groups.title}", "", *_md_table(report.groups), ""]
    for section in report.sections:
        if report.redundant(section.key):
            continue
        lines += [f"## {section.title}", "", *_md_table(section), ""]
    for note in report.notes:
        lines += [f"> {_md_escape(note)}", ""]
    return "\n".join(lines)
