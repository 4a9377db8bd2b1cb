"""Budget markers: one function per marker validates its arguments; checks yield verdicts.

Each marker is described by a function whose signature *is* the marker's
signature: the marker help text is generated from it, and a mark's arguments
are bound to it at collection, so an unknown keyword, a positional argument or
a bad value becomes a collection error naming the test and the argument.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from pytest_axiomperf.errors import MarkerError
from pytest_axiomperf.reaction import REACTION_LATENCY, missed_events
from pytest_axiomperf.report.text import fmt_against, fmt_distribution
from pytest_axiomperf.tracker import DEFAULT_UNITS, SECONDS, PerformanceTracker

#: Statistics a latency budget can bound, in report order.
LATENCY_STATISTICS = ("p50", "p90", "p95", "p99", "mean", "max")

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|µs|ms|s)\s*$")


def parse_duration(value: object) -> float:
    """Seconds from a number (seconds) or text with a unit: "150ms", "0.15s", "800us"."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError(f"{value!r} is too large") from None
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration (use seconds, or text with a unit: "
                "'150ms', '0.15s', '800us')"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} must be a positive duration")
    return seconds


def _positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r} must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")
    return number


@dataclass(frozen=True)
class LatencyBudget:
    """A validated ``latency_budget`` mark: bounds in seconds per statistic."""

    bounds: tuple[tuple[str, float], ...]
    metric: str | None = None
    tag: str | None = None
    min_samples: int = 1
    max_missed: int | None = None

    def describe(self) -> str:
        """``p95<=150.00ms`` style summary for reports."""
        parts = [f"{s}<={fmt_against(b, b)[1]}" for s, b in self.bounds]
        if self.max_missed is not None:
            parts.append(f"missed<={self.max_missed}")
        scope = self.metric or "all latency metrics"
        if self.tag:
            scope += f"[{self.tag}]"
        return f"{scope}: {', '.join(parts)}"


@dataclass(frozen=True)
class MemoryBudget:
    """A validated ``memory_budget`` mark (megabytes)."""

    growth_mb: float | None = None
    peak_mb: float | None = None


@dataclass(frozen=True)
class ThroughputBudget:
    """A validated ``throughput_budget`` mark."""

    min_rps: float | None = None
    max_error_rate: float | None = None
    max_dropped: int | None = None

    def describe(self) -> str:
        """``load: min_rps>=100, max_error_rate<=1%`` style summary for reports."""
        parts = []
        if self.min_rps is not None:
            parts.append(f"min_rps>={self.min_rps:g}")
        if self.max_error_rate is not None:
            parts.append(f"max_error_rate<={self.max_error_rate:.2%}")
        if self.max_dropped is not None:
            parts.append(f"max_dropped<={self.max_dropped}")
        return f"load: {', '.join(parts)}"


def latency_budget(
    *,
    p50: float | str | None = None,
    p90: float | str | None = None,
    p95: float | str | None = None,
    p99: float | str | None = None,
    mean: float | str | None = None,
    max: float | str | None = None,
    metric: str | None = None,
    tag: str | None = None,
    min_samples: int = 1,
    max_missed: int | None = None,
) -> LatencyBudget:
    """Latency bounds (seconds, or text with a unit such as "150ms") for the test's latency
    metrics, or only `metric`, or one `tag` of it; fewer than `min_samples` samples fails;
    with metric="reaction_latency", `max_missed` bounds the scenario events left unanswered."""
    given = {"p50": p50, "p90": p90, "p95": p95, "p99": p99, "mean": mean, "max": max}
    bounds = []
    for name, value in given.items():
        if value is None:
            continue
        try:
            bounds.append((name, parse_duration(value)))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    if max_missed is not None:
        if isinstance(max_missed, bool) or not isinstance(max_missed, int) or max_missed < 0:
            raise ValueError(f"max_missed={max_missed!r} must be an integer >= 0")
        if metric != REACTION_LATENCY:
            raise ValueError(
                f"max_missed counts missed market events: it needs metric={REACTION_LATENCY!r}"
            )
    if not bounds and max_missed is None:
        raise ValueError(
            "no bound given (give at least one of p50, p90, p95, p99, mean, max, or max_missed)"
        )
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ValueError(f"metric={metric!r} must be a metric name")
    if metric in DEFAULT_UNITS:
        raise ValueError(
            f"metric={metric!r} is measured in {DEFAULT_UNITS[metric]}, not seconds: "
            "a latency budget cannot bound it"
        )
    if tag is not None and (not isinstance(tag, str) or not tag):
        raise ValueError(f"tag={tag!r} must be a non-empty string")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ValueError(f"min_samples={min_samples!r} must be an integer >= 1")
    return LatencyBudget(tuple(bounds), metric, tag, min_samples, max_missed)


