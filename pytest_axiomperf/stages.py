"""Load stages: an arrival rate ramping linearly from stage to stage (k6's ramping-arrival-rate).

``stages=[(seconds, rate), ...]``: over each stage the arrival rate moves
linearly from the previous stage's target (the first stage: the start rate) to
this stage's ``rate``; a stage whose target equals the previous one holds it.
Arrivals are placed where the expected count of a linear rate reaches the next
whole call (``n(t) = r0 t + (r1 - r0) t² / 2T``), so a stage of ``T`` seconds
from ``r0`` to ``r1`` asks for ``(r0 + r1) / 2 * T`` calls, and a constant
stage places them exactly as ``rate=`` does (call *i* at ``i / rate``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_axiomperf.errors import LoadError
from pytest_axiomperf.tracker import MetricStats

__all__ = ["Stage", "StageResult", "arrivals", "parse_stages", "stage_edges"]

_NS = 1_000_000_000


@dataclass(frozen=True)
class Stage:
    """One validated stage: the rate moves from ``start_rate`` to ``rate`` over ``seconds``."""

    seconds: float
    start_rate: float
    rate: float

    @property
    def calls(self) -> float:
        """Calls asked for over the stage (the area under its rate)."""
        return (self.start_rate + self.rate) / 2.0 * self.seconds


@dataclass(frozen=True)
class StageResult:
    """What one stage of a staged run did.

    ``asked_rate`` is the stage's mean arrival rate (calls scheduled per second);
    ``achieved_rate`` counts successful calls that *finished* during the stage per
    second (the last stage: until the last completion). Latency (from the intended
    start), errors and drops are those of the calls *scheduled* in the stage.
    """

    index: int
    seconds: float
    start_rate: float
    rate: float
    asked_rate: float
    achieved_rate: float
    scheduled: int
    sent: int
    completed: int
    failed: int
    dropped: int
    errors: dict[str, int]
    latency: MetricStats

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins."""
        return {
            "index": self.index,
            "seconds": self.seconds,
            "start_rate": self.start_rate,
            "rate": self.rate,
            "asked_rate": self.asked_rate,
            "achieved_rate": self.achieved_rate,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "dropped": self.dropped,
            "errors": dict(self.errors),
            "latency": self.latency.to_dict(),
        }


def _number(where: str, value: object, *, low: float, high: float, zero_ok: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LoadError(f"{where}={value!r} must be a finite number")
    if value < low or (value == low and not zero_ok) or value > high:
        bound = f">= {low:g}" if zero_ok else f"> {low:g}"
        raise LoadError(f"{where}={value!r} must be {bound} and <= {high:g}")
    return float(value)


def parse_stages(
    stages: object, start_rate: float, *, max_rate: float, max_duration: float
) -> tuple[Stage, ...]:
    """Validate ``[(seconds, rate), ...]`` into stages; `LoadError` names the culprit."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        raise LoadError(f"stages must be a list of (seconds, rate) pairs, not {stages!r}")
    if not stages:
        raise LoadError("stages is empty: give at least one (seconds, rate) pair")
    out = []
    previous = start_rate
    for i, item in enumerate(stages):
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
            raise LoadError(f"stages[{i}]={item!r} must be a (seconds, rate) pair")
        seconds = _number(
            f"stages[{i}] seconds", item[0], low=0.0, high=max_duration, zero_ok=False
        )
        rate = _number(f"stages[{i}] rate", item[1], low=0.0, high=max_rate, zero_ok=True)
        out.append(Stage(seconds, previous, rate))
        previous = rate
    total = sum(stage.seconds for stage in out)
    if total > max_duration:
        raise LoadError(f"stages last {total:g}s, more than max_duration {max_duration:g}s")
    if all(stage.calls <= 0 for stage in out):
        raise LoadError("stages ask for no calls at all: every rate is 0")
    return tuple(out)


def _offset(stage: Stage, count: float) -> float | None:
    """Seconds into `stage` at which its expected count reaches `count`, or None past it."""
    if count >= stage.calls - 1e-9:
        return None
    count = max(count, 0.0)  # a call due exactly at the stage's start (float rounding)
    r0, slope = stage.start_rate, (stage.rate - stage.start_rate) / stage.seconds
    if slope == 0.0:
        return count / r0
    # Root of slope/2 t² + r0 t - count = 0, in the form that stays exact when slope -> 0.
    root = math.sqrt(max(0.0, r0 * r0 + 2.0 * slope * count))
    denominator = r0 + root
    return 0.0 if denominator <= 0.0 else 2.0 * count / denominator


def arrivals(stages: Sequence[Stage], index: int) -> Iterator[int]:
    """Intended offsets (ns from the first stage's start) of the calls of stage `index`.

    Call *k* (from 0) of the run is due where the expected count reaches *k*, and
    belongs to the stage in which it falls; when the first stage starts at rate 0,
    calls count from *k* = 1 (no call is due before there is any rate).
    """
    before = sum(stage.calls for stage in stages[:index])
    begin_ns = sum(stage.seconds for stage in stages[:index]) * _NS
    k = max(math.ceil(before - 1e-9), 0 if stages[0].start_rate > 0 else 1)
    stage = stages[index]
    while True:
        offset = _offset(stage, k - before)
        if offset is None:
            return
        yield round(begin_ns + offset * _NS)
        k += 1


def stage_edges(stages: Sequence[Stage], begin_ns: int) -> list[int]:
    """The end of each stage, in ns on the clock of `begin_ns` (the first stage's start)."""
    edges, at = [], float(begin_ns)
    for stage in stages:
        at += stage.seconds * _NS
        edges.append(round(at))
    return edges
