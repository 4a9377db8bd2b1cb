"""``axiom_tracker.websockets_connect()``: a bot's own websockets feed, measured as it reads."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from conftest import Standalone
from websockets.asyncio.server import ServerConnection, serve

from pytest_axiomperf import PerformanceTracker

BOT = """
import json

from websockets.asyncio.client import connect as websockets_connect


class PriceFeed:
    \"\"\"A bot's feed as bots write it: its own connection, its own loop, reconnecting.\"\"\"

    def __init__(self, url, headers, connect=websockets_connect):
        self.url, self.headers, self.connect = url, headers, connect
        self.prices = []

    async def run(self, tokens, want):
        async for ws in self.connect(self.url, additional_headers=self.headers, proxy=None):
            await ws.send(json.dumps({"type": "subscribe", "tokens": tokens}))
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "token_update":
                    self.prices.append(message["price"])
                    if len(self.prices) >= want:
                        await (await ws.ping())  # the bot checks the link's round trip
                        return
"""


def _user_tests(mode: str) -> str:
    mark = "@pytest.mark.asyncio" if mode == "strict" else ""
    return f"""
import asyncio

import pytest

from bot import PriceFeed


{mark}
@pytest.mark.latency_budget(metric="websocket_latency", tag="delivery", p95="1s", min_samples=30)
async def test_feed(axiom_target, axiom_tracker):
    connect = axiom_tracker.websockets_connect(timestamp="timestamp")
    feed = PriceFeed(axiom_target.ws_url, axiom_target.headers(), connect)
    await asyncio.wait_for(feed.run(["SOL", "BONK"], want=30), timeout=20)
    assert len(feed.prices) == 30
    assert connect.stats.timed == 30  # the "subscribed" answer carries no timestamp
    assert connect.stats.messages == 31
    assert axiom_tracker.stats("websocket_latency", "delivery").count == 30
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_a_bots_feed_is_measured(pytester: pytest.Pytester, mode: str) -> None:
    """Delivery latency from the feed's own timestamps, in either asyncio mode."""
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(bot=BOT, test_bot=_user_tests(mode))
    result = pytester.runpytest("--axiom-perf")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*budgets: websocket_latency[[]delivery[]] p95 * <= 1.00s*"])


def test_against_a_standalone_exchange(
    user_project: pytest.Pytester, standalone_exchange: Standalone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --axiom-ws-url the bot's feed measures that venue."""
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", standalone_exchange.token)
    user_project.makepyfile(bot=BOT, test_bot=_user_tests("strict"))
    result = user_project.runpytest(
        "--axiom-perf",
        f"--axiom-base-url={standalone_exchange.base_url}",
        f"--axiom-ws-url={standalone_exchange.ws_url}",
    )
    result.assert_outcomes(passed=1)


def test_injected_latency_and_reconnects(user_project: pytest.Pytester) -> None:
    """Latency injected at the exchange shows in delivery; its disconnects as gaps and errors."""
    user_project.makepyfile(
        bot=BOT,
        test_gaps="""
        import asyncio

        import pytest

        from bot import PriceFeed


        @pytest.mark.asyncio
        async def test_gaps(axiom_exchange, axiom_target, axiom_tracker):
            axiom_exchange.configure(latency=0.08, push_rate=50, ws_disconnect_every=10)
            connect = axiom_tracker.websockets_connect()
            feed = PriceFeed(axiom_target.ws_url, axiom_target.headers(), connect)
            await asyncio.wait_for(feed.run(["SOL"], want=25), timeout=30)
            assert connect.stats.connections >= 3
            assert connect.stats.disconnects == connect.stats.connections - 1
            assert axiom_tracker.errors["WebSocket disconnect"] == connect.stats.disconnects
            gaps = axiom_tracker.stats("websocket_reconnect_gap")
            assert gaps.count == connect.stats.disconnects
            delivery = axiom_tracker.stats("websocket_latency", "delivery")
            assert delivery.min >= 0.075, delivery
            assert axiom_tracker.stats("websocket_latency", "ping").count == 1
        """,
    )
    result = user_project.runpytest()
    result.assert_outcomes(passed=1)


async def _serve(handler: object) -> tuple[object, str]:
    server = await serve(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = next(iter(server.sockets)).getsockname()[1]
    return server, f"ws://127.0.0.1:{port}"


def test_timestamp_function_units_and_invalid_frames() -> None:
    """A function reads the send time; ms are recognised; a refused frame is counted."""
    tracker = PerformanceTracker("bot")
    sent_at = time.time() - 0.25

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"data": {"ts_ms": int(sent_at * 1000)}}))
        await ws.send(json.dumps({"t": sent_at}))
        await ws.send('{"data": {"ts_ms": "-inf"}}')  # never a latency
        await ws.send(b"\xff\xfe", text=True)  # not UTF-8: the client must refuse it
        await ws.wait_closed()

    async def main() -> list[object]:
        server, url = await _serve(handler)
        connect = tracker.websockets_connect(
            timestamp=lambda raw: float(json.loads(raw)["data"]["ts_ms"]) if "data" in raw else None
        )
        got: list[object] = []
        try:
            async with connect(url, proxy=None) as ws:
                async for raw in ws:
                    got.append(raw)
        except Exception as exc:
            got.append(type(exc).__name__)
        finally:
            server.close()  # type: ignore[attr-defined]
        assert connect.stats.invalid_frames == 1
        return got

    got = asyncio.run(main())
    assert got[-1] == "ConnectionClosedError"
    delivery = tracker.stats("websocket_latency", "delivery")
    assert delivery.count == 1 and 0.24 <= delivery.min < 5
    assert tracker.errors["WebSocket invalid frame"] == 1


