"""``axiom_tracker.httpx_transport()``: a bot's own httpx client, recorded as axiom_client's."""

from __future__ import annotations

import asyncio
import socket
import sys

import httpx
import pytest
from conftest import Standalone

from pytest_axiomperf import PerformanceTracker

BOT = """
import httpx


class AsyncBot:
    def __init__(self, base_url, headers, transport=None):
        self.client = httpx.AsyncClient(base_url=base_url, headers=headers, transport=transport)

    async def run(self):
        for i in range(5):
            response = await self.client.get(f"/balance/So1wallet{i}")
            response.raise_for_status()
        order = await self.client.post("/orders", json={"token": "SOL", "side": "buy", "amount": 1})
        assert (await self.client.get(f"/orders/{order.json()['id']}")).status_code == 200
        assert (await self.client.get("/orders/unknown")).status_code == 404
        async with self.client.stream("GET", "/tokens/So1wallet0") as response:
            async for _ in response.aiter_bytes():
                pass

    async def close(self):
        await self.client.aclose()


class SyncBot:
    def __init__(self, base_url, headers, transport=None):
        self.client = httpx.Client(base_url=base_url, headers=headers, transport=transport)

    def run(self):
        for i in range(3):
            self.client.get(f"/balance/So1wallet{i}").raise_for_status()
        self.client.post("/orders", json={"token": "SOL", "side": "sell", "amount": 2})
        self.client.close()
"""


def _user_tests(mode: str) -> str:
    mark = "@pytest.mark.asyncio" if mode == "strict" else ""
    return f"""
import httpx
import pytest

from bot import AsyncBot, SyncBot


{mark}
async def test_async_bot(axiom_target, axiom_tracker):
    bot = AsyncBot(axiom_target.base_url, axiom_target.headers(), axiom_tracker.httpx_transport())
    try:
        await bot.run()
    finally:
        await bot.close()
    stats = axiom_tracker.stats
    assert stats("api_response_times", "GET /balance/{{address}}").count == 5
    assert stats("api_response_times", "GET /orders/{{order_id}}").count == 2
    assert stats("api_response_times", "GET /tokens/{{address}}").count == 1
    assert axiom_tracker.tags("order_execution_times") == ["POST /orders"]
    assert stats("http_ttfb_times").count == 9
    assert stats("http_connect_times").max > 0  # the first request opened a connection
    assert stats("http_connect_times").count == 9
    assert axiom_tracker.errors == {{"HTTP 4xx": 1}}


def test_sync_bot(axiom_target, axiom_tracker):
    transport = axiom_tracker.httpx_transport(httpx.HTTPTransport(retries=1))
    SyncBot(axiom_target.base_url, axiom_target.headers(), transport).run()
    assert axiom_tracker.stats("api_response_times", "GET /balance/{{address}}").count == 3
    assert axiom_tracker.stats("order_execution_times", "POST /orders").count == 1
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_a_bots_client_is_recorded(pytester: pytest.Pytester, mode: str) -> None:
    """Async and sync clients, user transports kept, in either asyncio mode."""
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(bot=BOT, test_bot=_user_tests(mode))
    result = pytester.runpytest("--axiom-perf")
    result.assert_outcomes(passed=2)


def test_against_a_standalone_exchange(
    user_project: pytest.Pytester, standalone_exchange: Standalone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --axiom-base-url the bot's client measures that venue."""
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", standalone_exchange.token)
    user_project.makepyfile(bot=BOT, test_bot=_user_tests("strict"))
    result = user_project.runpytest(
        "--axiom-perf", f"--axiom-base-url={standalone_exchange.base_url}"
    )
    result.assert_outcomes(passed=2)


def test_timeouts_are_latency_refusals_are_errors() -> None:
    """A timed-out request is recorded (the bot waited); a refused one is an error only."""
    silent = socket.create_server(("127.0.0.1", 0))
    refused = socket.create_server(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()
    tracker = PerformanceTracker("bot")
    try:
        with httpx.Client(transport=tracker.httpx_transport(sync=True), timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.post(f"http://127.0.0.1:{silent.getsockname()[1]}/orders", json={})
            with pytest.raises(httpx.ConnectError):
                client.get(f"http://127.0.0.1:{refused_port}/health")
    finally:
        silent.close()
    latency = tracker.stats("order_execution_times", "POST /orders")
    assert latency.count == 1 and latency.min >= 0.19
    assert tracker.stats("api_response_times", "GET /health").count == 0
    assert tracker.errors == {"ReadTimeout": 1, "ConnectError": 1}


def test_the_bots_own_trace_still_runs(standalone_exchange: Standalone) -> None:
    """A trace extension the bot sets keeps receiving httpcore's events."""
    tracker = PerformanceTracker("bot")
    events: list[str] = []
    headers = {"Authorization": f"Bearer {standalone_exchange.token}"}
    with httpx.Client(transport=tracker.httpx_transport(sync=True), headers=headers) as client:
        response = client.get(
            standalone_exchange.base_url + "/health",
            extensions={"trace": lambda name, info: events.append(name)},
        )
    assert response.status_code == 200
    assert "connection.connect_tcp.complete" in events
    assert tracker.stats("api_response_times", "GET /health").count == 1


def test_not_a_transport() -> None:
    """Something else is refused by name."""
    with pytest.raises(TypeError, match="expected an httpx transport, got str"):
        PerformanceTracker().httpx_transport("http://x")  # type: ignore[arg-type]


WITHOUT_AIOHTTP = """
import sys

sys.modules["aiohttp"] = None  # a machine without aiohttp: importing it fails

import httpx

from pytest_axiomperf import PerformanceTracker
import pytest_axiomperf.instruments.sdk
import pytest_axiomperf.respx_api

tracker = PerformanceTracker("bot")
venue = httpx.MockTransport(lambda request: httpx.Response(200, json={"sol": 1.0}))
with httpx.Client(transport=tracker.httpx_transport(venue, sync=True)) as client:
    client.get("http://venue.test/balance/So1wallet")
print(tracker.stats("api_response_times", "GET /balance/{address}").count)
"""


def test_an_httpx_bot_needs_no_aiohttp(pytester: pytest.Pytester) -> None:
    """The httpx, requests (SDK) and respx instruments import no aiohttp."""
    result = pytester.run(sys.executable, "-c", WITHOUT_AIOHTTP)
    assert result.ret == 0, result.stderr.str()
    assert result.outlines[-1] == "1"


@pytest.mark.parametrize("sync", [True, False])
def test_a_response_read_already_is_recorded(sync: bool) -> None:
    """A transport answering with a body in memory (httpx.MockTransport, a cache)
    closes the response before the client sees it: recorded at once."""
    tracker = PerformanceTracker("bot")
    venue = httpx.MockTransport(lambda request: httpx.Response(201, json={"id": "o1"}))
    if sync:
        with httpx.Client(transport=tracker.httpx_transport(venue, sync=True)) as client:
            assert client.post("http://venue.test/orders", json={}).json() == {"id": "o1"}
    else:

        async def main() -> None:
            transport = tracker.httpx_transport(venue)
            async with httpx.AsyncClient(transport=transport) as client:
                response = await client.post("http://venue.test/orders", json={})
                assert response.json() == {"id": "o1"}

        asyncio.run(main())
    assert tracker.stats("api_response_times", "POST /orders").count == 1
    assert tracker.stats("order_execution_times", "POST /orders").count == 1
