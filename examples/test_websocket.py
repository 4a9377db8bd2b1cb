"""Stream token updates and hold their delivery latency to a budget.

Run with ``pytest --axiom-perf examples/``: against the embedded exchange by
default, or a real feed with ``--axiom-ws-url`` and ``AXIOM_AUTH_TOKEN``.
Delivery latency is timed from the instant the exchange meant to push each
update, so a stalled feed counts against the budget instead of hiding.
"""

import asyncio

import pytest

TOKENS = ["SOL", "USDC", "BONK", "JUP", "WIF"]


@pytest.mark.asyncio
@pytest.mark.latency_budget(
    metric="websocket_latency", tag="delivery", p95="50ms", p99="100ms", min_samples=50
)
@pytest.mark.latency_budget(metric="websocket_latency", tag="ping", p99="20ms", min_samples=10)
async def test_token_updates_arrive_quickly(axiom_ws):
    prices: dict[str, float] = {}
    enough = asyncio.Event()

    async def on_update(update):
        # The bot's logic runs off the reader: a slow handler cannot delay delivery.
        prices[update["token"]] = update["price"]
        if axiom_ws.stats.handled >= 49:
            enough.set()

    axiom_ws.register_handler("token_update", on_update)
    await axiom_ws.subscribe(TOKENS)  # one message for all five streams
    for _ in range(10):
        await axiom_ws.ping()  # application round trips
    await asyncio.wait_for(enough.wait(), timeout=10)
    assert set(prices) == set(TOKENS)
    assert axiom_ws.stats.dropped == 0
