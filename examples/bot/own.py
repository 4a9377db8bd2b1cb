"""A bot written the way bots are written: its own aiohttp session, its own websockets feed.

Nothing in it knows about pytest-axiomperf. It takes what a production bot is
configured with (URLs, headers), and two optional hooks such code usually has:
``trace_configs`` for its session and ``connect`` for its feed.
``examples/test_own_bot.py`` passes ``axiom_tracker.aiohttp_trace()`` and
``axiom_tracker.websockets_connect()`` there, and the bot is measured as it runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
from websockets.asyncio.client import connect as websockets_connect


class OwnBot:
    """Follows token prices and buys a token whose price dips below its running mean."""

    def __init__(
        self,
        base_url: str,
        ws_url: str,
        headers: Mapping[str, str],
        *,
        trace_configs: Iterable[aiohttp.TraceConfig] = (),
        connect: Callable[..., Any] = websockets_connect,
    ) -> None:
        self.session = aiohttp.ClientSession(
            base_url,
            headers=dict(headers),
            trace_configs=list(trace_configs),
            timeout=aiohttp.ClientTimeout(total=5),
        )
        self.ws_url = ws_url
        self.headers = dict(headers)
        self.connect = connect
        self.means: dict[str, float] = {}
        self.updates = 0
        self.orders: list[dict[str, Any]] = []

    async def balances(self, wallets: Iterable[str]) -> dict[str, float]:
        """SOL balances of ``wallets``, fetched concurrently."""

        async def one(wallet: str) -> tuple[str, float]:
            async with self.session.get(f"/balance/{wallet}") as response:
                response.raise_for_status()
                return wallet, (await response.json())["sol"]

        return dict(await asyncio.gather(*(one(w) for w in wallets)))

    async def buy(self, token: str, amount: float) -> dict[str, Any]:
        """Place a buy order; returns the exchange's order."""
        order = {"token": token, "side": "buy", "amount": amount}
        async with self.session.post("/orders", json=order) as response:
            response.raise_for_status()
            placed: dict[str, Any] = await response.json()
        self.orders.append(placed)
        return placed

    async def follow(self, tokens: list[str], updates: int) -> None:
        """Read price updates (reconnecting if the feed drops) until ``updates`` arrived."""
        async for ws in self.connect(self.ws_url, additional_headers=self.headers, proxy=None):
            await ws.send(json.dumps({"type": "subscribe", "tokens": tokens}))
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") != "token_update":
                    continue
                await self.on_price(message["token"], float(message["price"]))
                if self.updates >= updates:
                    return

    async def on_price(self, token: str, price: float) -> None:
        """The strategy: buy when the price is 0.5 % under its running mean."""
        self.updates += 1
        mean = self.means.get(token, price)
        self.means[token] = 0.9 * mean + 0.1 * price
        if price < mean * 0.995:
            await self.buy(token, 0.1)

    async def close(self) -> None:
        await self.session.close()
