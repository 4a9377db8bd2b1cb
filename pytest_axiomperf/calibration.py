"""A short, fixed CPU calibration: how fast this machine runs Python code like a bot's.

A committed baseline was measured on one machine; CI runs on whatever runner it
gets. When the runner is slower or faster by more than the gate's threshold,
every latency moves with it and no statistic can tell that from a change in the
code. The calibration (JSON parsing and arithmetic, the work a bot's decision
path does) is timed at save and at compare time; the gate compares the two and,
when they differ too much, says so instead of blaming the code.

Two readings of it are kept, for two kinds of drift:

- the **fastest** repetition (``ms``): what the machine can do. Contention from a
  neighbour slows some repetitions, not the machine; the fastest one tells a
  slower runner from a faster one.
- the **typical** repetition (``median_ms``, the median of each reading's median):
  how fast the machine ran while the tests ran. A virtual machine's host can run
  its vCPUs at another speed for seconds at a time (other guests, power states):
  measured on a shared 2-core runner, the same loop took 1.55-1.65 ms a repetition
  for a while, then 2.5-2.7 ms for the next seconds, with a fast repetition now and
  then, and an unchanged bot's timings moved with it by +28 to +74 %, all rounds
  alike, while the fastest repetition stayed within 10 % (``benchmarks/RESULTS.md``).

A run calibrates at its start, before each of its later rounds
(``--axiom-perf-rounds``: rounds 2, 3, ...) and at its end (:class:`Readings`), so the
typical reading covers the moments its tests ran in. A reading takes 30 repetitions of
~1.5 ms (15 before a round). The readings before rounds run between two tests: a thread
the bot leaves busy, or more xdist workers than CPUs, slows them as it slows the tests.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Mapping
from typing import Any

#: Repetitions of a reading at the start and the end of a run.
REPEATS = 30
#: Repetitions of a reading before a round: it runs once a round, so it is shorter.
ROUND_REPEATS = 15
#: Work items per repetition (about 1.5 ms on a current x86 core): short, so that some
#: repetitions fall between a neighbour's bursts.
ITEMS = 150

_DOC = json.dumps(
    {
        "type": "token_update",
        "token": "So1calibration",
        "prices": [100.0 + i * 0.25 for i in range(24)],
        "volume": 12345.5,
        "timestamp": 1_700_000_000.0,
    }
)


def _work(items: int) -> float:
    total = 0.0
    for _ in range(items):
        update = json.loads(_DOC)
        prices = update["prices"]
        mean = sum(prices) / len(prices)
        total += sum((p - mean) ** 2 for p in prices) + update["volume"] * 1e-9
    return total


def calibrate(repeats: int = REPEATS, items: int = ITEMS) -> dict[str, Any]:
    """One reading: ``{"ms": fastest repetition, "median_ms": median repetition (both in
    milliseconds), "repeats": n, "items": items}``."""
    _work(items // 4)  # warm caches and the allocator
    times = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        _work(items)
        times.append((time.perf_counter_ns() - started) / 1e6)
    return {
        "ms": round(min(times), 4),
        "median_ms": round(statistics.median(times), 4),
        "repeats": repeats,
        "items": items,
    }


class Readings:
    """A run's calibration readings, taken as it goes; :meth:`combined` is what it stores.

    ``between_rounds=False`` (a process ``axiomperf ab`` started: its rounds are paired,
    the machine the same on both sides by construction) takes no reading before rounds.
    """

    def __init__(self, between_rounds: bool = True) -> None:
        self._taken: list[dict[str, Any]] = []
        self._between_rounds = between_rounds
        self._round = 1

    def take(self, repeats: int = REPEATS) -> None:
        """A reading now."""
        self._taken.append(calibrate(repeats))

    def before_round(self, index: int) -> None:
        """A shorter reading when a test of a later round than any so far is about to run
        (the rounds run in order: every test's round 1, then round 2, ...; round 1 has the
        run's start reading)."""
        if self._between_rounds and index > self._round:
            self._round = index
            self.take(ROUND_REPEATS)

    def add(self, readings: Iterable[dict[str, Any]]) -> None:
        """Readings another process took (a pytest-xdist worker's)."""
        self._taken.extend(readings)

    def shipped(self) -> list[dict[str, Any]]:
        """This process's readings, to hand to another (a worker's to the controller)."""
        return [dict(reading) for reading in self._taken]

    def combined(self) -> dict[str, Any] | None:
        """The run's calibration: see :func:`combine`."""
        return combine(self._taken)


def combine(readings: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """One run's calibration from its readings (None entries skipped): the fastest
    repetition of all (``ms``), the median of the readings' medians (``median_ms``; absent
    when a reading has none), how many readings there were, and the repetitions of the
    longest one (``repeats``)."""
    done = [r for r in readings if r is not None]
    if not done:
        return None
    out: dict[str, Any] = {
        "ms": min(float(r["ms"]) for r in done),
        "repeats": max(int(r["repeats"]) for r in done),
        "items": done[0]["items"],
        "readings": len(done),
    }
    medians = [r.get("median_ms") for r in done]
    typical = [float(m) for m in medians if isinstance(m, (int, float))]
    if len(typical) == len(done):
        out["median_ms"] = round(statistics.median(typical), 4)
    return out


def _change(old: object, new: object, key: str) -> float | None:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None
    if old.get("items") != new.get("items"):
        return None
    was, now = old.get(key), new.get(key)
    if not isinstance(was, (int, float)) or not isinstance(now, (int, float)):
        return None
    if not was > 0 or not now > 0:
        return None
    return (float(now) / float(was) - 1.0) * 100.0


def speed_change(old: object, new: object) -> float | None:
    """How much slower (positive, percent) the new machine ran the calibration at its
    fastest; None when either side has no usable calibration (an older file) or they used
    other workloads."""
    return _change(old, new, "ms")


def typical_change(old: object, new: object) -> float | None:
    """How much slower (positive, percent) the new run's typical repetition was; None when
    either side has none (a file from before it was recorded)."""
    return _change(old, new, "median_ms")
