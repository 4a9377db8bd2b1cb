"""PerformanceTracker and Histogram, used directly as a bot developer would outside pytest."""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading

import numpy as np
import pytest

from pytest_axiomperf import MetricStats, PerformanceTracker
from pytest_axiomperf.histogram import BUFFER_SIZE, RELATIVE_ERROR, Histogram, percentile_rank


def exact_nearest_rank(data: list[float], p: float) -> float:
    ordered = sorted(data)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_within_one_percent_of_exact_nearest_rank(seed: int) -> None:
    rng = random.Random(seed)
    data = [rng.lognormvariate(-4, 1.2) for _ in range(50_000)] + [0.0, 12.5]
    hist = Histogram()
    for value in data:
        hist.record(value)
    for p in (0.1, 1, 25, 50, 90, 95, 99, 99.9, 100):
        exact = exact_nearest_rank(data, p)
        got = hist.percentile(p)
        assert exact <= got <= exact * (1 + RELATIVE_ERROR) or exact == got == 0.0, (p, got, exact)
    # The same definition as numpy's "inverted_cdf" method (exact nearest rank).
    assert np.percentile(data, 95, method="inverted_cdf") == exact_nearest_rank(data, 95)


def test_exact_moments_and_extremes() -> None:
    rng = random.Random(7)
    data = [rng.uniform(0.001, 0.5) for _ in range(20_001)]
    hist = Histogram()
    for value in data:
        hist.record(value)
    assert hist.count == len(data)
    assert hist.min == min(data) and hist.max == max(data)
    assert hist.mean == pytest.approx(float(np.mean(data)), rel=1e-12)
    assert hist.std_dev == pytest.approx(float(np.std(data)), rel=1e-9)


def test_raw_buffer_appends_count_like_record() -> None:
    """A hot loop appending to raw_buffer() and folding when full gets record()'s result."""
    rng = random.Random(11)
    data = [rng.uniform(0.001, 0.5) for _ in range(3 * BUFFER_SIZE + 5)]
    recorded, appended = Histogram(), Histogram()
    buf, fold = appended.raw_buffer()
    for value in data:
        recorded.record(value)
        buf.append(value)
        if len(buf) >= BUFFER_SIZE:
            fold()
    assert len(buf) == 5  # folded three times, in place: the list is still the histogram's
    assert appended.to_dict() == recorded.to_dict()
    assert appended.count == len(data) and not buf


def test_bucket_keys_are_the_top_bits_of_each_float32() -> None:
    """A value's bucket key is the top 16 bits of its float32 (IEEE rounding, ties to
    even), whatever the value: zeros, denormals, ties, the largest float32, ints."""
    from pytest_axiomperf.histogram import MAX_VALUE, _keys

    rng = random.Random(5)
    values: list[float] = [0.0, -0.0, 5e-324, 1e-40, 1.2e-38, MAX_VALUE, 3, 0, 1 + 2**-24]
    values += [1 + 3 * 2**-24, 2**-17 * (1 + 2**-8), 1e-3 * (1 + 2**-24), 123456789.0]
    values += [rng.lognormvariate(-7, 3) for _ in range(5000)]
    expected = np.array(values, dtype=np.float32).view(np.uint32) >> 16
    assert list(_keys(values)) == expected.tolist()


def test_percentile_rank_is_not_fooled_by_float_rounding() -> None:
    # 0.95 * 100 == 95.00000000000001 in floats: the rank must still be 95.
    assert percentile_rank(95, 100) == 95
    assert percentile_rank(50, 1) == 1
    assert percentile_rank(100, 7) == 7


def test_merge_and_serialization_are_lossless() -> None:
    rng = random.Random(3)
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(30_000):
        value = rng.expovariate(50)
        (a if i % 3 else b).record(value)
        both.record(value)
    restored = Histogram.from_dict(json.loads(json.dumps(a.to_dict())))
    restored.merge(Histogram.from_dict(json.loads(json.dumps(b.to_dict()))))
    assert restored.count == both.count
    assert restored.buckets() == both.buckets()
    for p in (50, 95, 99, 100):
        assert restored.percentile(p) == both.percentile(p)
    assert restored.mean == pytest.approx(both.mean, rel=1e-12)
    assert restored.std_dev == pytest.approx(both.std_dev, rel=1e-9)


def test_malformed_histogram_data_is_rejected() -> None:
    good = Histogram()
    good.record(0.1)
    data = good.to_dict()
    data["count"] = 5
    with pytest.raises(ValueError, match="do not add up"):
        Histogram.from_dict(data)
    with pytest.raises(ValueError, match="not an axiomperf histogram"):
        Histogram.from_dict({"format": "other"})


@pytest.mark.parametrize("bad", [-0.001, float("nan")])
def test_negative_or_nan_values_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        PerformanceTracker().record("api_response_times", bad)


def test_memory_stays_bounded_with_many_samples() -> None:
    hist = Histogram()
    rng = random.Random(5)
    values = [rng.lognormvariate(-3, 1) for _ in range(1000)]
    for _ in range(200):
        for value in values:
            hist.record(value)
    # 200,000 samples; the state is the buckets, a few hundred at most here.
    assert hist.count == 200_000
    assert len(hist.buckets()) < 2_000


def test_record_is_thread_safe() -> None:
    tracker = PerformanceTracker()
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(25_000):
            tracker.record("api_response_times", 0.01)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.stats("api_response_times").count == 100_000


