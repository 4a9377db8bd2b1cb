"""``axiom_tracker.aiohttp_trace()``: a bot's own aiohttp session, recorded as axiom_client's."""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
import pytest
from conftest import Standalone

from pytest_axiomperf import PerformanceTracker

BOT = """
import aiohttp


class Bot:
    \"\"\"A bot as bots are written: its own session, its own calls.\"\"\"

    def __init__(self, base_url, headers, trace_configs=()):
        self.session = aiohttp.ClientSession(
            base_url, headers=headers, trace_configs=list(trace_configs)
        )

    async def balance(self, wallet):
        async with self.session.get(f"/balance/{wallet}") as response:
            response.raise_for_status()
            return (await response.json())["sol"]

    async def buy(self, token, amount):
        async with self.session.post(
            "/orders", json={"token": token, "side": "buy", "amount": amount}
        ) as response:
            return await response.json()

    async def order_status(self, order_id):
        async with self.session.get(f"/orders/{order_id}") as response:
            return response.status

    async def close(self):
        await self.session.close()
"""


def _user_tests(mode: str) -> str:
    mark = "@pytest.mark.asyncio" if mode == "strict" else ""
    return f"""
import pytest

from bot import Bot


{mark}
@pytest.mark.latency_budget(p95="2s", tag="GET /balance/{{wallet}}", min_samples=5)
async def test_bot_is_recorded(axiom_target, axiom_tracker):
    trace = axiom_tracker.aiohttp_trace(routes=["/balance/{{wallet}}", "/orders", "/orders/{{id}}"])
    bot = Bot(axiom_target.base_url, axiom_target.headers(), [trace])
    try:
        for i in range(5):
            assert await bot.balance(f"So1wallet{{i}}") >= 0
        order = await bot.buy("SOL", 1)
        assert await bot.order_status(order["id"]) == 200
        assert await bot.order_status("unknown-order") == 404
    finally:
        await bot.close()
    stats = axiom_tracker.stats
    assert stats("api_response_times", "GET /balance/{{wallet}}").count == 5
    assert stats("api_response_times", "GET /orders/{{id}}").count == 2
    assert axiom_tracker.tags("order_execution_times") == ["POST /orders"]
    for phase in ("http_connect_times", "http_dns_times", "http_ttfb_times"):
        assert stats(phase).count == 8, phase
    assert stats("http_connect_times").max > 0  # the first request opened a connection
    assert axiom_tracker.errors == {{"HTTP 4xx": 1}}
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_a_bots_session_is_recorded(pytester: pytest.Pytester, mode: str) -> None:
    """Route tags (user templates), orders, phases and status errors, in either asyncio mode."""
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(bot=BOT, test_bot=_user_tests(mode))
    result = pytester.runpytest("--axiom-perf")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*budgets: api_response_times[[]GET /balance/{wallet}[]] p95 * <= 2.00s*"]
    )


def test_budgets_see_the_traced_latency(user_project: pytest.Pytester) -> None:
    """An injected 50 ms latency fails a 10 ms budget on the traced route: the samples are real."""
    user_project.makepyfile(
        bot=BOT,
        test_slow="""
        import pytest

        from bot import Bot


        @pytest.mark.asyncio
        @pytest.mark.latency_budget(p95="10ms", tag="GET /balance/{address}", min_samples=3)
        async def test_slow(axiom_exchange, axiom_target, axiom_tracker):
            axiom_exchange.configure(latency=0.05)
            trace = axiom_tracker.aiohttp_trace()
            bot = Bot(axiom_target.base_url, axiom_target.headers(), [trace])
            try:
                for _ in range(3):
                    await bot.balance("So1wallet")
            finally:
                await bot.close()
        """,
    )
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*latency budget*api_response_times*GET /balance/{address}*p95*"])


def test_against_a_standalone_exchange(
    user_project: pytest.Pytester, standalone_exchange: Standalone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --axiom-base-url the bot's traced session measures that venue."""
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", standalone_exchange.token)
    user_project.makepyfile(bot=BOT, test_bot=_user_tests("strict"))
    result = user_project.runpytest(
        "--axiom-perf", f"--axiom-base-url={standalone_exchange.base_url}"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"axiomperf: venue under test: REST {standalone_exchange.base_url}*"]
    )


