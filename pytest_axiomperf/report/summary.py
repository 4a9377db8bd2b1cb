"""What every report opens with: the run's verdict and why, then one row per test.

One model, three renderings (terminal, Markdown, HTML): a reader sees PASS or FAIL
and its reasons (tests over budget, regressions, metrics not comparable), then the
tests that need attention first. The table's columns are data (:data:`COLUMNS` and
:meth:`Row.cells`), so a further column (e.g. per-round values) is one entry in each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pytest_axiomperf.baseline import (
    IMPROVEMENT,
    INCOMPARABLE,
    INSUFFICIENT,
    REGRESSION,
    UNCHANGED,
    Comparison,
    MetricComparison,
)
from pytest_axiomperf.budgets import Verdict
from pytest_axiomperf.report.comparison import describe_change, describe_rounds
from pytest_axiomperf.report.text import error_summary, fmt_against
from pytest_axiomperf.results import SessionResults, TestResult

PASS, FAIL = "PASS", "FAIL"
#: A test's verdict words, in the order the table lists them.
TEST_VERDICTS = ("FAIL", "REGRESSED", "NOT COMPARABLE", "PASS", "XFAIL", "SKIPPED")
#: The table's columns after the verdict and the test, ``(short label, title)``;
#: see :meth:`Row.cells`.
COLUMNS = (
    ("budgets", "budgets: measured vs bound"),
    ("baseline", "change vs baseline"),
    ("rounds", "round p95s: baseline | now"),
    ("errors", "errors"),
)


def budget_cell(v: Verdict) -> str:
    """``api_response_times p95 12.30ms <= 100.00ms``: one budget, compactly."""
    if v.statistic == "samples":
        return f"{v.scope}: {v.n} samples < min_samples {int(v.bound)}"
    if v.statistic == "missed":
        return f"{v.scope} missed {v.observed:.0f} {'<=' if v.passed else '>'} {v.bound:.0f} events"
    if not math.isfinite(v.observed):
        return f"{v.scope} {v.statistic} - (n={v.n})"
    shown, bound = fmt_against(v.observed, v.bound, v.unit)
    op = "<=" if v.passed else ">"
    if v.statistic.startswith("min"):
        op = ">=" if v.passed else "<"
    return f"{v.scope} {v.statistic} {shown} {op} {bound}"


@dataclass(frozen=True)
class Row:
    """One test: its verdict word, budgets and change against the baseline."""

    nodeid: str
    verdict: str
    budgets: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    #: Each round's p95 of both sides, for the metrics that moved on rounds: the spread
    #: the verdict rests on.
    rounds: list[str] = field(default_factory=list)
    #: The errors the test counted (``3 errors: HTTP 5xx 2, TimeoutError 1``).
    errors: list[str] = field(default_factory=list)
    #: The HTML anchor of the test's details.
    anchor: str = ""
    #: How the numbers were obtained, when it matters (``"tracemalloc"``: latency inflated).
    flags: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        """``[measured under: tracemalloc]``, or empty."""
        return f"[measured under: {', '.join(self.flags)}]" if self.flags else ""

    def cells(self) -> list[list[str]]:
        """The cells of :data:`COLUMNS`, each a list of lines (empty: nothing to say)."""
        return [self.budgets, self.changes, self.rounds, self.errors]


@dataclass(frozen=True)
class Summary:
    """The run's verdict, its reasons and the per-test rows (attention first)."""

    verdict: str
    over_budget: int
    regressions: int
    not_comparable: int
    failed_otherwise: int
    refused: bool
    tests: int
    budgeted: int
    baseline: str | None
    rows: list[Row]

    @property
    def passed(self) -> bool:
        """True when nothing fails the run."""
        return self.verdict == PASS

    def reasons(self) -> str:
        """``1 over budget, 1 regression, 0 not comparable`` (and failures, a refusal)."""
        parts = [
            f"{self.over_budget} over budget",
            f"{self.regressions} regression{'s' if self.regressions != 1 else ''}",
            f"{self.not_comparable} not comparable",
        ]
        if self.failed_otherwise:
            parts.append(f"{self.failed_otherwise} failed otherwise")
        if self.refused:
            parts.append("baseline comparison refused")
        return ", ".join(parts)

    def context(self) -> str:
        """``8 tests, 6 with budgets; baseline base.json``."""
        text = f"{self.tests} test{'s' if self.tests != 1 else ''}, {self.budgeted} with budgets"
        if self.baseline is not None:
            text += f"; baseline {self.baseline}"
        return text

    def shown_columns(self) -> list[tuple[int, tuple[str, str]]]:
        """``(index, column)`` of the :data:`COLUMNS` some row has something to say in."""
        return [
            (i, column)
            for i, column in enumerate(COLUMNS)
            if any(row.cells()[i] for row in self.rows)
        ]

    def line(self) -> str:
        """The verdict line: ``FAIL: 1 over budget, ... (8 tests, ...)``."""
        return f"{self.verdict}: {self.reasons()} ({self.context()})"


