"""The exchange's event loop, whose timers wake on time (a timerfd in its epoll set).

asyncio's own loop on Linux rounds every timed wait up to whole milliseconds;
these tests check that sub-millisecond waits of the exchange's loop are ended
by its timer instead (counted, not timed), that the loop does not spin, and
that the exchange's scenarios run on it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import select
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from pytest_axiomperf.exchange import clock
from pytest_axiomperf.exchange.app import create_app
from pytest_axiomperf.exchange.core import ARRIVED, STATE
from pytest_axiomperf.exchange.director import ScenarioDirector
from pytest_axiomperf.exchange.scenario import Scenario, constant

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


@linux
def test_the_timer_fires_once_armed_and_rearming_clears_it() -> None:
    timer = clock.TimerFd()
    try:
        assert not _readable(timer.fd, 0.0)
        timer.arm(0.0002)
        assert _readable(timer.fd, 5.0)
        # Re-arming clears the expiry: a wait that could block is not cut short by it.
        timer.arm(60.0)
        assert not _readable(timer.fd, 0.0)
        timer.disarm()
        assert not _readable(timer.fd, 0.05)
    finally:
        timer.close()


@linux
def test_sub_millisecond_sleeps_are_ended_by_the_timer() -> None:
    async def sleeps() -> int | None:
        loop = asyncio.get_running_loop()
        before = clock.timer_wakes(loop)
        assert before is not None
        for _ in range(20):
            await asyncio.sleep(0.0003)
        after = clock.timer_wakes(loop)
        assert after is not None
        return after - before

    # asyncio's own loop would wait in epoll for a whole millisecond each time; here the
    # timer ends the waits (a wait is not armed only if the sleep was already due).
    woken = clock.run(sleeps())
    assert woken is not None and woken >= 15


def test_asyncio_s_own_loop_is_not_reported_precise() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert clock.timer_wakes(loop) is None
    finally:
        loop.close()


@linux
def test_the_loop_sleeps_between_timers_and_io() -> None:
    """A fired timer is cleared: neither a timed wait nor a wait for I/O alone spins."""

    async def idle() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.0002)  # the timer fires and is disarmed
        cpu = time.process_time()
        await asyncio.sleep(0.3)
        woken: asyncio.Future[None] = loop.create_future()
        timer = threading.Timer(0.3, loop.call_soon_threadsafe, (woken.set_result, None))
        timer.start()
        await asyncio.wait_for(woken, 10)  # no timer due but wait_for's: mostly I/O
        timer.join(10)
        return time.process_time() - cpu

    # Spinning for 0.6 s would use about 0.6 s of CPU; sleeping uses a few ms.
    assert clock.run(idle()) < 0.2


def test_run_returns_the_result_and_closes_the_loop() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> str:
        seen.append(asyncio.get_running_loop())
        return "done"

    assert clock.run(main()) == "done"
    assert seen[0].is_closed()
    if sys.platform.startswith("linux"):
        assert clock.timer_wakes(seen[0]) is not None


@linux
def test_a_fast_replay_is_played_by_the_timer_not_in_batches(tmp_path: Path) -> None:
    """At 10x, a feed recorded 5 ms apart is due every 0.5 ms: each message waits for its
    own time, and the timer (not a 1 ms epoll wait, which would leave two at a time) ends
    the waits."""
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "".join(
            f'{{"t": {i * 0.005:.3f}, "message": {{"room": "r", "n": {i}}}}}\n' for i in range(40)
        )
    )

    async def play() -> tuple[int, dict[str, object]]:
        loop = asyncio.get_running_loop()
        state = create_app("token")[STATE]
        state.apply(state.model.profile)
        director = ScenarioDirector(state, Scenario.build(replay=feed, speed=10.0))
        before = clock.timer_wakes(loop)
        director.begin()
        await asyncio.sleep(director.duration + 0.05)
        after = clock.timer_wakes(loop)
        director.stop()
        assert before is not None and after is not None
        return after - before, director.summary()

    woken, summary = clock.run(play())
    assert summary["sent"] == 40 and summary["precise_timers"] is True
    # Counted, not timed: the waits were the timer's (a quarter at least, whatever the
    # machine's load; asyncio's own loop has none).
    assert woken >= 10


def test_the_exchange_reports_timers_that_wake_on_time() -> None:
    from pytest_axiomperf.exchange import ExchangeSimulator

    with ExchangeSimulator() as exchange:
        exchange.scenario(listings=constant(rate=100, duration=0.05))
        summary = exchange.reactions(end=True)
    assert summary["precise_timers"] is sys.platform.startswith("linux")


@linux
def test_the_loop_knows_when_bytes_arrived_before_it_reads_them() -> None:
    """Work queued before a socket's reader delays the read, not the time its bytes were seen."""
    left, right = socket.socketpair()

    async def main() -> tuple[float, float | None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[float, float | None]] = loop.create_future()

        def read() -> None:
            started = loop.time()
            left.recv(16)
            done.set_result((started, clock.read_at(loop, left.fileno())))

        right.send(b"order")
        loop.call_soon(time.sleep, 0.05)  # runs first in the iteration that sees the bytes
        loop.add_reader(left.fileno(), read)
        try:
            return await asyncio.wait_for(done, 10)
        finally:
            loop.remove_reader(left.fileno())

    try:
        read_started, seen = clock.run(main())
    finally:
        left.close()
        right.close()
    assert seen is not None and read_started - seen >= 0.045


@linux
def test_an_order_arrives_when_its_bytes_reached_the_exchange() -> None:
    """The venue's arrival stamp is when its loop saw the request's bytes, not when it got
    round to routing them (here 50 ms of other work later)."""
    token = "t0ken"
    sending, sent = threading.Event(), threading.Event()
    answers: list[dict[str, float]] = []
    busy_ended: list[float] = []

    async def probe(request: web.Request) -> web.Response:
        now = asyncio.get_running_loop().time()
        return web.json_response({"arrived": request[ARRIVED], "now": now})

    def client(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            # The first opens the connection; the second is sent while the loop is busy.
            connection.request("GET", "/probe", headers=headers)
            answers.append(json.loads(connection.getresponse().read()))
            if not sending.wait(10):
                return
            connection.request("GET", "/probe", headers=headers)
            sent.set()
            answers.append(json.loads(connection.getresponse().read()))
        finally:
            connection.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        app = create_app(token)
        app.router.add_get("/probe", probe)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            thread = threading.Thread(target=client, args=(port,), daemon=True)
            thread.start()
            for _ in range(1000):
                if answers:
                    break
                await asyncio.sleep(0.01)

            def busy() -> None:
                sending.set()
                sent.wait(10)  # the request's bytes are there while the loop is busy...
                loop.call_soon(time.sleep, 0.05)  # ...and read after 50 ms of other work
                busy_ended.append(loop.time())

            loop.call_soon(busy)
            await loop.run_in_executor(None, thread.join, 10)
        finally:
            await runner.cleanup()

    clock.run(main())
    assert len(answers) == 2 and len(busy_ended) == 1
    assert answers[1]["now"] - answers[1]["arrived"] >= 0.045
    # Stamped by the wait after the busy callback, not taken from an earlier read of the
    # same connection (the first request's).
    assert answers[1]["arrived"] >= busy_ended[0]