def test_outside_pytest(standalone_exchange: Standalone) -> None:
    """A plain PerformanceTracker and asyncio.run: no pytest machinery needed."""
    tracker = PerformanceTracker("bot")

    async def main() -> None:
        headers = {"Authorization": f"Bearer {standalone_exchange.token}"}
        async with aiohttp.ClientSession(
            standalone_exchange.base_url, headers=headers, trace_configs=[tracker.aiohttp_trace()]
        ) as session:
            async with session.post(
                "/api/send-transaction", json={"signedTransaction": "AA=="}
            ) as response:
                await response.read()
            async with session.get("/health", raise_for_status=True):
                pass
            with pytest.raises(aiohttp.ClientResponseError):
                async with session.get("/balance/x", headers={"Authorization": "Bearer no"}) as r:
                    r.raise_for_status()

    asyncio.run(main())
    assert tracker.stats("api_response_times", "GET /health").count == 1
    assert tracker.tags("order_execution_times") == ["POST /api/send-transaction"]
    assert tracker.errors.get("HTTP 4xx") == 1


def test_timeouts_are_latency_refusals_are_errors() -> None:
    """A request that timed out kept the bot waiting (recorded); a refused one measured nothing."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    refused = socket.create_server(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()
    tracker = PerformanceTracker("bot")

    async def main() -> None:
        async with aiohttp.ClientSession(trace_configs=[tracker.aiohttp_trace()]) as session:
            with pytest.raises(asyncio.TimeoutError):
                url = f"http://127.0.0.1:{silent.getsockname()[1]}/orders"
                await session.post(url, timeout=aiohttp.ClientTimeout(total=0.2))
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get(f"http://127.0.0.1:{refused_port}/health")

    try:
        asyncio.run(main())
    finally:
        silent.close()
    latency = tracker.stats("api_response_times", "POST /orders")
    assert latency.count == 1 and latency.min >= 0.19
    assert tracker.stats("order_execution_times", "POST /orders").count == 1
    assert tracker.stats("api_response_times", "GET /health").count == 0
    assert tracker.errors == {"TimeoutError": 1, "ClientConnectorError": 1}


def test_default_routes_cover_the_exchange() -> None:
    """The instruments' default templates start with every route of the embedded exchange."""
    from pytest_axiomperf.client import EXCHANGE_ROUTES
    from pytest_axiomperf.instruments import ROUTES

    assert ROUTES[: len(EXCHANGE_ROUTES)] == EXCHANGE_ROUTES


