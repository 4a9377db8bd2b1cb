"""Load tests: hold a rate open-loop, bound throughput, keep the order path fast under a flood.

Run with ``pytest --axiom-perf examples/test_load.py``. The first two tests use
stand-ins for a bot's operations; the last one loads the embedded exchange.
"""

import asyncio

import aiohttp
import pytest


async def place_order() -> None:
    """Stand-in for a bot's order call (5 ms round trip)."""
    await asyncio.sleep(0.005)


async def fetch_market_data() -> None:
    """Stand-in for a market-data request (20 ms)."""
    await asyncio.sleep(0.02)


@pytest.mark.asyncio
@pytest.mark.throughput_budget(min_rps=45, max_error_rate=0.01, max_dropped=0)
@pytest.mark.latency_budget(p99="100ms", metric="load_latency")
async def test_orders_hold_50_per_second(axiom_load):
    result = await axiom_load.run(place_order, rate=50, duration=2.0, warmup=0.2)
    assert result.model == "open"
    assert result.completed >= 90


@pytest.mark.asyncio
async def test_orders_first_under_a_market_data_flood(axiom_load):
    # Two workers serve 100 market-data requests/s (capacity ~100/s) plus 10 orders/s:
    # orders jump the queue, market data waits.
    result = await axiom_load.run_lanes(
        {"high": (place_order, 10), "low": (fetch_market_data, 100)},
        duration=2.0,
        workers=2,
    )
    assert result.lanes["high"].latency.p99 < result.lanes["low"].latency.p50


@pytest.mark.asyncio
@pytest.mark.throughput_budget(min_rps=95, max_error_rate=0.0, max_dropped=0)
async def test_exchange_serves_100_requests_per_second(axiom_exchange, axiom_load):
    headers = {"Authorization": f"Bearer {axiom_exchange.token}"}
    async with aiohttp.ClientSession(axiom_exchange.base_url, headers=headers) as session:

        async def health():
            async with session.get("/health") as response:
                response.raise_for_status()

        # target= is checked: only loopback or the configured --axiom-base-url is allowed.
        result = await axiom_load.run(
            health, rate=100, duration=2.0, warmup=0.5, target=axiom_exchange.base_url
        )
    assert result.latency.p99 < 0.5, result.summary()


class OrderGateway:
    """Stand-in for a bot's order path behind a pool of 4 connections, 20 ms per order:
    200 orders/s at most, by construction."""

    def __init__(self) -> None:
        self.pool = asyncio.Semaphore(4)

    async def place_order(self) -> None:
        async with self.pool:
            await asyncio.sleep(0.02)


@pytest.mark.asyncio
@pytest.mark.throughput_budget(max_error_rate=0.0, max_dropped=0)
async def test_orders_through_a_ramp(axiom_load):
    # k6's ramping arrival rate: 0 -> 100/s over 1 s, then 100/s for 1 s.
    result = await axiom_load.run(
        OrderGateway().place_order, stages=[(1.0, 100), (1.0, 100)], name="ramp"
    )
    ramp, hold = result.stages
    assert ramp.asked_rate == 50 and hold.asked_rate == 100
    assert hold.achieved_rate >= 90
    assert hold.latency.p99 < 0.2, result.summary()


@pytest.mark.asyncio
async def test_order_path_capacity(axiom_load):
    # Step 50, 100, 150, ... orders/s, 0.5 s each, until p95 passes 100 ms or the path
    # falls behind: the report prints the whole curve.
    found = await axiom_load.find_capacity(
        OrderGateway().place_order, start=50, step=50, max_rate=400, hold=0.5, p95="100ms"
    )
    assert found.capacity is not None and 100 <= found.capacity <= 200, found.summary()
