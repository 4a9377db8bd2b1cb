"""The self-contained HTML report (``--axiom-perf-html``): inline CSS and SVG, no fetches.

It opens with the verdict (PASS / FAIL and why) and one row per test, failures and
regressions first, each linked to its details. A test's details (open when it needs
attention, folded otherwise) hold its metrics table and, per latency metric, a card:

- a percentile plot: latency (ms) against the percentile on a ``log10(1 / (1 - q))``
  axis (so p90, p99 and p99.9 are evenly spaced and the tail is readable), the
  budgets as dashed lines with the measured statistic as a dot (a cross when over),
  and, when comparing, the baseline's curve beside the current one. A budget far
  above the curve does not squash it: it is marked off scale at the top edge;
- under it, the metric over time: p50 and p99 per window and the samples per window
  (a stall is a gap and a spike, see ``timeline.py``);

and a card of the process's RSS and CPU over the test body (a leak is a slope).
Cards sit in a responsive grid; colour is never the only signal (words, shapes);
printing opens every test.
"""

from __future__ import annotations

import math
from html import escape

from pytest_axiomperf.baseline import UNCHANGED, Comparison
from pytest_axiomperf.budgets import Verdict
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.report.comparison import describe_change, status_name
from pytest_axiomperf.report.summary import Row, Summary, summarize
from pytest_axiomperf.report.text import (
    CAPACITY_COLUMNS,
    LOAD_COLUMNS,
    PERCENTILE_DEFINITION,
    STAGE_COLUMNS,
    capacity_step_cells,
    error_summary,
    fmt,
    fold_rows,
    headline_tag,
    load_run_cells,
    metric_rows,
    rss_text,
    stage_cells,
    table_cell,
)
from pytest_axiomperf.results import SessionResults, TestResult
from pytest_axiomperf.timeline import ResourceSample, Timeline, Window
from pytest_axiomperf.tracker import PHASE_METRICS, SECONDS

_W, _H = 440, 190
_TH = 120  # height of the over-time plots
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 40, 14, 34
_X_DECADES = 3.0  # the x axis ends at p99.9; the max is drawn at its right edge
#: A budget further above the curve than this (times the curve's top) is drawn off scale.
_OFF_SCALE = 1.5
_CURRENT, _BASELINE, _BUDGET = "#1f6feb", "#8b949e", "#d1242f"
_P50, _COUNT, _RSS, _CPU = "#54aeff", "#d0d7de", "#8250df", "#bc4c00"
_ATTENTION = ("FAIL", "REGRESSED", "NOT COMPARABLE")
#: Shortest test body (seconds) whose CPU/RSS samples are plotted; shorter ones get a line.
_MIN_SPAN = 1.0

_CSS = """
body{font-family:system-ui,sans-serif;margin:20px 24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 8px}h2{font-size:15px;margin:0;display:inline;word-break:break-all}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d0d7de;padding:2px 7px;
font-size:13px;text-align:right;vertical-align:top}th{background:#f6f8fa}
td:first-child,th:first-child{text-align:left}
.fail{color:#d1242f;font-weight:bold}.ok{color:#1a7f37}.note{color:#57606a;font-size:12px}
.verdict{font-size:18px;padding:8px 12px;border-radius:6px;margin:0 0 8px;border:2px solid}
.verdict.fail{background:#ffebe9;border-color:#d1242f}
.verdict.ok{background:#dafbe1;border-color:#1a7f37;color:#1a7f37;font-weight:bold}
table.summary td,table.summary th{text-align:left}div.ok,div.fail{font-size:13px}
.card table{width:100%;margin:0}.card{overflow-x:auto}
table.summary td.v{font-weight:bold;white-space:nowrap}
td.v.fail{background:#ffebe9}td.v.ok{color:#1a7f37}
details.test{border-top:1px solid #d0d7de;padding:6px 0}details.test>summary{cursor:pointer}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:8px;
margin-top:6px;align-items:start}.card.wide{grid-column:span 2}
.card td,.card th{font-size:12px;padding:1px 5px;white-space:nowrap}
.card{border:1px solid #d0d7de;border-radius:6px;padding:6px;break-inside:avoid}
.card svg{width:100%;height:auto;display:block}
figure{margin:0}figcaption{font-size:12px;color:#57606a}
td.tag{padding-left:20px;color:#57606a}caption{text-align:left;font-size:13px;padding:4px 0}
@media (max-width:720px){.card.wide{grid-column:auto}}
@media print{body{margin:0;font-size:11px}details.test>summary{list-style:none}
.grid{grid-template-columns:repeat(2,1fr)}.verdict,td.v.fail{background:none}
a{color:inherit;text-decoration:none}}
"""

