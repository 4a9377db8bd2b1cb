"""What the instruments for a bot's own clients cost the bot.

Run: ``python benchmarks/bench_instruments.py [--quick] [--parts 1,2]``.

1. aiohttp: requests/s of a bare ``aiohttp.ClientSession`` against the same
   session with ``tracker.aiohttp_trace()`` in its ``trace_configs``, against
   the embedded exchange (its own process, 127.0.0.1), one request at a time and
   20 in flight. Many short rounds alternate the two (AB BA AB ...), each round
   sends the same requests; the ratio is traced/bare of adjacent rounds, its
   median reported with the range, and the client's CPU per request (process
   time: the exchange runs in another process). Goal: ratio >= 0.95.
2. websockets: messages/s a bot's ``json.loads(await ws.recv())`` loop takes
   from the stream of ``bench_websocket.py`` part 4 (recorded from the exchange,
   served by ``ws_stream_server.py`` faster than any consumer reads), with a
   bare ``websockets.asyncio.client.connect`` against
   ``tracker.websockets_connect()`` timing delivery from each message's
   ``timestamp``. Alternating rounds, median ratio. Goal: ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from pytest_axiomperf import PerformanceTracker
from pytest_axiomperf.exchange import ExchangeSimulator

HERE = Path(__file__).resolve().parent


async def drive(
    request: Callable[[int], Awaitable[None]], total: int, in_flight: int
) -> tuple[float, float]:
    """Send ``total`` requests, ``in_flight`` at a time: (requests/s, client CPU us/request)."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await request(i)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return total / wall, cpu / total * 1e6


def session(headers: dict[str, str], traces: list[aiohttp.TraceConfig]) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=50, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=connector, headers=headers, trace_configs=traces)


async def aiohttp_part(total: int, rounds: int) -> list[str]:
    lines = ["1. aiohttp: a bare ClientSession vs the same with tracker.aiohttp_trace()"]
    lines.append(
        f"   {total} GET /balance/{{address}} per round, {rounds} rounds each, interleaved"
    )
    lines.append(
        "   in flight   bare req/s   traced req/s   ratio (median)   ratio range   "
        "CPU us/req bare  traced"
    )
    with ExchangeSimulator() as exchange:
        headers = {"Authorization": f"Bearer {exchange.token}"}
        base = exchange.base_url
        tracker = PerformanceTracker("bench")
        bare = session(headers, [])
        traced = session(headers, [tracker.aiohttp_trace()])

        def getter(s: aiohttp.ClientSession) -> Callable[[int], Awaitable[None]]:
            async def get(i: int) -> None:
                async with s.get(f"{base}/balance/So1wallet{i % 50}") as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")

            return get

        try:
            for in_flight in (1, 20):
                # Warm both pools and the exchange before timing.
                await drive(getter(bare), 200, in_flight)
                await drive(getter(traced), 200, in_flight)
                bare_runs: list[tuple[float, float]] = []
                traced_runs: list[tuple[float, float]] = []
                for r in range(rounds):
                    pair = [(bare, bare_runs), (traced, traced_runs)]
                    for s, runs in pair if r % 2 == 0 else pair[::-1]:
                        runs.append(await drive(getter(s), total, in_flight))
                ratios = [t[0] / b[0] for t, b in zip(traced_runs, bare_runs, strict=True)]
                lines.append(
                    f"   {in_flight:>9}   {statistics.median(r[0] for r in bare_runs):>10,.0f}   "
                    f"{statistics.median(r[0] for r in traced_runs):>12,.0f}   "
                    f"{statistics.median(ratios):>14.3f}   "
                    f"{min(ratios):.3f}-{max(ratios):.3f}   "
                    f"{statistics.median(r[1] for r in bare_runs):>15.1f}  "
                    f"{statistics.median(r[1] for r in traced_runs):>6.1f}"
                )
        finally:
            await bare.close()
            await traced.close()
        recorded = tracker.stats("api_response_times", "GET /balance/{address}").count
        lines.append(f"   (the trace recorded {recorded:,} requests: every traced one)")
    return lines


async def stream_loop(connect: Callable[..., Any], url: str) -> tuple[float, float]:
    """A bot's loop, ``json.loads(await ws.recv())``, on the recorded stream:
    (messages per second, per CPU second)."""
    import bench_websocket as bw

    async with connect(url, **bw.STREAM_OPTIONS) as ws:
        for _ in range(bw.STREAM_WARMUP):
            await ws.recv()
        start = bw.clocks()
        for _ in range(bw.STREAM_MESSAGES):
            json.loads(await ws.recv())
        return bw.rate(start, bw.STREAM_MESSAGES)  # type: ignore[no-any-return]


async def websockets_part(rounds: int) -> list[str]:
    import bench_websocket as bw
    from websockets.asyncio.client import connect

    tracker = PerformanceTracker("bench")
    measured = tracker.websockets_connect(timestamp="timestamp")
    with ExchangeSimulator() as exchange, tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "stream.bin")
        await bw.record_stream(exchange, path)
        server = subprocess.Popen(
            [sys.executable, str(HERE / "ws_stream_server.py"), path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = f"ws://127.0.0.1:{server.stdout.readline().strip()}/"
            bare_rates: list[tuple[float, float]] = []
            measured_rates: list[tuple[float, float]] = []
            for r in range(rounds):
                pair = [(connect, bare_rates), (measured, measured_rates)]
                for c, rates in pair if r % 2 == 0 else pair[::-1]:
                    rates.append(await stream_loop(c, url))
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(10)
            if server.stdout is not None:
                server.stdout.close()
    ratios = [m[0] / b[0] for m, b in zip(measured_rates, bare_rates, strict=True)]
    cpu_ratios = [m[1] / b[1] for m, b in zip(measured_rates, bare_rates, strict=True)]
    return [
        "2. websockets: a bot's json.loads(await ws.recv()) loop on bench_websocket.py's "
        "recorded stream (part 4)",
        f"   {bw.STREAM_MESSAGES} messages timed per round, {rounds} rounds, AB BA ...",
        "   bare msg/s   measured msg/s   ratio (median)   ratio range   "
        "per CPU-s: ratio (median)",
        f"   {statistics.median(r[0] for r in bare_rates):>10,.0f}   "
        f"{statistics.median(r[0] for r in measured_rates):>14,.0f}"
        f"   {statistics.median(ratios):>14.3f}   {min(ratios):.3f}-{max(ratios):.3f}"
        f"   {statistics.median(cpu_ratios):>25.3f}",
        f"   (delivery latency recorded for "
        f"{tracker.stats('websocket_latency', 'delivery').count:,} messages)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter rounds")
    parser.add_argument("--parts", default="1,2", help="which parts to run, e.g. 1 or 1,2")
    args = parser.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench_instruments.py, {stamp}, Python {sys.version.split()[0]}")
    if 1 in parts:
        total, rounds = (300, 4) if args.quick else (500, 30)
        print("\n".join(asyncio.run(aiohttp_part(total, rounds))))
    if 2 in parts:
        print("\n".join(asyncio.run(websockets_part(4 if args.quick else 20))))


if __name__ == "__main__":
    main()
