"""The bot as the guide recommends it: pooled REST, off-reader handlers, bounded history."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from bot.counting import UpdateCounter
from pytest_axiomperf import OptimizedClient, PerformanceTracker, WebSocketClient


class TradingBot(UpdateCounter):
    """Watches token prices and trades on the exchange at ``base_url`` / ``ws_url``."""

    def __init__(
        self,
        base_url: str,
        ws_url: str,
        token: str,
        *,
        tracker: PerformanceTracker | None = None,
        history: int = 1_000,
        work: float = 0.0,
    ) -> None:
        super().__init__()
        self.tracker = tracker if tracker is not None else PerformanceTracker()
        # One session, one connection pool for every REST call the bot makes.
        self.client = OptimizedClient(base_url, token=token, tracker=self.tracker)
        # Handlers run on worker tasks, so a slow strategy never delays the reader.
        self.ws = WebSocketClient(ws_url, token=token, tracker=self.tracker, max_handlers=8)
        self.history = history
        self.work = work  # seconds of strategy work per update (simulated I/O)
        self.prices: dict[str, deque[float]] = {}

    async def start(self, tokens: list[str]) -> None:
        """Warm the connection pool and subscribe to ``tokens`` (one message)."""
        report = await self.client.warmup(4)
        if not report.ok:
            raise RuntimeError(f"warm-up failed: {report.failures}")
        self.ws.register_handler("token_update", self.on_update)
        await self.ws.subscribe(tokens)

    async def on_update(self, update: dict[str, Any]) -> None:
        """Keep the last ``history`` prices per token; the strategy's work is awaited here."""
        prices = self.prices.get(update["token"])
        if prices is None:
            prices = self.prices[update["token"]] = deque(maxlen=self.history)
        prices.append(float(update["price"]))
        self.counted()
        if self.work:
            await asyncio.sleep(self.work)

    async def balances(self, wallets: list[str], limit: int = 10) -> dict[str, float]:
        """SOL balance of each wallet, at most ``limit`` requests in flight."""
        results = await self.client.gather(
            [self.client.get(f"/balance/{wallet}") for wallet in wallets], limit=limit
        )
        out: dict[str, float] = {}
        for wallet, result in zip(wallets, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            out[wallet] = float(result.raise_for_status().json()["sol"])
        return out

    async def buy(self, token: str, amount: float) -> dict[str, Any]:
        """Place a market buy; the order is never retried blindly."""
        response = await self.client.post(
            "/orders", json={"token": token, "side": "buy", "amount": amount}
        )
        order: dict[str, Any] = response.raise_for_status().json()
        return order

    async def close(self) -> None:
        """Close the stream and the connection pool."""
        await self.ws.close()
        await self.client.close()
