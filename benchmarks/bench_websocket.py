"""Benchmark of WebSocketClient against the embedded exchange.

Run: ``python benchmarks/bench_websocket.py``. The exchange runs in its own
subprocess; every client runs in this process, one at a time, rounds interleaved.

1. Consumption rate: token_update messages/s taken from one connection (five
   token streams) pushed as fast as the exchange can (``push_rate=100000``),
   WebSocketClient with tracking on (a handler counting, and a ``receive()``
   loop) against bare ``websockets`` receive loops on the same settings.
   Goal: ratio >= 0.9 (part 4 measures it with the client as the slower side).
   Two figures per consumer: wall-clock msg/s, and msg per CPU-second of this
   process (``time.process_time``), which the other jobs sharing the machine
   disturb much less; ratios are of medians over interleaved rounds.
   At full speed, when the exchange is the slower side, a consumer that is
   slower per message gets more messages per wake-up and looks cheaper per
   CPU-second. ``--push-rate N`` (per token) runs this part at a fixed rate
   instead: every consumer keeps up and sees the same arrival pattern, but each
   message then also carries a share of the loop's wake-ups, which dilutes the
   differences (part 3 measures them without either effect).
2. The guide's table, live: "basic WebSocket" (websockets' default settings,
   JSON parsed in the reader, the handler awaited inline) against "optimized
   WebSocket" (WebSocketClient: no compression, handlers started as their
   message arrives and continued off the reader, 16 in flight), at a fixed
   push rate, with a handler doing 1 ms of async I/O (an order-book update
   sent on). Latency is timed the same way for both, in the handler: from the
   instant the exchange meant to push the update to the instant the bot's
   handler starts on it.
3. The client's own cost per message, the socket replaced by a replay of one
   exchange-like frame (``websockets``' ``connect`` swapped for a stand-in
   whose ``recv()`` returns it, giving the loop one turn every 1 or 8 frames as
   a socket with nothing more to read would): CPU microseconds per message of
   the bare ``json.loads(await ws.recv())`` loop, the handler path and the
   ``receive()`` path, on exactly the same arrival pattern. No network stack and
   no exchange: the rounds barely vary, and what the client adds per message is
   the difference. The ratio is stricter than part 1's (the replay's ``recv()``
   is cheaper than a real one, which both sides pay).

4. Consumption rate, the goal's measure with the client the slower side: a
   stream of token updates recorded from the exchange (as in part 1) is served
   by ``ws_stream_server.py`` in a subprocess, which writes the frames with
   blocking ``sendall`` at far less cost per message than any consumer takes,
   so every consumer always finds data waiting and reads it in the same large
   chunks: the same arrival pattern for all, and the rate is the consumer's
   own. Real sockets, real ``websockets`` parsing and flow control, the same
   settings for all (no compression, ``max_queue=64``). The bare loop that
   parses does it as a bot would, ``json.loads(await ws.recv())`` (a str:
   quicker for ``json.loads`` than bytes); a third bare loop also awaits a
   handler inline (the work of the handler path, without its hand-off: a
   handler that waits would stop that loop). Forty short rounds, the order
   rotated each round; the ratios are taken round by round, because this
   machine's speed drifts over seconds.

``--parts`` picks the parts to run (default ``1234``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.version import version as websockets_version

from pytest_axiomperf import WebSocketClient
from pytest_axiomperf.exchange import ExchangeSimulator

ROUNDS = 9
WARMUP = 2_000
MESSAGES = 20_000
TOKENS = ["SOL", "USDC", "BONK", "JUP", "WIF"]
PUSH_RATE = 100  # per token: 500 updates/s in all
TABLE_SECONDS = 6.0
HANDLER_IO = 0.001

# Epoch seconds on a monotonic clock, as the client computes them.
WALL_OFFSET = time.time() - time.perf_counter()


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def headers(exchange: ExchangeSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {exchange.token}"}


# -- 1. consumption rate ------------------------------------------------------------------


Rate = tuple[float, float]  # (msg per wall second, msg per CPU second)


def rate(start: tuple[float, float], count: int = MESSAGES) -> Rate:
    """``count`` messages' rates since ``start`` (from clocks())."""
    wall, cpu = start
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


