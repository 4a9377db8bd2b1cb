"""PerformanceTracker hot path, memory bound and percentile accuracy, side by side.

Run: python benchmarks/bench_tracker.py

1. Record cost: ``tracker.record(metric, seconds)`` against the floor
   ``list.append(time.perf_counter_ns())`` and against ``hdrhistogram.record_value``,
   interleaved in rounds in one process (best of rounds, ns per call).
2. Memory: tracemalloc-measured size of one metric's state after 1,000,000 and
   10,000,000 samples (goal: <= 2 MB), with a raw ``list`` of floats for scale.
3. Percentile error: reported vs exact nearest rank on the same data (goal: <= 1 %).
"""

from __future__ import annotations

import gc
import math
import random
import time
import tracemalloc
from collections.abc import Callable

from pytest_axiomperf import PerformanceTracker
from pytest_axiomperf import tracker as tracker_module
from pytest_axiomperf.histogram import Histogram

N_CALLS = 200_000
ROUNDS = 7


def per_call_ns(body: Callable[[], None]) -> float:
    start = time.perf_counter_ns()
    body()
    return (time.perf_counter_ns() - start) / N_CALLS


def bench_record_cost() -> None:
    try:
        from hdrh.histogram import HdrHistogram
    except ImportError:  # optional: the comparison row is left out without it
        HdrHistogram = None

    values = [random.Random(1).lognormvariate(-4, 1) for _ in range(1000)] * (N_CALLS // 1000)

    def floor() -> None:
        out: list[int] = []
        append, clock = out.append, time.perf_counter_ns
        for _ in range(N_CALLS):
            append(clock())

    def tracker_record() -> None:
        tracker = PerformanceTracker()
        record = tracker.record
        for v in values:
            record("api_response_times", v)
        tracker.stats("api_response_times")  # include the final fold

    def tracker_tagged() -> None:
        tracker = PerformanceTracker()
        record = tracker.record
        for v in values:
            record("api_response_times", v, "GET /balance/{address}")
        tracker.stats("api_response_times")

    def tracker_no_fold() -> None:
        # The call path alone: the fold is pushed past the run (memory is not bounded here).
        saved = tracker_module.BUFFER_SIZE
        tracker_module.BUFFER_SIZE = 10**9
        try:
            tracker = PerformanceTracker()
            record = tracker.record
            for v in values:
                record("api_response_times", v)
        finally:
            tracker_module.BUFFER_SIZE = saved

    def hdr() -> None:
        h = HdrHistogram(1, 60_000_000_000, 2)
        rec = h.record_value
        for v in values:
            rec(int(v * 1e9))

    contenders = {
        "floor: list.append(perf_counter_ns())": floor,
        "tracker.record(metric, s)": tracker_record,
        "tracker.record(metric, s, tag)": tracker_tagged,
        "  the call alone (fold deferred)": tracker_no_fold,
        "hdrhistogram.record_value": hdr,
    }
    if HdrHistogram is None:
        del contenders["hdrhistogram.record_value"]
        print("(hdrhistogram not installed: its row is left out)")
    best = dict.fromkeys(contenders, math.inf)
    for _ in range(ROUNDS):
        for name, body in contenders.items():
            best[name] = min(best[name], per_call_ns(body))
    base = best["floor: list.append(perf_counter_ns())"]
    print(f"\n1. Record cost (best of {ROUNDS} interleaved rounds of {N_CALLS:,} calls)")
    print(f"   {'contender':<40} {'ns/call':>9} {'x floor':>8}")
    for name, ns in best.items():
        print(f"   {name:<40} {ns:9.1f} {ns / base:8.2f}")


def traced_bytes(fill: Callable[[], object]) -> tuple[int, int]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = fill()
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return after - before, peak - before


def bench_memory() -> None:
    print("\n2. Memory of one metric (tracemalloc, retained / peak while recording)")
    print(f"   {'samples':>12} {'tracker retained':>17} {'tracker peak':>13} {'raw list':>12}")
    rng = random.Random(2)
    pool = [rng.lognormvariate(-4, 1.5) for _ in range(10_007)]
    for n in (1_000_000, 10_000_000):

        def fill_tracker(n: int = n) -> PerformanceTracker:
            tracker = PerformanceTracker()
            record = tracker.record
            for i in range(n):
                record("websocket_latency", pool[i % 10_007])
            tracker.stats("websocket_latency")
            return tracker

        retained, peak = traced_bytes(fill_tracker)
        raw = "-"
        if n <= 1_000_000:
            raw_bytes, _ = traced_bytes(lambda n=n: [pool[i % 10_007] * 1.0 for i in range(n)])
            raw = f"{raw_bytes / 2**20:.1f} MB"
        print(f"   {n:>12,} {retained / 2**20:14.3f} MB {peak / 2**20:10.3f} MB {raw:>12}")


def bench_accuracy() -> None:
    print("\n3. Percentile error vs exact nearest rank (lognormal, 1,000,000 samples)")
    rng = random.Random(3)
    data = [rng.lognormvariate(-4, 1.2) for _ in range(1_000_000)]
    hist = Histogram()
    for v in data:
        hist.record(v)
    ordered = sorted(data)
    print(f"   {'p':>6} {'exact':>12} {'reported':>12} {'rel. error':>11}")
    worst = 0.0
    for p in (50, 90, 95, 99, 99.9, 99.99):
        exact = ordered[math.ceil(p / 100 * len(ordered)) - 1]
        got = hist.percentile(p)
        err = (got - exact) / exact
        worst = max(worst, abs(err))
        print(f"   {p:>6} {exact * 1e3:10.4f}ms {got * 1e3:10.4f}ms {err:+10.4%}")
    print(f"   worst relative error: {worst:.4%} (bound: 1/128 = {1 / 128:.4%})")


if __name__ == "__main__":
    bench_record_cost()
    bench_memory()
    bench_accuracy()
