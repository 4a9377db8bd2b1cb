"""Plain-text rendering of a baseline comparison (terminal report and ``axiomperf compare``)."""

from __future__ import annotations

from pytest_axiomperf.baseline import (
    ALPHA,
    IMPROVEMENT,
    INCOMPARABLE,
    INSUFFICIENT,
    NEW,
    ONE_RUN,
    REGRESSION,
    ROUND_ALPHA,
    UNCHANGED,
    VANISHED,
    Comparison,
    MetricComparison,
)
from pytest_axiomperf.report.text import fmt, printable

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
_ROUTE_LABEL = {NEW: "new route", VANISHED: "vanished route"}


def _route_label(m: MetricComparison) -> str | None:
    """``new route`` / ``vanished route`` for a route in one run only, else None."""
    return _ROUTE_LABEL.get(m.status) if m.tag is not None else None


def status_name(m: MetricComparison) -> str:
    """The status, ``new route`` / ``vanished route`` for a route in one run only."""
    return _route_label(m) or m.status


def status_label(m: MetricComparison) -> str:
    """The terminal's column: ``REGRESSION``, ``new metric``, ``new route``..."""
    return _route_label(m) or _LABEL[m.status]


def describe_change(m: MetricComparison) -> str:
    """``api_response_times p95 10.00ms -> 40.00ms (+300.0%)`` (``metric[tag]`` for a route);
    with rounds, the p95s are the median round's and the change the typical one."""
    change = f" ({m.change_pct:+.1f}%)" if m.change_pct is not None else ""
    what = "p95" if m.evidence == ONE_RUN else "p95 (median round)"
    return f"{m.label} {what} {fmt(m.old_p95)} -> {fmt(m.new_p95)}{change}"


def summary_line(comparison: Comparison) -> str:
    """Counts, one line: each test's metric counted once, its whole and routes together.

    A metric whose whole and route both regressed is one regression; when the
    regressed (or improved) metrics span more comparisons than one each, how many
    follows in parentheses. New and vanished routes are counted when there are any.
    """
    if comparison.refused:
        return "comparison refused: the baseline was measured elsewhere"
    verdicts = comparison.metric_verdicts()
    counts = list(verdicts.values())
    parts = [
        _counted(verdicts, comparison, REGRESSION, "regression(s)"),
        _counted(verdicts, comparison, IMPROVEMENT, "improved"),
        f"{counts.count(UNCHANGED)} unchanged",
        f"{counts.count(INSUFFICIENT)} insufficient data",
        f"{counts.count(INCOMPARABLE)} not comparable",
    ]
    for status, what in ((NEW, "new route(s)"), (VANISHED, "vanished route(s)")):
        routes = sum(m.status == status and m.tag is not None for m in comparison.metrics)
        if routes:
            parts.append(f"{routes} {what}")
    parts += [
        f"{len(comparison.new_tests)} new test(s)",
        f"{len(comparison.vanished_tests)} vanished test(s)",
    ]
    return ", ".join(parts)


def _counted(
    verdicts: dict[tuple[str, str], str], comparison: Comparison, status: str, what: str
) -> str:
    """``1 regression(s) (2 comparisons: 1 whole metric, 1 route)``; the detail only when
    the metrics of that verdict span other than one comparison each."""
    count = sum(v == status for v in verdicts.values())
    shown = [m for m in comparison.with_status(status) if verdicts[(m.nodeid, m.metric)] == status]
    if len(shown) == count:
        return f"{count} {what}"
    routes = sum(m.tag is not None for m in shown)
    wholes = len(shown) - routes
    return (
        f"{count} {what} ({len(shown)} comparisons: "
        f"{wholes} whole metric{'s' if wholes != 1 else ''}, "
        f"{routes} route{'s' if routes != 1 else ''})"
    )


def rule_text(comparison: Comparison) -> str:
    """The rule the comparison applied, in words (only the evidence it actually had)."""
    threshold = f"> {comparison.threshold:g}%"
    if comparison.noise_floor > 0:
        threshold += f" and > {comparison.noise_floor:g}ms"
    evidence = {m.evidence for m in comparison.metrics}
    rules = []
    if evidence - {ONE_RUN}:
        if comparison.paired:
            rules.append(
                f"round p95 or median worse by {threshold}, typical pair or faster half, "
                f"rounds agree (Wilcoxon signed-rank or permutation test, p < {ROUND_ALPHA:g} "
                "in all)"
            )
        else:
            rules.append(
                f"typical round p95 or median worse by {threshold} and by more than the "
                f"baseline's round-to-round spread, rounds agree (Mann-Whitney U, "
                f"p < {ROUND_ALPHA:g} in all)"
            )
    if ONE_RUN in evidence or not evidence:
        rules.append(
            f"one run a side: p95 and median worse by {threshold}, Mann-Whitney U p < {ALPHA:g}"
        )
    return "; ".join(rules)


def one_run_caveat(comparison: Comparison) -> str | None:
    """Said when some verdict rests on one run a side: it cannot separate machine from code."""
    if not any(m.evidence == ONE_RUN and m.old_p95 is not None for m in comparison.metrics):
        return None
    return (
        "one run a side cannot tell a slower machine from slower code: measure rounds "
        "(--axiom-perf-rounds=N at save and compare time) or compare in one job "
        "(axiomperf ab --base REF)"
    )


def describe_rounds(m: MetricComparison) -> str:
    """``rounds p95 baseline 4.10ms 4.30ms | now 5.50ms 5.60ms`` when rounds were compared."""
    if not m.old_rounds or not m.new_rounds:
        return ""
    was = " ".join(fmt(v) for v in m.old_rounds)
    now = " ".join(fmt(v) for v in m.new_rounds)
    return f"baseline {was} | now {now}"


def render_comparison(comparison: Comparison) -> str:
    """The comparison section: mismatches, one line per test metric by status, then totals."""
    lines = [
        f"Baseline comparison with {comparison.baseline} (regression: {rule_text(comparison)}):"
    ]
    caveat = one_run_caveat(comparison)
    if caveat is not None:
        lines.append(f"  note: {caveat}")
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
                change, counts = describe_change(m), f"n={m.old_n}->{m.new_n}"
                lines.append(f"  {status_label(m):<17} {m.nodeid}  {change}  {counts}; {m.reason}")
                if status in (REGRESSION, IMPROVEMENT) and describe_rounds(m):
                    lines.append(f"  {'':<17} round p95s: {describe_rounds(m)}")
        lines.extend(f"  new test          {t}" for t in comparison.new_tests)
        lines.extend(f"  vanished test     {t}" for t in comparison.vanished_tests)
    lines.append(f"Result: {summary_line(comparison)}")
    return printable("\n".join(lines))