# Open a folded test when its link is followed; print every test open.
_SCRIPT = """
(function(){
  function openTarget(){
    var el=location.hash&&document.getElementById(location.hash.slice(1));
    if(el&&el.tagName==='DETAILS'){el.open=true;}
  }
  window.addEventListener('hashchange',openTarget);openTarget();
  window.addEventListener('beforeprint',function(){
    document.querySelectorAll('details').forEach(function(d){d.open=true;});
  });
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


def _marker(x: float, y: float, passed: bool) -> str:
    """The measured statistic: a dot within the budget, a cross over it (not colour alone)."""
    if passed:
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{_CURRENT}"/>'
    return (
        f'<path class="over" d="M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},{y + 5:.1f}'
        f'M{x - 5:.1f},{y + 5:.1f}L{x + 5:.1f},{y - 5:.1f}" stroke="{_BUDGET}" '
        'stroke-width="2.5"/>'
    )


def render_plot(
    metric: str, current: Histogram, budgets: list[Verdict], baseline: Histogram | None
) -> str:
    """One inline SVG percentile plot (current, optional baseline, budget lines).

    The scale fits the curves; a budget within ``_OFF_SCALE`` times their top widens
    it, a budget further up is marked off scale at the top edge instead of squashing
    the curves into the bottom of the plot.
    """
    curve_top = current.max * 1e3
    if baseline is not None and baseline.count:
        curve_top = max(curve_top, baseline.max * 1e3)
    on_scale = [v for v in budgets if v.bound * 1e3 <= curve_top * _OFF_SCALE]
    top = max([curve_top, *(v.bound * 1e3 for v in on_scale)]) * 1.1 or 1.0
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
            f'<text x="{x:.1f}" y="{_H - _BOTTOM + 14}" font-size="11" text-anchor="middle">'
            f"{label}</text>"
        )
    parts.append(
        f'<text x="{(_W + _LEFT) / 2:.0f}" y="{_H - 4}" font-size="11" text-anchor="middle">'
        "percentile (max at the right edge)</text>"
    )
    if baseline is not None and baseline.count:
        parts.append(_polyline(_curve_points(baseline), top, _BASELINE, "6 4"))
    parts.append(_polyline(_curve_points(current), top, _CURRENT, ""))
    off = 0
    for v in budgets:
        scope = f"[{v.tag}] " if v.tag else ""
        text = f"{escape(scope)}{v.statistic} budget {fmt(v.bound)}"
        if v in on_scale:
            y = _y(v.bound * 1e3, top)
            parts.append(
                f'<line class="budget" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" '
                f'y2="{y:.1f}" stroke="{_BUDGET}" stroke-dasharray="4 3"/>'
                f'<text x="{_W - _RIGHT - 4}" y="{y - 4:.1f}" font-size="11" text-anchor="end" '
                f'fill="{_BUDGET}">{text}</text>'
            )
        else:  # far above the curve: an arrow at the top edge, the curve keeps its scale
            y = _TOP + 11 + 13 * off
            off += 1
            parts.append(
                f'<text class="budget off-scale" x="{_W - _RIGHT - 4}" y="{y:.1f}" '
                f'font-size="11" text-anchor="end" fill="{_BUDGET}">&#8593; {text} '
                "(off scale)</text>"
            )
        fraction = _STAT_FRACTION.get(v.statistic)
        if fraction is not None and math.isfinite(v.observed):
            parts.append(_marker(_x(fraction), _y(v.observed * 1e3, top), v.passed))
    parts.append("</svg>")
    return "".join(parts)


def _segments(windows: list[Window]) -> list[list[Window]]:
    """Runs of adjacent windows: a window with no samples breaks the lines (a stall)."""
    runs: list[list[Window]] = []
    for w in windows:
        if runs and abs(runs[-1][-1].end - w.start) < 1e-9 * max(1.0, w.start):
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


def _time_axis(parts: list[str], span: float, height: int) -> None:
    """Vertical grid and seconds labels along the bottom of an over-time plot."""
    for i in range(5):
        t = span * i / 4
        x = _LEFT + t / span * (_W - _LEFT - _RIGHT)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{height - 28}" stroke="#eaeef2"/>'
            f'<text x="{x:.1f}" y="{height - 16}" font-size="11" text-anchor="middle">'
            f"{t:.3g}s</text>"
        )
    parts.append(
        f'<text x="{(_W + _LEFT) / 2:.0f}" y="{height - 3}" font-size="11" '
        'text-anchor="middle">seconds since the test started</text>'
    )


def render_time_plot(metric: str, windows: list[Window]) -> str:
    """The metric over time: p99 and p50 per window, samples per window as bars."""
    span = max(w.end for w in windows)
    top = max(w.p99 for w in windows) * 1e3 * 1.1 or 1.0
    most = max(w.n for w in windows)
    bottom = _TH - 28
    inner = bottom - _TOP

    def x(t: float) -> float:
        return _LEFT + t / span * (_W - _LEFT - _RIGHT)

    def y(ms: float) -> float:
        return bottom - ms / top * inner

    parts = [
        f'<svg class="timeplot" xmlns="http://www.w3.org/2000/svg" width="{_W}" '
        f'height="{_TH}" viewBox="0 0 {_W} {_TH}" role="img" '
        f'aria-label="{escape(metric)} over time">',
        f'<rect x="0" y="0" width="{_W}" height="{_TH}" fill="#ffffff"/>',
    ]
    _time_axis(parts, span, _TH)
    for i in (0, 2, 4):
        ms = top * i / 4
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y(ms) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{ms:.3g}ms</text>"
        )
    for w in windows:  # samples per window: a quarter of the height at most
        h = w.n / most * inner / 4
        parts.append(
            f'<rect x="{x(w.start):.1f}" y="{bottom - h:.1f}" '
            f'width="{max(0.5, x(w.end) - x(w.start) - 0.5):.1f}" height="{h:.1f}" '
            f'fill="{_COUNT}"/>'
        )
    for run in _segments(windows):
        for colour, attr, width in ((_P50, "p50", 1.5), (_CURRENT, "p99", 2)):
            points = " ".join(
                f"{x((w.start + w.end) / 2):.1f},{y(getattr(w, attr) * 1e3):.1f}" for w in run
            )
            if len(run) == 1:
                cx, cy = points.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            else:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" '
                    f'points="{points}"/>'
                )
    parts.append("</svg>")
    return "".join(parts)


def render_resource_plot(samples: list[ResourceSample]) -> str:
    """RSS (MB, left axis) and CPU (% of a core, right axis) over the test body."""
    span = max(samples[-1].t - samples[0].t, 1e-3)
    t0 = samples[0].t
    low = min(s.rss_mb for s in samples)
    high = max(s.rss_mb for s in samples)
    pad = max((high - low) * 0.1, 0.5)
    low, high = max(0.0, low - pad), high + pad
    cpu_top = max(100.0, max(s.cpu for s in samples))
    bottom = _TH - 28
    inner = bottom - _TOP

    def x(t: float) -> float:
        return _LEFT + (t - t0) / span * (_W - _LEFT - _RIGHT)

    parts = [
        f'<svg class="resplot" xmlns="http://www.w3.org/2000/svg" width="{_W}" '
        f'height="{_TH}" viewBox="0 0 {_W} {_TH}" role="img" aria-label="RSS and CPU over time">',
        f'<rect x="0" y="0" width="{_W}" height="{_TH}" fill="#ffffff"/>',
    ]
    _time_axis(parts, span, _TH)
    for i in (0, 2, 4):
        frac = i / 4
        yy = bottom - frac * inner
        parts.append(
            f'<text x="{_LEFT - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{_RSS}">{low + frac * (high - low):.4g}MB</text>'
            f'<text x="{_W - _RIGHT + 4}" y="{yy + 4:.1f}" font-size="11" fill="{_CPU}">'
            f"{frac * cpu_top:.3g}%</text>"
        )
    cpu = " ".join(f"{x(s.t):.1f},{bottom - s.cpu / cpu_top * inner:.1f}" for s in samples)
    rss = " ".join(
        f"{x(s.t):.1f},{bottom - (s.rss_mb - low) / (high - low) * inner:.1f}" for s in samples
    )
    parts.append(
        f'<polyline fill="none" stroke="{_CPU}" stroke-width="1.2" stroke-dasharray="3 2" '
        f'points="{cpu}"/>'
        f'<polyline fill="none" stroke="{_RSS}" stroke-width="2" points="{rss}"/>'
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
    """A test's memory measurement, load runs (and stages), capacity searches and attached
    tables, as HTML blocks."""
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
    for run in runs:
        if run.get("stages"):
            cells = [stage_cells(stage) for stage in run["stages"]]
            out.append(_html_table(list(STAGE_COLUMNS), cells, f"Stages of {run['name']}"))
    for search in result.extra.get("capacity") or []:
        cells = [capacity_step_cells(step) for step in search["steps"]]
        caption = f"Capacity: {search['summary']}"
        out.append(_html_table(list(CAPACITY_COLUMNS), cells, caption))
    for table in result.tracker.tables:
        rows = [[table_cell(c) for c in row] for row in table["rows"]]
        out.append(_html_table(list(table["columns"]), rows, str(table["title"])))
    return out


def _verdict_class(verdict: str) -> str:
    return "fail" if verdict in _ATTENTION else "ok"


def _banner(summary: Summary, comparison: Comparison | None) -> list[str]:
    """The verdict line, the mismatch warnings and the per-test table."""
    cls = "ok" if summary.passed else "fail"
    out = [
        f'<div id="verdict" class="verdict {cls}"><strong>{summary.verdict}</strong>: '
        f"{escape(summary.reasons())}</div>",
        f'<p class="note">{escape(summary.context())}</p>',
    ]
    if comparison is not None:
        out.extend(f'<p class="fail">&#9888; {escape(text)}</p>' for text in comparison.mismatches)
    if not summary.rows:
        return [*out, "<p>No test recorded metrics.</p>"]
    shown = summary.shown_columns()
    titles = ("verdict", "test", *(title for _, (_, title) in shown))
    head = "".join(f"<th>{escape(t)}</th>" for t in titles)
    rows = []
    for row in summary.rows:
        cells = "".join(
            "<td>" + ("<br>".join(escape(line) for line in row.cells()[i]) or "-") + "</td>"
            for i, _ in shown
        )
        rows.append(
            f'<tr><td class="v {_verdict_class(row.verdict)}">{row.verdict}</td>'
            f'<td><a href="#{row.anchor}">{escape(row.nodeid)}</a> '
            f'<span class="note">{escape(row.note)}</span></td>{cells}</tr>'
        )
    out.append(f'<table class="summary"><tr>{head}</tr>{"".join(rows)}</table>')
    return out


def _metrics_card(result: TestResult) -> str:
    """The test's metrics table (routes under their metric), folded metrics in a note."""
    shown, folded = fold_rows(metric_rows(result.tracker), (v.metric for v in result.verdicts))
    rows = [
        "<table><tr><th>metric</th><th>n</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>"
    ]
    for metric, tag, s in shown:
        u = s.unit
        label = (
            f"<td>{escape(metric)}</td>"
            if tag is None
            else f'<td class="tag">&#8627; {escape(tag)}</td>'
        )
        rows.append(
            f"<tr>{label}<td>{s.count}</td>"
            f"<td>{fmt(s.p50, u)}</td><td>{fmt(s.p95, u)}</td><td>{fmt(s.p99, u)}</td>"
            f"<td>{fmt(s.max, u)}</td></tr>"
        )
    rows.append("</table>")
    if folded:
        rows.append(
            f'<p class="note folded">Not shown (no information): {escape(", ".join(folded))}</p>'
        )
    return "".join(rows) if shown else "".join(rows[-1:]) if folded else ""