def memory_budget(*, growth_mb: float | None = None, peak_mb: float | None = None) -> MemoryBudget:
    """Bounds in MB on the test body's net Python-heap growth (after gc) and tracemalloc peak."""
    if growth_mb is None and peak_mb is None:
        raise ValueError("no bound given (give growth_mb, peak_mb or both)")
    return MemoryBudget(
        None if growth_mb is None else _positive("growth_mb", growth_mb),
        None if peak_mb is None else _positive("peak_mb", peak_mb),
    )


def throughput_budget(
    *,
    min_rps: float | None = None,
    max_error_rate: float | None = None,
    max_dropped: int | None = None,
) -> ThroughputBudget:
    """Bounds on the test's axiom_load runs: achieved requests/s, error rate (0..1), drops."""
    if min_rps is None and max_error_rate is None and max_dropped is None:
        raise ValueError("no bound given (give min_rps, max_error_rate or max_dropped)")
    rate = (
        None
        if max_error_rate is None
        else _positive("max_error_rate", max_error_rate, allow_zero=True)
    )
    if rate is not None and rate > 1:
        raise ValueError(f"max_error_rate={max_error_rate!r} must be a fraction between 0 and 1")
    if max_dropped is not None and (
        isinstance(max_dropped, bool) or not isinstance(max_dropped, int) or max_dropped < 0
    ):
        raise ValueError(f"max_dropped={max_dropped!r} must be an integer >= 0")
    return ThroughputBudget(
        None if min_rps is None else _positive("min_rps", min_rps), rate, max_dropped
    )


MARKERS: dict[str, Callable[..., Any]] = {
    "latency_budget": latency_budget,
    "memory_budget": memory_budget,
    "throughput_budget": throughput_budget,
}


def marker_help(name: str) -> str:
    """``name(signature): first docstring sentence``, for ``pytest --markers``."""
    func = MARKERS[name]
    params = ", ".join(
        f"{p.name}={p.default!r}" for p in inspect.signature(func).parameters.values()
    )
    doc = " ".join((func.__doc__ or "").split())
    return f"{name}({params}): {doc}"


def parse_mark(mark: pytest.Mark, where: str) -> Any:
    """Validate one mark; ``MarkerError`` names the test, the marker and the argument."""
    func = MARKERS[mark.name]
    try:
        inspect.signature(func).bind(*mark.args, **mark.kwargs)
    except TypeError as exc:
        allowed = ", ".join(inspect.signature(func).parameters)
        raise MarkerError(
            f"{where}: @pytest.mark.{mark.name}: {exc} (arguments are keywords: {allowed})"
        ) from None
    try:
        return func(*mark.args, **mark.kwargs)
    except (ValueError, OverflowError) as exc:
        raise MarkerError(f"{where}: @pytest.mark.{mark.name}: {exc}") from None


@dataclass(frozen=True)
class Budgets:
    """Every budget mark of one test, validated."""

    latency: tuple[LatencyBudget, ...] = ()
    memory: tuple[MemoryBudget, ...] = ()
    throughput: tuple[ThroughputBudget, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.latency or self.memory or self.throughput)

    @classmethod
    def from_item(cls, item: pytest.Item) -> Budgets:
        """Read and validate the budget marks of ``item``."""
        found: dict[str, list[Any]] = {name: [] for name in MARKERS}
        for name in MARKERS:
            for mark in item.iter_markers(name):
                found[name].append(parse_mark(mark, item.nodeid))
        return cls(
            tuple(found["latency_budget"]),
            tuple(found["memory_budget"]),
            tuple(found["throughput_budget"]),
        )


#: A bare latency bound this large (seconds) was most likely meant in milliseconds.
SUSPICIOUS_SECONDS = 10


def warn_if_meant_as_ms(item: pytest.Item, warned: set[int]) -> None:
    """Warn about ``p95=50``: seconds here, though k6 and many dashboards read 50 as ms.

    Once per mark: ``warned`` holds the ids of the marks warned about (a mark lives
    as long as its node, the whole session).
    """
    for mark in item.iter_markers("latency_budget"):
        if id(mark) in warned:
            continue
        warned.add(id(mark))
        for name in LATENCY_STATISTICS:
            value = mark.kwargs.get(name)
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and value >= SUSPICIOUS_SECONDS
            ):
                item.warn(
                    pytest.PytestWarning(
                        f"latency_budget({name}={value!r}) on {item.nodeid}: a bare number is "
                        f'seconds ({value:g} s); write {name}="{value:g}ms" for milliseconds, '
                        f'or {name}="{value:g}s" to keep seconds without this warning'
                    )
                )


