"""A stop-loss bot, written twice: sell a token the moment its price falls through a level.

Both subscribe to ``token_update`` for a few tokens, set each token's level
``drop`` below the first price they see, and send a sell order (``POST
/orders``) when a price crosses below it; a price back above the level arms
the token again. `StopLoss` checks each update in microseconds in its reader
and sends each order from its own task over one pooled session. `NaiveStopLoss`
runs its "indicator" (a few ms of synchronous work) on every update in its
reader and opens a new HTTP session per order: in a flood of updates it reads
the crossing late. The venue (the embedded exchange) times each reaction: the
price push to the order's arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class StopLoss:
    """Checks each price in the reader; each order from its own task, one pooled session."""

    def __init__(
        self, base_url: str, ws_url: str, token: str, tokens: list[str], *, drop: float = 0.06
    ) -> None:
        self.base_url = base_url
        self.ws_url = ws_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.tokens = tokens
        self.drop = drop
        self.levels: dict[str, float] = {}
        self.below: dict[str, bool] = {}
        self.sold: list[str] = []
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connect, subscribe, and return once the venue has the subscription."""
        self._http = aiohttp.ClientSession(headers=self.headers)
        self._ws = await connect(self.ws_url, additional_headers=self.headers, proxy=None)
        await self._ws.send(json.dumps({"type": "subscribe", "tokens": self.tokens}))
        # Messages are handled in order: once the pong is back, the subscription is in force.
        await self._ws.send(json.dumps({"type": "ping", "timestamp": 0}))
        while json.loads(await asyncio.wait_for(self._ws.recv(), 5)).get("type") != "pong":
            pass
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            update = json.loads(raw)
            if update.get("type") == "token_update":
                await self.on_price(update["token"], float(update["price"]))

    def crossed(self, token: str, price: float) -> bool:
        """True when `price` is the first below the token's level since it was last above."""
        level = self.levels.setdefault(token, price * (1.0 - self.drop))
        was_below = self.below.get(token, False)
        self.below[token] = price < level
        return self.below[token] and not was_below

    async def on_price(self, token: str, price: float) -> None:
        """The hot path: a dictionary lookup and a comparison; the order goes off the reader."""
        if self.crossed(token, price):
            task = asyncio.create_task(self.sell(token))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def sell(self, token: str) -> None:
        """Send the sell order."""
        assert self._http is not None
        order = {"token": token, "side": "sell", "amount": 1}
        async with self._http.post(f"{self.base_url}/orders", json=order) as response:
            if response.status == 201:
                self.sold.append(token)

    async def close(self) -> None:
        """Finish the orders under way, then disconnect."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._ws is not None:
            # Discard what a slow reader left unread: the venue's close frame is behind it.
            closing = asyncio.create_task(self._ws.close())
            with contextlib.suppress(ConnectionClosed):
                async for _ in self._ws:
                    pass
            await closing
        if self._http is not None:
            await self._http.close()


class NaiveStopLoss(StopLoss):
    """Every update runs a blocking indicator in the reader; a new session per order, inline."""

    def __init__(
        self,
        base_url: str,
        ws_url: str,
        token: str,
        tokens: list[str],
        *,
        drop: float = 0.06,
        work: float = 0.006,
    ) -> None:
        super().__init__(base_url, ws_url, token, tokens, drop=drop)
        self.work = work
        self.history: dict[str, list[float]] = {}

    async def on_price(self, token: str, price: float) -> None:
        self.history.setdefault(token, []).append(price)
        time.sleep(self.work)  # a synchronous indicator over the history blocks the event loop
        if self.crossed(token, price):
            async with aiohttp.ClientSession(headers=self.headers) as session:
                order = {"token": token, "side": "sell", "amount": 1}
                async with session.post(f"{self.base_url}/orders", json=order) as response:
                    if response.status == 201:
                        self.sold.append(token)
