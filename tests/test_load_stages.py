"""Load stages (a ramping arrival rate) and find_capacity (step the rate until a budget breaks)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from pytest_axiomperf import LoadError, LoadGenerator, PerformanceTracker
from pytest_axiomperf.load import LOAD_LATENCY


def quiet(tracker: PerformanceTracker | None = None) -> LoadGenerator:
    return LoadGenerator(tracker, progress=None)


class CappedBot:
    """A bot that serves `slots` requests at a time, each taking `delay` s: its capacity is
    ``slots / delay`` requests per second by construction."""

    def __init__(self, slots: int, delay: float) -> None:
        self.gate = asyncio.Semaphore(slots)
        self.delay = delay
        self.calls = 0

    async def handle(self) -> None:
        self.calls += 1
        async with self.gate:
            await asyncio.sleep(self.delay)


@pytest.mark.asyncio
async def test_stages_ramp_hold_and_ramp_down_on_schedule() -> None:
    sends: list[float] = []

    async def call() -> None:
        sends.append(time.perf_counter())

    tracker = PerformanceTracker()
    began = time.perf_counter()
    result = await quiet(tracker).run(call, stages=[(1.0, 40), (1.0, 40), (0.5, 0)], name="ramp")
    # The schedule by construction: 0->40/s over 1 s asks for 20 calls (the one due at the
    # very start, at rate 0, is not sent), 40/s for 1 s for 40, 40->0 over 0.5 s for 10.
    assert [s.scheduled for s in result.stages] == [19, 40, 10]
    assert [s.asked_rate for s in result.stages] == [20.0, 40.0, 20.0]
    assert [(s.start_rate, s.rate) for s in result.stages] == [(0, 40), (40, 40), (40, 0)]
    assert result.completed == 69 and result.dropped == result.failed == 0
    assert result.target_rate == pytest.approx(70 / 2.5)
    assert tracker.stats(LOAD_LATENCY, "ramp").count == 69
    # Counting sends per window: the ramp is slow at first, fast at its end, then holds.
    offsets = [t - began for t in sends]

    def count(lo: float, hi: float) -> int:
        return sum(lo <= t < hi for t in offsets)

    assert count(0.0, 0.25) <= 3  # expected 1.25
    assert 6 <= count(0.75, 1.0) <= 12  # expected 8.75
    assert 15 <= count(1.25, 1.75) <= 25  # expected 20
    for stage in result.stages:
        assert stage.achieved_rate == pytest.approx(stage.asked_rate, rel=0.25)
    data = result.to_dict()
    json.dumps(data)
    assert [s["scheduled"] for s in data["stages"]] == [19, 40, 10]
    assert "3 stages (mean 28/s)" in result.summary()


@pytest.mark.asyncio
async def test_a_slow_bot_drops_calls_in_the_stage_it_cannot_serve() -> None:
    bot = CappedBot(slots=2, delay=0.2)  # 10 calls/s at most
    result = await quiet().run(
        bot.handle, rate=4, stages=[(1.0, 4), (1.0, 40)], max_in_flight=2, drain=1.0
    )
    calm, rush = result.stages
    assert calm.scheduled == 4 and calm.dropped == 0 and calm.completed == 4
    # 22 calls asked in the ramp; two slots of 0.2 s serve about 10 of them.
    assert rush.scheduled == 22
    assert rush.dropped >= 8
    assert rush.sent + rush.dropped == rush.scheduled
    assert result.dropped == calm.dropped + rush.dropped
    assert bot.calls == result.sent
    assert rush.achieved_rate < rush.asked_rate * 0.7


@pytest.mark.asyncio
async def test_warmup_runs_at_the_start_rate_unrecorded() -> None:
    calls = [0]

    async def call() -> None:
        calls[0] += 1

    result = await quiet().run(call, rate=20, warmup=0.5, stages=[(0.5, 20)])
    assert calls[0] == 20  # 10 in the warmup, 10 in the stage
    assert result.completed == result.stages[0].completed == 10


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": []}, "stages is empty"),
        ({"stages": "fast"}, "stages must be a list of (seconds, rate) pairs, not 'fast'"),
        ({"stages": [(0, 10)]}, "stages[0] seconds=0 must be > 0"),
        ({"stages": [(1, 10), (-2, 10)]}, "stages[1] seconds=-2 must be > 0"),
        ({"stages": [(1, -5)]}, "stages[0] rate=-5 must be >= 0"),
        ({"stages": [(1, "fast")]}, "stages[0] rate='fast' must be a finite number"),
        ({"stages": [(1, 10), (2,)]}, "stages[1]=(2,) must be a (seconds, rate) pair"),
        ({"stages": [(1, 0)]}, "stages ask for no calls at all"),
        ({"stages": [(500, 1), (200, 1)]}, "stages last 700s, more than max_duration 600s"),
        ({"stages": [(1, 10)], "duration": 1}, "without concurrency= or duration="),
        ({"stages": [(1, 10)], "concurrency": 2}, "without concurrency= or duration="),
        ({"stages": [(1, 10)], "rate": -1}, "rate=-1 must be >= 0"),
        ({"rate": 10}, "duration= (seconds) is required, or give stages="),
    ],
)
async def test_bad_stages_are_refused_before_anything_runs(
    kwargs: dict[str, object], message: str
) -> None:
    await _refused_before_anything_runs("run", kwargs, message, "results")


async def _refused_before_anything_runs(
    method: str, kwargs: dict[str, object], message: str, kept: str
) -> None:
    """``generator.<method>(call, **kwargs)`` raises a LoadError holding ``message``
    before it calls anything or keeps a result in ``generator.<kept>``."""
    calls = [0]

    async def call() -> None:
        calls[0] += 1

    generator = quiet()
    with pytest.raises(LoadError) as error:
        await getattr(generator, method)(call, **kwargs)
    assert message in str(error.value)
    assert calls == [0] and getattr(generator, kept) == []


@pytest.mark.asyncio
async def test_find_capacity_brackets_a_capacity_known_by_construction() -> None:
    bot = CappedBot(slots=2, delay=0.05)  # 40 requests/s at most
    tracker = PerformanceTracker()
    generator = quiet(tracker)
    found = await generator.find_capacity(
        bot.handle, start=10, step=10, max_rate=100, hold=0.5, p95="250ms", name="bot"
    )
    assert found.capacity is not None and 20 <= found.capacity <= 40
    # At 50/s two slots of 50 ms cannot keep up: that step breaks whatever the machine.
    assert found.broke_at == found.capacity + 10 <= 50
    assert found.stopped == "budget"
    assert [s.rate for s in found.steps] == [10 * (i + 1) for i in range(len(found.steps))]
    assert all(s.held for s in found.steps[:-1]) and not found.steps[-1].held
    assert found.steps[-1].broken
    assert found.achieved_rate == found.steps[-2].achieved_rate
    # Past capacity the answers come out at the bot's own rate (40/s), not the rate asked.
    assert 30 <= found.steps[-1].achieved_rate <= 45
    assert found.summary().startswith(f"bot: capacity {found.capacity:g}/s")
    # The steps are the curve, not runs: neither the tracker nor results hold them.
    assert tracker.metrics() == [] and generator.results == []
    assert generator.capacities == [found]
    json.dumps(found.to_dict())


@pytest.mark.asyncio
async def test_find_capacity_refines_between_the_rate_that_held_and_the_one_that_broke() -> None:
    bot = CappedBot(slots=2, delay=0.05)  # 40 requests/s at most
    generator = quiet()
    found = await generator.find_capacity(
        bot.handle, start=10, step=80, max_rate=90, hold=0.8, p95="250ms", refine=2
    )
    # 10/s held, 90/s broke; then 50/s (half way) broke and 30/s held. At 50/s two slots of
    # 50 ms answer 40/s, under 90 % of the rate whatever the machine; at 30/s (and 10/s)
    # every call finds a free slot, with ~80 ms of slack before the achieved rate falls
    # under 90 % of the rate asked.
    assert [s.rate for s in found.steps] == [10, 30, 50, 90]
    assert [s.held for s in found.steps] == [True, True, False, False]
    assert (found.capacity, found.broke_at, found.stopped) == (30, 50, "budget")
    assert found.achieved_rate == found.steps[1].achieved_rate
    assert "capacity 30/s" in found.summary() and "broke at 50/s: " in found.summary()
    assert any(why.startswith("achieved ") for why in found.steps[2].broken)
    # The refinement counts against max_steps: one halving fits in three steps.
    capped = await generator.find_capacity(
        bot.handle, start=10, step=80, max_rate=90, hold=0.8, p95="250ms", refine=2, max_steps=3
    )
    assert [s.rate for s in capped.steps] == [10, 50, 90]
    assert (capped.capacity, capped.broke_at) == (10, 50)


@pytest.mark.asyncio
async def test_find_capacity_stops_at_max_rate_max_steps_and_time_limit() -> None:
    async def fast() -> None:
        pass

    generator = quiet()
    held = await generator.find_capacity(fast, start=10, factor=2, max_rate=50, hold=0.2)
    assert [s.rate for s in held.steps] == [10, 20, 40, 50]
    assert held.stopped == "max_rate" and held.capacity == 50 and held.broke_at is None
    assert "the capacity is at least that" in held.summary()
    capped = await generator.find_capacity(
        fast, start=10, step=10, max_rate=1000, hold=0.2, max_steps=2
    )
    assert capped.stopped == "max_steps" and capped.capacity == 20
    began = time.perf_counter()
    timed = await generator.find_capacity(
        fast, start=10, step=10, max_rate=1000, hold=0.3, time_limit=0.5
    )
    assert timed.stopped == "time_limit" and len(timed.steps) == 1
    assert time.perf_counter() - began < 2.0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 10, "max_rate": 50}, "give exactly one of step="),
        ({"start": 10, "max_rate": 50, "step": 5, "factor": 2}, "give exactly one of step="),
        ({"start": 0, "max_rate": 50, "step": 5}, "start=0 must be > 0"),
        ({"start": 10, "max_rate": 5, "step": 5}, "max_rate=5 is below start=10"),
        ({"start": 10, "max_rate": 50, "factor": 1}, "factor=1 must be > 1"),
        ({"start": 10, "max_rate": 50, "step": "5"}, "step='5' must be a finite number"),
        ({"start": 10, "max_rate": 50, "step": 5, "hold": 0}, "hold=0 must be > 0"),
        ({"start": 10, "max_rate": 50, "step": 5, "time_limit": 1}, "time_limit=1s is shorter"),
        ({"start": 10, "max_rate": 50, "step": 5, "p95": "fast"}, "p95: 'fast' is not a dur"),
        ({"start": 1, "max_rate": 5, "step": 1, "max_error_rate": 2}, "max_error_rate=2 must be"),
        ({"start": 1, "max_rate": 5, "step": 1, "min_achieved": 0}, "min_achieved=0 must be"),
        ({"start": 1, "max_rate": 5, "step": 1, "max_dropped": -1}, "max_dropped=-1 must be"),
        ({"start": 1, "max_rate": 5, "step": 1, "max_steps": 0}, "max_steps=0 must be >= 1"),
        ({"start": 1, "max_rate": 5, "step": 1, "refine": -1}, "refine=-1 must be >= 0"),
    ],
)
async def test_bad_capacity_searches_are_refused_before_anything_runs(
    kwargs: dict[str, object], message: str
) -> None:
    await _refused_before_anything_runs("find_capacity", kwargs, message, "capacities")


@pytest.mark.asyncio
async def test_capacity_search_of_a_sync_function_is_refused() -> None:
    def sync_call() -> None:
        pass

    with pytest.raises(LoadError, match="'sync_call' returned NoneType, not an awaitable"):
        await quiet().find_capacity(
            sync_call,  # type: ignore[arg-type]
            start=10,
            step=10,
            max_rate=20,
            hold=0.2,
        )


USER_TESTS = """
import asyncio
import pytest