def test_tags_split_a_metric_and_merge_back() -> None:
    tracker = PerformanceTracker()
    for _ in range(10):
        tracker.record("api_response_times", 0.010, tag="GET /balance/{address}")
        tracker.record("api_response_times", 0.030, tag="POST /orders")
    tracker.record("api_response_times", 0.020)
    assert tracker.tags("api_response_times") == ["GET /balance/{address}", "POST /orders"]
    assert tracker.stats("api_response_times").count == 21
    orders = tracker.stats("api_response_times", tag="POST /orders")
    assert isinstance(orders, MetricStats)
    assert orders.count == 10 and orders.p95 == pytest.approx(0.030, rel=RELATIVE_ERROR)
    assert tracker.stats("never_recorded").count == 0
    assert math.isnan(tracker.stats("never_recorded").p95)


def test_measure_sync_async_and_decorated() -> None:
    tracker = PerformanceTracker()

    with tracker.measure("block"):
        sum(range(1000))

    async def main() -> None:
        async with tracker.measure("async_block"):
            await asyncio.sleep(0.02)

        @tracker.measure("decorated_async")
        async def op() -> int:
            await asyncio.sleep(0.02)
            return 7

        assert await op() == 7

    asyncio.run(main())

    @tracker.measure("decorated_sync")
    def plain(x: int) -> int:
        return x * 2

    assert plain(4) == 8
    assert tracker.stats("block").count == 1
    # The awaited sleep is inside the measurement: a coroutine is never "timed" at creation.
    assert tracker.stats("async_block").min >= 0.019
    assert tracker.stats("decorated_async").min >= 0.019
    assert tracker.stats("decorated_sync").count == 1


def test_measure_counts_the_error_of_a_failing_block() -> None:
    tracker = PerformanceTracker()
    with pytest.raises(KeyError), tracker.measure("lookup"):
        raise KeyError("x")
    assert tracker.errors == {"KeyError": 1}
    assert tracker.stats("lookup").count == 1


def test_call_refuses_coroutine_functions_instead_of_timing_nothing() -> None:
    tracker = PerformanceTracker()

    async def fetch() -> None:
        await asyncio.sleep(0.01)

    with pytest.raises(TypeError, match="coroutine function"):
        tracker.call("x", fetch)

    def returns_coroutine() -> object:
        return fetch()

    with pytest.raises(TypeError, match="awaitable"):
        tracker.call("x", returns_coroutine)
    assert tracker.stats("x").count == 1  # the sync call that returned a coroutine
    assert tracker.call("y", lambda: 3) == 3


def test_track_api_call_records_latency_and_errors() -> None:
    tracker = PerformanceTracker()

    async def ok(delay: float) -> str:
        await asyncio.sleep(delay)
        return "done"

    async def boom() -> None:
        raise ConnectionError("down")

    async def main() -> None:
        assert await tracker.track_api_call(ok, 0.02) == "done"
        with pytest.raises(ConnectionError):
            await tracker.track_api_call(boom)
        with pytest.raises(TypeError, match="did not return an awaitable"):
            await tracker.track_api_call(lambda: 1)  # type: ignore[arg-type, return-value]

    asyncio.run(main())
    stats = tracker.stats("api_response_times")
    assert stats.count == 3 and stats.max >= 0.019
    assert tracker.errors == {"ConnectionError": 1, "TypeError": 1}


def test_merge_trackers_and_roundtrip() -> None:
    a, b = PerformanceTracker("a"), PerformanceTracker("b")
    a.record("api_response_times", 0.01, tag="GET /health")
    b.record("api_response_times", 0.03, tag="GET /health")
    b.record("memory_usage", 120.0)
    b.record_error(TimeoutError())
    b.record_error("HTTP 5xx", 2)
    a.merge(b)
    restored = PerformanceTracker.from_dict(json.loads(json.dumps(a.to_dict())))
    assert restored.stats("api_response_times", "GET /health").count == 2
    assert restored.unit("memory_usage") == "MB"
    assert restored.errors == {"TimeoutError": 1, "HTTP 5xx": 2}


def test_guide_report_has_every_section() -> None:
    tracker = PerformanceTracker()
    tracker.record("api_response_times", 0.04523)
    tracker.record("websocket_latency", 0.002)
    tracker.record("order_execution_times", 0.1)
    tracker.record("memory_usage", 150.0)
    tracker.record("cpu_usage", 35.0)
    tracker.record_error(TimeoutError())
    report = tracker.generate_performance_report()
    for heading in (
        "Runtime:",
        "API Response Times (n=1):",
        "Mean: 45.",
        "Median:",
        "WebSocket Latency",
        "Order Execution",
        "Memory Usage",
        "Peak: 150.",
        "CPU Usage",
        "Error Rates (1 errors):",
        "TimeoutError: 1",
        "nearest rank",
    ):
        assert heading in report
    assert set(tracker.get_statistics()["metrics"]) == {
        "api_response_times",
        "websocket_latency",
        "order_execution_times",
        "memory_usage",
        "cpu_usage",
    }


def test_a_decorated_sync_function_keeps_its_tag() -> None:
    tracker = PerformanceTracker()

    @tracker.measure("strategy_times", tag="rebalance")
    def rebalance() -> int:
        return 1

    assert rebalance() == 1
    assert tracker.tags("strategy_times") == ["rebalance"]
    assert tracker.stats("strategy_times", "rebalance").count == 1
