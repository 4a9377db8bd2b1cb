"""Benchmark of the embedded exchange: latency accuracy, REST capacity, push rate.

Run: ``python benchmarks/bench_exchange.py``. Everything is measured in one run,
the servers each in their own subprocess, the client in this process:

1. Accuracy: ``configure(latency=0.05, push_rate=100)``; client-side latency of
   REST requests and of WebSocket pushes (receive time minus the intended send
   time). Goal: p50 within +5 ms of 50 ms, p99 within +15 ms.
2. Capacity: requests/s at zero injected latency, the exchange against a bare
   aiohttp "hello" server, same client, rounds interleaved. Goal: ratio >= 0.8.
3. Push rate: ``token_update`` messages/s received by one subscriber.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

from pytest_axiomperf.exchange import ExchangeSimulator

HELLO_SERVER = """
import asyncio
from aiohttp import web

async def hello(request):
    return web.Response(text="hello")

async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    print(f"http://{host}:{port}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

IN_FLIGHT = 50
ROUND_SECONDS = 2.0
ROUNDS = 3


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    """Seconds as milliseconds text."""
    return f"{seconds * 1000:8.2f}"


async def rest_latencies(exchange: ExchangeSimulator, n: int, workers: int) -> list[float]:
    """`n` GET /health latencies from `workers` sequential clients sharing one session."""
    headers = {"Authorization": f"Bearer {exchange.token}"}
    samples: list[float] = []
    async with aiohttp.ClientSession(exchange.base_url) as session:

        async def worker(count: int) -> None:
            for _ in range(count):
                start = time.perf_counter()
                async with session.get("/health", headers=headers) as response:
                    await response.read()
                samples.append(time.perf_counter() - start)

        async with session.get("/health", headers=headers) as response:  # warm the pool
            await response.read()
        await asyncio.gather(*(worker(n // workers) for _ in range(workers)))
    return samples


async def push_latencies(exchange: ExchangeSimulator, n: int) -> list[float]:
    """Receive time minus intended send time of `n` token updates."""
    headers = {"Authorization": f"Bearer {exchange.token}"}
    samples: list[float] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(exchange.ws_url, headers=headers) as ws,
    ):
        await ws.send_json({"type": "subscribe", "tokens": ["SOL"]})
        while len(samples) < n:
            message = await ws.receive_json()
            if message["type"] == "token_update":
                samples.append(time.time() - message["timestamp"])
    return samples


async def throughput(url: str, headers: dict[str, str], seconds: float) -> float:
    """Requests/s served to IN_FLIGHT concurrent loops on one pooled session."""
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    count = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(IN_FLIGHT)))
        return count / (time.perf_counter() - start)


async def pushes_per_second(exchange: ExchangeSimulator, tokens: int, seconds: float) -> float:
    """token_update messages/s one subscriber receives, `tokens` streams flat out."""
    exchange.configure(push_rate=100_000)
    headers = {"Authorization": f"Bearer {exchange.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(exchange.ws_url, headers=headers, max_msg_size=0) as ws,
    ):
        await ws.send_json({"type": "subscribe", "tokens": [f"T{i}" for i in range(tokens)]})
        await ws.receive()
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            await ws.receive()
            count += 1
        rate = count / (time.perf_counter() - start)
    exchange.reset()
    return rate


def start_hello() -> tuple[subprocess.Popen[str], str]:
    """The bare aiohttp server, in its own process; returns it and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", HELLO_SERVER], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip() + "/"


async def compare_capacity(
    contenders: dict[str, Callable[[], Awaitable[float]]],
) -> dict[str, list[float]]:
    """Interleaved rounds of each contender; returns req/s per round."""
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            results[name].append(await run())
    return results


async def main() -> None:
    """Run the three measurements and print the tables."""
    print(f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, cpus {os.cpu_count()}")
    hello, hello_url = start_hello()
    try:
        with ExchangeSimulator() as exchange:
            exchange.configure(latency=0.05, push_rate=100)
            rest = await rest_latencies(exchange, 600, 10)
            push = await push_latencies(exchange, 300)
            exchange.reset()
            print("\n1. Accuracy, configure(latency=0.05, push_rate=100) (ms; over = p - 50 ms)")
            print(
                f"{'path':<24}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"
                f"{'p50 over':>10}{'p99 over':>10}"
            )
            for name, samples in [("REST GET /health", rest), ("WS token_update", push)]:
                p50, p90, p99 = (percentile(samples, q) for q in (50, 90, 99))
                print(
                    f"{name:<24}{len(samples):>6}{ms(p50)}{ms(p90)}{ms(p99)}"
                    f"{ms(max(samples))}{ms(p50 - 0.05):>10}{ms(p99 - 0.05):>10}"
                )

            auth = {"Authorization": f"Bearer {exchange.token}"}
            contenders: dict[str, Callable[[], Awaitable[float]]] = {
                "bare aiohttp GET /": lambda: throughput(hello_url, {}, ROUND_SECONDS),
                "exchange GET /health": lambda: throughput(
                    exchange.base_url + "/health", auth, ROUND_SECONDS
                ),
                "exchange GET /balance/A": lambda: throughput(
                    exchange.base_url + "/balance/Wallet1", auth, ROUND_SECONDS
                ),
            }
            capacity = await compare_capacity(contenders)
            base = statistics.median(capacity["bare aiohttp GET /"])
            print(
                f"\n2. Capacity at zero latency ({IN_FLIGHT} in flight, {ROUNDS} interleaved "
                f"rounds of {ROUND_SECONDS:g} s, median)"
            )
            print(f"{'server':<26}{'req/s':>10}{'ratio':>8}   rounds")
            for name, rates in capacity.items():
                rate = statistics.median(rates)
                rounds = " ".join(f"{r:.0f}" for r in rates)
                print(f"{name:<26}{rate:>10.0f}{rate / base:>8.2f}   {rounds}")

            print("\n3. Push rate to one subscriber (push_rate=100000, 3 s)")
            print(f"{'streams':<26}{'updates/s':>10}")
            for tokens in (1, 10):
                rate = await pushes_per_second(exchange, tokens, 3.0)
                print(f"{tokens:<26}{rate:>10.0f}")
    finally:
        hello.terminate()
        hello.wait(5)


if __name__ == "__main__":
    asyncio.run(main())
