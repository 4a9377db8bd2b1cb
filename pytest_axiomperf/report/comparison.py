"""Plain-text rendering of a baseline comparison (terminal report and ``axiomperf compare``)."""

from __future__ import annotations

from pytest_axiomperf.baseline import (
    ALPHA,
    IMPROVEMENT,
    INCOMPARABLE,
    INSUFFICIENT,
    NEW,
    REGRESSION,
    UNCHANGED,
    VANISHED,
    Comparison,
    MetricComparison,
)
from pytest_axiomperf.report.text import fmt

#: Display order: what fails the run first.
STATUS_ORDER = (REGRESSION, IMPROVEMENT, INSUFFICIENT, INCOMPARABLE, UNCHANGED, NEW, VANISHED)
_LABEL = {
    REGRESSION: "REGRESSION",
    IMPROVEMENT: "improved",
    INSUFFICIENT: "insufficient data",
    INCOMPARABLE: "not comparable",
    UNCHANGED: "unchanged",
    NEW: "new metric",
    VANISHED: "vanished metric",
}


def describe_change(m: MetricComparison) -> str:
    """``api_response_times p95 10.00ms -> 40.00ms (+300.0%)`` (``metric[tag]`` for a route)."""
    change = f" ({m.change_pct:+.1f}%)" if m.change_pct is not None else ""
    return f"{m.label} p95 {fmt(m.old_p95)} -> {fmt(m.new_p95)}{change}"


def summary_line(comparison: Comparison) -> str:
    """Counts per status, one line."""
    if comparison.refused:
        return "comparison refused: the baseline was measured elsewhere"
    parts = [
        f"{len(comparison.regressions)} regression(s)",
        f"{len(comparison.with_status(IMPROVEMENT))} improved",
        f"{len(comparison.with_status(UNCHANGED))} unchanged",
        f"{len(comparison.with_status(INSUFFICIENT))} insufficient data",
        f"{len(comparison.with_status(INCOMPARABLE))} not comparable",
        f"{len(comparison.new_tests)} new test(s)",
        f"{len(comparison.vanished_tests)} vanished test(s)",
    ]
    return ", ".join(parts)


def render_comparison(comparison: Comparison) -> str:
    """The comparison section: mismatches, one line per test metric by status, then totals."""
    lines = [
        f"Baseline comparison with {comparison.baseline} (regression: p95 worse by "
        f"> {comparison.threshold:g}% and > {comparison.noise_floor:g}ms, "
        f"one-sided Mann-Whitney U p < {ALPHA:g}):"
    ]
    for text in comparison.mismatches:
        head = "REFUSED" if comparison.refused else "WARNING"
        lines.append(f"  {head}: {text}")
    if comparison.refused:
        lines.append(
            "  the comparison was not made (mismatch=refuse); re-record the baseline "
            "on this machine, or use --axiom-perf-mismatch=warn"
        )
    else:
        for status in STATUS_ORDER:
            for m in comparison.with_status(status):
                counts = f"n={m.old_n}->{m.new_n}"
                lines.append(
                    f"  {_LABEL[status]:<17} {m.nodeid}  {describe_change(m)}  {counts}; {m.reason}"
                )
        lines.extend(f"  new test          {t}" for t in comparison.new_tests)
        lines.extend(f"  vanished test     {t}" for t in comparison.vanished_tests)
    lines.append(f"Result: {summary_line(comparison)}")
    return "\n".join(lines)
