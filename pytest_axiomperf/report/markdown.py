"""The Markdown summary (``--axiom-perf-markdown``, GitHub's step summary).

What a reviewer needs first comes first: the verdict and why, the per-test table
(failures and regressions first), then the comparison, load runs, memory, the
tables tests attached, and the per-test metrics tables (in the table's order, with
each route's row under its metric; metrics with no information folded into a note).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pytest_axiomperf.baseline import IMPROVEMENT, UNCHANGED, Comparison, MetricComparison
from pytest_axiomperf.report.comparison import (
    STATUS_ORDER,
    describe_rounds,
    one_run_caveat,
    rule_text,
    status_name,
    summary_line,
)
from pytest_axiomperf.report.summary import Summary, summarize
from pytest_axiomperf.report.text import (
    CAPACITY_COLUMNS,
    LOAD_COLUMNS,
    PERCENTILE_DEFINITION,
    STAGE_COLUMNS,
    capacity_step_cells,
    error_summary,
    fmt,
    fold_rows,
    load_run_cells,
    metric_rows,
    rss_text,
    stage_cells,
    table_cell,
)
from pytest_axiomperf.results import SessionResults


def _cell(text: str) -> str:
    """Table-cell safe text: pipes escaped, no line breaks, no raw HTML."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\n", " ")
    )


def _code(text: str) -> str:
    """A code span: no HTML inside one is read as markup, so only pipes and breaks change.

    Backticks in ``text`` are kept: the fence is one backtick longer than the longest
    run of them, with a space inside it when ``text`` starts or ends with one.
    """
    text = text.replace("|", "\\|").replace("\n", " ")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_summary(summary: Summary) -> list[str]:
    """The verdict heading and the per-test table (attention first)."""
    lines = [
        f"## pytest-axiomperf: {summary.verdict} ({_cell(summary.reasons())})",
        "",
        _cell(summary.context()),
        "",
    ]
    if not summary.rows:
        return [*lines, "No test recorded metrics.", ""]
    shown = summary.shown_columns()
    titles = ["verdict", "test", *(title for _, (_, title) in shown)]
    lines += ["| " + " | ".join(titles) + " |", "|---" * len(titles) + "|"]
    for row in summary.rows:
        verdict = row.verdict if row.verdict in _CALM else f"**{row.verdict}**"
        cells = ["<br>".join(_cell(line) for line in row.cells()[i]) or "-" for i, _ in shown]
        test = f"{_code(row.nodeid)} {_cell(row.note)}".rstrip()
        lines.append("| " + " | ".join([verdict, test, *cells]) + " |")
    return [*lines, ""]


_CALM = ("PASS", "XFAIL", "SKIPPED")


