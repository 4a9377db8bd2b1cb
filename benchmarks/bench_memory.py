"""Memory measurement: leak detection, tracemalloc's cost, the guide's memory table.

Run: python benchmarks/bench_memory.py

1. Detection, 20 runs each: a 10 KB/iteration leak over 1,000 iterations, and leak-free
   code with a warm-up cache (a bounded history plus a cache that fills once), judged
   by ``growth_per_iteration`` (flagged above 1 KB/iteration) and by ``memory_budget``
   (``growth_mb=5``, in a real ``pytest --axiom-perf`` run).
2. Cost: an allocation-heavy message handler timed without tracemalloc and with it at
   1 frame, the plugin's depth (8 frames) and 25 frames.
3. The guide's memory table: a bot keeping every price in a list vs a bot keeping a
   bounded deque, heap start/peak/growth and RSS over N simulated messages.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from pytest_axiomperf.memory import MB, TRACEMALLOC_FRAMES, BodyWatch, MemorySnapshots

PROCESS = psutil.Process()
RUNS = 20
ITERATIONS = 1000
LEAK_BYTES = 10 * 1024
FLAG_BYTES_PER_ITERATION = 1024


# -- workloads ------------------------------------------------------------------------


def _message(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "type": "token_update",
        "token": f"TOKEN{i % 50}",
        "price": rng.uniform(0.5, 2.0),
        "volume": rng.randint(1, 10_000),
        "timestamp": 1_700_000_000 + i,
        "payload": "x" * rng.randint(100, 4000),  # allocator noise: sizes vary
    }


def make_leaky(rng: random.Random) -> Callable[[], None]:
    """A handler that keeps 10 KB per call forever."""
    kept: list[bytearray] = []
    counter = iter(range(10**9))

    def handle() -> None:
        i = next(counter)
        json.loads(json.dumps(_message(rng, i)))
        kept.append(bytearray(LEAK_BYTES))

    return handle


def make_cached(rng: random.Random) -> Callable[[], None]:
    """A leak-free handler: a bounded history and a per-token cache that fills once."""
    history: deque[dict[str, Any]] = deque(maxlen=100)
    cache: dict[str, bytearray] = {}
    counter = iter(range(10**9))

    def handle() -> None:
        i = next(counter)
        message = json.loads(json.dumps(_message(rng, i)))
        history.append(message)
        token = f"T{i % 150}"  # 150 tokens: the cache is full after 150 calls
        if token not in cache:
            cache[token] = bytearray(LEAK_BYTES)

    return handle


# -- 1. detection -----------------------------------------------------------------------


def detect_with_slope() -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"leak": [], "cache": []}
    for run in range(RUNS):
        for name, factory in (("leak", make_leaky), ("cache", make_cached)):
            handler = factory(random.Random(run))
            with MemorySnapshots() as snapshots:
                found[name].append(
                    snapshots.growth_per_iteration(handler, iterations=ITERATIONS, warmup=100)
                )
            gc.collect()
    return found


BUDGET_TESTS = f"""
import json
import random

import pytest

from bench_memory import make_cached, make_leaky

KEEP = []

@pytest.mark.parametrize("run", range({RUNS}))
@pytest.mark.memory_budget(growth_mb=5)
def test_leak(run):
    handler = make_leaky(random.Random(run))
    for _ in range({ITERATIONS}):
        handler()
    KEEP.append(handler)  # whoever holds the bot holds the leak

@pytest.mark.parametrize("run", range({RUNS}))
@pytest.mark.memory_budget(growth_mb=5)
def test_cache(run):
    handler = make_cached(random.Random(run))
    for _ in range({ITERATIONS}):
        handler()
    KEEP.append(handler)
"""


def detect_with_budget() -> dict[str, list[tuple[bool, float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_budget_runs.py").write_text(BUDGET_TESTS)
        Path(tmp, "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        )
        out = Path(tmp, "results.json")
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--axiom-perf",
             f"--axiom-perf-json={out}", tmp],
            cwd=tmp, env=env, capture_output=True, check=False, timeout=600,
        )  # fmt: skip
        data = json.loads(out.read_text())
    found: dict[str, list[tuple[bool, float]]] = {"leak": [], "cache": []}
    for nodeid, test in data["tests"].items():
        name = "leak" if "test_leak" in nodeid else "cache"
        flagged = test["outcome"] == "failed"
        found[name].append((flagged, test["extra"]["memory"]["growth_mb"]))
    return found


# -- 2. cost -----------------------------------------------------------------------------


def allocation_heavy() -> None:
    """Parse a burst of order-book messages into dicts and tuples."""
    book = []
    for i in range(2000):
        level = {"price": 1.0 + i * 1e-4, "size": i % 97, "orders": [i, i + 1, i + 2]}
        book.append((level["price"], level["size"], tuple(level["orders"])))
    sorted(book)


def json_messages() -> None:
    """Parse 2,000 exchange pushes with json and keep a bounded history (the guide's bot)."""
    bot = DequeBot()
    for i in range(2000):
        raw = json.dumps(
            {"type": "token_update", "token": f"TOKEN{i % 50}", "price": 1.0 + i * 1e-4,
             "volume": i, "timestamp": 1_700_000_000 + i}
        )  # fmt: skip
        bot.on_message(json.loads(raw))


def _nested(depth: int, fn: Callable[[], None]) -> None:
    if depth:
        _nested(depth - 1, fn)
    else:
        fn()


def time_handler(fn: Callable[[], None], frames: int | None, repeats: int = 15) -> float:
    """Median seconds of one call of ``fn`` (called 20 frames deep, as inside an app)."""
    if frames is not None:
        tracemalloc.start(frames)
    try:
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            _nested(20, fn)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)
    finally:
        if frames is not None:
            tracemalloc.stop()


