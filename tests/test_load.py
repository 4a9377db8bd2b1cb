"""LoadGenerator and axiom_load: rate held, stalls visible, drops, lanes, budgets, safety."""

from __future__ import annotations

import asyncio
import functools
import json
import time

import aiohttp
import pytest

from pytest_axiomperf import LoadError, LoadGenerator, PerformanceTracker
from pytest_axiomperf.exchange import ExchangeSimulator
from pytest_axiomperf.load import LOAD_LATENCY, LOAD_SERVICE_TIME, Lane, check_target


class StallingServer:
    """Stand-in for a server: answers in ``service`` s, but freezes once for ``stall`` s.

    Calls arriving during the freeze wait until it ends, as on a real stalled server.
    """

    def __init__(self, stall_after: float, stall: float, service: float = 0.001) -> None:
        self.started = time.perf_counter()
        self.stall_start = self.started + stall_after
        self.stall_end = self.stall_start + stall
        self.service = service
        self.calls = 0

    async def call(self) -> None:
        self.calls += 1
        now = time.perf_counter()
        if self.stall_start <= now < self.stall_end:
            await asyncio.sleep(self.stall_end - now)
        await asyncio.sleep(self.service)


def quiet_generator(tracker: PerformanceTracker | None = None, **kwargs: object) -> LoadGenerator:
    return LoadGenerator(tracker, progress=None, **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_open_model_holds_the_rate_and_records_latency() -> None:
    tracker = PerformanceTracker()
    server = StallingServer(stall_after=10.0, stall=0.0)
    result = await quiet_generator(tracker).run(server.call, rate=50, duration=1.0, name="ping")
    assert result.model == "open"
    assert result.target_rate == 50
    assert 45 <= result.completed <= 55
    assert 45 <= result.achieved_rate <= 55
    assert result.failed == result.dropped == 0
    assert tracker.stats(LOAD_LATENCY, "ping").count == result.completed
    assert tracker.stats(LOAD_SERVICE_TIME, "ping").count == result.completed
    # Latency from the intended start includes the send delay, so it is never below service time.
    assert result.latency.p50 >= result.service_time.p50 * 0.99
    assert result.to_dict()["latency"]["count"] == result.completed
    json.dumps(result.to_dict())  # plain builtins


@pytest.mark.asyncio
async def test_a_stall_shows_in_the_open_model_and_hides_in_the_closed_one() -> None:
    generator = quiet_generator()
    server = StallingServer(stall_after=0.2, stall=0.5)
    open_run = await generator.run(server.call, rate=100, duration=1.2, max_in_flight=200)
    server = StallingServer(stall_after=0.2, stall=0.5)
    closed_run = await generator.run(server.call, concurrency=1, duration=1.2)

    assert open_run.latency.p99 >= 0.4
    assert closed_run.model == "closed" and closed_run.target_rate is None
    # The closed loop stopped sending during the stall: one slow sample among hundreds.
    assert closed_run.latency.max >= 0.4
    assert closed_run.latency.p99 < open_run.latency.p99 / 2
    assert "closed loop, from send" in closed_run.summary()


@pytest.mark.asyncio
async def test_calls_beyond_max_in_flight_are_dropped_and_counted() -> None:
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    result = await quiet_generator().run(hangs, rate=100, duration=0.3, max_in_flight=5, drain=0.05)
    assert result.sent == 5
    assert result.sent + result.dropped == 30
    # The five hung calls were cancelled when the drain time ran out.
    assert result.failed == 5
    assert result.errors == {"Unfinished": 5}
    assert result.completed == 0


@pytest.mark.asyncio
async def test_priority_lanes_serve_high_first_and_bound_their_queues() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def serve(lane: str) -> None:
        order.append(lane)
        if len(order) == 1:
            # The first call holds the only worker while both queues fill up.
            await asyncio.wait_for(gate.wait(), 1.0)

    async def open_gate_later() -> None:
        await asyncio.sleep(0.3)
        gate.set()

    opener = asyncio.create_task(open_gate_later())
    result = await quiet_generator().run_lanes(
        {
            "low": Lane(functools.partial(serve, "low"), 50, queue_size=3),
            "high": (functools.partial(serve, "high"), 50),
        },
        duration=0.2,
        workers=1,
    )
    await opener
    assert order == ["high"] * 10 + ["low"] * 3
    assert result.lanes["high"].completed == 10
    assert result.lanes["low"].completed == 3
    assert result.lanes["low"].dropped == 7
    assert result.dropped == 7
    assert result.lanes["high"].latency.p50 < result.lanes["low"].latency.p50
    single = await quiet_generator().run_lanes(
        {"normal": (functools.partial(serve, "x"), 20)}, duration=0.1
    )
    assert list(single.lanes) == ["normal"] and single.lanes["normal"].completed == 2


@pytest.mark.asyncio
async def test_generator_that_cannot_keep_up_says_so() -> None:
    def blocks_the_loop() -> asyncio.Future[None]:
        time.sleep(0.02)  # a bot doing sync work on the event loop
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    result = await quiet_generator().run(blocks_the_loop, rate=100, duration=0.3)
    assert result.saturated
    assert result.late > result.sent * 0.5
    assert "generator saturated" in result.generator.note
    assert "generator saturated" in result.summary()


@pytest.mark.asyncio
async def test_warmup_runs_the_load_but_is_not_recorded() -> None:
    tracker = PerformanceTracker()
    server = StallingServer(stall_after=10.0, stall=0.0)
    result = await quiet_generator(tracker).run(server.call, rate=100, duration=0.3, warmup=0.2)
    assert server.calls == 50
    assert result.completed == 30
    assert tracker.stats(LOAD_LATENCY).count == 30


@pytest.mark.asyncio
async def test_errors_and_timeouts_are_counted_by_type() -> None:
    tracker = PerformanceTracker()
    calls = [0]

    async def flaky() -> None:
        calls[0] += 1
        if calls[0] % 2:
            raise ValueError("boom")
        await asyncio.sleep(1.0)

    result = await quiet_generator(tracker).run(flaky, rate=40, duration=0.25, timeout=0.05)
    assert result.completed == 0
    assert result.failed == 10
    assert result.errors == {"ValueError": 5, "TimeoutError": 5}
    assert result.error_rate == 1.0
    assert tracker.errors == {"ValueError": 5, "TimeoutError": 5}


@pytest.mark.asyncio
async def test_closed_model_counts_its_workers_calls() -> None:
    async def ten_ms() -> None:
        await asyncio.sleep(0.01)

    result = await quiet_generator().run(ten_ms, concurrency=2, duration=0.3)
    assert result.model == "closed"
    assert result.slots == 2
    # At most 2 workers x 0.3 s / 10 ms (+2 in flight at the end); at least a few each,
    # however slowly a loaded machine runs them.
    assert 10 <= result.completed <= 62
    assert result.completed == result.sent - result.failed
    assert result.dropped == result.late == 0


@pytest.mark.asyncio
async def test_progress_lines_while_running_then_cleared() -> None:
    lines: list[str | None] = []

    async def fast() -> None:
        await asyncio.sleep(0)

    await LoadGenerator(progress=lines.append).run(fast, rate=20, duration=1.3, name="tick")
    assert lines[-1] is None
    assert any(line and line.startswith("axiom-load tick:") for line in lines)


def test_targets_must_be_on_this_machine() -> None:
    for url in (
        "http://127.0.0.1:8080/x",
        "ws://localhost:1/ws",
        "http://[::1]:80",
        "http://127.1.2.3",
    ):
        check_target(url)
    check_target("https://api.example.com/orders", "https://api.example.com")
    with pytest.raises(LoadError, match=r"https://api\.example\.com is not on this machine") as exc:
        check_target("https://user:secret@api.example.com/x?token=abc")
    assert "secret" not in str(exc.value) and "abc" not in str(exc.value)
    with pytest.raises(LoadError, match=r"nor the configured base URL http://10\.0\.0\.5:80"):
        check_target("http://10.0.0.6:80", "http://10.0.0.5:80")


@pytest.mark.asyncio
async def test_remote_targets_are_refused_before_anything_is_sent() -> None:
    calls = [0]

    async def request(url: str) -> None:
        calls[0] += 1

    class Client:
        base_url = "https://api.example.com"

        async def get(self) -> None:
            calls[0] += 1

    generator = quiet_generator()
    with pytest.raises(LoadError, match=r"api\.example\.com"):
        await generator.run(
            functools.partial(request, "https://api.example.com"), rate=10, duration=0.1
        )
    with pytest.raises(LoadError, match=r"api\.example\.com"):
        await generator.run(Client().get, concurrency=1, duration=0.1)
    with pytest.raises(LoadError, match=r"10\.1\.1\.1"):
        await generator.run_lanes(
            {"high": (Client().get, 1)}, duration=0.1, target="http://10.1.1.1"
        )
    assert calls == [0]
    allowed = quiet_generator(allowed_base_url="https://api.example.com")
    result = await allowed.run(Client().get, rate=20, duration=0.1)
    assert result.completed == 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 10, "concurrency": 2, "duration": 1}, "exactly one of rate="),
        ({"duration": 1}, "exactly one of rate="),
        ({"rate": 0, "duration": 1}, "rate=0 must be > 0"),
        ({"rate": 10, "duration": 700}, "duration=700 must be > 0 and <= 600"),
        ({"rate": 10, "duration": 500, "warmup": 200}, "exceeds max_duration 600s"),
        ({"rate": 100_000, "duration": 20}, "more than max_calls=1000000"),
        ({"rate": 10, "duration": 1, "max_in_flight": 0}, "max_in_flight=0 must be >= 1"),
        ({"concurrency": True, "duration": 1}, "concurrency=True must be an integer"),
    ],
)
async def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    async def noop() -> None:
        pass

    with pytest.raises(LoadError, match=message.replace("(", r"\(")):
        await quiet_generator().run(noop, **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_bad_lanes_and_sync_functions_are_refused() -> None:
    async def noop() -> None:
        pass

    generator = quiet_generator()
    with pytest.raises(LoadError, match=r"unknown lane.*'urgent'.*lanes are high, normal, low"):
        await generator.run_lanes({"urgent": (noop, 1)}, duration=0.1)
    with pytest.raises(LoadError, match=r"'request' must take no arguments"):

        async def request(url: str) -> None:
            pass

        await generator.run(request, rate=1, duration=0.1)  # type: ignore[arg-type]
    with pytest.raises(LoadError, match="give \\(fn, rate\\)"):
        await generator.run_lanes({"high": noop}, duration=0.1)  # type: ignore[dict-item]
    with pytest.raises(LoadError, match="'sync_call' returned NoneType, not an awaitable"):

        def sync_call() -> None:
            pass

        await generator.run(sync_call, rate=50, duration=0.2)  # type: ignore[arg-type]


BUDGETED = """
import asyncio
import functools
import pytest

async def call():
    await asyncio.sleep(0.001)

async def hang():
    await asyncio.sleep(5)

@pytest.mark.asyncio
@pytest.mark.throughput_budget(min_rps=10, max_error_rate=0.0)  # a fifth of the rate: any machine
async def test_meets_budget(axiom_load):
    await axiom_load.run(call, rate=50, duration=0.5)

@pytest.mark.asyncio
@pytest.mark.throughput_budget(min_rps=1000)
async def test_too_slow(axiom_load):
    await axiom_load.run(call, rate=20, duration=0.3, name="orders")

@pytest.mark.asyncio
@pytest.mark.throughput_budget(max_dropped=0)
async def test_drops(axiom_load):
    await axiom_load.run(hang, rate=50, duration=0.2, max_in_flight=2, drain=0.01)

@pytest.mark.throughput_budget(min_rps=1)
def test_no_load_run(axiom_tracker):
    pass

@pytest.mark.asyncio
async def test_remote_target_refused(axiom_load):
    with pytest.raises(Exception, match="not on this machine"):
        await axiom_load.run(functools.partial(call), rate=1, duration=1, target="https://x.example")
"""


def test_throughput_budget_passes_fails_and_reports(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(BUDGETED)
    result = user_project.runpytest(
        "--axiom-perf",
        "--axiom-perf-json=out.json",
        "--axiom-perf-markdown=out.md",
        "--axiom-perf-html=out.html",
    )
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*throughput budget: load[[]orders[]] min_rps = *req/s < 1000.00 req/s "
            "(n=6; open model, target 20/s, completed 6, failed 0, dropped 0)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*throughput budget: load[[]hang[]] dropped = 8.00 calls > 0.00 calls*"]
    )
    result.stdout.fnmatch_lines(["*the test made no axiom_load run*"])
    result.stdout.fnmatch_lines(
        [
            "Load runs:",
            "  test_*.py::test_drops",
            "    hang: open (2 slots), target 50/s, *completed 0, failed 2, dropped 8*",
            "  test_*.py::test_meets_budget",
            "    call: open (1000 slots), target 50/s, achieved *",
        ]
    )
    data = json.loads((user_project.path / "out.json").read_text())
    runs = data["tests"]["test_throughput_budget_passes_fails_and_reports.py::test_meets_budget"][
        "extra"
    ]["load"]
    assert [run["name"] for run in runs] == ["call"]
    assert 20 <= runs[0]["completed"] <= 30
    assert runs[0]["latency"]["count"] == runs[0]["completed"]
    markdown = (user_project.path / "out.md").read_text()
    assert "### Load runs" in markdown
    assert (
        "| `test_throughput_budget_passes_fails_and_reports.py::test_drops` | hang | open | 50/s |"
        in markdown
    )
    html = (user_project.path / "out.html").read_text()
    assert "<caption>Load runs (open model" in html
    assert "<tr><td>hang</td><td>open</td><td>50/s</td>" in html


