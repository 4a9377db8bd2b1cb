"""The session report printed at the end of a run in performance mode."""

from __future__ import annotations

from typing import Any

from pytest_axiomperf.baseline import Comparison
from pytest_axiomperf.memory import TRACEMALLOC_COST, TRACEMALLOC_FRAMES
from pytest_axiomperf.report.comparison import render_comparison
from pytest_axiomperf.report.summary import COLUMNS, Summary, summarize
from pytest_axiomperf.report.text import (
    CAPACITY_COLUMNS,
    STAGE_COLUMNS,
    capacity_step_cells,
    fmt,
    load_target,
    printable,
    render_guide_report,
    rss_text,
    stage_cells,
    table_cell,
)
from pytest_axiomperf.results import SessionResults

_VERDICT_LABEL = {True: "PASS", False: "FAIL"}


def render_summary(summary: Summary) -> str:
    """The verdict line, then one block per test (attention first): verdict and test,
    then each non-empty column on its own indented line."""
    lines = [f"{summary.line()}"]
    if not summary.rows:
        return lines[0] + "\n  no test recorded metrics"
    width = max(len(r.verdict) for r in summary.rows)
    for row in summary.rows:
        lines.append(f"  {row.verdict:<{width}}  {row.nodeid}  {row.note}".rstrip())
        for (label, _), cell in zip(COLUMNS, row.cells(), strict=True):
            if cell:  # one line per column with something to say
                lines.append(f"  {'':<{width}}    {label}: {'; '.join(cell)}")
    return "\n".join(lines)


def _load_row(run: dict[str, Any]) -> list[str]:
    latency = run["latency"]
    target = load_target(run)
    origin = "from intended start" if run["model"] == "open" else "closed loop, from send"
    rows = [
        f"    {run['name']}: {run['model']} ({run['slots']} slots), target {target}, "
        f"achieved {run['achieved_rate']:.1f}/s; completed {run['completed']}, "
        f"failed {run['failed']}, dropped {run['dropped']}, late {run['late']}; "
        f"p50={fmt(latency['p50'])} p99={fmt(latency['p99'])} ({origin})"
    ]
    for lane, data in run.get("lanes", {}).items():
        lat = data["latency"]
        rows.append(
            f"      lane {lane}: target {data['target_rate']:g}/s, completed "
            f"{data['completed']}, dropped {data['dropped']}; p50={fmt(lat['p50'])} "
            f"p99={fmt(lat['p99'])}"
        )
    if run.get("stages"):
        rows.extend(_aligned(STAGE_COLUMNS, [stage_cells(s) for s in run["stages"]], "      "))
    if run["saturated"]:
        rows.append(f"      ! {run['generator']['note']}")
    return rows