# -- 3. the guide's memory table -----------------------------------------------------------


class ListBot:
    """Keeps every price it has seen (the guide's "basic bot")."""

    def __init__(self) -> None:
        self.prices: list[dict[str, Any]] = []

    def on_message(self, message: dict[str, Any]) -> None:
        self.prices.append(message)


class DequeBot:
    """Keeps the last 1,000 prices (the guide's optimized bot)."""

    def __init__(self) -> None:
        self.prices: deque[dict[str, Any]] = deque(maxlen=1000)

    def on_message(self, message: dict[str, Any]) -> None:
        self.prices.append(message)


def _feed(bot: ListBot | DequeBot, n: int, every_1000: Callable[[], None] | None = None) -> None:
    rng = random.Random(1)
    for i in range(n):
        if every_1000 is not None and i % 1000 == 0:
            every_1000()
        raw = json.dumps(
            {"type": "token_update", "token": f"TOKEN{i % 50}", "price": rng.uniform(0.5, 2),
             "volume": rng.randint(1, 10_000), "timestamp": 1_700_000_000 + i}
        )  # fmt: skip
        bot.on_message(json.loads(raw))


def guide_row(kind: str, n: int) -> dict[str, float]:
    """One bot in this (fresh) process: RSS without tracemalloc, then the heap with it."""
    bot_type = {"list": ListBot, "deque": DequeBot}[kind]
    gc.collect()
    rss_start = PROCESS.memory_info().rss / MB
    bot: ListBot | DequeBot = bot_type()
    samples = [rss_start]
    _feed(bot, n, lambda: samples.append(PROCESS.memory_info().rss / MB))
    gc.collect()
    rss_end = PROCESS.memory_info().rss / MB
    rss_peak = max(*samples, rss_end)  # sampled every 1,000 messages
    del bot
    watch = BodyWatch()
    watch.start()
    bot = bot_type()
    _feed(bot, n)
    body = watch.stop()
    assert body is not None
    return {
        "rss_start": rss_start,
        "rss_peak": rss_peak,
        "rss_end": rss_end,
        "heap_growth": body.growth_mb,
        "heap_peak": body.peak_mb,
    }


def guide_row_in_subprocess(kind: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--guide-row", kind, str(n)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    row: dict[str, float] = json.loads(out.stdout)
    return row


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print()
    print(f"1. Detection over {RUNS} runs ({ITERATIONS} iterations each)")
    slope = detect_with_slope()
    budget = detect_with_budget()
    print(f"   {'workload':<28} {'method':<34} {'flagged':>8}  estimate min / median / max")
    for name, label in (
        ("leak", "leak 10 KB/iteration"),
        ("cache", "warm-up cache, no leak"),
    ):
        values = slope[name]
        flagged = sum(v > FLAG_BYTES_PER_ITERATION for v in values)
        print(
            f"   {label:<28} {'growth_per_iteration > 1 KB/it':<34} {flagged:>3}/{len(values):<4}"
            f"  {min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f} B/it"
        )
        runs = budget[name]
        growths = [g for _, g in runs]
        flagged = sum(f for f, _ in runs)
        print(
            f"   {'':<28} {'memory_budget(growth_mb=5)':<34} {flagged:>3}/{len(runs):<4}"
            f"  {min(growths):.2f} / {statistics.median(growths):.2f} / {max(growths):.2f} MB"
        )
    print()
    print("2. tracemalloc cost, median of 15 calls made 20 frames deep, slowdown vs off")
    print("   A: build 2,000 order-book levels (dicts, lists, tuples), sort them")
    print("   B: json.dumps + json.loads 2,000 pushes into a bounded deque (the guide's bot)")
    print(
        f"   {'tracing':<26} {'A per call':>11} {'slowdown':>9} {'B per call':>11} {'slowdown':>9}"
    )
    base = {fn: time_handler(fn, None) for fn in (allocation_heavy, json_messages)}
    print(
        f"   {'off':<26} {base[allocation_heavy] * 1e3:>9.2f}ms {1.0:>8.1f}x "
        f"{base[json_messages] * 1e3:>9.2f}ms {1.0:>8.1f}x"
    )
    for frames in sorted({1, TRACEMALLOC_FRAMES, 25}):
        label = f"{frames} frame{'s' if frames > 1 else ''}" + (
            " (plugin's depth)" if frames == TRACEMALLOC_FRAMES else ""
        )
        row = f"   {label:<26}"
        for fn in (allocation_heavy, json_messages):
            took = time_handler(fn, frames)
            row += f" {took * 1e3:>9.2f}ms {took / base[fn]:>8.1f}x"
        print(row)
    print()
    print("3. The guide's memory table, each bot in a fresh process: RSS (psutil, no")
    print("   tracemalloc), then Python heap growth and peak (tracemalloc) over the same run")
    print(
        f"   {'bot':<21} {'messages':>8} {'RSS start':>10} {'peak':>9} {'growth':>11} "
        f"{'heap growth':>11} {'peak':>9} {'heap/msg':>10}"
    )
    for n in (10_000, 100_000):
        for kind, label in (("list", "every price (list)"), ("deque", "bounded deque(1000)")):
            row = guide_row_in_subprocess(kind, n)
            print(
                f"   {label:<21} {n:>8,} {row['rss_start']:>7.1f} MB {row['rss_peak']:>6.1f} MB "
                f"{row['rss_end'] - row['rss_start']:>+8.1f} MB {row['heap_growth']:>8.2f} MB "
                f"{row['heap_peak']:>6.2f} MB {row['heap_growth'] * MB / n:>8,.0f} B"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--guide-row"]:
        print(json.dumps(guide_row(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
