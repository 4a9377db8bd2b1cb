"""The session report printed at the end of a run in performance mode."""

from __future__ import annotations

from pytest_axiomperf.baseline import Comparison
from pytest_axiomperf.report.comparison import render_comparison
from pytest_axiomperf.report.text import render_guide_report
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


def render_terminal_report(results: SessionResults, comparison: Comparison | None = None) -> str:
    """The guide's report, the budgets table, the baseline comparison (if any), then notes."""
    parts = [render_guide_report(results.totals(), "AxiomTrade Performance Report")]
    parts.append(render_budget_table(results))
    if comparison is not None:
        parts.append(render_comparison(comparison))
    if results.notes:
        parts.append("Notes:\n" + "\n".join(f"  {n}" for n in results.notes))
    return "\n\n".join(parts)
