"""A listing sniper, written twice: buy every new pair the moment it is announced.

Both join the ``new_pairs`` room of the AxiomTrade protocol and send a buy
order (``POST /orders`` with the new token's mint) for each pair announced.
`Sniper` hands each listing to its own task and orders over one pooled
session; `NaiveSniper` handles listings one at a time in its reader, runs a
blocking "rug check" first and opens a new HTTP session per order. The venue
(the embedded exchange) times each reaction: announcement to order arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect


class Sniper:
    """One pooled HTTP session; each listing answered by its own task."""

    def __init__(self, base_url: str, ws_url: str, token: str) -> None:
        self.base_url = base_url
        self.ws_url = ws_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.bought: list[str] = []
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connect, join ``new_pairs``, and return once the venue has the join."""
        self._http = aiohttp.ClientSession(headers=self.headers)
        self._ws = await connect(self.ws_url, additional_headers=self.headers, proxy=None)
        await self._ws.send(json.dumps({"action": "join", "room": "new_pairs"}))
        # Messages are handled in order: once the pong is back, the join is in force.
        await self._ws.send(json.dumps({"type": "ping", "timestamp": 0}))
        while json.loads(await asyncio.wait_for(self._ws.recv(), 5)).get("type") != "pong":
            pass
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            push = json.loads(raw)
            if push.get("room") == "new_pairs":
                await self.on_listing(push["content"])

    async def on_listing(self, pair: dict[str, Any]) -> None:
        """Answer off the reader, so a burst of listings is answered in parallel."""
        task = asyncio.create_task(self.buy(pair["token_address"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def buy(self, mint: str) -> None:
        """Send the buy order for a new token."""
        assert self._http is not None
        order = {"token": mint, "side": "buy", "amount": 1_000}
        async with self._http.post(f"{self.base_url}/orders", json=order) as response:
            if response.status == 201:
                self.bought.append(mint)

    async def close(self) -> None:
        """Finish the orders under way, then disconnect."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()


class NaiveSniper(Sniper):
    """Listings one at a time, in the reader: a blocking check, a new session per order."""

    def __init__(self, base_url: str, ws_url: str, token: str, *, check: float = 0.01) -> None:
        super().__init__(base_url, ws_url, token)
        self.check = check

    async def on_listing(self, pair: dict[str, Any]) -> None:
        time.sleep(self.check)  # a synchronous "rug check" blocks the event loop
        async with aiohttp.ClientSession(headers=self.headers) as session:
            order = {"token": pair["token_address"], "side": "buy", "amount": 1_000}
            async with session.post(f"{self.base_url}/orders", json=order) as response:
                if response.status == 201:
                    self.bought.append(pair["token_address"])