class Bot:
    def __init__(self):
        self.gate = asyncio.Semaphore(2)

    async def order(self):
        async with self.gate:
            await asyncio.sleep(0.05)  # two at a time, 50 ms each: 40 orders/s at most

@pytest.mark.asyncio
async def test_capacity(axiom_load):
    found = await axiom_load.find_capacity(
        Bot().order, start=10, step=10, max_rate=80, hold=0.5, p95="250ms", name="orders"
    )
    assert 20 <= found.capacity <= 40

@pytest.mark.asyncio
@pytest.mark.throughput_budget(max_dropped=0)
async def test_ramp(axiom_load):
    async def quick():
        await asyncio.sleep(0.001)

    result = await axiom_load.run(quick, stages=[(0.5, 40), (0.5, 40)], name="ramp")
    assert [s.scheduled for s in result.stages] == [9, 20]
"""


def test_stages_and_capacity_curves_reach_every_report(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(USER_TESTS)
    result = user_project.runpytest_subprocess(
        "--axiom-perf",
        "--axiom-perf-json=out.json",
        "--axiom-perf-markdown=out.md",
        "--axiom-perf-html=out.html",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "Load runs:",
            "  test_*.py::test_ramp",
            "    ramp: open (1000 slots), target mean 30/s over 2 stages, achieved *",
            "      stage  seconds * rate * asked  achieved * p50 * p95 * p99  errors  dropped",
            "          0     0.5s * 0->40/s  20.0/s *",
            "          1     0.5s  40->40/s  40.0/s *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "Capacity (open model, latency from intended start):",
            "  test_*.py::test_capacity",
            "    orders: capacity */s (achieved */s); broke at */s: *",
            "      rate  achieved * p50 * p95 * p99  errors  dropped  verdict",
            "      10/s    *held*",  # "held (load generator saturated)" on a busy machine
        ]
    )
    assert "broke: " in result.stdout.str()
    data = json.loads((user_project.path / "out.json").read_text())
    tests = data["tests"]
    searches = tests["test_stages_and_capacity_curves_reach_every_report.py::test_capacity"][
        "extra"
    ]["capacity"]
    assert len(searches) == 1
    search = searches[0]
    assert search["name"] == "orders" and 20 <= search["capacity"] <= 40
    assert search["steps"][0]["rate"] == 10 and search["steps"][-1]["held"] is False
    assert set(search["steps"][0]["latency"]) >= {"p50", "p95", "p99"}
    ramp = tests["test_stages_and_capacity_curves_reach_every_report.py::test_ramp"]
    assert [s["scheduled"] for s in ramp["extra"]["load"][0]["stages"]] == [9, 20]
    markdown = (user_project.path / "out.md").read_text()
    assert "### Capacity" in markdown and "| rate | achieved | p50 |" in markdown
    assert "**Stages of ramp**" in markdown
    html = (user_project.path / "out.html").read_text()
    assert "<caption>Capacity: orders: capacity " in html
    assert "<caption>Stages of ramp</caption>" in html