def _change_text(comparison: Comparison | None, nodeid: str, metric: str) -> str:
    """The comparison of one metric, for its card's caption."""
    change = ""
    if comparison is None:
        return change
    for m in comparison.for_test(nodeid):
        if m.metric != metric:
            continue
        if m.tag is None:
            word = "REGRESSION" if m.status == "regression" else m.status
            change += f" &mdash; {escape(word)}: {escape(describe_change(m))}"
        elif m.status != UNCHANGED:  # a route that moved, came or went: say so
            change += f"<br>{escape(status_name(m))}: {escape(describe_change(m))}"
    return change


def _metric_cards(
    result: TestResult, comparison: Comparison | None, old: TestResult | None
) -> list[str]:
    """Per latency metric with information: its percentile plot over its time plot."""
    tracker = result.tracker
    timeline: Timeline = tracker.timeline
    cards = []
    for metric in tracker.metrics():
        if tracker.unit(metric) != SECONDS or metric in PHASE_METRICS:
            continue
        # One well-defined measure per plot: a WebSocket's delivery latency, not merged
        # with its ping round trips (those are rows of the metrics table).
        head = headline_tag(tracker, metric)
        hist = tracker.histogram(metric, head)
        # Counts (samples, missed events) are no latency line on the plot.
        budgets = [
            v
            for v in result.verdicts
            if v.metric == metric
            and v.statistic not in ("samples", "missed")
            and v.tag in (None, head)
        ]
        if not hist.count or (not budgets and (hist.count <= 1 or hist.max == 0.0)):
            continue  # no information: folded in the metrics card's note
        old_hist = old.tracker.histogram(metric, head) if old is not None else None
        windows = timeline.windows(metric, head)
        name = metric if head is None else f"{metric}[{head}]"
        legend = _legend(old_hist is not None and old_hist.count > 0, bool(budgets))
        over_time = ""
        if len(windows) > 1:  # a single window (a short test) says nothing over time
            over_time = render_time_plot(name, windows)
            # Rounds merge their samples; a timeline stays on one round's clock.
            which = f" (one round of {len(result.rounds)})" if len(result.rounds) > 1 else ""
            legend += (
                f'<br>over time{which}: <span style="color:{_CURRENT}">&#9644; p99</span> '
                f'<span style="color:{_P50}">&#9644; p50</span> '
                f'<span style="color:#8c959f">&#9646; samples per window</span>'
            )
        cards.append(
            f'<div class="card"><figure>{render_plot(name, hist, budgets, old_hist)}'
            f"{over_time}<figcaption><b>{escape(name)}</b> (n={hist.count})"
            f"{_change_text(comparison, result.nodeid, metric)}<br>{legend}"
            "</figcaption></figure></div>"
        )
    samples = timeline.resources()
    if len(samples) > 1 and samples[-1].t - samples[0].t >= _MIN_SPAN:
        cards.append(
            f'<div class="card"><figure>{render_resource_plot(samples)}'
            f"<figcaption><b>process over the test body</b>: "
            f'<span style="color:{_RSS}">&#9644; RSS</span> '
            f'<span style="color:{_CPU}">&#9476; CPU</span></figcaption>'
            "</figure></div>"
        )
    return cards