def test_the_bots_close_is_no_outage() -> None:
    """Closing its own connection is not a disconnect; no timestamp field, no latency."""
    tracker = PerformanceTracker("bot")

    async def handler(ws: ServerConnection) -> None:
        for i in range(3):
            await ws.send(json.dumps({"n": i}))
        await ws.wait_closed()

    async def main() -> None:
        server, url = await _serve(handler)
        connect = tracker.websockets_connect()
        try:
            async with connect(url, proxy=None) as ws:
                for _ in range(3):
                    await ws.recv()
            stats = connect.stats
            assert (stats.messages, stats.timed, stats.disconnects) == (3, 0, 0)
            # Leaving on an error closes with code 1011: still the bot's own close.
            with pytest.raises(RuntimeError):
                async with connect(url, proxy=None) as ws:
                    await ws.recv()
                    raise RuntimeError("the bot's own bug")
            stats = connect.stats  # a snapshot: read it again
            assert (stats.connections, stats.disconnects) == (2, 0)
        finally:
            server.close()  # type: ignore[attr-defined]

    asyncio.run(main())
    assert tracker.errors == {}
    assert tracker.stats("websocket_latency", "delivery").count == 0


@pytest.mark.parametrize(
    ("template", "scale", "timed"),
    [
        ('{{"timestamp": {t}}}', 1, True),
        ('{{"timestamp":{t}}}', 1e3, True),
        ('{{"type":"x","timestamp" : "{t}"}}', 1e6, True),
        ('{{"timestamp": {t}, "price": 2}}', 1e9, True),
        ('{{"timestamp": "2026-12-06T07:00:00Z", "t": {t}}}', 1, False),
        ('{{"price": {t}}}', 1, False),
        ('{{"timestamp": {{"s": {t}}}}}', 1, False),
        ('{{"timestamp": -Infinity, "t": {t}}}', 1, False),
    ],
)
def test_timestamp_field(template: str, scale: float, timed: bool) -> None:
    """Seconds, ms, us and ns by magnitude, quoted or not; anything else is not timed."""
    from pytest_axiomperf.instruments.websockets import _Feed

    tracker = PerformanceTracker()
    feed = _Feed(tracker, "timestamp")
    sent = (time.time() - 0.2) * scale
    feed.message(template.format(t=int(sent) if scale > 1 else sent).encode(), True)
    delivery = tracker.stats("websocket_latency", "delivery")
    assert delivery.count == timed
    if timed:
        assert 0.19 <= delivery.min < 5


def test_bad_timestamp_argument() -> None:
    """Neither a name nor a function: refused by name."""
    with pytest.raises(TypeError, match="not int"):
        PerformanceTracker().websockets_connect(timestamp=5)  # type: ignore[arg-type]
