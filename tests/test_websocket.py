"""WebSocketClient and the axiom_ws fixture, against the embedded exchange (and, for
frames the exchange never sends, a small websockets server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pytest_axiomperf import WebSocketClient, WebSocketError
from pytest_axiomperf.exchange import ExchangeSimulator
from pytest_axiomperf.tracker import NETWORK_THROUGHPUT, WEBSOCKET_LATENCY
from pytest_axiomperf.websocket import (
    DELIVERY_TAG,
    ERR_DISCONNECT,
    ERR_DROPPED,
    ERR_INVALID,
    ERR_PING_TIMEOUT,
    ERR_UNKNOWN,
    MESSAGE_RATE,
    PING_TAG,
    QUEUE_DEPTH,
    RECONNECT_GAP,
    WEBSOCKET_TAG,
)

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def exchange(axiom_exchange: ExchangeSimulator) -> Iterator[ExchangeSimulator]:
    """The session's exchange, back to its default profile after the test."""
    yield axiom_exchange
    axiom_exchange.reset()


def make_client(exchange: ExchangeSimulator, **options: Any) -> WebSocketClient:
    return WebSocketClient(exchange.ws_url, token=exchange.token, **options)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``condition`` (checked every 10 ms); fail after ``timeout`` seconds."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


async def updates(ws: WebSocketClient, n: int, timeout: float = 3.0) -> list[dict[str, Any]]:
    return [await ws.receive(timeout, kind="token_update") for _ in range(n)]


@asynccontextmanager
async def local_server(frames: list[str | bytes], pause: float = 0.0) -> AsyncIterator[str]:
    """A server sending ``frames`` to each client (``pause`` s before each), then
    waiting for it to leave."""

    async def handler(conn: ServerConnection) -> None:
        for frame in frames:
            if pause:
                await asyncio.sleep(pause)
            await conn.send(frame)
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


def numbered(n: int) -> list[str | bytes]:
    """``n`` token updates numbered by ``seq``."""
    return [json.dumps({"type": "token_update", "token": "SOL", "seq": i}) for i in range(n)]


# -- connection, latency, rates -------------------------------------------------------------


@pytest.mark.asyncio
async def test_stream_is_measured_and_a_clean_close_leaves_nothing(
    exchange: ExchangeSimulator,
) -> None:
    exchange.configure(push_rate=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with make_client(exchange, rate_interval=0.1) as ws:
            await ws.subscribe(["SOL", "BONK"])
            subscribed = await ws.receive(kind="subscribed")
            got = await updates(ws, 30)
            await asyncio.sleep(0)
        gc.collect()
    assert subscribed["tokens"] == ["SOL", "BONK"]  # one message for both tokens
    assert {u["token"] for u in got} == {"SOL", "BONK"}
    assert ws.closed and not ws.connected
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert [str(w.message) for w in caught] == []

    stats = ws.stats
    tracker = ws.tracker
    delivery = tracker.stats(WEBSOCKET_LATENCY, DELIVERY_TAG)
    assert delivery.count == stats.delivered >= 30
    assert 0.0 <= delivery.p50 < 0.1
    assert stats.messages >= 31 and stats.bytes > 31 * 50
    rate = tracker.stats(MESSAGE_RATE)
    assert tracker.unit(MESSAGE_RATE) == "msg/s" and rate.count >= 2 and rate.max > 0
    assert tracker.stats(NETWORK_THROUGHPUT, WEBSOCKET_TAG).max > 0
    assert tracker.unit(QUEUE_DEPTH) == "msgs"
    assert tracker.errors == {}


@pytest.mark.asyncio
async def test_injected_latency_shows_in_delivery_and_ping(exchange: ExchangeSimulator) -> None:
    exchange.configure(push_rate=50)
    async with make_client(exchange) as fast:
        await fast.subscribe(["SOL"])
        await updates(fast, 10)
        fast_rtt = await fast.ping()
    exchange.configure(latency=0.2, push_rate=50)
    async with make_client(exchange) as slow:
        await slow.subscribe(["SOL"])
        await updates(slow, 10)
        slow_rtt = await slow.ping()
    assert fast.tracker.stats(WEBSOCKET_LATENCY, DELIVERY_TAG).p50 < 0.1
    assert slow.tracker.stats(WEBSOCKET_LATENCY, DELIVERY_TAG).p50 >= 0.19
    assert fast_rtt < 0.1 <= 0.19 <= slow_rtt
    ping = slow.tracker.stats(WEBSOCKET_LATENCY, PING_TAG)
    assert ping.count == 1 and ping.max == pytest.approx(slow_rtt, rel=0.01)


@pytest.mark.asyncio
async def test_a_server_stall_is_not_hidden(exchange: ExchangeSimulator) -> None:
    # Updates due during the stall go out late carrying their intended time: the
    # stall must show as latency, not as a quiet gap (coordinated omission).
    exchange.configure(push_rate=50, stall=0.5, stall_after=0.3)
    async with make_client(exchange) as ws:
        await ws.subscribe(["SOL"])
        await updates(ws, 50)
    delivery = ws.tracker.stats(WEBSOCKET_LATENCY, DELIVERY_TAG)
    assert delivery.max >= 0.4
    assert delivery.p50 < 0.1


@pytest.mark.asyncio
async def test_wrong_token_is_refused_and_never_shown(exchange: ExchangeSimulator) -> None:
    secret = "not-the-token-s3cr3t"
    ws = WebSocketClient(exchange.ws_url, token=secret)
    with pytest.raises(WebSocketError, match="HTTP 401") as excinfo:
        await ws.connect()
    assert secret not in str(excinfo.value) and secret not in repr(ws)


@pytest.mark.asyncio
async def test_receive_timeout_is_short_and_named(exchange: ExchangeSimulator) -> None:
    async with make_client(exchange) as ws:
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match=r"no 'token_update' message .* within 0.2 s"):
            await ws.receive(0.2, kind="token_update")
        assert time.perf_counter() - started < 1.0