def _test_details(
    row: Row,
    result: TestResult,
    comparison: Comparison | None,
    old: TestResult | None,
) -> str:
    """One test's details: open when it needs attention, folded otherwise."""
    cls = _verdict_class(row.verdict)
    opened = " open" if row.verdict in _ATTENTION else ""
    body = [
        f'<details class="test" id="{row.anchor}"{opened}><summary>'
        f'<span class="{cls}">{row.verdict}</span> <h2>{escape(row.nodeid)}</h2></summary>'
    ]
    if result.flags:
        body.append(f'<p class="note">measured under: {escape(", ".join(result.flags))}</p>')
    # A budget that held is in the table's row; one that failed, with its distribution:
    body.extend(
        f'<div class="fail">FAIL {escape(v.message())}</div>'
        for v in result.verdicts
        if not v.passed
    )
    errors = error_summary(result.tracker)
    if errors is not None:
        body.append(f'<p class="errors">Errors: {escape(errors)}</p>')
    body.extend(_extras(result))
    if result.tracker.timeline.rss_summary() is not None:
        body.append(f'<p class="note rss">RSS: {escape(rss_text(result.tracker.timeline))}</p>')
    cards = [f'<div class="card wide">{_metrics_card(result)}</div>']
    cards.extend(_metric_cards(result, comparison, old))
    body.append(f'<div class="grid">{"".join(cards)}</div></details>')
    return "".join(body)


def render_html(
    results: SessionResults,
    comparison: Comparison | None = None,
    baseline: SessionResults | None = None,
) -> str:
    """The whole report as one HTML document."""
    summary = summarize(results, comparison)
    body = ["<h1>pytest-axiomperf report</h1>", *_banner(summary, comparison)]
    for row in summary.rows:
        old = baseline.tests.get(row.nodeid) if baseline is not None else None
        body.append(_test_details(row, results.tests[row.nodeid], comparison, old))
    body.append(f'<p class="note">{escape(PERCENTILE_DEFINITION)}</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>pytest-axiomperf report</title>"
        f"<style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )
