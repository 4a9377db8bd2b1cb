"""The self-contained HTML report (``--axiom-perf-html``): inline CSS and SVG, no fetches.

Per test and latency metric, a percentile plot: latency (ms) against the percentile
on a ``log10(1 / (1 - q))`` axis (so p90, p99 and p99.9 are evenly spaced and the
tail is readable), the budgets drawn as dashed horizontal lines with the measured
statistic as a dot, and, when comparing, the baseline's curve beside the current one.
"""

from __future__ import annotations

import math
from html import escape

from pytest_axiomperf.baseline import UNCHANGED, Comparison
from pytest_axiomperf.budgets import Verdict
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.report.comparison import describe_change, status_name, summary_line
from pytest_axiomperf.report.text import (
    LOAD_COLUMNS,
    PERCENTILE_DEFINITION,
    error_summary,
    fmt,
    load_run_cells,
    metric_rows,
    table_cell,
)
from pytest_axiomperf.results import SessionResults, TestResult
from pytest_axiomperf.tracker import SECONDS

_W, _H = 640, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 16, 40
_X_DECADES = 3.0  # the x axis ends at p99.9; the max is drawn at its right edge
_CURRENT, _BASELINE, _BUDGET = "#1f6feb", "#8b949e", "#d1242f"

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px}h2{font-size:16px;margin-top:28px;word-break:break-all}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;
font-size:13px;text-align:right}th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
.fail{color:#d1242f;font-weight:bold}.ok{color:#1a7f37}.note{color:#57606a;font-size:12px}
figure{margin:8px 0 16px 0}figcaption{font-size:13px;color:#57606a}
td.tag{padding-left:20px;color:#57606a}caption{text-align:left;font-size:13px;padding:4px 0}
"""

_SCRIPT = """
(function(){
  var status=document.getElementById('axiomperf-status');
  window.addEventListener('error',function(e){status.textContent='error: '+e.message;});
  var plots=document.querySelectorAll('svg.plot').length;
  status.textContent='rendered '+plots+' plot(s)';
})();
"""


def _x(q: float) -> float:
    """Pixel x of the fraction ``q`` (0..1) on the ``log10(1/(1-q))`` axis."""
    decades = _X_DECADES if q >= 1.0 else min(_X_DECADES, -math.log10(1.0 - q))
    return _LEFT + decades / _X_DECADES * (_W - _LEFT - _RIGHT)


def _y(value_ms: float, top_ms: float) -> float:
    return _H - _BOTTOM - value_ms / top_ms * (_H - _TOP - _BOTTOM)


def _curve_points(hist: Histogram) -> list[tuple[float, float]]:
    """``(fraction, ms)`` corners of the step curve: the percentile value for each fraction."""
    n = hist.count
    points: list[tuple[float, float]] = []
    seen = 0
    for edge, count in hist.buckets():
        ms = edge * 1e3
        points.append((seen / n, ms))
        seen += count
        points.append((seen / n, ms))
    return points


def _polyline(points: list[tuple[float, float]], top_ms: float, colour: str, dash: str) -> str:
    coords = " ".join(f"{_x(q):.1f},{_y(ms, top_ms):.1f}" for q, ms in points)
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2"{extra} points="{coords}"/>'


_STAT_FRACTION = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "max": 1.0}


def render_plot(
    metric: str, current: Histogram, budgets: list[Verdict], baseline: Histogram | None
) -> str:
    """One inline SVG percentile plot (current, optional baseline, budget lines)."""
    values = [current.max * 1e3] + [v.bound * 1e3 for v in budgets]
    if baseline is not None and baseline.count:
        values.append(baseline.max * 1e3)
    top = max(values) * 1.1 or 1.0
    parts = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(metric)} percentiles">',
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#ffffff"/>',
    ]
    for i in range(5):  # horizontal grid and y labels
        ms = top * i / 4
        y = _y(ms, top)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{ms:.3g}ms</text>"
        )
    for label, q in (("p0", 0.0), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)):
        x = _x(q)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}" stroke="#eaeef2"/>'
            f'<text x="{x:.1f}" y="{_H - _BOTTOM + 16}" font-size="11" text-anchor="middle">'
            f"{label}</text>"
        )
    parts.append(
        f'<text x="{(_W + _LEFT) / 2:.0f}" y="{_H - 6}" font-size="11" text-anchor="middle">'
        "percentile (max at the right edge)</text>"
    )
    if baseline is not None and baseline.count:
        parts.append(_polyline(_curve_points(baseline), top, _BASELINE, "6 4"))
    parts.append(_polyline(_curve_points(current), top, _CURRENT, ""))
    for v in budgets:
        y = _y(v.bound * 1e3, top)
        scope = f"[{v.tag}] " if v.tag else ""
        parts.append(
            f'<line class="budget" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{_BUDGET}" stroke-dasharray="4 3"/>'
            f'<text x="{_W - _RIGHT - 4}" y="{y - 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{_BUDGET}">{escape(scope)}{v.statistic} budget {fmt(v.bound)}</text>'
        )
        fraction = _STAT_FRACTION.get(v.statistic)
        if fraction is not None and math.isfinite(v.observed):
            colour = _CURRENT if v.passed else _BUDGET
            parts.append(
                f'<circle cx="{_x(fraction):.1f}" cy="{_y(v.observed * 1e3, top):.1f}" r="4" '
                f'fill="{colour}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _legend(has_baseline: bool, has_budget: bool) -> str:
    items = [f'<span style="color:{_CURRENT}">&#9644; this run</span>']
    if has_baseline:
        items.append(f'<span style="color:{_BASELINE}">&#9476; baseline</span>')
    if has_budget:
        items.append(f'<span style="color:{_BUDGET}">&#9476; budget</span>')
    return " &nbsp; ".join(items)


def _html_table(columns: list[str], rows: list[list[str]], caption: str = "") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<tr>{head}</tr>{body}</table>"


def _extras(result: TestResult) -> list[str]:
    """A test's memory measurement, load runs and attached tables, as HTML blocks."""
    out = []
    memory = result.extra.get("memory")
    if memory is not None:
        out.append(
            f'<p class="memory">Memory (Python heap under tracemalloc): growth '
            f"{memory['growth_mb']:+.2f} MB, peak {memory['peak_mb']:.2f} MB, "
            f"RSS growth {memory['rss_growth_mb']:+.2f} MB</p>"
        )
    runs = result.extra.get("load") or []
    if runs:
        out.append(
            _html_table(
                list(LOAD_COLUMNS),
                [load_run_cells(run) for run in runs],
                "Load runs (open model: latency from each call's intended start; "
                "closed: from the send)",
            )
        )
    for table in result.tracker.tables:
        rows = [[table_cell(c) for c in row] for row in table["rows"]]
        out.append(_html_table(list(table["columns"]), rows, str(table["title"])))
    return out


def render_html(
    results: SessionResults,
    comparison: Comparison | None = None,
    baseline: SessionResults | None = None,
) -> str:
    """The whole report as one HTML document."""
    budgeted = [r for r in results.tests.values() if r.verdicts]
    over = [r for r in budgeted if not r.passed_budgets]
    body = ["<h1>pytest-axiomperf report</h1>"]
    body.append(
        f"<p>{len(results.tests)} test(s) with metrics; {len(budgeted)} with budgets, "
        f'<span class="{"fail" if over else "ok"}">{len(over)} over budget</span>.</p>'
    )
    if comparison is not None:
        cls = "fail" if comparison.failed else "ok"
        body.append(
            f"<p>Baseline <code>{escape(comparison.baseline)}</code>: "
            f'<span class="{cls}">{escape(summary_line(comparison))}</span></p>'
        )
        for text in comparison.mismatches:
            body.append(f'<p class="fail">&#9888; {escape(text)}</p>')
        if comparison.regressions:
            body.append("<ul>")
            body.extend(
                f'<li class="fail">{escape(m.nodeid)}: {escape(describe_change(m))}</li>'
                for m in comparison.regressions
            )
            body.append("</ul>")
    for nodeid, result in sorted(results.tests.items()):
        tracker = result.tracker
        body.append(f"<section><h2>{escape(nodeid)} &mdash; {escape(result.outcome)}</h2>")
        if result.flags:
            body.append(f'<p class="note">measured under: {escape(", ".join(result.flags))}</p>')
        for v in result.verdicts:
            cls = "ok" if v.passed else "fail"
            label = "PASS" if v.passed else "FAIL"
            body.append(f'<div class="{cls}">{label} {escape(v.message())}</div>')
        rows = [
            "<table><tr><th>metric</th><th>n</th><th>mean</th><th>p50</th><th>p95</th>"
            "<th>p99</th><th>max</th></tr>"
        ]
        for metric, tag, s in metric_rows(tracker):
            u = s.unit
            label = (
                f"<td>{escape(metric)}</td>"
                if tag is None
                else f'<td class="tag">&#8627; {escape(tag)}</td>'
            )
            rows.append(
                f"<tr>{label}<td>{s.count}</td><td>{fmt(s.mean, u)}</td>"
                f"<td>{fmt(s.p50, u)}</td><td>{fmt(s.p95, u)}</td><td>{fmt(s.p99, u)}</td>"
                f"<td>{fmt(s.max, u)}</td></tr>"
            )
        rows.append("</table>")
        body.append("".join(rows))
        errors = error_summary(tracker)
        if errors is not None:
            body.append(f'<p class="errors">Errors: {escape(errors)}</p>')
        body.extend(_extras(result))
        old = baseline.tests.get(nodeid) if baseline is not None else None
        for metric in tracker.metrics():
            if tracker.unit(metric) != SECONDS:
                continue
            hist = tracker.histogram(metric)
            if not hist.count:
                continue
            budgets = [
                v for v in result.verdicts if v.metric == metric and v.statistic != "samples"
            ]
            old_hist = old.tracker.histogram(metric) if old is not None else None
            change = ""
            if comparison is not None:
                for m in comparison.for_test(nodeid):
                    if m.metric != metric:
                        continue
                    if m.tag is None:
                        change += f" &mdash; {escape(m.status)}: {escape(describe_change(m))}"
                    elif m.status != UNCHANGED:  # a route that moved, came or went: say so
                        change += f"<br>{escape(status_name(m))}: {escape(describe_change(m))}"
            body.append(
                f"<figure>{render_plot(metric, hist, budgets, old_hist)}"
                f"<figcaption>{escape(metric)} (n={hist.count}){change}<br>"
                f"{_legend(old_hist is not None and old_hist.count > 0, bool(budgets))}"
                "</figcaption></figure>"
            )
        body.append("</section>")
    body.append(f'<p class="note">{escape(PERCENTILE_DEFINITION)}</p>')
    body.append('<p class="note" id="axiomperf-status">not rendered</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>pytest-axiomperf report</title>"
        f"<style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )
