"""Pure: one self-contained HTML page with charts for one report or the whole dashboard.

No network is needed to view it (no CDN, fonts, images or scripts: inline CSS and inline SVG
only), so the file can be mailed, archived with an audit, opened offline and printed. The
layout reads top-down for a manager: headline numbers, then charts, then the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from llm_proxy.reports.fmt import human, scope_line
from llm_proxy.reports.model import Report, Section
from llm_proxy.reports.svg import PALETTE, bar_chart, hbar_chart, line_chart

__all__ = ["kpis", "render_html", "section_table"]

_CSS = """
:root{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--card:#fff;--bg:#f8fafc;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
 font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#0f172a;color:#fff;padding:22px 32px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#cbd5e1}
main{padding:20px 32px 40px;max-width:1280px;margin:0 auto}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;
 margin:0 0 20px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px}
.kpi .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi .v{font-size:24px;font-weight:600;margin-top:2px}
section.report{margin:28px 0 0}
section.report h2{font-size:18px;margin:0 0 10px;padding-bottom:6px;
 border-bottom:2px solid var(--accent)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 12px;
 break-inside:avoid;page-break-inside:avoid}
svg.chart{width:100%;height:auto;display:block}
svg .ct{font-size:13px;font-weight:600;fill:#0f172a}
svg .grid{stroke:#e2e8f0;stroke-width:1}
svg .yl{font-size:10px;fill:#64748b;text-anchor:end}
svg .xl{font-size:10px;fill:#64748b;text-anchor:middle}
svg .lg{font-size:11px;fill:#334155}
svg .hl{font-size:11px;fill:#334155;text-anchor:end}
svg .hv{font-size:11px;fill:#334155}
svg .empty{font-size:12px;fill:#94a3b8;text-anchor:middle}
h3{font-size:14px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%;background:var(--card);font-size:12.5px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600;color:#334155}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.t{max-width:420px;overflow-wrap:anywhere}
.notes{color:var(--muted);font-size:12.5px;margin:8px 0 0;padding-left:18px}
footer{color:var(--muted);font-size:12px;margin-top:30px}
@media print{
 body{background:#fff;font-size:11px}
 header{background:#fff;color:#000;padding:0 0 8px;border-bottom:2px solid #000}
 header p{color:#333}
 main{padding:8px 0;max-width:none}
 .charts{grid-template-columns:1fr 1fr}
 .card,.kpi{border-color:#ccc}
 section.report{break-before:auto}
 table{font-size:10px}
 @page{size:A4;margin:12mm}
}
"""

_NUMERIC = frozenset({"int", "tokens", "usd", "pct", "ms"})


def _fmt(kind: str):
    return lambda v: human(v, kind)


def section_table(section: Section, *, limit: int | None = None) -> str:
    """A section as an HTML table of its people-facing columns."""
    cols = [(i, c) for i, c in enumerate(section.columns) if c.human]
    head = "".join(f'<th class="{"n" if c.kind in _NUMERIC else ""}">{escape(c.label)}</th>'
                   for _i, c in cols)
    rows = section.rows[:limit] if limit else section.rows
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"n" if c.kind in _NUMERIC else "t"}">{escape(human(row[i], c.kind))}</td>'
            for i, c in cols)
        body.append(f"<tr>{cells}</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(cols)}">(none)</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _x_labels(report: Report, timeline: Section) -> list[str]:
    kind = report.bucket
    labels = [human(v, kind) for v in timeline.column("bucket")]
    if kind == "hour":  # "11-26 14:00" is enough on an axis
        labels = [label[5:] for label in labels]
    return labels


def _charts(report: Report) -> list[str]:
    timeline = report.section("timeline")
    xl = _x_labels(report, timeline) if timeline else []
    col = timeline.column if timeline else (lambda _k: [])
    by = report.by
    groups = report.groups
    charts: list[str] = []
    if report.kind == "usage":
        ok = [(r or 0) - (e or 0) for r, e in zip(col("requests"), col("errors"), strict=True)]
        charts.append(bar_chart("Requests over time", xl, [
            ("ok", ok, PALETTE["blue"]), ("errors", col("errors"), PALETTE["red"])],
            _fmt("int")))
        charts.append(line_chart("Tokens over time", xl, [
            ("input", col("input_tokens"), PALETTE["blue"]),
            ("output", col("output_tokens"), PALETTE["orange"]),
            ("cached", col("cached_input_tokens"), PALETTE["teal"])], _fmt("tokens")))
        charts.append(hbar_chart(f"Requests by {by}", _top(groups, "requests"), _fmt("int")))
    elif report.kind == "cost":
        charts.append(bar_chart("Cost over time", xl, [("cost", col("cost_usd"),
                                                        PALETTE["green"])], _fmt("usd")))
        charts.append(bar_chart("Requests over time", xl, [("requests", col("requests"),
                                                            PALETTE["blue"])], _fmt("int")))
        for key, title, colour in (("by_model", "Cost by model", PALETTE["purple"]),
                                   ("top_spenders", "Cost by user (top spenders)",
                                    PALETTE["green"])):
            sec = report.section(key)
            if sec is not None:
                items = [(str(r[0]), r[2] or 0.0) for r in sec.rows]
                charts.append(hbar_chart(title, items, _fmt("usd"), colour))
    elif report.kind == "latency":
        charts.append(line_chart("Latency percentiles over time", xl, [
            ("p50", col("latency_p50_ms"), PALETTE["blue"]),
            ("p95", col("latency_p95_ms"), PALETTE["orange"]),
            ("p99", col("latency_p99_ms"), PALETTE["red"])], _fmt("ms")))
        charts.append(line_chart("Time to first token (streams)", xl, [
            ("p50", col("ttft_p50_ms"), PALETTE["teal"]),
            ("p95", col("ttft_p95_ms"), PALETTE["purple"])], _fmt("ms")))
        charts.append(hbar_chart(f"p95 latency by {by}", _top(groups, "latency_p95_ms"),
                                 _fmt("ms"), PALETTE["orange"]))
    elif report.kind == "errors":
        charts.append(line_chart("Error rate over time", xl, [
            ("error rate", col("error_rate"), PALETTE["red"])], _fmt("pct")))
        charts.append(bar_chart("Errors over time", xl, [
            ("429", col("rate_limited"), PALETTE["amber"]),
            ("5xx", col("server_errors"), PALETTE["red"]),
            ("timeouts", col("timeouts"), PALETTE["purple"])], _fmt("int")))
        top_errors = report.section("top_errors")
        if top_errors is not None:
            items = [(f"{r[0]} {r[1] or ''} {r[2] or ''}".strip(), r[3] or 0)
                     for r in top_errors.rows]
            charts.append(hbar_chart("Top errors", items, _fmt("int"), PALETTE["red"]))
        by_type = report.section("by_type")
        if by_type is not None:
            charts.append(hbar_chart("Errors by type", [(str(r[0]), r[1] or 0)
                                                        for r in by_type.rows],
                                     _fmt("int"), PALETTE["amber"]))
    return charts


def _top(section: Section, key: str, n: int = 10) -> list[tuple[str, float]]:
    label_kind = section.columns[0].kind
    rows = [(human(g, label_kind), v or 0) for g, v in zip(section.column("group"),
                                                           section.column(key), strict=True)]
    return sorted(rows, key=lambda r: -r[1])[:n]


def kpis(reports: Sequence[Report]) -> list[tuple[str, str]]:
    """The headline numbers of whichever reports are on the page."""
    out: list[tuple[str, str]] = []
    by_kind = {r.kind: r for r in reports}
    if "usage" in by_kind:
        u = by_kind["usage"]
        out += [("Requests", human(u.total("requests"), "int")),
                ("Tokens", human(u.total("total_tokens"), "tokens"))]
    if "cost" in by_kind:
        c = by_kind["cost"]
        out += [("Cost", human(c.total("cost_usd"), "usd")),
                ("Cost / 1k requests", human(c.total("cost_per_1k_requests"), "usd"))]
        if c.total("unpriced_requests"):
            out.append(("Unpriced requests", human(c.total("unpriced_requests"), "int")))
    if "latency" in by_kind:
        lat = by_kind["latency"]
        out += [("p95 latency", human(lat.total("latency_p95_ms"), "ms")),
                ("p95 TTFT", human(lat.total("ttft_p95_ms"), "ms"))]
    if "errors" in by_kind:
        e = by_kind["errors"]
        out += [("Error rate", human(e.total("error_rate"), "pct")),
                ("429s", human(e.total("rate_limited"), "int"))]
    return out


def _report_block(report: Report, *, heading: bool) -> str:
    parts = [f'<section class="report" id="{report.kind}">']
    if heading:
        parts.append(f"<h2>{escape(report.title)}</h2>")
    charts = _charts(report)
    if charts:
        parts.append('<div class="charts">' + "".join(f'<div class="card">{c}</div>'
                                                      for c in charts) + "</div>")
    parts.append(f"<h3>{escape(report.groups.title)}</h3>")
    parts.append(section_table(report.groups, limit=50))
    for section in report.sections:
        if section.key == "timeline":
            continue
        if (section.key == "unknown_models" and not section.rows) or report.redundant(section.key):
            continue
        parts.append(f"<h3>{escape(section.title)}</h3>{section_table(section)}")
    if report.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>"
                                                    for n in report.notes) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def render_html(reports: Sequence[Report], *, title: str | None = None) -> str:
    """A complete ``<!doctype html>`` document for ``reports`` (one report, or the dashboard)."""
    if not reports:
        raise ValueError("render_html needs at least one report")
    first = reports[0]
    title = title or (f"LLM {first.title.lower()} report" if len(reports) == 1
                      else "LLM usage dashboard")
    scope = scope_line(first.by, first.since, first.until)
    generated = first.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    cards = "".join(f'<div class="kpi"><div class="l">{escape(label)}</div>'
                    f'<div class="v">{escape(value)}</div></div>' for label, value in kpis(reports))
    blocks = "".join(_report_block(r, heading=len(reports) > 1) for r in reports)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # Belt and braces: even if something external slipped in, the browser would not fetch it.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(scope)} · generated {generated}</p></header>"
        f'<main><div class="kpis">{cards}</div>{blocks}'
        "<footer>llm-proxy-audit · costs in US dollars · times in UTC · percentiles over "
        "successful requests</footer></main></body></html>\n"
    )
