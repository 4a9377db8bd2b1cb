"""Capacity search: step the arrival rate until a budget breaks (``axiom_load.find_capacity``).

Each step is an open-model run of its own at one rate for ``hold`` seconds
(latency from the intended start, calls beyond ``max_in_flight`` dropped). A
step *holds* when every bound of the `CapacityBudget` is met: latency
percentiles, error rate, dropped calls, and the achieved rate of at least
``min_achieved`` of the rate asked. The achieved rate is the rate at which
answers came out: successful calls per second from the first completion to the
last (`Completions`), so a constant latency does not lower it, while a bot
that serves fewer calls per second than asked shows its own rate.

The search starts at ``start``, adds ``step`` or multiplies by ``factor`` until
``max_rate`` (the last step is ``max_rate`` itself), and stops at the first
step that breaks, at ``max_steps``, or before a step that would end past
``time_limit``. With ``refine=N``, a search that broke then halves the gap
between the last rate that held and the rate that broke, up to N more steps
(within the same ``max_steps`` and ``time_limit``): a coarse ``factor=2`` search
bracketing 200-400/s ends bracketing 50/s after two. The capacity is the highest
rate that held below the lowest that broke; the curve is kept in order of rate.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_axiomperf.budgets import parse_duration
from pytest_axiomperf.errors import LoadError
from pytest_axiomperf.report.text import fmt
from pytest_axiomperf.tracker import MetricStats

if TYPE_CHECKING:
    from pytest_axiomperf.load import LoadResult

__all__ = ["CapacityBudget", "CapacityResult", "CapacityStep", "Completions", "rates", "search"]

#: The highest rate a search may ask for (calls per second).
MAX_RATE = 100_000.0
#: Why a search stopped.
STOPS = ("budget", "max_rate", "max_steps", "time_limit")


@dataclass(frozen=True)
class CapacityBudget:
    """What a step must meet to hold. Latency bounds in seconds (None: not bounded)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max_error_rate: float = 0.01
    max_dropped: int = 0
    min_achieved: float = 0.9

    @classmethod
    def build(
        cls,
        *,
        p50: object,
        p95: object,
        p99: object,
        max_error_rate: object,
        max_dropped: object,
        min_achieved: object,
    ) -> CapacityBudget:
        """Validate the arguments of ``find_capacity``; `LoadError` names the culprit."""
        bounds: dict[str, float | None] = {}
        for key, value in (("p50", p50), ("p95", p95), ("p99", p99)):
            try:
                bounds[key] = None if value is None else parse_duration(value)
            except ValueError as exc:
                raise LoadError(f"{key}: {exc}") from None
        error_rate = _fraction("max_error_rate", max_error_rate, zero_ok=True)
        achieved = _fraction("min_achieved", min_achieved, zero_ok=False)
        if isinstance(max_dropped, bool) or not isinstance(max_dropped, int) or max_dropped < 0:
            raise LoadError(f"max_dropped={max_dropped!r} must be an integer >= 0")
        return cls(bounds["p50"], bounds["p95"], bounds["p99"], error_rate, max_dropped, achieved)

    def describe(self) -> str:
        """``p95 <= 100.00ms, errors <= 1%, dropped <= 0, achieved >= 90% of the rate``."""
        parts = [
            f"{key} <= {fmt(bound)}"
            for key, bound in (("p50", self.p50), ("p95", self.p95), ("p99", self.p99))
            if bound is not None
        ]
        parts += [
            f"errors <= {self.max_error_rate:.0%}",
            f"dropped <= {self.max_dropped}",
            f"achieved >= {self.min_achieved:.0%} of the rate",
        ]
        return ", ".join(parts)

    def broken(self, run: LoadResult, rate: float, achieved: float) -> list[str]:
        """What `run` (one step at `rate`, answers out at `achieved` per second) broke, as
        short phrases; empty when it held."""
        out = []
        if run.completed == 0:
            out.append("no call completed")
        for key, bound in (("p50", self.p50), ("p95", self.p95), ("p99", self.p99)):
            value = float(getattr(run.latency, key))
            if bound is not None and run.completed and value > bound:
                out.append(f"{key} {fmt(value)} > {fmt(bound)}")
        if run.error_rate > self.max_error_rate:
            out.append(f"errors {run.error_rate:.1%} > {self.max_error_rate:.0%}")
        if run.dropped > self.max_dropped:
            out.append(f"dropped {run.dropped} > {self.max_dropped}")
        if achieved < self.min_achieved * rate:
            out.append(f"achieved {achieved:.1f}/s < {self.min_achieved:.0%} of {rate:g}/s")
        return out