@dataclass(frozen=True)
class Verdict:
    """One bound checked against one measurement."""

    kind: str  # "latency", "memory", "throughput"
    metric: str
    tag: str | None
    statistic: str
    bound: float
    observed: float
    n: int
    passed: bool
    unit: str = SECONDS
    detail: str = ""

    @property
    def scope(self) -> str:
        """``metric[tag]``."""
        return f"{self.metric}[{self.tag}]" if self.tag else self.metric

    def message(self) -> str:
        """One line: scope, statistic, measured vs bound, n, and the distribution."""
        if self.statistic == "unit":
            return self.detail
        if self.statistic == "samples":
            what = self.detail or f"{self.scope}: {self.n} samples recorded"
            return f"{what}; the budget needs at least {int(self.bound)} (min_samples)"
        op = "<=" if self.passed else ">"
        if self.statistic == "missed":
            return (
                f"{self.scope} missed = {self.observed:.0f} {op} {self.bound:.0f} events "
                f"(events no order answered within answer_within; {self.n} answered)"
            )
        shown, bound = fmt_against(self.observed, self.bound, self.unit)
        if self.statistic.startswith("min"):
            op = ">=" if self.passed else "<"
        extra = f"; {self.detail}" if self.detail else ""
        return f"{self.scope} {self.statistic} = {shown} {op} {bound} (n={self.n}{extra})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{kind, metric, tag, statistic, bound, observed, n, passed, ...}``."""
        data = asdict(self)
        if isinstance(self.observed, float) and math.isnan(self.observed):
            data["observed"] = None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Rebuild from :meth:`to_dict`."""
        values = dict(data)
        if values.get("observed") is None:
            values["observed"] = math.nan
        return cls(**values)


def _recorded(tracker: PerformanceTracker, metric: str | None, tag: str | None) -> str:
    """What the test did record instead, to spot a misspelt name: the metric's tags when
    the metric exists and the tag does not, else the latency metrics; empty when none."""
    most = 8

    def listed(names: list[str]) -> str:
        more = f" and {len(names) - most} more" if len(names) > most else ""
        return ", ".join(names[:most]) + more

    latency = [m for m in tracker.metrics() if tracker.unit(m) == SECONDS]
    if metric in latency and tag is not None:
        tags = tracker.tags(metric)
        return f" (its tags: {listed(tags)})" if tags else " (it has no tags)"
    if metric is None and tag is not None:
        tags = sorted({t for m in latency for t in tracker.tags(m)})
        return f" (tags recorded: {listed(tags)})" if tags else ""
    return f" (latency metrics recorded: {listed(latency)})" if latency else ""


def check_latency(budget: LatencyBudget, tracker: PerformanceTracker) -> list[Verdict]:
    """Check one latency budget against a tracker: one verdict per metric and bound."""
    if budget.metric is not None:
        metrics = [budget.metric]
    else:
        metrics = [m for m in tracker.metrics() if tracker.unit(m) == SECONDS]
        if budget.tag is not None:
            metrics = [m for m in metrics if budget.tag in tracker.tags(m)]
    if not metrics:
        scope = "any latency metric" + (f" with tag {budget.tag!r}" if budget.tag else "")
        return [
            Verdict(
                "latency",
                "(none)",
                budget.tag,
                "samples",
                float(budget.min_samples),
                0.0,
                0,
                False,
                detail=(
                    f"the test recorded no samples of {scope}"
                    f"{_recorded(tracker, budget.metric, budget.tag)}"
                ),
            )
        ]
    verdicts = []
    if budget.max_missed is not None:
        missed = missed_events(tracker, budget.tag)
        verdicts.append(
            Verdict(
                "latency",
                REACTION_LATENCY,
                budget.tag,
                "missed",
                float(budget.max_missed),
                float(missed),
                tracker.stats(REACTION_LATENCY, budget.tag).count,
                missed <= budget.max_missed,
                "events",
            )
        )
    for metric in metrics:
        unit = tracker.unit(metric)
        if unit != SECONDS:
            # Declared with set_unit: comparing its B/s or % with seconds would mean nothing.
            detail = (
                f"{metric} is measured in {unit}, not seconds: a latency budget cannot bound "
                "it (give metric= a latency metric)"
            )
            verdicts.append(
                Verdict(
                    "latency", metric, budget.tag, "unit", 0.0, math.nan, 0, False, unit, detail
                )
            )
            continue
        stats = tracker.stats(metric, budget.tag)
        if stats.count < budget.min_samples:
            scope = f"{metric}[{budget.tag}]" if budget.tag else metric
            # None at all: a misspelt metric or tag looks the same as a silent bot.
            none = ""
            if not stats.count:
                none = f"{scope}: 0 samples recorded{_recorded(tracker, metric, budget.tag)}"
            verdicts.append(
                Verdict(
                    "latency",
                    metric,
                    budget.tag,
                    "samples",
                    float(budget.min_samples),
                    float(stats.count),
                    stats.count,
                    False,
                    detail=none,
                )
            )
            continue
        for statistic, bound in budget.bounds:
            observed = stats.get(statistic)
            verdicts.append(
                Verdict(
                    "latency",
                    metric,
                    budget.tag,
                    statistic,
                    bound,
                    observed,
                    stats.count,
                    observed <= bound,
                    stats.unit,
                    fmt_distribution(stats),
                )
            )
    return verdicts
