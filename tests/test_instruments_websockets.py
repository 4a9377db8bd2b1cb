"""``axiom_tracker.websockets_connect()``: a bot's own websockets feed, measured as it reads."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from fractions import Fraction
from typing import Any

import pytest
from conftest import Standalone
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

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


FIELD_CASES = [
    ('{{"timestamp": {t}}}', 1, True),
    ('{{"timestamp":{t}}}', 1e3, True),
    ('{{"type":"x","timestamp" : "{t}"}}', 1e6, True),
    ('{{"timestamp": {t}, "price": 2}}', 1e9, True),
    ('{{"timestamp":\n\t{t}\n}}', 1, True),
    ('[{{"timestamp": {t}}}]', 1, True),
    ('{{"data": {{"timestamp": {t}}}, "seq": 1}}', 1, True),  # nested: found too
    ('{{"timestamp": "2026-12-06T07:00:00Z", "t": {t}}}', 1, False),
    ('{{"timestamp": "{t}Z"}}', 1, False),
    ('{{"timestamp": "abc", "timestamp2": {t}}}', 1, False),
    ('{{"price": {t}}}', 1, False),
    ('{{"timestamp": {{"s": {t}}}}}', 1, False),
    ('{{"timestamp": -Infinity, "t": {t}}}', 1, False),
    ('{{"timestamp": 1-2, "t": {t}}}', 1, False),  # number characters, no number
    ('{{"timestamp": "{t}e", "t": {t}}}', 1, False),
    ('{{"timestamp": null, "data": {{"timestamp": {t}}}}}', 1, False),  # the first only
    ('{{"timestamp": {t}', 1, False),  # cut short: the number may be too
]


@pytest.mark.parametrize(("template", "scale", "timed"), FIELD_CASES)
def test_timestamp_field(template: str, scale: float, timed: bool) -> None:
    """Seconds, ms, us and ns by magnitude, quoted or not, nested or not; the first
    occurrence of the name only; anything but a whole number after it is not timed."""
    tracker = PerformanceTracker()
    feed = _feed(tracker, "timestamp")
    sent = (time.time() - 0.2) * scale
    text = template.format(t=int(sent) if scale > 1 else sent)
    feed.frames([Frame(Opcode.TEXT, text.encode())])
    delivery = tracker.stats("websocket_latency", "delivery")
    assert delivery.count == timed
    assert feed.stats.timed == timed
    if timed:
        assert 0.19 <= delivery.min < 5


@pytest.mark.skipif(sys.version_info < (3, 11), reason="possessive quantifiers: Python 3.11+")
def test_the_field_pattern_without_possessive_quantifiers() -> None:
    """Python 3.10's pattern (no possessive quantifiers) finds exactly what 3.11's does."""
    from pytest_axiomperf.instruments.websockets import _field_pattern

    fast = re.compile(_field_pattern("timestamp", possessive=True))
    plain = re.compile(_field_pattern("timestamp", possessive=False))
    assert fast.pattern != plain.pattern
    texts = [template.format(t=time.time() * scale) for template, scale, _ in FIELD_CASES]
    joined = "\x00".join(texts).encode()
    assert fast.findall(joined) == plain.findall(joined)
    assert len(fast.findall(joined)) == len(texts) - 1  # one has no "timestamp" at all
    assert sum(1 for found in fast.findall(joined) if found) == 9  # 7 numbers, 2 not


def _feed(tracker: PerformanceTracker, timestamp: Any) -> Any:
    """The measuring state of a ``connect``, fed frames as websockets parses them."""
    from pytest_axiomperf.instruments.websockets import _Feed

    feed = _Feed(tracker, timestamp)
    feed.arrived = time.perf_counter()
    return feed


def test_one_read_of_many_messages() -> None:
    """Messages parsed from one read are timed together, one time per message at most,
    whatever their shapes; fragments, control frames and binary frames as the rules say."""
    tracker = PerformanceTracker()
    feed = _feed(tracker, "ts")
    now = time.time()
    frames = [
        Frame(Opcode.TEXT, json.dumps({"ts": now - 0.1, "a": {"ts": now - 3}}).encode()),
        Frame(Opcode.TEXT, b'{"type": "subscribed"}'),
        Frame(Opcode.PING, b"1234"),
        Frame(Opcode.TEXT, json.dumps({"x": [1, 2], "ts": int((now - 0.2) * 1e3)}).encode()),
        Frame(Opcode.BINARY, json.dumps({"ts": now - 0.3}).encode()),  # JSON sent as binary
        Frame(Opcode.BINARY, b"\x00\x01\xff"),
        Frame(Opcode.TEXT, b'{"ts": "never"}'),
        Frame(Opcode.TEXT, b'{"ts": 1-2}'),  # not a number: the read's others still count
        Frame(Opcode.TEXT, b'{"a": 1, "ts": ', fin=False),  # a fragmented message...
        Frame(Opcode.CONT, str(now - 0.4).encode() + b"}"),  # ...counted, not timed
        Frame(Opcode.TEXT, json.dumps({"ts": now + 60}).encode()),  # a clock ahead of ours
        Frame(Opcode.TEXT, json.dumps({"ts": now - 0.5}).encode()),
    ]
    feed.frames(frames)
    assert feed.stats.timed == 4
    assert (feed._window_messages, feed.stats.messages) == (10, 0)
    delivery = tracker.stats("websocket_latency", "delivery")
    assert delivery.count == 4
    assert delivery.min >= 0.09 and delivery.max < 0.6  # 0.1, 0.2, 0.3, 0.5 s (+ this test)
    assert tracker.errors == {}


def test_a_fast_read_of_thousands_of_messages() -> None:
    """A read of more messages than one search takes (they are searched in slices): every
    message gives its own time, at most one, whichever slice it falls in, within 0.05 us
    of the exact difference (``wall - float(text)`` alone is up to 0.12 us off: a float
    near 1.8e9 is 0.24 us wide)."""
    tracker = PerformanceTracker()
    feed = _feed(tracker, "timestamp")
    now = time.time()
    texts = []
    for i in range(1500):
        sent = now - 0.001 * (i % 97) - 0.01
        if i % 7 == 3:
            texts.append(json.dumps({"type": "status", "seq": i}))  # no time
        elif i % 11 == 5:  # the first time only, though a nested one follows
            texts.append(json.dumps({"timestamp": sent, "inner": {"timestamp": now - 9}}))
        else:
            texts.append(json.dumps({"type": "token_update", "price": 1.5, "timestamp": sent}))
    feed.frames([Frame(Opcode.TEXT, text.encode()) for text in texts])
    wall = Fraction(feed.arrived + feed._wall_offset)
    # The time as written (its decimal text), not as float() rounds it.
    sent_texts = [re.search(r'"timestamp": ([0-9.e+-]+)', text) for text in texts]
    expected = [float(wall - Fraction(found[1])) for found in sent_texts if found]
    delivery = tracker.histogram("websocket_latency", "delivery")
    assert feed.stats.timed == delivery.count == len(expected) == 1500 - 214
    assert delivery.min == pytest.approx(min(expected), abs=5e-8)
    assert delivery.max == pytest.approx(max(expected), abs=5e-8)
    assert delivery.total == pytest.approx(sum(expected), abs=5e-8 * len(expected))


@pytest.mark.parametrize(
    ("texts", "stripped"),
    [
        # seconds with micro- and 100-nanoseconds, one with a trailing zero dropped
        ([b"1796573026.508908", b"1796573026.5089085", b"1796573026.50891"], True),
        ([b"1796573026508908", b"1796573027000001"], True),  # integer microseconds
        ([b"1796573026508908123", b"1796573026508909000"], True),  # integer nanoseconds
        ([b"1799999999.999999", b"1800000000.000001"], False),  # the leading digits change
        ([b"1796573026.508908", b"179657302.6508908"], False),  # one time ten times smaller
        ([b"1796573026.508908", b"17965730265.08908"], False),  # one ten times larger
        ([b"1796573026.508908", b""], False),  # a name with no number after it
        ([b"-1796573026.508908", b"1796573026.508908"], False),  # a sign
        ([b"1796573026508", b"1796573026509"], False),  # milliseconds: fast path already
        ([b"1796573026508908e-6", b"1796573026508909e-6"], False),  # an exponent
        ([b"1796573026.508908e0", b"1796573026.5089085"], False),
    ],
)
def test_times_take_floats_fast_path_only_when_exact(texts: list[bytes], stripped: bool) -> None:
    """A read's times lose their shared leading digits to parse on float()'s fast path,
    and are parsed whole when those digits are not shared or not at one place."""
    from pytest_axiomperf.instruments.websockets import _times

    base, values, high, low = _times(texts)
    assert (base != 0.0) is stripped
    numbers = [Fraction(text.decode()) for text in texts if text]
    # Each value is the rest of its time, correctly rounded: to the bit.
    assert values == [float(exact - Fraction(base)) for exact in numbers]
    assert (high, low) == (max(values), min(values))


def test_timestamp_function_per_message() -> None:
    """A function sees each whole message as recv() would give it (str, or bytes for a
    binary one); what it raises or returns that is no time is counted, never raised."""
    tracker = PerformanceTracker()
    seen: list[object] = []

    def sent_at(raw: str | bytes) -> float | None:
        seen.append(raw)
        if isinstance(raw, bytes):
            return None
        value = json.loads(raw)["t"]
        return value if value != "nan" else float("nan")

    feed = _feed(tracker, sent_at)
    now = time.time()
    feed.frames(
        [
            Frame(Opcode.TEXT, json.dumps({"t": now - 0.1}).encode()),
            Frame(Opcode.BINARY, b"\x01"),
            Frame(Opcode.TEXT, b'{"u": 1}'),  # KeyError in the bot's function
            Frame(Opcode.TEXT, b'{"t": "soon"}'),  # not a number
            Frame(Opcode.TEXT, b'{"t": "nan"}'),
            Frame(Opcode.TEXT, b'{"t": 1', fin=False),
            Frame(Opcode.CONT, b"}"),
        ]
    )
    assert seen[:2] == [json.dumps({"t": now - 0.1}), b"\x01"] and len(seen) == 5
    assert feed.stats.timed == 1
    assert tracker.errors == {"KeyError": 1, "ValueError": 1}


def test_bad_timestamp_argument() -> None:
    """Neither a name nor a function: refused by name."""
    with pytest.raises(TypeError, match="not int"):
        PerformanceTracker().websockets_connect(timestamp=5)  # type: ignore[arg-type]
