"""Benchmark of the load generator against the embedded exchange.

Run: ``python benchmarks/bench_load.py``. The exchange runs in its own
subprocess; the generator and its aiohttp client (one pooled session) in this
process. Three tables, all measured in this one run:

1. Rate accuracy: the open model at 100, 500 and 1,000 req/s (1 s warmup, 5 s
   measured) on ``GET /health``. Goal: achieved rate within 2 % of the target,
   or the generator reports itself saturated.
2. Coordinated omission: the exchange stalls once for 1 s during a 10 s run.
   The open model at 100 req/s against a closed loop (one sequential client),
   side by side. Goal: the open model's p99 >= 0.9 s; the closed loop's p99
   does not show the stall.
3. The guide's throughput table: a basic sequential client (a new session per
   request, one request at a time) against the concurrent engine (one pooled
   session, 50 requests in flight), with 50 ms of injected server latency:
   average, peak and stable requests/s (per-second completion counts; stable
   is the median second after the first).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import aiohttp

from pytest_axiomperf.exchange import ExchangeSimulator
from pytest_axiomperf.load import LoadGenerator, LoadResult

RATES = (100, 500, 1000)
RATE_SECONDS = 5.0
STALL_RUN_SECONDS = 10.0
STALL_AT = 4.5
TABLE_SECONDS = 6.0
ENGINE_IN_FLIGHT = 50


def ms(seconds: float) -> str:
    """Seconds as milliseconds text."""
    return f"{seconds * 1000:9.2f}"


class Health:
    """``GET /health`` on one pooled session, created lazily in the running loop."""

    def __init__(self, exchange: ExchangeSimulator) -> None:
        self.url = f"{exchange.base_url}/health"
        self.headers = {"Authorization": f"Bearer {exchange.token}"}
        self.session: aiohttp.ClientSession | None = None

    async def get(self) -> None:
        if self.session is None:
            # aiohttp's default pool (100 connections): after a hiccup, a burst of overdue
            # calls queues for a connection instead of opening hundreds at once.
            self.session = aiohttp.ClientSession()
        async with self.session.get(self.url, headers=self.headers) as response:
            await response.read()
            response.raise_for_status()

    async def get_with_new_session(self) -> None:
        """The guide's basic client: a session (and connection) per request."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url, headers=self.headers) as response,
        ):
            await response.read()
            response.raise_for_status()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class Counted:
    """Wraps a call; counts completions per whole second since the first call."""

    def __init__(self, fn: Callable[[], Awaitable[None]]) -> None:
        self.fn = fn
        self.started: float | None = None
        self.done: Counter[int] = Counter()

    async def call(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()
        await self.fn()
        self.done[int(time.perf_counter() - self.started)] += 1


async def rate_accuracy(exchange: ExchangeSimulator, health: Health) -> list[str]:
    await asyncio.to_thread(exchange.reset)
    generator = LoadGenerator(progress=None)
    lines = [
        "1. Rate accuracy, open model, GET /health, 1 s warmup + 5 s measured",
        f"{'target':>8} {'achieved':>9} {'error':>7} {'sent/s':>8} {'ok':>6} {'drop':>5} "
        f"{'late':>5} {'p50 ms':>9} {'p99 ms':>9} {'lateP99':>9} {'cpu%':>5}  verdict",
    ]
    for rate in RATES:
        result = await generator.run(health.get, rate=rate, duration=RATE_SECONDS, warmup=1.0)
        error = (result.achieved_rate - rate) / rate
        if abs(error) <= 0.02 and not result.saturated:
            verdict = "within 2 %"
        elif result.saturated:
            verdict = "reported saturated"
        else:
            verdict = "MISSED (not reported)"
        lines.append(
            f"{rate:>8} {result.achieved_rate:>9.1f} {error:>+7.2%} {result.send_rate:>8.1f} "
            f"{result.completed:>6} {result.dropped:>5} {result.late:>5} "
            f"{ms(result.latency.p50)} {ms(result.latency.p99)} "
            f"{ms(result.generator.lateness_p99)} {result.generator.cpu_percent:>5.0f}  {verdict}"
        )
        if result.saturated:
            lines.append(f"         note: {result.generator.note}")
    return lines


async def coordinated_omission(exchange: ExchangeSimulator, health: Health) -> list[str]:
    generator = LoadGenerator(progress=None)
    runs: list[tuple[str, LoadResult]] = []
    for label, kwargs in (
        ("open, 100 req/s", {"rate": 100}),
        ("closed, 1 client", {"concurrency": 1}),
    ):
        await asyncio.to_thread(exchange.configure, stall=1.0, stall_after=STALL_AT)
        result = await generator.run(health.get, duration=STALL_RUN_SECONDS, **kwargs)  # type: ignore[arg-type]
        runs.append((label, result))
    await asyncio.to_thread(exchange.reset)
    lines = [
        f"2. Coordinated omission: one 1 s exchange stall {STALL_AT:g} s into a "
        f"{STALL_RUN_SECONDS:g} s run",
        f"{'model':<18} {'calls':>6} {'req/s':>8} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} "
        f"{'max ms':>9}  latency measured from",
    ]
    for label, result in runs:
        origin = "intended start" if result.model == "open" else "send (closed loop)"
        lines.append(
            f"{label:<18} {result.completed:>6} {result.achieved_rate:>8.1f} "
            f"{ms(result.latency.p50)} {ms(result.latency.p90)} {ms(result.latency.p99)} "
            f"{ms(result.latency.max)}  {origin}"
        )
    open_p99, closed_p99 = runs[0][1].latency.p99, runs[1][1].latency.p99
    lines.append(
        f"open p99 / closed p99 = {open_p99 / closed_p99:.0f}x; open p99 >= 0.9 s: "
        f"{'yes' if open_p99 >= 0.9 else 'NO'}"
    )
    return lines


async def throughput_table(exchange: ExchangeSimulator, health: Health) -> list[str]:
    await asyncio.to_thread(exchange.configure, latency=0.05)
    generator = LoadGenerator(progress=None)
    rows = []
    for label, fn, concurrency in (
        ("basic sequential client", health.get_with_new_session, 1),
        (f"concurrent engine ({ENGINE_IN_FLIGHT} in flight)", health.get, ENGINE_IN_FLIGHT),
    ):
        counted = Counted(fn)
        result = await generator.run(counted.call, concurrency=concurrency, duration=TABLE_SECONDS)
        seconds = [counted.done[s] for s in range(int(TABLE_SECONDS))]
        rows.append((label, result, seconds))
    await asyncio.to_thread(exchange.reset)
    base = rows[0][1].achieved_rate
    lines = [
        "3. The guide's throughput table, GET /health with 50 ms injected latency, "
        f"{TABLE_SECONDS:g} s each",
        f"{'client':<32} {'avg req/s':>10} {'peak':>8} {'stable':>8} {'p50 ms':>9} "
        f"{'errors':>7} {'ratio':>6}",
    ]
    for label, result, seconds in rows:
        lines.append(
            f"{label:<32} {result.achieved_rate:>10.1f} {max(seconds):>8} "
            f"{statistics.median(seconds[1:]):>8.1f} {ms(result.latency.p50)} "
            f"{result.failed:>7} {result.achieved_rate / base:>6.1f}"
        )
    lines.append("(guide: basic client 15 req/s, concurrent engine 85 req/s)")
    return lines


async def main() -> None:
    with ExchangeSimulator() as exchange:
        health = Health(exchange)
        try:
            await health.get()
            sections = [
                await rate_accuracy(exchange, health),
                await coordinated_omission(exchange, health),
                await throughput_table(exchange, health),
            ]
        finally:
            await health.close()
    print(
        f"aiohttp {aiohttp.__version__}, cpus {os.cpu_count()}, load average "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print("\n\n".join("\n".join(lines) for lines in sections))


if __name__ == "__main__":
    asyncio.run(main())