def render_markdown(results: SessionResults, comparison: Comparison | None = None) -> str:
    """The whole summary as GitHub-flavoured Markdown: the verdict and the per-test table
    first, then the comparison, load runs, memory, tables and each test's metrics."""
    summary = summarize(results, comparison)
    lines = render_summary(summary)
    if comparison is not None:
        lines.extend(f"- :warning: {_cell(m)}" for m in comparison.mismatches)
        if comparison.mismatches:
            lines.append("")

    if comparison is not None and not comparison.refused:
        caveat = one_run_caveat(comparison)
        lines += [
            "### Baseline comparison",
            "",
            f"Baseline {_code(comparison.baseline)}: {summary_line(comparison)}.",
            "",
            f"Regression: {rule_text(comparison)}.",
            "",
            *([f"Note: {caveat}.", ""] if caveat else []),
            "| status | test | metric | p95 baseline | p95 now | change | n | note |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for status in STATUS_ORDER:
            for m in comparison.with_status(status):
                name = status_name(m)
                shown = name if status in (IMPROVEMENT, UNCHANGED) else f"**{name}**"
                change = f"{m.change_pct:+.1f}%" if m.change_pct is not None else "-"
                lines.append(
                    f"| {shown} | {_code(m.nodeid)} | {_cell(m.label)} | {fmt(m.old_p95)} | "
                    f"{fmt(m.new_p95)} | {change} | {m.old_n}->{m.new_n} | "
                    f"{_cell(_with_rounds(m))} |"
                )
        lines.extend(f"| new test | {_code(t)} | | | | | | |" for t in comparison.new_tests)
        lines.extend(
            f"| vanished test | {_code(t)} | | | | | | |" for t in comparison.vanished_tests
        )
        lines.append("")

    load_runs = [
        (nodeid, run)
        for nodeid, result in sorted(results.tests.items())
        for run in result.extra.get("load") or []
    ]
    if load_runs:
        lines += [
            "### Load runs",
            "",
            "Open model: latency from each call's intended start; closed model: from the send.",
            "",
            "| test | " + " | ".join(LOAD_COLUMNS) + " |",
            "|---" * (len(LOAD_COLUMNS) + 1) + "|",
        ]
        for nodeid, run in load_runs:
            cells = " | ".join(_cell(c) for c in load_run_cells(run))
            lines.append(f"| {_code(nodeid)} | {cells} |")
        lines.append("")
        for nodeid, run in load_runs:
            if run.get("stages"):
                title = f"**Stages of {_cell(str(run['name']))}** ({_code(nodeid)})"
                lines += [title, "", *_md_table(STAGE_COLUMNS, map(stage_cells, run["stages"]))]

    searches = [
        (nodeid, search)
        for nodeid, result in sorted(results.tests.items())
        for search in result.extra.get("capacity") or []
    ]
    if searches:
        lines += ["### Capacity", ""]
        for nodeid, search in searches:
            lines += [f"{_code(nodeid)}: {_cell(str(search['summary']))}", ""]
            lines += _md_table(CAPACITY_COLUMNS, map(capacity_step_cells, search["steps"]))

    memory = [(n, r) for n, r in sorted(results.tests.items()) if "memory" in r.extra]
    if memory:
        lines += [
            "### Memory",
            "",
            "Python heap under tracemalloc (the body only; growth after `gc.collect()`).",
            "",
            "| test | growth | peak | RSS growth | RSS over the body | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for nodeid, result in memory:
            m = result.extra["memory"]
            verdicts = [v for v in result.verdicts if v.kind == "memory"]
            mark = (
                "-" if not verdicts else "PASS" if all(v.passed for v in verdicts) else "**FAIL**"
            )
            lines.append(
                f"| {_code(nodeid)} | {m['growth_mb']:+.2f} MB | {m['peak_mb']:.2f} MB | "
                f"{m['rss_growth_mb']:+.2f} MB | {rss_text(result.tracker.timeline)} | {mark} |"
            )
        lines.append("")

    tables = [
        (nodeid, table)
        for nodeid, result in sorted(results.tests.items())
        for table in result.tracker.tables
    ]
    if tables:
        lines += ["### Tables", ""]
        for nodeid, table in tables:
            columns = table["columns"]
            lines += [
                f"**{_cell(table['title'])}** ({_code(nodeid)})",
                "",
                "| " + " | ".join(_cell(c) for c in columns) + " |",
                "|---" * len(columns) + "|",
            ]
            lines.extend(
                "| " + " | ".join(_cell(table_cell(c)) for c in row) + " |" for row in table["rows"]
            )
            lines.append("")

    lines += ["### Metrics", ""]
    if not results.tests:
        lines += ["No test recorded metrics.", ""]
    for row in summary.rows:
        result = results.tests[row.nodeid]
        tracker = result.tracker
        flags = f" (measured under {', '.join(sorted(result.flags))})" if result.flags else ""
        lines += [f"#### {_code(row.nodeid)} {row.verdict}{flags}", ""]
        worth, folded = fold_rows(metric_rows(tracker), (v.metric for v in result.verdicts))
        if worth:
            lines += [
                "| metric | n | mean | p50 | p90 | p95 | p99 | max |",
                "|---|---|---|---|---|---|---|---|",
            ]
        for metric, tag, s in worth:
            u = s.unit
            label = _cell(metric) if tag is None else f"&nbsp;&nbsp;↳ {_cell(tag)}"
            lines.append(
                f"| {label} | {s.count} | {fmt(s.mean, u)} | {fmt(s.p50, u)} | "
                f"{fmt(s.p90, u)} | {fmt(s.p95, u)} | {fmt(s.p99, u)} | {fmt(s.max, u)} |"
            )
        if folded:
            lines += ["", f"Not shown (no information): {_cell(', '.join(folded))}"]
        errors = error_summary(tracker)
        if errors is not None:
            lines += ["", f"Errors: {_cell(errors)}"]
        lines.append("")
    lines.append(f"<sub>{PERCENTILE_DEFINITION}</sub>")
    return "\n".join(lines) + "\n"


def _md_table(columns: tuple[str, ...], rows: Iterable[list[str]]) -> list[str]:
    """A Markdown table (cells escaped), then a blank line."""
    out = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    out.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return [*out, ""]


def _with_rounds(m: MetricComparison) -> str:
    """The reason, and each round's p95 of both sides when rounds were compared."""
    rounds = describe_rounds(m)
    return f"{m.reason}; round p95s: {rounds}" if rounds else m.reason