#: Most regressed or improved metrics a row lists; the test's details have them all.
MOST_CHANGES = 3


def _moved(mine: list[MetricComparison], status: str) -> list[str]:
    """One line per metric of that status: its whole when the whole moved, else its
    route that moved most; ``(and 2 routes)`` when more of its comparisons did."""
    word = "REGRESSION" if status == REGRESSION else "improved"
    lines = []
    for metric in dict.fromkeys(m.metric for m in mine if m.status == status):
        moved = [m for m in mine if m.metric == metric and m.status == status]
        whole = [m for m in moved if m.tag is None]
        shown = whole[0] if whole else max(moved, key=lambda m: abs(m.change_pct or 0.0))
        more = len(moved) - 1
        also = f" (and {more} route{'s' if more != 1 else ''})" if more else ""
        lines.append(f"{word} {describe_change(shown)}{also}")
    return lines


def _changes(nodeid: str, comparison: Comparison | None) -> tuple[list[str], set[str]]:
    """A test's notable comparisons as short lines, and the statuses it has."""
    if comparison is None or comparison.refused:
        return [], set()
    if nodeid in comparison.new_tests:
        return ["new test"], set()
    mine = comparison.for_test(nodeid)
    statuses = {m.status for m in mine}
    moved = _moved(mine, REGRESSION) + _moved(mine, IMPROVEMENT)
    out = moved[:MOST_CHANGES]
    if len(moved) > MOST_CHANGES:
        out.append(f"... {len(moved) - MOST_CHANGES} more in the details")
    for status in (INCOMPARABLE, INSUFFICIENT):
        names = list(dict.fromkeys(m.label for m in mine if m.status == status))
        if names:
            out.append(f"{status}: {', '.join(names)}")
    if not out and UNCHANGED in statuses:
        out.append("unchanged")
    return out, statuses


def _rounds(nodeid: str, comparison: Comparison | None) -> list[str]:
    """``decision_times: round p95s: baseline 45.1us 44.8us | now 58.2us 57.9us`` for each
    metric that regressed or improved on rounds (the first few)."""
    if comparison is None or comparison.refused:
        return []
    lines = [
        f"{m.label}: {describe_rounds(m)}"
        for m in comparison.for_test(nodeid)
        if m.status in (REGRESSION, IMPROVEMENT) and describe_rounds(m)
    ]
    return lines[:MOST_CHANGES]


def _verdict(result: TestResult, statuses: set[str]) -> str:
    if result.outcome == "xfailed":
        return "XFAIL"
    if result.outcome == "failed":
        return "FAIL"
    if REGRESSION in statuses:
        return "REGRESSED"
    if INCOMPARABLE in statuses:
        return "NOT COMPARABLE"
    if result.outcome == "skipped":
        return "SKIPPED"
    return "PASS"


def anchor(index: int) -> str:
    """The HTML id of the ``index``-th test's details."""
    return f"t{index}"


def summarize(results: SessionResults, comparison: Comparison | None = None) -> Summary:
    """The verdict and the rows, attention first (then by test id)."""
    rows = []
    for index, (nodeid, result) in enumerate(sorted(results.tests.items())):
        changes, statuses = _changes(nodeid, comparison)
        rows.append(
            Row(
                nodeid=nodeid,
                verdict=_verdict(result, statuses),
                budgets=[budget_cell(v) for v in result.verdicts],
                changes=changes,
                rounds=_rounds(nodeid, comparison),
                errors=[e for e in [error_summary(result.tracker)] if e is not None],
                anchor=anchor(index),
                flags=sorted(result.flags),
            )
        )
    rows.sort(key=lambda r: TEST_VERDICTS.index(r.verdict))
    counted = [r for r in results.tests.values() if r.outcome != "xfailed"]
    over = sum(1 for r in counted if not r.passed_budgets)
    failed = sum(1 for r in counted if r.outcome == "failed" and r.passed_budgets)
    regressions = not_comparable = 0
    refused = False
    if comparison is not None:
        verdicts = list(comparison.metric_verdicts().values())
        regressions, not_comparable = verdicts.count(REGRESSION), verdicts.count(INCOMPARABLE)
        refused = comparison.refused
    bad = over or regressions or failed or refused
    return Summary(
        verdict=FAIL if bad else PASS,
        over_budget=over,
        regressions=regressions,
        not_comparable=not_comparable,
        failed_otherwise=failed,
        refused=refused,
        tests=len(results.tests),
        budgeted=sum(1 for r in results.tests.values() if r.verdicts),
        baseline=comparison.baseline if comparison is not None else None,
        rows=rows,
    )