async def bare_recv(exchange: ExchangeSimulator, parse: bool) -> Rate:
    """Rates of a bare websockets loop (optionally parsing JSON)."""
    async with connect(
        exchange.ws_url, additional_headers=headers(exchange), compression=None, proxy=None
    ) as ws:
        await ws.send(json.dumps({"type": "subscribe", "tokens": TOKENS}))
        for _ in range(WARMUP):
            await ws.recv()
        start = clocks()
        for _ in range(MESSAGES):
            if parse:
                json.loads(await ws.recv())  # a str: json.loads is quicker on it than on bytes
            else:
                await ws.recv(decode=False)
        return rate(start)


async def client_handler(exchange: ExchangeSimulator) -> Rate:
    """Rates at which WebSocketClient hands messages to a handler (tracking on)."""
    count = 0
    marks: dict[int, tuple[float, float]] = {}
    done = asyncio.Event()

    async def on_update(message: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if count in (WARMUP, WARMUP + MESSAGES):
            marks[count] = clocks()
            if count == WARMUP + MESSAGES:
                done.set()

    ws = WebSocketClient(exchange.ws_url, token=exchange.token, max_handlers=1)
    ws.register_handler("token_update", on_update)
    async with ws:
        await ws.subscribe(TOKENS)
        await asyncio.wait_for(done.wait(), 60)
    assert ws.stats.dropped == 0, ws.stats
    (wall0, cpu0), (wall1, cpu1) = marks[WARMUP], marks[WARMUP + MESSAGES]
    return MESSAGES / (wall1 - wall0), MESSAGES / (cpu1 - cpu0)


async def client_receive(exchange: ExchangeSimulator) -> Rate:
    """Rates of a receive() loop on WebSocketClient (tracking on)."""
    async with WebSocketClient(exchange.ws_url, token=exchange.token) as ws:
        await ws.subscribe(TOKENS)
        for _ in range(WARMUP):
            await ws.receive()
        start = clocks()
        for _ in range(MESSAGES):
            await ws.receive()
        rates = rate(start)
    assert ws.stats.dropped == 0, ws.stats
    return rates


# -- 2. the guide's table ------------------------------------------------------------------------


async def bot_work(message: dict[str, Any]) -> None:
    """The bot's handler: 1 ms of async I/O."""
    await asyncio.sleep(HANDLER_IO)


async def basic(exchange: ExchangeSimulator, samples: list[float]) -> None:
    """The guide's basic client: default settings, parse and handle inline."""
    async with connect(exchange.ws_url, additional_headers=headers(exchange), proxy=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "tokens": TOKENS}))
        end = time.perf_counter() + TABLE_SECONDS
        while time.perf_counter() < end:
            message = json.loads(await ws.recv())
            if message.get("type") == "token_update":
                samples.append(time.perf_counter() + WALL_OFFSET - message["timestamp"])
                await bot_work(message)


async def optimized(exchange: ExchangeSimulator, samples: list[float]) -> WebSocketClient:
    """WebSocketClient with handlers off the reader."""

    async def on_update(message: dict[str, Any]) -> None:
        samples.append(time.perf_counter() + WALL_OFFSET - message["timestamp"])
        await bot_work(message)

    ws = WebSocketClient(exchange.ws_url, token=exchange.token, max_handlers=16)
    ws.register_handler("token_update", on_update)
    async with ws:
        await ws.subscribe(TOKENS)
        await asyncio.sleep(TABLE_SECONDS)
    return ws


# -- 3. the client's own cost, on a replay ---------------------------------------------------

REPLAY_ROUNDS = 7
REPLAY_WARMUP = 5_000
REPLAY_MESSAGES = 50_000
FRAME = json.dumps(
    {
        "type": "token_update",
        "token": "SOL",
        "price": 142.123456789,
        "volume": 512.345,
        "timestamp": time.time(),
        "seq": 123456,
    }
).encode()


