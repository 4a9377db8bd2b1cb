"""Plain-text rendering: value formatting and the guide's performance report.

It reads a tracker through the small protocols below (what ``PerformanceTracker`` and
``MetricStats`` offer), so the tracker can use it without an import circle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pytest_axiomperf.histogram import RELATIVE_ERROR


class MetricStats(Protocol):
    """What the renderers read of ``tracker.MetricStats``."""

    @property
    def unit(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def mean(self) -> float: ...
    @property
    def p50(self) -> float: ...
    @property
    def p90(self) -> float: ...
    @property
    def p95(self) -> float: ...
    @property
    def p99(self) -> float: ...
    @property
    def max(self) -> float: ...
    def get(self, statistic: str) -> float: ...


class PerformanceTracker(Protocol):
    """What the renderers read of ``tracker.PerformanceTracker``."""

    @property
    def runtime(self) -> float: ...
    @property
    def errors(self) -> dict[str, int]: ...
    def metrics(self) -> list[str]: ...
    def tags(self, metric: str) -> list[str]: ...
    def stats(self, metric: str, tag: str | None = None) -> MetricStats: ...


#: The one measure a metric's headline shows when its tags measure unlike things:
#: a WebSocket's delivery latency (server stamp to receipt), not merged with the
#: application ping and keepalive round trips recorded under the same metric
#: (the tags ``WebSocketClient`` records: ``websocket.DELIVERY_TAG``).
HEADLINE_TAGS: Mapping[str, str] = {"websocket_latency": "delivery"}


def headline_tag(tracker: PerformanceTracker, metric: str) -> str | None:
    """The tag ``metric``'s headline shows on its own, or None for the whole metric."""
    tag = HEADLINE_TAGS.get(metric)
    return tag if tag is not None and tag in tracker.tags(metric) else None


def no_information(stats: MetricStats) -> str | None:
    """Why a metric's numbers say nothing (``"all 0"``, ``"1 sample"``), else None."""
    if stats.count <= 1:
        return f"1 sample: {fmt(stats.max, stats.unit)}" if stats.count else "no samples"
    if stats.max == 0.0:
        return f"n={stats.count}, all 0"
    return None


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


def render_guide_report(
    tracker: PerformanceTracker, title: str = "Performance Report", workers: int = 0
) -> str:
    """The guide's report: runtime, the standard metrics, error rates; per-tag breakdowns.

    ``workers``: the pytest-xdist workers whose memory and CPU were added up (0: one process).
    """
    lines = [f"=== {title} ===", f"Runtime: {_fixed(tracker.runtime, 2)} seconds"]
    for heading, metric, rows in _GUIDE_SECTIONS:
        head = headline_tag(tracker, metric)
        stats = tracker.stats(metric, head)
        if not stats.count:
            lines.append(f"{heading}: no samples")
            continue
        scope = ""
        if workers and metric in ("memory_usage", "cpu_usage"):  # the sampler's, summed
            scope = f", total of {workers} xdist worker{'s' if workers != 1 else ''}"
        lines.append(f"{heading} ({'' if head is None else head + ', '}n={stats.count}{scope}):")
        for label, attr in rows:
            lines.append(f"  {label}: {fmt(stats.get(attr), stats.unit)}")
        # The headline's own tag is its lines above; the others (routes, or unlike
        # measures such as ping round trips) each get their own line.
        tags = [t for t in tracker.tags(metric) if t != head]
        if tags:
            width = max(len(t) for t in tags)
            for tag in tags:
                ts = tracker.stats(metric, tag)
                lines.append(
                    f"    {tag:<{width}}  n={ts.count:<6} mean={fmt(ts.mean, ts.unit)} "
                    f"{fmt_distribution(ts)}"
                )
    standard = {m for _, m, _ in _GUIDE_SECTIONS}
    folded = []
    for metric in (m for m in tracker.metrics() if m not in standard):
        stats = tracker.stats(metric)
        why = no_information(stats)
        if why is not None:
            folded.append(f"{metric} ({why})")
            continue
        lines.append(
            f"{metric} (n={stats.count}): mean={fmt(stats.mean, stats.unit)} "
            f"{fmt_distribution(stats)}"
        )
    if folded:
        lines.append(f"Not shown (no information): {', '.join(folded)}")
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


