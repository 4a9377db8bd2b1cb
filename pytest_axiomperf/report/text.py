"""Plain-text rendering: value formatting and the guide's performance report."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from pytest_axiomperf.histogram import RELATIVE_ERROR

if TYPE_CHECKING:
    from pytest_axiomperf.tracker import MetricStats, PerformanceTracker

PERCENTILE_DEFINITION = (
    "percentiles: nearest rank (smallest sample with at least p% of samples at or below it), "
    f"reported at most {RELATIVE_ERROR:.2%} high, never low"
)


#: Terminal control characters (C0 but tab and newline, DEL, C1): an ESC sequence in a
#: tag, an error name or a file would recolour, move or clear the user's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with each terminal control character shown as an escape (``\\x1b``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _scale(value: float, unit: str) -> tuple[float, str]:
    """A multiplier and a readable unit for a value in ``unit``."""
    if unit != "s":
        return 1.0, unit
    if value >= 1.0:
        return 1.0, "s"
    if value >= 1e-3:
        return 1e3, "ms"
    return 1e6, "us"


def fmt(value: float | None, unit: str = "s", digits: int = 2) -> str:
    """``0.04523`` -> ``"45.23ms"``; ``None``/NaN -> ``"-"``."""
    if value is None or math.isnan(value):
        return "-"
    factor, shown = _scale(value, unit)
    sep = "" if shown in ("s", "ms", "us", "%") else " "
    return f"{_fixed(value * factor, digits)}{sep}{shown}"


#: From this size on, numbers print in scientific notation (``1.00e+308``, not 309 digits).
_LARGE = 1e9


def _fixed(number: float, digits: int) -> str:
    """``digits`` decimals, or scientific notation for a number of :data:`_LARGE` or more."""
    return f"{number:.{digits}e}" if abs(number) >= _LARGE else f"{number:.{digits}f}"


def fmt_against(value: float, bound: float, unit: str = "s") -> tuple[str, str]:
    """Format a measured value and its bound so the display never crosses the bound.

    Each prints in its own readable unit; when rounding would put the value on
    the wrong side of the bound (or on it, for a value above it), both print in
    one unit with as many digits as it takes.
    """
    if not math.isfinite(value):
        return fmt(value, unit), fmt(bound, unit)
    f_v, _ = _scale(value, unit)
    f_b, _ = _scale(bound, unit)
    shown_v = float(_fixed(value * f_v, 2)) / f_v
    shown_b = float(_fixed(bound * f_b, 2)) / f_b
    if (value > bound) == (shown_v > shown_b):
        return fmt(value, unit), fmt(bound, unit)
    factor, shown = _scale(max(value, bound), unit)
    scaled, scaled_bound = value * factor, bound * factor
    sep = "" if shown in ("s", "ms", "us", "%") else " "
    for digits in range(3, 10):
        a, b = _fixed(scaled, digits), _fixed(scaled_bound, digits)
        if (value > bound) == (float(a) > float(b)):
            return f"{a}{sep}{shown}", f"{b}{sep}{shown}"
    return f"{scaled!r}{sep}{shown}", f"{scaled_bound!r}{sep}{shown}"


def fmt_distribution(stats: MetricStats) -> str:
    """``p50=.. p95=.. p99=.. max=..`` in the metric's unit."""
    u = stats.unit
    return (
        f"p50={fmt(stats.p50, u)} p95={fmt(stats.p95, u)} "
        f"p99={fmt(stats.p99, u)} max={fmt(stats.max, u)}"
    )


_GUIDE_SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "API Response Times",
        "api_response_times",
        (("Mean", "mean"), ("Median", "median"), ("P95", "p95"), ("P99", "p99")),
    ),
    ("WebSocket Latency", "websocket_latency", (("Mean", "mean"), ("P95", "p95"), ("P99", "p99"))),
    ("Order Execution", "order_execution_times", (("Mean", "mean"), ("P95", "p95"))),
    ("Memory Usage", "memory_usage", (("Mean", "mean"), ("Peak", "max"))),
    ("CPU Usage", "cpu_usage", (("Mean", "mean"), ("Peak", "max"))),
)