FRAME_TEXT = FRAME.decode()


class Replay:
    """Stands in for a websockets connection: ``recv()`` returns ``FRAME`` ``n`` times,
    giving the event loop a turn every ``burst`` frames, then waits until closed."""

    def __init__(self, n: int, burst: int) -> None:
        self.left = n
        self.burst = burst
        self.closed: asyncio.Future[None] | None = None

    async def recv(self, decode: bool | None = None) -> bytes | str:
        self.left -= 1
        if self.left < 0:  # a quiet socket: what was queued still reaches the handlers
            self.closed = asyncio.get_running_loop().create_future()
            await self.closed
            raise ConnectionClosed(Close(1000, "replay over"), None)
        if self.left % self.burst == 0:
            await asyncio.sleep(0)  # the socket has nothing more: wait for the next read
        return FRAME if decode is False else FRAME_TEXT  # a text frame, decoded by default

    async def send(self, message: str) -> None:
        return None

    async def close(self) -> None:
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)


def replayed(replay: Replay) -> AbstractContextManager[Any]:
    """WebSocketClient connects to ``replay`` instead of a server."""

    async def fake_connect(*args: Any, **kwargs: Any) -> Replay:
        return replay

    return mock.patch("pytest_axiomperf.websocket.connect", fake_connect)


def replay_client(**options: Any) -> WebSocketClient:
    return WebSocketClient("ws://replay.invalid/", ping_interval=None, reconnect=False, **options)


async def replay_bare(burst: int) -> float:
    """CPU seconds per message of a bare recv() + json.loads loop on the replay."""
    ws = Replay(REPLAY_WARMUP + REPLAY_MESSAGES, burst)
    for _ in range(REPLAY_WARMUP):
        json.loads(await ws.recv())
    start = time.process_time()
    for _ in range(REPLAY_MESSAGES):
        json.loads(await ws.recv())
    return (time.process_time() - start) / REPLAY_MESSAGES