def test_throughput_budget_not_enforced_without_performance_mode(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(BUDGETED)
    result = user_project.runpytest()
    result.assert_outcomes(passed=5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("min_rps=-1", "min_rps=-1 must be > 0"),
        ("", "no bound given"),
        ("max_error_rate=2", "max_error_rate=2 must be a fraction between 0 and 1"),
        ("max_dropped=1.5", "max_dropped=1.5 must be an integer >= 0"),
    ],
)
def test_throughput_budget_validated_at_collection(
    user_project: pytest.Pytester, args: str, message: str
) -> None:
    user_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.throughput_budget({args})
        def test_it(axiom_load):
            pass
        """
    )
    result = user_project.runpytest("--axiom-perf")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*test_it*throughput_budget*{message}*"])


@pytest.mark.asyncio
async def test_an_exchange_stall_shows_in_the_open_model_only() -> None:
    generator = quiet_generator()
    with ExchangeSimulator() as exchange:
        headers = {"Authorization": f"Bearer {exchange.token}"}
        async with aiohttp.ClientSession(exchange.base_url, headers=headers) as session:

            async def health() -> None:
                async with session.get("/health") as response:
                    response.raise_for_status()

            await asyncio.to_thread(exchange.configure, stall=0.5, stall_after=0.3)
            open_run = await generator.run(
                health, rate=100, duration=1.2, timeout=5.0, target=exchange.base_url
            )
            await asyncio.to_thread(exchange.configure, stall=0.5, stall_after=0.3)
            closed_run = await generator.run(
                health, concurrency=1, duration=1.2, timeout=5.0, target=exchange.base_url
            )
    assert open_run.failed == closed_run.failed == 0
    assert open_run.latency.p99 >= 0.4
    assert closed_run.latency.max >= 0.4
    assert closed_run.latency.p99 < open_run.latency.p99 / 2


def test_load_runs_reach_the_report_from_xdist_workers(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(BUDGETED)
    result = user_project.runpytest_subprocess("--axiom-perf", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "Load runs:",
            "  test_*.py::test_drops",
            "    hang: open (2 slots), target 50/s, *completed 0, failed 2, dropped 8*",
        ]
    )


@pytest.mark.asyncio
async def test_every_due_call_is_accounted_for_even_without_a_drain() -> None:
    async def instant() -> None:
        pass

    result = await quiet_generator().run(instant, rate=100, duration=0.1, drain=0)
    # The last call was released just before the end: with no drain time it never ran.
    assert result.completed + result.failed + result.dropped == 10
    assert result.dropped == 1