def render_guide_report(tracker: PerformanceTracker, title: str = "Performance Report") -> str:
    """The guide's report: runtime, the standard metrics, error rates; per-tag breakdowns."""
    lines = [f"=== {title} ===", f"Runtime: {_fixed(tracker.runtime, 2)} seconds"]
    for heading, metric, rows in _GUIDE_SECTIONS:
        stats = tracker.stats(metric)
        if not stats.count:
            lines.append(f"{heading}: no samples")
            continue
        lines.append(f"{heading} (n={stats.count}):")
        for label, attr in rows:
            lines.append(f"  {label}: {fmt(stats.get(attr), stats.unit)}")
        tags = tracker.tags(metric)
        if tags:
            width = max(len(t) for t in tags)
            for tag in tags:
                ts = tracker.stats(metric, tag)
                lines.append(
                    f"    {tag:<{width}}  n={ts.count:<6} mean={fmt(ts.mean, ts.unit)} "
                    f"{fmt_distribution(ts)}"
                )
    standard = {m for _, m, _ in _GUIDE_SECTIONS}
    others = [m for m in tracker.metrics() if m not in standard]
    for metric in others:
        stats = tracker.stats(metric)
        lines.append(
            f"{metric} (n={stats.count}): mean={fmt(stats.mean, stats.unit)} "
            f"{fmt_distribution(stats)}"
        )
    errors = tracker.errors
    total = sum(errors.values())
    if total:
        lines.append(f"Error Rates ({total} errors):")
        lines.extend(f"  {name}: {count}" for name, count in sorted(errors.items()))
    else:
        lines.append("Error Rates: no errors")
    lines.append(f"({PERCENTILE_DEFINITION})")
    return printable("\n".join(lines))


def metric_rows(tracker: PerformanceTracker) -> list[tuple[str, str | None, MetricStats]]:
    """``(metric, tag, stats)`` for each metric (tag None), then each of its tags.

    The rows the Markdown and HTML metrics tables show: a route's own
    distribution under the metric's, as the terminal report's breakdowns. A
    tag holding all of its metric's samples adds no row: it would repeat it.
    """
    rows: list[tuple[str, str | None, MetricStats]] = []
    for metric in tracker.metrics():
        whole = tracker.stats(metric)
        rows.append((metric, None, whole))
        for tag in tracker.tags(metric):
            stats = tracker.stats(metric, tag)
            if stats.count != whole.count:
                rows.append((metric, tag, stats))
    return rows


def error_summary(tracker: PerformanceTracker) -> str | None:
    """``"3 errors: HTTP 5xx 2, TimeoutError 1"``, or None without errors."""
    errors = tracker.errors
    total = sum(errors.values())
    if not total:
        return None
    parts = ", ".join(f"{name} {count}" for name, count in sorted(errors.items()))
    return f"{total} error{'s' if total != 1 else ''}: {parts}"


LOAD_COLUMNS = (
    "run",
    "model",
    "target",
    "achieved",
    "completed",
    "failed",
    "dropped",
    "p50",
    "p99",
    "generator",
)


def load_run_cells(run: dict[str, Any]) -> list[str]:
    """One ``axiom_load`` run as the cells of `LOAD_COLUMNS`."""
    target = f"{run['target_rate']:g}/s" if run["target_rate"] is not None else "-"
    health = run["generator"]["note"] if run["saturated"] else "kept up"
    return [
        str(run["name"]),
        str(run["model"]),
        target,
        f"{run['achieved_rate']:.1f}/s",
        str(run["completed"]),
        str(run["failed"]),
        str(run["dropped"]),
        fmt(run["latency"]["p50"]),
        fmt(run["latency"]["p99"]),
        str(health),
    ]


def table_cell(value: object) -> str:
    """A cell of a table attached with ``add_table``: floats with 2 decimals."""
    return _fixed(value, 2) if isinstance(value, float) else str(value)