def fold_rows(
    rows: list[tuple[str, str | None, MetricStats]], keep: Iterable[str] = ()
) -> tuple[list[tuple[str, str | None, MetricStats]], list[str]]:
    """Split metric rows into those worth a row and ``"name (why)"`` notes for those
    with no information (all zero, a single sample), except the metrics in ``keep``
    (those a budget checked); a metric folded takes its routes with it."""
    shown, folded = [], []
    dropped: set[str] = set()
    kept = set(keep)
    for metric, tag, stats in rows:
        if metric in dropped:
            continue
        why = no_information(stats) if tag is None and metric not in kept else None
        if why is not None:
            dropped.add(metric)
            folded.append(f"{metric} ({why})")
        else:
            shown.append((metric, tag, stats))
    return shown, folded


class RssTimeline(Protocol):
    """What :func:`rss_text` reads of a ``timeline.Timeline``."""

    def rss_summary(self) -> dict[str, float] | None: ...


def rss_text(timeline: RssTimeline) -> str:
    """``start 120.0 MB, peak 135.1 MB, growth +15.1 MB (+54.0 MB/h)``; ``-`` unsampled."""
    rss = timeline.rss_summary()
    if rss is None:
        return "-"
    rate = rss["mb_per_hour"]
    shown = math.isfinite(rate) and rss["span_s"] >= 1.0  # a rate over less says nothing
    per_hour = f" ({rate:+.1f} MB/h over {rss['span_s']:.1f}s)" if shown else ""
    return (
        f"start {rss['start_mb']:.1f} MB, peak {rss['peak_mb']:.1f} MB, "
        f"growth {rss['growth_mb']:+.1f} MB{per_hour}"
    )


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


def load_target(run: Mapping[str, Any]) -> str:
    """``50/s``; ``mean 30/s over 2 stages`` for a staged run; ``-`` for the closed model."""
    if run["target_rate"] is None:
        return "-"
    if run.get("stages"):
        return f"mean {run['target_rate']:.4g}/s over {len(run['stages'])} stages"
    return f"{run['target_rate']:g}/s"


def load_run_cells(run: dict[str, Any]) -> list[str]:
    """One ``axiom_load`` run as the cells of `LOAD_COLUMNS`."""
    target = load_target(run)
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


STAGE_COLUMNS = (
    "stage",
    "seconds",
    "rate",
    "asked",
    "achieved",
    "p50",
    "p95",
    "p99",
    "errors",
    "dropped",
)


def stage_cells(stage: dict[str, Any]) -> list[str]:
    """One stage of a staged ``axiom_load`` run as the cells of `STAGE_COLUMNS`."""
    latency = stage["latency"]
    return [
        str(stage["index"]),
        f"{stage['seconds']:g}s",
        f"{stage['start_rate']:g}->{stage['rate']:g}/s",
        f"{stage['asked_rate']:.1f}/s",
        f"{stage['achieved_rate']:.1f}/s",
        fmt(latency["p50"]),
        fmt(latency["p95"]),
        fmt(latency["p99"]),
        str(stage["failed"]),
        str(stage["dropped"]),
    ]


CAPACITY_COLUMNS = ("rate", "achieved", "p50", "p95", "p99", "errors", "dropped", "verdict")


def capacity_step_cells(step: dict[str, Any]) -> list[str]:
    """One step of a ``find_capacity`` search as the cells of `CAPACITY_COLUMNS`."""
    latency = step["latency"]
    verdict = "held" if step["held"] else "broke: " + "; ".join(step["broken"])
    if step["saturated"]:
        verdict += " (load generator saturated)"
    return [
        f"{step['rate']:g}/s",
        f"{step['achieved_rate']:.1f}/s",
        fmt(latency["p50"]),
        fmt(latency["p95"]),
        fmt(latency["p99"]),
        str(step["failed"]),
        str(step["dropped"]),
        verdict,
    ]


def table_cell(value: object) -> str:
    """A cell of a table attached with ``add_table``: floats with 2 decimals."""
    return _fixed(value, 2) if isinstance(value, float) else str(value)