async def replay_handler(burst: int) -> float:
    """CPU seconds per message of WebSocketClient's handler path on the replay."""
    count = 0
    marks: dict[int, float] = {}
    done = asyncio.Event()

    async def on_update(message: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if count in (REPLAY_WARMUP, REPLAY_WARMUP + REPLAY_MESSAGES):
            marks[count] = time.process_time()
            if count == REPLAY_WARMUP + REPLAY_MESSAGES:
                done.set()

    ws = replay_client(max_handlers=1)
    ws.register_handler("token_update", on_update)
    with replayed(Replay(REPLAY_WARMUP + REPLAY_MESSAGES, burst)):
        async with ws:
            await asyncio.wait_for(done.wait(), 60)
    assert ws.stats.dropped == 0, ws.stats
    return (marks[REPLAY_WARMUP + REPLAY_MESSAGES] - marks[REPLAY_WARMUP]) / REPLAY_MESSAGES


async def replay_receive(burst: int) -> float:
    """CPU seconds per message of a receive() loop on WebSocketClient on the replay."""
    with replayed(Replay(REPLAY_WARMUP + REPLAY_MESSAGES, burst)):
        async with replay_client() as ws:
            for _ in range(REPLAY_WARMUP):
                await ws.receive()
            start = time.process_time()
            for _ in range(REPLAY_MESSAGES):
                await ws.receive()
            cost = (time.process_time() - start) / REPLAY_MESSAGES
    assert ws.stats.dropped == 0, ws.stats
    return cost


async def replay_table() -> None:
    contenders: list[tuple[str, Callable[[int], Awaitable[float]]]] = [
        ("bare recv() + json", replay_bare),
        ("WebSocketClient handler", replay_handler),
        ("WebSocketClient receive", replay_receive),
    ]
    print(
        f"\n3. The client's own cost, socket replaced by a replay ({REPLAY_MESSAGES} messages "
        f"after {REPLAY_WARMUP} warm-up, {REPLAY_ROUNDS} interleaved rounds, median CPU us/msg)"
    )
    print(f"{'consumer':<26}{'per turn':>9}{'us/msg':>8}{'added':>8}{'vs +json':>9}   per round")
    for burst in (1, 8):
        costs: dict[str, list[float]] = {name: [] for name, _ in contenders}
        for _ in range(REPLAY_ROUNDS):
            for name, run in contenders:
                costs[name].append(await run(burst) * 1e6)
        bare = statistics.median(costs["bare recv() + json"])
        for name, _ in contenders:
            cost = statistics.median(costs[name])
            rounds = " ".join(f"{c:.2f}" for c in costs[name])
            print(
                f"{name:<26}{burst:>9}{cost:>8.2f}{cost - bare:>8.2f}{bare / cost:>9.2f}   {rounds}"
            )


# -- 4. consumption rate on a recorded stream served at full speed ---------------------------

# Short rounds, many of them: this machine's speed drifts by up to 2x over seconds
# (CPU time and wall time alike), so each round's ratios compare neighbours.
STREAM_ROUNDS = 40
STREAM_WARMUP = 2_000
STREAM_MESSAGES = 10_000
# The same websockets settings for every consumer: WebSocketClient's defaults.
STREAM_OPTIONS: dict[str, Any] = {
    "compression": None,
    "max_queue": 64,
    "ping_interval": None,
    "proxy": None,
}


async def record_stream(exchange: ExchangeSimulator, path: str) -> int:
    """Write the frames of a five-token stream of updates from the exchange to ``path``."""
    exchange.configure(push_rate=100_000)
    frames: list[bytes] = []
    async with connect(
        exchange.ws_url, additional_headers=headers(exchange), **STREAM_OPTIONS
    ) as ws:
        await ws.send(json.dumps({"type": "subscribe", "tokens": TOKENS}))
        while len(frames) < STREAM_WARMUP + STREAM_MESSAGES:
            payload = await ws.recv(decode=False)
            if json.loads(payload)["type"] == "token_update":  # not the subscription's answer
                frames.append(Frame(Opcode.TEXT, payload).serialize(mask=False))
    with open(path, "wb") as recording:
        recording.write(b"".join(frames))
    return sum(len(frame) for frame in frames)


async def stream_bare(url: str, parse: bool) -> Rate:
    """Rates of a bare websockets loop on the stream (parsing as a bot would, or not)."""
    async with connect(url, **STREAM_OPTIONS) as ws:
        for _ in range(STREAM_WARMUP):
            await ws.recv(decode=False)
        start = clocks()
        for _ in range(STREAM_MESSAGES):
            if parse:
                json.loads(await ws.recv())
            else:
                await ws.recv(decode=False)
        return rate(start, STREAM_MESSAGES)


async def stream_inline(url: str) -> Rate:
    """A bare loop that awaits a handler inline, as the guide's basic client does: the
    handler path's work without its hand-off (a handler that waits would stop it)."""
    count = 0

    async def on_update(message: dict[str, Any]) -> None:
        nonlocal count
        count += 1

    async with connect(url, **STREAM_OPTIONS) as ws:
        for _ in range(STREAM_WARMUP):
            await ws.recv(decode=False)
        start = clocks()
        for _ in range(STREAM_MESSAGES):
            await on_update(json.loads(await ws.recv()))
        rates = rate(start, STREAM_MESSAGES)
    assert count == STREAM_MESSAGES
    return rates


def stream_client(url: str, **options: Any) -> WebSocketClient:
    """A WebSocketClient for the stream server, which answers no pings and ends the stream."""
    return WebSocketClient(url, ping_interval=None, reconnect=False, **options)


def read_ahead(ws: WebSocketClient) -> int:
    """Messages the reader of ``ws`` took before the timed window, beyond the warm-up ones.

    The reader runs ahead of a consumer that falls behind (up to half a queue):
    that work is done before the window opens, so the window is credited only
    with the messages the reader took inside it.
    """
    return ws.stats.messages - STREAM_WARMUP


async def stream_handler(url: str) -> Rate:
    """Rates at which WebSocketClient hands the stream to a handler (tracking on)."""
    count = 0
    ahead = 0
    marks: dict[int, tuple[float, float]] = {}
    done = asyncio.Event()
    last = STREAM_WARMUP + STREAM_MESSAGES

    async def on_update(message: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if count in (STREAM_WARMUP, last):
            marks[count] = clocks()
            if count == STREAM_WARMUP:
                nonlocal ahead
                ahead = read_ahead(ws)
            if count == last:
                done.set()

    ws = stream_client(url, max_handlers=1)
    ws.register_handler("token_update", on_update)
    async with ws:
        await asyncio.wait_for(done.wait(), 60)
    assert ws.stats.dropped == 0 and ws.stats.handled == last, ws.stats
    (wall0, cpu0), (wall1, cpu1) = marks[STREAM_WARMUP], marks[last]
    taken = STREAM_MESSAGES - ahead
    return taken / (wall1 - wall0), taken / (cpu1 - cpu0)


async def stream_receive(url: str) -> Rate:
    """Rates of a receive() loop on WebSocketClient on the stream (tracking on)."""
    async with stream_client(url) as ws:
        for _ in range(STREAM_WARMUP):
            await ws.receive()
        ahead = read_ahead(ws)
        start = clocks()
        for _ in range(STREAM_MESSAGES):
            await ws.receive()
        rates = rate(start, STREAM_MESSAGES - ahead)
    assert ws.stats.dropped == 0, ws.stats
    return rates


async def stream_table(exchange: ExchangeSimulator) -> None:
    """Part 4: record the stream, serve it, race the consumers, print the table."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "stream.bin")
        size = await record_stream(exchange, path)
        server = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__), "ws_stream_server.py"), path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = f"ws://127.0.0.1:{server.stdout.readline().strip()}/"
            contenders: list[tuple[str, Callable[[], Awaitable[Rate]]]] = [
                ("bare recv()", lambda: stream_bare(url, parse=False)),
                ("bare recv() + json", lambda: stream_bare(url, parse=True)),
                ("bare + json + handler", lambda: stream_inline(url)),
                ("WebSocketClient handler", lambda: stream_handler(url)),
                ("WebSocketClient receive", lambda: stream_receive(url)),
            ]
            rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
            for turn in range(STREAM_ROUNDS):
                # A different order each round: no contender always follows the same one.
                shift = turn % len(contenders)
                for name, run in contenders[shift:] + contenders[:shift]:
                    rates[name].append((await run())[0])
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(10)
    count = STREAM_WARMUP + STREAM_MESSAGES
    print(
        f"\n4. Consumption rate on a recorded stream served at full speed ({count} frames "
        f"recorded from the exchange, {size / count:.0f} bytes each on average; "
        f"{STREAM_MESSAGES} timed after {STREAM_WARMUP}, {STREAM_ROUNDS} rounds, order rotated)"
    )
    print(
        f"{'consumer':<26}{'median':>9}{'best':>9}   ratio to bare recv() + json per round: "
        "median [quartiles], rounds >= 0.9"
    )
    reference = rates["bare recv() + json"]
    for name, samples in rates.items():
        ratios = [mine / bare for mine, bare in zip(samples, reference, strict=True)]
        q1, q2, q3 = statistics.quantiles(ratios, n=4)
        above = sum(ratio >= 0.9 for ratio in ratios)
        print(
            f"{name:<26}{statistics.median(samples):>9.0f}{max(samples):>9.0f}   "
            f"{q2:.2f} [{q1:.2f}, {q3:.2f}], {above}/{len(ratios)}"
        )


def print_rates(rates: dict[str, list[Rate]]) -> None:
    """The consumers' median rates, and their ratios to the two bare loops'."""
    print(
        f"{'consumer':<26}{'msg/s':>8}{'vs bare':>8}{'vs +json':>9}"
        f"{'msg/CPU-s':>11}{'vs bare':>8}{'vs +json':>9}   wall msg/s per round"
    )

    def medians(name: str) -> tuple[float, float]:
        return (
            statistics.median(r[0] for r in rates[name]),
            statistics.median(r[1] for r in rates[name]),
        )

    bare, bare_cpu = medians("bare recv()")
    bare_json, bare_json_cpu = medians("bare recv() + json")
    for name, samples in rates.items():
        wall, cpu = medians(name)
        rounds = " ".join(f"{r[0]:.0f}" for r in samples)
        print(
            f"{name:<26}{wall:>8.0f}{wall / bare:>8.2f}{wall / bare_json:>9.2f}"
            f"{cpu:>11.0f}{cpu / bare_cpu:>8.2f}{cpu / bare_json_cpu:>9.2f}   {rounds}"
        )


def row(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{name:<22}{len(ms):>7}{statistics.fmean(ms):>10.2f}{percentile(ms, 95):>10.2f}"
        f"{percentile(ms, 99):>10.2f}{max(ms):>10.2f}"
    )


async def consumption_table(exchange: ExchangeSimulator, push_rate: float) -> None:
    exchange.configure(push_rate=push_rate)
    contenders: list[tuple[str, Callable[[], Awaitable[Rate]]]] = [
        ("bare recv()", lambda: bare_recv(exchange, parse=False)),
        ("bare recv() + json", lambda: bare_recv(exchange, parse=True)),
        ("WebSocketClient handler", lambda: client_handler(exchange)),
        ("WebSocketClient receive", lambda: client_receive(exchange)),
    ]
    rates: dict[str, list[Rate]] = {name: [] for name, _ in contenders}
    for _ in range(ROUNDS):
        for name, run in contenders:
            rates[name].append(await run())
    print(
        f"\n1. Consumption rate, one connection, 5 tokens, push_rate={push_rate:g} "
        f"({MESSAGES} messages after {WARMUP} warm-up, {ROUNDS} interleaved rounds, median)"
    )
    print_rates(rates)


async def guide_table(exchange: ExchangeSimulator) -> None:
    exchange.configure(push_rate=PUSH_RATE)
    basic_samples: list[float] = []
    optimized_samples: list[float] = []
    await basic(exchange, basic_samples)
    client = await optimized(exchange, optimized_samples)
    print(
        f"\n2. Guide's table: {len(TOKENS)} tokens x {PUSH_RATE}/s = "
        f"{len(TOKENS) * PUSH_RATE} updates/s for {TABLE_SECONDS:g} s, handler = "
        f"{HANDLER_IO * 1000:g} ms async I/O; latency intended push -> handler start (ms)"
    )
    print(f"{'client':<22}{'n':>7}{'mean':>10}{'p95':>10}{'p99':>10}{'max':>10}")
    print(row("basic WebSocket", basic_samples))
    print(row("optimized WebSocket", optimized_samples))
    delivery = client.tracker.stats("websocket_latency", "delivery")
    print(
        f"optimized client's own tracker (intended push -> reader): n={delivery.count} "
        f"mean={delivery.mean * 1000:.2f} p95={delivery.p95 * 1000:.2f} "
        f"p99={delivery.p99 * 1000:.2f} ms; dropped={client.stats.dropped} "
        f"late={client.stats.late} max queue depth={client.stats.max_queue_depth}"
    )


async def main(push_rate: float, parts: str) -> None:
    print(
        f"python {sys.version.split()[0]}, websockets {websockets_version}, "
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    if "1" in parts or "2" in parts or "4" in parts:
        with ExchangeSimulator() as exchange:
            if "1" in parts:
                await consumption_table(exchange, push_rate)
            if "2" in parts:
                await guide_table(exchange)
            if "4" in parts:
                await stream_table(exchange)
    if "3" in parts:
        await replay_table()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--push-rate",
        type=float,
        default=100_000,
        help="updates/s per token in part 1 (default 100000: as fast as the exchange can)",
    )
    parser.add_argument("--parts", default="1234", help="the parts to run (default 1234)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.push_rate, arguments.parts))