def test_receivers_appended_by_the_user_still_run(standalone_exchange: Standalone) -> None:
    """The trace's signals stay ordinary signals for the user's own receivers."""
    tracker = PerformanceTracker("bot")
    trace = tracker.aiohttp_trace()
    seen: list[str] = []

    async def on_request_end(
        session: object, ctx: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        seen.append(str(params.response.status))

    trace.on_request_end.append(on_request_end)

    async def main() -> None:
        headers = {"Authorization": f"Bearer {standalone_exchange.token}"}
        async with (
            aiohttp.ClientSession(headers=headers, trace_configs=[trace]) as session,
            session.get(standalone_exchange.base_url + "/health") as response,
        ):
            await response.read()

    asyncio.run(main())
    assert seen == ["200"]
    assert tracker.stats("api_response_times", "GET /health").count == 1


def test_middleware_records_without_the_phases(standalone_exchange: Standalone) -> None:
    """aiohttp_middleware(): route tags, orders, TTFB, status errors, timeouts; no phases."""
    tracker = PerformanceTracker("bot")
    silent = socket.create_server(("127.0.0.1", 0))

    async def main() -> None:
        headers = {"Authorization": f"Bearer {standalone_exchange.token}"}
        async with aiohttp.ClientSession(
            standalone_exchange.base_url,
            headers=headers,
            middlewares=[tracker.aiohttp_middleware(routes=["/balance/{wallet}", "/orders"])],
        ) as session:
            for i in range(3):
                async with session.get(f"/balance/So1wallet{i}") as response:
                    await response.json()
            async with session.post("/orders", json={"token": "SOL", "side": "buy", "amount": 1}):
                pass
            async with session.get("/orders/unknown") as response:
                assert response.status == 404
            with pytest.raises(asyncio.TimeoutError):
                url = f"http://127.0.0.1:{silent.getsockname()[1]}/health"
                await session.get(url, timeout=aiohttp.ClientTimeout(total=0.2))

    try:
        asyncio.run(main())
    finally:
        silent.close()
    assert tracker.stats("api_response_times", "GET /balance/{wallet}").count == 3
    assert tracker.stats("http_ttfb_times", "GET /balance/{wallet}").count == 3
    assert tracker.tags("order_execution_times") == ["POST /orders"]
    assert tracker.stats("api_response_times", "GET /health").min >= 0.19
    assert tracker.errors == {"HTTP 4xx": 1, "TimeoutError": 1}
    assert "http_connect_times" not in tracker.metrics()


def test_routes_remembered_are_bounded() -> None:
    """Paths embedding anything (a wallet per request) do not grow the route cache."""
    from pytest_axiomperf.instruments.aiohttp import _Recorder
    from pytest_axiomperf.routes import MAX_TARGETS, RouteTemplates

    recorder = _Recorder(PerformanceTracker(), RouteTemplates(["/balance/{a}"]), frozenset())
    first = recorder.route("GET", "/balance/W0")
    assert recorder.route("GET", "/balance/W0") is first
    for i in range(MAX_TARGETS + 100):
        assert recorder.route("GET", f"/balance/W{i}").tag == "GET /balance/{a}"
    assert len(recorder._routes) == MAX_TARGETS


def _slow_body_server(delay: float) -> tuple[socket.socket, threading.Thread]:
    """A server answering ``/slow`` with its headers at once and its 2-byte body ``delay``
    later, and anything else with both at once."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)

    def serve() -> None:
        for _ in range(2):  # the test's two requests, one connection each
            try:
                conn, _ = server.accept()
            except OSError:  # closed by the test, or no more requests
                return
            with conn:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
                if b"/slow" in request.split(b"\r\n", 1)[0]:
                    conn.sendall(head)
                    threading.Event().wait(delay)  # the injected latency of the body
                    conn.sendall(b"{}")
                else:
                    conn.sendall(head + b"{}")  # headers and body in one segment

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


@pytest.mark.parametrize("instrument", ["trace", "middleware"])
def test_a_body_is_timed_to_its_last_byte(instrument: str) -> None:
    """A body that comes after the headers is timed when it ends, not at the headers; one
    that came with them is timed at the headers (no bookkeeping of ours in the figure)."""
    tracker = PerformanceTracker("bot")
    server, thread = _slow_body_server(0.3)
    base = f"http://127.0.0.1:{server.getsockname()[1]}"
    options: dict[str, object] = (
        {"trace_configs": [tracker.aiohttp_trace(routes=["/slow", "/fast"])]}
        if instrument == "trace"
        else {"middlewares": [tracker.aiohttp_middleware(routes=["/slow", "/fast"])]}
    )

    async def main() -> None:
        async with aiohttp.ClientSession(base, **options) as session:  # type: ignore[arg-type]
            for path in ("/slow", "/fast"):
                async with session.get(path) as response:
                    assert await response.read() == b"{}"

    try:
        asyncio.run(main())
    finally:
        server.close()
        thread.join(5)
    slow, slow_ttfb = (
        tracker.stats(m, "GET /slow") for m in ("api_response_times", "http_ttfb_times")
    )
    fast, fast_ttfb = (
        tracker.stats(m, "GET /fast") for m in ("api_response_times", "http_ttfb_times")
    )
    assert slow.count == fast.count == 1
    assert slow.min >= 0.29 and slow_ttfb.max < 0.29
    assert fast.max == fast_ttfb.max < 0.29
