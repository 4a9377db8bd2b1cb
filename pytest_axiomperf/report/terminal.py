"""The session report printed at the end of a run in performance mode."""

from __future__ import annotations

from typing import Any

from pytest_axiomperf.baseline import Comparison
from pytest_axiomperf.memory import TRACEMALLOC_COST, TRACEMALLOC_FRAMES
from pytest_axiomperf.report.comparison import render_comparison
from pytest_axiomperf.report.text import fmt, printable, render_guide_report, table_cell
from pytest_axiomperf.results import SessionResults, TestResult

_VERDICT_LABEL = {True: "PASS", False: "FAIL"}


def _test_rows(result: TestResult) -> list[str]:
    rows = []
    head = f"{result.outcome.upper():<8} {result.nodeid}"
    if result.flags:
        head += f"  [measured under: {', '.join(sorted(result.flags))}]"
    rows.append(head)
    for verdict in result.verdicts:
        rows.append(f"    {_VERDICT_LABEL[verdict.passed]} {verdict.kind:<10} {verdict.message()}")
    return rows


def render_budget_table(results: SessionResults) -> str:
    """One block per test with budgets: outcome, then each verdict (measured vs bound, n)."""
    budgeted = [r for _, r in sorted(results.tests.items()) if r.verdicts]
    if not budgeted:
        return "Budgets: no test has a budget"
    failed = sum(1 for r in budgeted if not r.passed_budgets)
    lines = [f"Budgets ({len(budgeted)} tests, {failed} over budget):"]
    for result in budgeted:
        lines.extend(_test_rows(result))
    return "\n".join(lines)


def _load_row(run: dict[str, Any]) -> list[str]:
    latency = run["latency"]
    target = f"{run['target_rate']:g}/s" if run["target_rate"] is not None else "-"
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
    if run["saturated"]:
        rows.append(f"      ! {run['generator']['note']}")
    return rows


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
    """Per-test Python-heap growth and peak (tests run under tracemalloc), with verdicts."""
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
    return "\n".join(lines)


def render_terminal_report(results: SessionResults, comparison: Comparison | None = None) -> str:
    """The guide's report, the load runs, attached tables, the budgets table, memory (if
    measured), the baseline comparison (if any), then notes."""
    parts = [render_guide_report(results.totals(), "AxiomTrade Performance Report")]
    xfailed = sum(1 for r in results.tests.values() if r.outcome == "xfailed")
    if xfailed:
        parts[0] += (
            f"\n(totals leave out {xfailed} expected failure(s); their numbers are "
            "in the budgets table)"
        )
    load = render_load_runs(results)
    if load is not None:
        parts.append(load)
    tables = render_tables(results)
    if tables is not None:
        parts.append(tables)
    parts.append(render_budget_table(results))
    memory = render_memory_table(results)
    if memory is not None:
        parts.append(memory)
    if comparison is not None:
        parts.append(render_comparison(comparison))
    if results.notes:
        parts.append("Notes:\n" + "\n".join(f"  {n}" for n in results.notes))
    return printable("\n\n".join(parts))
