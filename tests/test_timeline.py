"""A tracker's metrics over time: windows, bounded memory, CPU/RSS samples, JSON round trip."""

from __future__ import annotations

import itertools
import json
import math
import time

import pytest

from pytest_axiomperf import PerformanceTracker
from pytest_axiomperf.timeline import MAX_SAMPLES, MAX_WINDOWS, START_WIDTH, Timeline


def _at(tracker: PerformanceTracker, seconds: float) -> None:
    """Move the tracker's timeline clock so that now is ``seconds`` after its start."""
    tracker.timeline._t0 = time.perf_counter_ns() - int(seconds * 1e9)


def test_samples_are_filed_in_the_window_of_their_fold() -> None:
    tracker = PerformanceTracker()
    _at(tracker, 0.1)
    for _ in range(100):
        tracker.record("api_response_times", 0.010)
    tracker.tick()
    for second in (0.6, 1.1, 1.6, 2.1):  # a stall: ticks, nothing recorded
        _at(tracker, second)
        tracker.tick()
    _at(tracker, 2.2)
    for _ in range(99):
        tracker.record("api_response_times", 0.010)
    tracker.record("api_response_times", 0.900)
    tracker.tick()
    windows = tracker.timeline.windows("api_response_times")
    assert [w.n for w in windows] == [100, 100]
    first, last = windows
    assert first.start == 0.0 and first.end == START_WIDTH
    assert last.start == 2.0  # filed between the last tick and now: after the stall
    assert last.start > first.end  # the gap a plot shows
    assert first.p50 == pytest.approx(0.010, rel=0.0625) and first.p50 >= 0.010
    assert last.p99 == pytest.approx(0.010, rel=0.0625)  # rank 99 of 100
    assert last.max == pytest.approx(0.900)
    # The windows do not touch the totals.
    assert tracker.stats("api_response_times").count == 200


def test_windows_stay_bounded_over_a_long_run() -> None:
    tracker = PerformanceTracker()
    for second in range(0, 24 * 3600, 97):  # a 24 h soak, a fold every ~97 s
        _at(tracker, second)
        tracker.record("websocket_latency", 0.002 + (second % 7) * 1e-3, "delivery")
        tracker.tick()
    timeline = tracker.timeline
    windows = timeline.windows("websocket_latency")
    assert len(windows) <= MAX_WINDOWS
    assert timeline.width >= 24 * 3600 / MAX_WINDOWS
    assert sum(w.n for w in windows) == len(range(0, 24 * 3600, 97))
    assert windows == timeline.windows("websocket_latency", "delivery")
    assert max(w.max for w in windows) == pytest.approx(0.008)


def test_resource_samples_stay_bounded_and_keep_start_peak_and_last() -> None:
    timeline = Timeline()
    for i in range(3 * MAX_SAMPLES):
        timeline._t0 = time.perf_counter_ns() - int(i * 1e9)
        timeline.sample_resources(cpu=50.0, rss_mb=100.0 + i * 0.01 + (30.0 if i == 7 else 0.0))
    samples = timeline.resources()
    assert len(samples) < MAX_SAMPLES
    assert max(s.rss_mb for s in samples) == pytest.approx(130.07)  # pairs keep the peak
    rss = timeline.rss_summary()
    assert rss is not None
    assert rss["start_mb"] == 100.0 and rss["peak_mb"] == pytest.approx(130.07)
    growth = (3 * MAX_SAMPLES - 1) * 0.01
    assert rss["growth_mb"] == pytest.approx(growth)
    assert rss["mb_per_hour"] == pytest.approx(growth / rss["span_s"] * 3600)
    assert Timeline().rss_summary() is None


def test_the_timeline_survives_json_and_leaves_out_non_latency_metrics() -> None:
    tracker = PerformanceTracker("t")
    tracker.set_unit("queue_depth", "msgs")
    for tag in ("delivery", "ping"):
        for _ in range(10):
            tracker.record("websocket_latency", 0.004 if tag == "delivery" else 0.001, tag)
    tracker.record("queue_depth", 3.0)
    tracker.tick()
    tracker.timeline.sample_resources(12.5, 80.0)
    data = json.loads(json.dumps(tracker.to_dict(), allow_nan=False))
    assert {(s["metric"], s["tag"]) for s in data["timeline"]["series"]} == {
        ("websocket_latency", None),
        ("websocket_latency", "delivery"),
        ("websocket_latency", "ping"),
    }
    back = PerformanceTracker.from_dict(data).timeline
    assert back.windows("websocket_latency") == tracker.timeline.windows("websocket_latency")
    assert back.windows("websocket_latency", "ping")[0].n == 10
    ((t, cpu, rss),) = back.resources()
    assert t == round(tracker.timeline.resources()[0].t, 3) and (cpu, rss) == (12.5, 80.0)
    rss = back.rss_summary()
    assert rss is not None and rss["start_mb"] == 80.0 and math.isnan(rss["mb_per_hour"])


@pytest.mark.parametrize(
    "bad",
    [None, {"format": "other"}, {"format": "axiomperf-timeline-1", "width": "x"}],
)
def test_a_malformed_timeline_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="timeline"):
        Timeline.from_dict(bad)  # type: ignore[arg-type]


STALL_AND_LEAK = """
import asyncio, time
import pytest

@pytest.mark.asyncio
async def test_stalled_feed(axiom_exchange, axiom_ws):
    axiom_exchange.configure(push_rate=50, stall=0.8, stall_after=0.6)
    try:
        await axiom_ws.subscribe(["SOL"])
        await asyncio.sleep(2.2)  # the stall from 0.6 s to 1.4 s, then the backlog
    finally:
        axiom_exchange.reset()

LEAKED = []  # module-level: what the body appends outlives it, as a leak does

def test_leaky(axiom_tracker):
    for _ in range(15):  # 60 MB over 1.5 s, kept
        LEAKED.append(b"\\x01" * (4 * 2**20))  # written: resident
        axiom_tracker.record("api_response_times", 0.001)
        time.sleep(0.1)
"""


def test_a_stall_and_a_leak_are_seen_over_time(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_over_time=STALL_AND_LEAK)
    result = user_project.runpytest_subprocess(
        "--axiom-perf",
        "--axiom-perf-sample-interval=0.1",
        "--axiom-perf-json=r.json",
        "--axiom-perf-html=r.html",
    )
    result.assert_outcomes(passed=2)
    data = json.loads((user_project.path / "r.json").read_text())
    tests = data["tests"]
    stalled = tests["test_over_time.py::test_stalled_feed"]["tracker"]["timeline"]
    (windows,) = [
        s["windows"]
        for s in stalled["series"]
        if (s["metric"], s["tag"]) == ("websocket_latency", "delivery")
    ]
    # [start, n, p50, p99, max]: no delivery during the stall (a gap of >= 0.5 s), then
    # the backlog arrives late (the stall is 0.8 s; delivery is ms otherwise).
    starts = [w[0] for w in windows]
    assert max(b - a for a, b in itertools.pairwise(starts)) >= 0.5
    assert max(w[3] for w in windows) >= 0.3
    assert min(w[2] for w in windows) < 0.1
    leaky = tests["test_over_time.py::test_leaky"]["tracker"]["timeline"]
    rss = leaky["rss"]
    assert rss["last"] - rss["first"] >= 30  # MB: 60 injected
    assert rss["peak"] >= rss["last"]
    html = (user_project.path / "r.html").read_text()
    assert html.count('<svg class="timeplot"') == 2
    assert html.count('<svg class="resplot"') == 2
    assert "RSS: start " in html and " MB/h over " in html
