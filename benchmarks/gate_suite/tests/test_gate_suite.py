"""The user suite of bench_gate_runs.py: a decision path, a REST order path, a feed handler."""

from __future__ import annotations

import asyncio

import gatebot
import pytest


def test_decision_path(axiom_tracker):
    for _ in range(400):
        with axiom_tracker.measure("decision_times"):
            gatebot.decide(gatebot.UPDATE)


@pytest.mark.asyncio
async def test_order_path(axiom_client, axiom_tracker):
    # The bot's own work (about 3 ms) dominates the loopback round trip (0.6-1.1 ms here)
    # inside the span: 30 % more code is about +22-25 % in the metric.
    for _ in range(100):
        async with axiom_tracker.measure("order_path"):
            signal = gatebot.decide(gatebot.UPDATE, passes=5000)
            order = await axiom_client.post(
                "/orders", json={"token": "SOL", "side": signal, "amount": 1}
            )
            assert order.status == 201


@pytest.mark.asyncio
async def test_feed_handler(axiom_exchange, axiom_ws, axiom_tracker):
    axiom_exchange.configure(push_rate=600)
    handled = asyncio.Event()
    count = 0

    async def on_update(update):
        nonlocal count
        with axiom_tracker.measure("feed_handler"):
            gatebot.decide(gatebot.UPDATE, passes=200)
        count += 1
        if count >= 300:
            handled.set()

    axiom_ws.register_handler("token_update", on_update)
    await axiom_ws.subscribe(["SOL"])
    await asyncio.wait_for(handled.wait(), timeout=20)
