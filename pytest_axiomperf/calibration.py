"""A short, fixed CPU calibration: how fast this machine runs Python code like a bot's.

A committed baseline was measured on one machine; CI runs on whatever runner it
gets. When the runner is slower or faster by more than the gate's threshold,
every latency moves with it and no statistic can tell that from a change in the
code. The calibration (JSON parsing and arithmetic, the work a bot's decision
path does) is timed at save and at compare time; the gate compares the two and,
when they differ too much, says so instead of blaming the code.

The best of several repetitions is kept: contention from a neighbour slows some
repetitions, not the machine, and the fastest one is what the machine can do.
It takes about a tenth of a second, and a run calibrates at its start and its end
(:func:`best`), so a burst of contention at one moment does not decide it.
"""

from __future__ import annotations

import json
import time
from typing import Any

#: Repetitions; the fastest is kept.
REPEATS = 30
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
    """``{"ms": best repetition in milliseconds, "repeats": n, "items": items}``."""
    _work(items // 4)  # warm caches and the allocator
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter_ns()
        _work(items)
        best = min(best, (time.perf_counter_ns() - started) / 1e6)
    return {"ms": round(best, 4), "repeats": repeats, "items": items}


def best(*runs: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fastest of several calibrations of one workload (None entries skipped)."""
    done = [r for r in runs if r is not None]
    return min(done, key=lambda r: float(r["ms"])) if done else None


def speed_change(old: object, new: object) -> float | None:
    """How much slower (positive, percent) the new machine ran the calibration; None when
    either side has no usable calibration (an older file) or they used other workloads."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None
    if old.get("items") != new.get("items"):
        return None
    was, now = old.get("ms"), new.get("ms")
    if not isinstance(was, (int, float)) or not isinstance(now, (int, float)):
        return None
    if not was > 0 or not now > 0:
        return None
    return (float(now) / float(was) - 1.0) * 100.0
