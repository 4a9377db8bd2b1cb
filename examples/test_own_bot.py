"""Measuring a bot's own clients: its aiohttp session and its websockets feed.

Run: ``pytest --axiom-perf examples/``. ``bot/own.py`` is written as for
production; the test hands it the venue under test (``axiom_target``: the
embedded exchange, or ``--axiom-base-url``/``--axiom-ws-url``) and two
instruments, and the budgets read what the bot itself did.
"""

import asyncio

import pytest
from bot.own import OwnBot

WALLETS = [f"So1wallet{i:03d}" for i in range(20)]


@pytest.mark.asyncio
# Twenty balances at once open twenty connections: the budget leaves room for that.
@pytest.mark.latency_budget(
    p95="200ms", metric="api_response_times", tag="GET /balance/{address}", min_samples=20
)
@pytest.mark.latency_budget(p99="80ms", metric="order_execution_times", min_samples=3)
@pytest.mark.latency_budget(
    p99="100ms", metric="websocket_latency", tag="delivery", min_samples=40
)
async def test_own_bot(axiom_exchange, axiom_target, axiom_tracker):
    axiom_exchange.configure(latency=0.01, jitter=0.003, seed=5, push_rate=40)
    feed = axiom_tracker.websockets_connect(timestamp="timestamp")
    bot = OwnBot(
        axiom_target.base_url,
        axiom_target.ws_url,
        axiom_target.headers(),
        trace_configs=[axiom_tracker.aiohttp_trace()],
        connect=feed,
    )
    try:
        balances = await bot.balances(WALLETS)
        assert len(balances) == len(WALLETS)
        await asyncio.wait_for(bot.follow(["SOL", "BONK", "WIF"], updates=40), timeout=15)
        for _ in range(3):  # and a few orders of its own, whatever the market did
            await bot.buy("SOL", 0.1)
    finally:
        await bot.close()
    assert feed.stats.timed >= 40
    assert axiom_tracker.stats("order_execution_times").count == len(bot.orders)
