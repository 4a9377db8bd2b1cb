"""The example bot under budgets: per endpoint, on order execution, on WebSocket delivery.

Run: ``pytest --axiom-perf examples/``. The bot (``examples/bot``) talks to the
embedded exchange through ``axiom_exchange``; every request and every pushed
update lands in the test's tracker, so the budgets below read real traffic.
"""

import pytest
import pytest_asyncio
from bot import NaiveBot, TradingBot

WALLETS = [f"So1wallet{i:03d}" for i in range(30)]
TOKENS = ["SOL", "USDC", "BONK", "JUP", "WIF"]


@pytest.fixture
def venue(axiom_exchange):
    """The exchange with a realistic network: 10 ms +- 3 ms, repeatable, 20 pushes/s/token."""
    axiom_exchange.configure(latency=0.01, jitter=0.003, seed=11, push_rate=20)
    return axiom_exchange


@pytest_asyncio.fixture
async def bot(venue, axiom_tracker):
    trading_bot = TradingBot(venue.base_url, venue.ws_url, venue.token, tracker=axiom_tracker)
    yield trading_bot
    await trading_bot.close()


@pytest.mark.asyncio
@pytest.mark.latency_budget(
    p95="60ms", metric="api_response_times", tag="GET /balance/{address}", min_samples=30
)
@pytest.mark.latency_budget(p99="80ms", metric="order_execution_times", min_samples=10)
async def test_balances_and_orders(bot):
    await bot.start(TOKENS)
    balances = await bot.balances(WALLETS, limit=10)
    assert len(balances) == len(WALLETS)
    for _ in range(10):
        order = await bot.buy("SOL", 0.5)
        assert order["status"] == "filled"


@pytest.mark.asyncio
@pytest.mark.latency_budget(
    metric="websocket_latency", tag="delivery", p95="50ms", p99="80ms", min_samples=100
)
async def test_price_stream_is_fresh(bot):
    await bot.start(TOKENS)  # 5 tokens x 20 pushes/s
    await bot.wait_for_updates(100)
    assert set(bot.prices) == set(TOKENS)
    assert all(len(p) <= bot.history for p in bot.prices.values())


@pytest.mark.xfail(
    "axiom_perf",  # budgets are enforced in performance mode only
    strict=True,
    reason="the naive bot handles each update inline (15 ms of work at 100 updates/s): "
    "updates queue behind the strategy and arrive late",
)
@pytest.mark.asyncio
@pytest.mark.latency_budget(metric="websocket_latency", tag="delivery", p95="50ms", min_samples=100)
async def test_naive_bot_falls_behind(venue, axiom_tracker):
    naive = NaiveBot(venue.base_url, venue.ws_url, venue.token, tracker=axiom_tracker, work=0.015)
    await naive.start(TOKENS)
    try:
        await naive.wait_for_updates(100)
    finally:
        await naive.close()