@dataclass(frozen=True)
class CapacityStep:
    """One step of the search: the rate asked and what the bot did at it."""

    rate: float
    achieved_rate: float
    sent: int
    completed: int
    failed: int
    dropped: int
    error_rate: float
    errors: dict[str, int]
    latency: MetricStats
    held: bool
    #: What broke (empty when the step held).
    broken: tuple[str, ...]
    #: The load generator itself could not keep up during this step.
    saturated: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins."""
        return {
            "rate": self.rate,
            "achieved_rate": self.achieved_rate,
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "dropped": self.dropped,
            "error_rate": self.error_rate,
            "errors": dict(self.errors),
            "latency": self.latency.to_dict(),
            "held": self.held,
            "broken": list(self.broken),
            "saturated": self.saturated,
        }


@dataclass(frozen=True)
class CapacityResult:
    """The outcome of a capacity search: the highest rate that held, and the whole curve."""

    name: str
    #: The highest rate asked that held (None: the first step broke already).
    capacity: float | None
    #: The achieved rate at that step.
    achieved_rate: float | None
    #: The rate of the step that broke (None: none broke).
    broke_at: float | None
    #: Why the search stopped: ``budget``, ``max_rate``, ``max_steps`` or ``time_limit``.
    stopped: str
    budget: str
    hold: float
    elapsed: float
    steps: tuple[CapacityStep, ...]

    def summary(self) -> str:
        """One line: the capacity, what broke it (or why the search stopped)."""
        if self.capacity is None:
            head = f"{self.name}: no rate held"
        else:
            head = (
                f"{self.name}: capacity {self.capacity:g}/s (achieved {self.achieved_rate:.1f}/s)"
            )
        broken = next((s for s in self.steps if s.rate == self.broke_at and not s.held), None)
        if broken is not None:
            tail = f"broke at {broken.rate:g}/s: {'; '.join(broken.broken)}"
        elif self.stopped == "max_rate":
            tail = "held up to max_rate: the capacity is at least that"
        else:
            tail = f"stopped by {self.stopped} before any step broke"
        return f"{head}; {tail} ({len(self.steps)} steps of {self.hold:g}s; {self.budget})"

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins: stored per test in ``TestResult.extra["capacity"]``."""
        return {
            "name": self.name,
            "capacity": self.capacity,
            "achieved_rate": self.achieved_rate,
            "broke_at": self.broke_at,
            "stopped": self.stopped,
            "budget": self.budget,
            "hold": self.hold,
            "elapsed": self.elapsed,
            "summary": self.summary(),
            "steps": [step.to_dict() for step in self.steps],
        }