def _aligned(
    columns: tuple[str, ...], rows: list[list[str]], indent: str, *, text_last: bool = False
) -> list[str]:
    """Columns right-aligned; with `text_last`, the last (a free text) left-aligned."""
    widths = [max(len(r[i]) for r in [list(columns), *rows]) for i in range(len(columns))]
    if text_last:
        widths[-1] = 0

    def line(cells: list[str]) -> str:
        return (indent + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    return [line(list(columns)), *(line(r) for r in rows)]


def render_capacity(results: SessionResults) -> str | None:
    """Per test, each ``find_capacity`` search: its verdict line and the curve, step by step."""
    lines = []
    for nodeid, result in sorted(results.tests.items()):
        searches = result.extra.get("capacity") or []
        if searches:
            lines.append(f"  {nodeid}")
        for search in searches:
            lines.append(f"    {search['summary']}")
            cells = [capacity_step_cells(step) for step in search["steps"]]
            lines.extend(_aligned(CAPACITY_COLUMNS, cells, "      ", text_last=True))
    return (
        "Capacity (open model, latency from intended start):\n" + "\n".join(lines)
        if lines
        else None
    )


def render_load_runs(results: SessionResults) -> str | None:
    """Per test, each ``axiom_load`` run: model, rates, counts, p50/p99, saturation."""
    lines = []
    for nodeid, result in sorted(results.tests.items()):
        runs = result.extra.get("load") or []
        if runs:
            lines.append(f"  {nodeid}")
            for run in runs:
                lines.extend(_load_row(run))
    return "Load runs:\n" + "\n".join(lines) if lines else None


def render_table(table: dict[str, Any], indent: str = "  ") -> list[str]:
    """A table attached with ``PerformanceTracker.add_table``, columns aligned."""
    rows = [[table_cell(c) for c in row] for row in table["rows"]]
    columns = list(table["columns"])
    widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return indent + "  ".join([first, *rest]).rstrip()

    return [f"{indent}{table['title']}", line(columns), *(line(r) for r in rows)]


def render_tables(results: SessionResults) -> str | None:
    """Every table the tests attached, under the test that made it."""
    lines: list[str] = []
    for nodeid, result in sorted(results.tests.items()):
        for table in result.tracker.tables:
            lines.append(f"  {nodeid}")
            lines.extend(render_table(table, "    "))
    return "Tables:\n" + "\n".join(lines) if lines else None


def render_memory_table(results: SessionResults) -> str | None:
    """Per-test Python-heap growth and peak (tests run under tracemalloc), with verdicts,
    and the process's RSS over the body (start, peak, growth, growth rate)."""
    measured = [(n, r) for n, r in sorted(results.tests.items()) if "memory" in r.extra]
    if not measured:
        return None
    lines = [
        f"Memory ({len(measured)} tests ran under tracemalloc, {TRACEMALLOC_FRAMES} frames; "
        f"{TRACEMALLOC_COST}: their latency is inflated):",
        f"  {'growth':>10}  {'peak':>10}  {'RSS':>10}  verdict  test",
    ]
    for nodeid, result in measured:
        memory = result.extra["memory"]
        verdicts = [v for v in result.verdicts if v.kind == "memory"]
        verdict = "-" if not verdicts else _VERDICT_LABEL[all(v.passed for v in verdicts)]
        lines.append(
            f"  {memory['growth_mb']:>+7.2f} MB  {memory['peak_mb']:>7.2f} MB  "
            f"{memory['rss_growth_mb']:>+7.2f} MB  {verdict:<7}  {nodeid}"
        )
        if result.tracker.timeline.rss_summary() is not None:
            lines.append(f"  {'':>10}  RSS over the body: {rss_text(result.tracker.timeline)}")
    return "\n".join(lines)


def render_terminal_report(
    results: SessionResults, comparison: Comparison | None = None, verbose: bool = False
) -> str:
    """The verdict and the per-test table first, then memory (if measured), the load runs,
    capacity searches and the tables tests attached, the baseline comparison (if any) and notes.
    ``verbose`` (pytest ``-v``) adds the guide's run-wide report; without it, one line
    says so.

    A CI log is read from the verdict down: the run-wide aggregates mix tests with
    different profiles and come last, on request.
    """
    parts = [render_summary(summarize(results, comparison))]
    extras = (
        render_memory_table(results),
        render_load_runs(results),
        render_capacity(results),
        render_tables(results),
    )
    for extra in extras:
        if extra is not None:
            parts.append(extra)
    if comparison is not None:
        parts.append(render_comparison(comparison))
    if verbose:
        guide = render_guide_report(
            results.totals(), "AxiomTrade Performance Report", workers=results.workers
        )
        xfailed = sum(1 for r in results.tests.values() if r.outcome == "xfailed")
        if xfailed:
            guide += (
                f"\n(totals leave out {xfailed} expected failure(s); their numbers are "
                "in their own rows above)"
            )
        parts.append(guide)
    else:
        parts.append(
            "(-v adds the guide-style run-wide report: runtime, API, WebSocket, orders, "
            "memory, CPU, errors)"
        )
    if results.notes:
        parts.append("Notes:\n" + "\n".join(f"  {n}" for n in results.notes))
    return printable("\n\n".join(parts))