@pytest.mark.asyncio
async def test_receive_timeouts_hold_with_several_waiting_and_one_given_up() -> None:
    async with local_server(numbered(1), pause=0.6) as url, WebSocketClient(url) as ws:
        started = time.perf_counter()
        # First in line, then given up: the message must skip it.
        given_up = asyncio.create_task(asyncio.wait_for(ws.receive(5.0), 0.05))
        patient = asyncio.create_task(ws.receive(5.0))
        await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            await ws.receive(0.05)  # the earliest deadline, though others wait longer
        with pytest.raises(asyncio.TimeoutError):
            await given_up
        assert time.perf_counter() - started < 0.4
        assert not patient.done()
        assert (await asyncio.wait_for(patient, 3.0))["seq"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("compression", [False, True])
async def test_connection_options_reach_the_connection(
    exchange: ExchangeSimulator, compression: bool
) -> None:
    async with make_client(
        exchange, compression=compression, max_queue=7, write_limit=4096, max_size=5000
    ) as ws:
        conn = ws.connection
        assert conn is not None
        assert bool(conn.protocol.extensions) is compression  # permessage-deflate
        if hasattr(conn, "max_queue_high"):
            assert conn.max_queue_high == 7 and conn.write_limit_high == 4096
            assert conn.protocol.max_message_size == 5000
        else:  # websockets < 16: (high, low) pairs, max_size
            assert conn.max_queue[0] == 7 and conn.write_limit[0] == 4096
            assert conn.protocol.max_size == 5000
        assert conn.request is not None
        assert conn.request.headers["Authorization"] == f"Bearer {exchange.token}"
        assert await ws.ping() > 0


@pytest.mark.asyncio
async def test_an_oversized_message_closes_with_1009() -> None:
    async with local_server(["x" * 2000]) as url:
        ws = WebSocketClient(url, max_size=1000, reconnect=False)
        await ws.connect()
        with pytest.raises(WebSocketError, match="1009"):
            await ws.receive(3.0)
        assert ws.closed and ws.stats.disconnects == 1
        await ws.close()


# -- messages the bot did not expect ------------------------------------------------------


@pytest.mark.asyncio
async def test_invalid_json_and_unknown_kinds_are_counted_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    valid = {"type": "token_update", "token": "SOL", "price": 1.0, "timestamp": time.time()}
    frames: list[str | bytes] = [
        "not json {",
        b"[1, 2]",
        "[" * 100_000,  # deeper than the parser goes: a RecursionError, not a ValueError
        json.dumps({"type": "mystery"}),
        json.dumps({"no": "type"}),
        json.dumps(valid),
    ]
    caplog.set_level(logging.DEBUG, "pytest_axiomperf.websocket")
    async with local_server(frames) as url, WebSocketClient(url) as ws:
        assert await ws.receive(3.0) == valid
    assert (ws.stats.invalid, ws.stats.unknown, ws.stats.delivered) == (3, 2, 1)
    assert ws.tracker.errors == {ERR_INVALID: 3, ERR_UNKNOWN: 2}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not a JSON object" in m for m in warned)
    assert any("unknown kind 'mystery'" in m for m in warned)


@pytest.mark.asyncio
async def test_a_kind_the_client_does_not_know_is_named_when_receive_times_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frames: list[str | bytes] = [
        json.dumps({"type": "trade", "seq": 1}),
        json.dumps({"type": "trade", "seq": 2}),
        json.dumps({"type": "book", "seq": 3}),
        json.dumps({"room": "new_pairs", "content": {}}),  # a room not joined
        json.dumps({"seq": 4}),  # no type at all
    ]
    caplog.set_level(logging.WARNING, "pytest_axiomperf.websocket")
    async with local_server(frames) as url:
        async with WebSocketClient(url) as ws:
            with pytest.raises(TimeoutError) as excinfo:
                await ws.receive(1.0, kind="trade")
        said = str(excinfo.value)
        assert "skipped as of unknown kind: 'trade' x2, " in said
        assert "'book' x1" in said and "'room:new_pairs' x1" in said and "no type x1" in said
        assert "add it to the client's kinds: .kinds.add('trade')" in said
        assert "once you join() it" in said and "its 'type'" in said
        warned = [r.getMessage() for r in caplog.records]
        assert sum("unknown kind 'trade'" in m for m in warned) == 1  # once per kind
        assert sum("unknown kind 'book'" in m for m in warned) == 1
        # Named in kinds, given or added, the same messages reach receive().
        async with WebSocketClient(url, kinds={"trade"}) as ws:
            ws.kinds.add("book")
            got = [(await ws.receive(3.0))["seq"] for _ in range(3)]
        assert got == [1, 2, 3]


@pytest.mark.asyncio
async def test_unknown_kinds_are_named_up_to_a_bound(caplog: pytest.LogCaptureFixture) -> None:
    """A server that puts an id in its message type cannot grow the client's memory."""
    frames: list[str | bytes] = [json.dumps({"type": f"order-{i}"}) for i in range(80)]
    caplog.set_level(logging.WARNING, "pytest_axiomperf.websocket")
    async with local_server(frames) as url, WebSocketClient(url) as ws:
        with pytest.raises(TimeoutError) as excinfo:
            await ws.receive(1.0)
    assert ws.stats.unknown == 80
    assert "'order-0' x1" in str(excinfo.value)
    assert "and 75 of other kinds" in str(excinfo.value)  # 5 named, 45 more counted, 30 beyond
    assert sum("unknown kind" in r.getMessage() for r in caplog.records) == 50


@pytest.mark.asyncio
async def test_receive_of_a_kind_with_a_handler_is_refused_at_once() -> None:
    async def on_update(message: dict[str, Any]) -> None:
        return None

    async with local_server([]) as url, WebSocketClient(url) as ws:
        ws.register_handler("token_update", on_update)
        started = time.perf_counter()
        with pytest.raises(ValueError, match="'token_update' messages go to the handler"):
            await ws.receive(30.0, kind="token_update")
        assert time.perf_counter() - started < 5.0


@pytest.mark.asyncio
async def test_messages_are_read_as_json_loads_reads_them() -> None:
    """The reader's fast path must accept and refuse exactly what json.loads does."""

    def update(seq: int) -> str:
        return json.dumps({"type": "token_update", "seq": seq})

    frames: list[str | bytes] = [
        " " + update(0),  # whitespace around a value is valid JSON
        update(1) + " \n",
        ("\ufeff" + update(2)).encode(),  # UTF-8 with a BOM, as json.loads(bytes) reads it
        update(3).encode("utf-16-le"),  # a binary frame in UTF-16
        update(4) + "x",  # extra data
        update(5) + update(6),  # two values in one message
        b'{"type": "token_update", "seq": 7, "name": "\xff"}',  # not UTF-8
        update(8),
    ]
    async with local_server(frames) as url, WebSocketClient(url) as ws:
        got = [(await ws.receive(3.0))["seq"] for _ in range(5)]
    accepted = []
    for frame in frames:
        with contextlib.suppress(ValueError):
            accepted.append(json.loads(frame)["seq"])
    assert got == accepted == [0, 1, 2, 3, 8]
    assert (ws.stats.invalid, ws.stats.messages) == (3, 8)


@pytest.mark.asyncio
async def test_stamps_from_the_future_or_nan_count_as_skewed_not_as_a_crash() -> None:
    frames: list[str | bytes] = [
        '{"type": "token_update", "timestamp": NaN}',  # Python's json reads NaN
        '{"type": "token_update", "timestamp": 1' + "0" * 400 + "}",  # an int beyond floats
        '{"type": "token_update", "timestamp": -Infinity}',  # an infinite latency
        json.dumps({"type": "token_update", "timestamp": time.time() + 3600}),
        json.dumps({"type": "token_update", "timestamp": time.time(), "last": True}),
    ]
    async with local_server(frames) as url, WebSocketClient(url) as ws:
        got = [await ws.receive(3.0) for _ in frames]
        assert ws.connected
    assert got[-1]["last"]
    assert (ws.stats.delivered, ws.stats.clock_skewed) == (5, 4)
    assert ws.tracker.stats(WEBSOCKET_LATENCY, DELIVERY_TAG).max < 3600
    assert ws.tracker.stats(WEBSOCKET_LATENCY, DELIVERY_TAG).min == 0.0


# -- handlers -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_slow_handlers_are_bounded_and_say_so(exchange: ExchangeSimulator) -> None:
    exchange.configure(push_rate=300)
    in_flight = 0
    most = 0

    async def slow(message: dict[str, Any]) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1

    ws = make_client(
        exchange, max_handlers=2, handler_queue_size=4, late_after=0.005, rate_interval=0.1
    )
    ws.register_handler("token_update", slow)
    async with ws:
        await ws.subscribe(["SOL"])
        await wait_until(lambda: ws.stats.dropped >= 20 and ws.stats.handled >= 6)
    stats = ws.stats
    assert most == 2
    assert stats.max_queue_depth == 4
    assert stats.late >= 1
    assert ws.tracker.errors[ERR_DROPPED] == stats.dropped
    assert ws.tracker.stats(QUEUE_DEPTH).max <= 4
    # The reader kept up although the handlers did not.
    assert ws.tracker.stats(WEBSOCKET_LATENCY, DELIVERY_TAG).p50 < 0.05


@pytest.mark.asyncio
async def test_a_failing_handler_is_counted_and_the_stream_goes_on(
    exchange: ExchangeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    exchange.configure(push_rate=200)
    calls = 0

    async def broken(message: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad bot")

    caplog.set_level(logging.ERROR, "pytest_axiomperf.websocket")
    async with make_client(exchange) as ws:
        ws.register_handler("token_update", broken)  # after connect: workers start now
        await ws.subscribe(["SOL"])
        await wait_until(lambda: calls >= 5)
        assert ws.connected
    assert ws.tracker.errors["ValueError"] == ws.stats.handler_errors >= 5
    assert "the handler for 'token_update' raised" in caplog.text


def test_register_handler_wants_an_async_function() -> None:
    ws = WebSocketClient("ws://127.0.0.1:1/ws")

    async def fine(message: dict[str, Any]) -> None:
        return None

    with pytest.raises(TypeError, match="async function"):
        ws.register_handler("token_update", print)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pong"):
        ws.register_handler("pong", fine)
    ws.register_handler("token_update", fine)


@pytest.mark.asyncio
async def test_handlers_in_flight_stay_bounded_and_start_in_arrival_order() -> None:
    gate = asyncio.Event()
    starts: list[int] = []
    contexts: list[str] = []
    in_flight = most = 0

    async def handler(message: dict[str, Any]) -> None:
        nonlocal in_flight, most
        seq = message["seq"]
        starts.append(seq)
        contexts.append(var.get())
        var.set(f"set by {seq}")  # each call has its own context: the next ones never see it
        in_flight += 1
        most = max(most, in_flight)
        try:
            if seq % 4 == 0:  # every fourth one waits: 0, 4, 8 fill the three slots
                await gate.wait()
        finally:
            in_flight -= 1

    async with local_server(numbered(40), pause=0.002) as url:
        ws = WebSocketClient(url, max_handlers=3, handler_queue_size=100)
        ws.register_handler("token_update", handler)
        async with ws:
            await wait_until(lambda: ws.queue_depth == 40 - 9)  # 9 started, 3 of them waiting
            assert (most, in_flight, ws.stats.handled) == (3, 3, 6)
            gate.set()
            await wait_until(lambda: ws.stats.handled == 40)
    stats = ws.stats
    assert starts == list(range(40))
    assert most == 3
    assert contexts == ["unset"] * 40
    assert (stats.max_queue_depth, stats.dropped, stats.handler_errors) == (31, 0, 0)


@pytest.mark.asyncio
async def test_handler_errors_are_counted_whether_raised_at_once_or_after_waiting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(message: dict[str, Any]) -> None:
        seq = message["seq"]
        if seq == 11:
            raise asyncio.CancelledError("its own")  # must not end the reader
        if seq % 3 == 1:
            await asyncio.sleep(0)
        if seq % 3 != 2:
            raise ValueError(f"bad {seq}")

    caplog.set_level(logging.ERROR, "pytest_axiomperf.websocket")
    async with local_server(numbered(12), pause=0.002) as url:
        ws = WebSocketClient(url)
        ws.register_handler("token_update", handler)
        async with ws:
            await wait_until(lambda: ws.stats.handled == 12)
            assert ws.connected
    assert ws.stats.handler_errors == 8 + 1
    assert ws.tracker.errors == {"ValueError": 8, "CancelledError": 1}
    assert caplog.text.count("the handler for 'token_update' raised") == 9
    assert "ValueError: bad 0" in caplog.text and "ValueError: bad 1" in caplog.text


@pytest.mark.asyncio
async def test_close_cancels_waiting_handlers_and_leaves_no_task() -> None:
    cleaned: list[int] = []

    async def stuck(message: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(message["seq"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with local_server(numbered(3), pause=0.002) as url:
            ws = WebSocketClient(url, max_handlers=2)
            ws.register_handler("token_update", stuck)
            async with ws:
                await wait_until(lambda: ws.queue_depth == 1)
        gc.collect()
    assert sorted(cleaned) == [0, 1]
    assert ws.stats.handled == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert [str(w.message) for w in caught] == []


@pytest.mark.asyncio
async def test_a_handler_may_close_the_client() -> None:
    seen: list[int] = []

    async def closes(message: dict[str, Any]) -> None:
        seen.append(message["seq"])
        if message["seq"] == 1:
            await ws.close()

    async with local_server(numbered(5), pause=0.002) as url:
        ws = WebSocketClient(url, max_handlers=2)
        ws.register_handler("token_update", closes)
        await ws.connect()
        await wait_until(lambda: ws.closed)
        await wait_until(lambda: asyncio.all_tasks() == {asyncio.current_task()})
    assert seen == [0, 1]
    assert ws.stats.handled == 2


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
@pytest.mark.asyncio
async def test_a_handler_timeout_cancels_the_handler_not_the_reader() -> None:
    async def impatient(message: dict[str, Any]) -> None:
        if sys.version_info >= (3, 11):  # mypy checks for 3.10 (where this test is skipped)
            async with asyncio.timeout(0.01):  # entered before the handler first waits
                await asyncio.sleep(5)

    async with local_server(numbered(4), pause=0.002) as url:
        ws = WebSocketClient(url, max_handlers=2)
        ws.register_handler("token_update", impatient)
        async with ws:
            await wait_until(lambda: ws.stats.handled == 4)
            assert ws.connected
    assert ws.tracker.errors == {"TimeoutError": 4}


# -- faults: disconnects, dead servers -----------------------------------------------------------


@pytest.mark.asyncio
async def test_dropped_connections_reconnect_and_resubscribe(exchange: ExchangeSimulator) -> None:
    exchange.configure(push_rate=200, ws_disconnect_every=25)
    async with make_client(exchange, reconnect_delay=0.01, rate_interval=0.1) as ws:
        await ws.subscribe(["SOL", "JUP"])
        got = await updates(ws, 100)
    stats = ws.stats
    assert len(got) == 100
    assert stats.reconnects >= 3 and stats.disconnects >= stats.reconnects
    assert ws.tracker.errors[ERR_DISCONNECT] == stats.disconnects
    gap = ws.tracker.stats(RECONNECT_GAP)
    assert gap.count == stats.reconnects and gap.max < 1.0
    assert ws.subscriptions == ["SOL", "JUP"]


@pytest.mark.asyncio
async def test_an_application_that_stops_answering_is_declared_dead(
    exchange: ExchangeSimulator,
) -> None:
    # The stall freezes the exchange's replies while its socket still answers
    # protocol pings: only application pings can tell.
    async with make_client(
        exchange, app_ping_interval=0.05, ping_timeout=0.2, reconnect_delay=0.01
    ) as ws:
        await ws.connect()
        await wait_until(lambda: ws.tracker.stats(WEBSOCKET_LATENCY, PING_TAG).count >= 1)
        exchange.configure(stall=0.6)
        started = time.perf_counter()
        await wait_until(lambda: ws.stats.reconnects >= 1, timeout=3.0)
        detected = time.perf_counter() - started
    assert ws.stats.ping_timeouts >= 1
    assert ws.tracker.errors[ERR_PING_TIMEOUT] == ws.stats.ping_timeouts
    assert detected < 0.2 + 0.05 + 0.5  # timeout + interval + slack, well under the stall


@pytest.mark.asyncio
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_a_frozen_server_is_detected_within_the_ping_timeout() -> None:
    with ExchangeSimulator() as frozen:
        ws = WebSocketClient(
            frozen.ws_url, token=frozen.token, ping_interval=0.1, ping_timeout=0.3, reconnect=False
        )
        await ws.connect()
        await wait_until(lambda: ws.tracker.stats(WEBSOCKET_LATENCY, "keepalive").count >= 1)
        assert frozen.pid is not None
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            started = time.perf_counter()
            with pytest.raises(WebSocketError, match="code 1006"):
                await ws.receive(5.0)
            detected = time.perf_counter() - started
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        await ws.close()
    assert ws.stats.ping_timeouts == 1 and ws.tracker.errors[ERR_PING_TIMEOUT] == 1
    # Within interval + timeout (plus slack); websockets' own keepalive would add
    # its close timeout (2 s here) before noticing.
    assert detected < 0.1 + 0.3 + 0.6


# -- loops ---------------------------------------------------------------------------------------


def test_a_client_belongs_to_the_loop_that_connected_it(exchange: ExchangeSimulator) -> None:
    ws = make_client(exchange)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ws.connect())
        with pytest.raises(WebSocketError, match="another event loop"):
            asyncio.run(ws.ping())

        async def updates_waiting() -> int:
            await ws.subscribe(["SOL"])
            for _ in range(500):  # up to 5 s
                if ws.stats.messages >= 2:  # nobody takes them: they wait for receive()
                    break
                await asyncio.sleep(0.01)
            return ws.stats.messages

        assert loop.run_until_complete(updates_waiting()) >= 2
        with pytest.raises(WebSocketError, match="another event loop"):
            asyncio.run(ws.receive())  # even with a message waiting
        ws.close_from_sync()
        assert ws.closed
        ws.close_from_sync()  # idempotent
    finally:
        loop.close()


def test_a_client_left_open_is_dropped_when_its_loop_shuts_down(
    exchange: ExchangeSimulator,
) -> None:
    async def forgetful() -> WebSocketClient:
        ws = make_client(exchange)
        await ws.subscribe(["SOL"])
        await ws.receive(kind="token_update")
        return ws  # never closed

    # pytest-asyncio < 1.0 leaves a fresh, never closed loop set after each test; asyncio.run
    # unsets it, and its collection would warn below: drop it first (not this test's loop).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.set_event_loop(None)
        gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ws = asyncio.run(forgetful())
        assert ws.closed
        with pytest.raises(WebSocketError):
            asyncio.run(ws.receive(kind="mystery", timeout=30))  # refused at once
        ws.close_from_sync()  # nothing left to do, no error
        del ws
        gc.collect()
    assert [str(w.message) for w in caught] == []


# -- the axiom_ws fixture, as users run it ------------------------------------------------------

USER_TESTS = """
import asyncio
import pytest

{mark}
async def test_function_loop(axiom_ws, axiom_tracker):
    await axiom_ws.subscribe(["SOL"])
    await axiom_ws.receive(kind="token_update")
    assert axiom_ws.tracker is axiom_tracker
    assert axiom_tracker.stats("websocket_latency", "delivery").count >= 1

@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop(axiom_ws, axiom_tracker):
    assert await axiom_ws.ping() > 0
    assert axiom_tracker.stats("websocket_latency", "ping").count == 1

@pytest.mark.asyncio(loop_scope="session")
async def test_session_loop(axiom_ws):
    await axiom_ws.subscribe(["BONK"])
    await axiom_ws.receive(kind="token_update")

@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop_again(axiom_ws):
    # a fresh client each test, in the same loop
    assert not axiom_ws.connected
    assert await axiom_ws.ping() > 0

def test_sync_test_never_connects(axiom_ws):
    assert not axiom_ws.connected
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_fixture_works_in_every_mode_and_loop_scope(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makeini(
        f"""
        [pytest]
        asyncio_mode = {mode}
        asyncio_default_fixture_loop_scope = function
        """
    )
    pytester.makepyfile(USER_TESTS.format(mark="@pytest.mark.asyncio" if mode == "strict" else ""))
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    assert "warning" not in result.stdout.str().lower()


def test_fixture_uses_the_configured_url_and_token(
    pytester: pytest.Pytester, exchange: ExchangeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", exchange.token)
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        """
    )
    pytester.makepyfile(
        f"""
        async def test_remote(axiom_ws, request):
            assert axiom_ws.url == {exchange.ws_url!r}
            assert await axiom_ws.ping() > 0
            assert "axiom_exchange" not in request.fixturenames
        """
    )
    result = pytester.runpytest_subprocess(f"--axiom-ws-url={exchange.ws_url}")
    result.assert_outcomes(passed=1)
    assert exchange.token not in result.stdout.str()


def test_fixture_latency_feeds_the_budget(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.latency_budget(metric="websocket_latency", p99="5s", min_samples=10)
        async def test_within(axiom_ws):
            await axiom_ws.subscribe(["SOL"])
            for _ in range(10):
                await axiom_ws.receive(kind="token_update")

        @pytest.mark.asyncio
        @pytest.mark.latency_budget(metric="websocket_latency", tag="ping", max="1us")
        async def test_over(axiom_ws):
            await axiom_ws.ping()
        """
    )
    result = user_project.runpytest_subprocess("--axiom-perf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_over*", "*websocket_latency*ping*max*"])


# -- servers that refuse, or accept and drop at once ---------------------------------------------


@contextlib.contextmanager
def server_thread(refuse_with: int | None = None) -> Iterator[tuple[str, list[float]]]:
    """A websockets server in a thread of its own (a user's run connects from another
    process): it answers each handshake HTTP ``refuse_with``, or accepts it and closes
    at once with code 4000. Yields its URL and the times of the handshakes it saw."""
    from websockets.http11 import Response

    seen: list[float] = []
    started: list[str] = []
    ready = threading.Event()
    stop: list[asyncio.Future[None]] = []

    def refuse(conn: ServerConnection, request: Any) -> Response | None:
        seen.append(time.monotonic())
        if refuse_with is None:
            return None
        return conn.respond(refuse_with, "refused by the test server\n")

    async def drop(conn: ServerConnection) -> None:
        await conn.close(4000, "go away")

    async def main() -> None:
        async with serve(drop, "127.0.0.1", 0, process_request=refuse) as server:
            started.append(f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/ws")
            stop.append(asyncio.get_running_loop().create_future())
            ready.set()
            await stop[0]

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5.0), "the test server did not start"
    loop = stop[0].get_loop()
    try:
        yield started[0], seen
    finally:
        loop.call_soon_threadsafe(stop[0].set_result, None)
        thread.join(5.0)


def test_a_server_that_drops_every_connection_gets_slower_reconnects_then_none(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        """
        import asyncio
        import os

        import pytest

        from pytest_axiomperf import WebSocketClient, WebSocketError


        @pytest.mark.asyncio
        async def test_backoff_is_not_reset_by_a_handshake(axiom_ws):
            await axiom_ws.connect()
            await asyncio.sleep(2.0)
            print("RECONNECTS", axiom_ws.stats.reconnects)


        @pytest.mark.asyncio
        async def test_a_send_on_a_dropped_connection_is_a_websocket_error(axiom_tracker):
            # Each send either goes out before the server's close, or raises ours: never
            # websockets' own ConnectionClosed. (Short backoff: the default one, growing
            # after every drop, would make the 20 sends wait ~17 s for reconnects.)
            ws = WebSocketClient(
                os.environ["WS_URL"], tracker=axiom_tracker,
                reconnect_delay=0.001, reconnect_max_delay=0.005, max_reconnect_attempts=None,
            )
            await ws.connect()
            errors = 0
            for _ in range(20):
                try:
                    await ws.subscribe(["SOL"])
                except WebSocketError as exc:
                    errors += 1
                    assert "connection lost while sending" in str(exc) or "reconnect" in str(exc)
                await asyncio.sleep(0.02)
            await ws.close()
            print("SEND ERRORS", errors, "RECONNECTED", ws.stats.reconnects)


        @pytest.mark.asyncio
        async def test_reconnects_are_capped(axiom_tracker):
            ws = WebSocketClient(
                os.environ["WS_URL"], tracker=axiom_tracker,
                reconnect_delay=0.001, reconnect_max_delay=0.002,
            )
            await ws.connect()
            with pytest.raises(WebSocketError, match="gave up after 10 reconnects"):
                await ws.receive(timeout=10)
            print("CAPPED", ws.stats.reconnects, dict(axiom_tracker.errors))
        """
    )
    with server_thread() as (url, seen):
        os.environ["WS_URL"] = url
        try:
            result = user_project.runpytest_subprocess(f"--axiom-ws-url={url}", "-s")
        finally:
            del os.environ["WS_URL"]
    result.assert_outcomes(passed=3)
    output = result.stdout.str()
    assert int(output.split("SEND ERRORS ")[1].split()[0]) >= 1
    # Reset after every handshake, the backoff made about 25 reconnects a second here; kept
    # growing (0.05 s doubling), 2 s allow at most 6.
    reconnects = int(output.split("RECONNECTS ")[1].split()[0])
    assert 1 <= reconnects <= 8
    assert "CAPPED 10 {'WebSocket disconnect': 11, 'WebSocket gave up reconnecting': 1}" in output
    sender = int(output.split("RECONNECTED ")[1].split()[0])
    # Every handshake the server saw is one the clients counted (a first connect each).
    assert len(seen) <= (reconnects + 1) + 11 + (sender + 1) + 2


def test_a_refused_handshake_is_counted_in_the_errors(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_refused(axiom_ws):
            await axiom_ws.ping()
        """
    )
    with server_thread(refuse_with=500) as (url, seen):
        result = user_project.runpytest_subprocess(
            "--axiom-perf", f"--axiom-ws-url={url}", "--axiom-perf-json=results.json", "-v"
        )
    result.assert_outcomes(failed=1)
    assert len(seen) == 1
    result.stdout.fnmatch_lines(
        [
            "*refused the WebSocket handshake with HTTP 500*",
            "*errors: 1 error: WebSocket connect failed 1",  # in the test's row
            "Error Rates (1 errors):",
            "*WebSocket connect failed: 1",
        ]
    )
    results = json.loads((user_project.path / "results.json").read_text())
    (test,) = results["tests"].values()
    assert test["errors"] == {"WebSocket connect failed": 1}