def _fraction(name: str, value: object, *, zero_ok: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LoadError(f"{name}={value!r} must be a number between 0 and 1")
    if value > 1 or value < 0 or (value == 0 and not zero_ok):
        low = "0" if zero_ok else "0 (excluded)"
        raise LoadError(f"{name}={value!r} must be a fraction between {low} and 1")
    return float(value)


def _rate(name: str, value: object, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LoadError(f"{name}={value!r} must be a finite number")
    if value <= low or value > MAX_RATE:
        raise LoadError(f"{name}={value!r} must be > {low:g} and <= {MAX_RATE:g}")
    return float(value)


def rates(start: object, max_rate: object, step: object, factor: object) -> list[float]:
    """The rates a search steps through, from `start` up to and ending on `max_rate`;
    exactly one of `step` (added) and `factor` (multiplied). `LoadError` on bad input."""
    if (step is None) == (factor is None):
        raise LoadError("give exactly one of step= (added per step) or factor= (multiplied)")
    first, last = _rate("start", start), _rate("max_rate", max_rate)
    if last < first:
        raise LoadError(f"max_rate={last:g} is below start={first:g}")
    add = None if step is None else _rate("step", step)
    times = None if factor is None else _rate("factor", factor, low=1.0)
    out = [first]
    while out[-1] < last and len(out) < 10_000:
        nxt = out[-1] + add if add is not None else out[-1] * (times or 2.0)
        out.append(min(nxt, last))
    return out


class Completions:
    """Times the successful completions of a step's calls: its output rate."""

    def __init__(self) -> None:
        self.count = 0
        self.first_ns = self.last_ns = 0

    def wrap(self, fn: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
        """`fn`, its successful completions counted (a result that is not awaitable is
        returned as is, for the load generator to refuse)."""

        async def timed(awaitable: Awaitable[object]) -> object:
            result = await awaitable
            now = time.perf_counter_ns()
            if not self.count:
                self.first_ns = now
            self.count += 1
            self.last_ns = now
            return result

        @functools.wraps(fn)
        def call() -> Awaitable[object]:
            awaitable = fn()
            return timed(awaitable) if inspect.isawaitable(awaitable) else awaitable

        return call

    def rate(self, hold: float) -> float:
        """Completions per second from the first to the last (``count / hold`` under two)."""
        span = (self.last_ns - self.first_ns) / 1e9
        if self.count < 2 or span <= 0:
            return self.count / hold
        return (self.count - 1) / span


RunStep = Callable[[float, float, float], Awaitable[tuple["LoadResult", float]]]
"""Runs one step: ``(rate, hold, drain) -> (LoadResult, achieved rate)``, unrecorded and
unpublished."""


class _Search:
    """The steps run so far, within a search's step count and time limit."""

    def __init__(
        self, budget: CapacityBudget, hold: float, drain: float, max_steps: int, limit: float
    ) -> None:
        self.budget, self.hold, self.drain = budget, hold, drain
        self.max_steps, self.limit = max_steps, limit
        self.started = time.perf_counter()
        self.done: list[CapacityStep] = []

    def blocked(self) -> str | None:
        """Why no further step may run (``max_steps``, ``time_limit``), or None."""
        if len(self.done) >= self.max_steps:
            return "max_steps"
        if self.left() < self.hold:
            return "time_limit"
        return None

    def left(self) -> float:
        return self.limit - (time.perf_counter() - self.started)

    async def step(self, rate: float, run_step: RunStep) -> CapacityStep:
        run, achieved = await run_step(rate, self.hold, min(self.drain, self.left() - self.hold))
        broken = self.budget.broken(run, rate, achieved)
        done = CapacityStep(
            rate=rate,
            achieved_rate=achieved,
            sent=run.sent,
            completed=run.completed,
            failed=run.failed,
            dropped=run.dropped,
            error_rate=run.error_rate,
            errors=dict(run.errors),
            latency=run.latency,
            held=not broken,
            broken=tuple(broken),
            saturated=run.saturated,
        )
        self.done.append(done)
        return done


def _midpoint(low: float, high: float) -> float:
    """Halfway, rounded to 3 significant digits (a rate a person reads), strictly inside."""
    middle = (low + high) / 2.0
    rounded = float(f"{middle:.3g}")
    return rounded if low < rounded < high else middle


async def search(
    name: str,
    steps: list[float],
    budget: CapacityBudget,
    *,
    hold: float,
    drain: float,
    max_steps: int,
    time_limit: float,
    run_step: RunStep,
    refine: int = 0,
) -> CapacityResult:
    """Run the steps in order until one breaks, then refine (see the module docstring)."""
    runs = _Search(budget, hold, drain, max_steps, time_limit)
    stopped = "max_rate"
    for rate in steps:
        blocked = runs.blocked()
        if blocked is not None:
            stopped = blocked
            break
        if not (await runs.step(rate, run_step)).held:
            stopped = "budget"
            break
    held = [step.rate for step in runs.done if step.held]
    low = held[-1] if held else None
    high = runs.done[-1].rate if stopped == "budget" else None
    if low is not None and high is not None:
        for _ in range(refine):
            if runs.blocked() is not None:
                break
            middle = _midpoint(low, high)
            if (await runs.step(middle, run_step)).held:
                low = middle
            else:
                high = middle
    best = next((step for step in runs.done if step.held and step.rate == low), None)
    return CapacityResult(
        name=name,
        capacity=low,
        achieved_rate=None if best is None else best.achieved_rate,
        broke_at=high,
        stopped=stopped,
        budget=budget.describe(),
        hold=hold,
        elapsed=time.perf_counter() - runs.started,
        steps=tuple(sorted(runs.done, key=lambda step: step.rate)),
    )
