"""The smallest performance test: time an async call, give it a latency budget."""

import asyncio

import pytest


async def fetch_price(token: str) -> float:
    """Stand-in for a bot's market-data call."""
    await asyncio.sleep(0.005)
    return 1.0


@pytest.mark.asyncio
@pytest.mark.latency_budget(p95="50ms", min_samples=20)
async def test_price_fetch_is_fast(axiom_tracker):
    for _ in range(20):
        price = await axiom_tracker.track_api_call(fetch_price, "SOL")
        assert price > 0
