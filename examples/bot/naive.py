"""The same bot written naively: what the guide's "basic" rows measure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from bot.counting import UpdateCounter
from pytest_axiomperf import PerformanceTracker


class NaiveBot(UpdateCounter):
    """A new HTTP session per request, every price kept forever, handlers inline."""

    def __init__(
        self,
        base_url: str,
        ws_url: str,
        token: str,
        *,
        tracker: PerformanceTracker | None = None,
        work: float = 0.0,
    ) -> None:
        super().__init__()
        self.tracker = tracker if tracker is not None else PerformanceTracker()
        self.base_url = base_url
        self.ws_url = ws_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self.work = work
        self.prices: dict[str, list[float]] = {}  # grows without bound
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def _get(self, path: str, tag: str) -> dict[str, Any]:
        # A new session (and TCP connection) for every call: no pooling, no keep-alive.
        async with (
            self.tracker.measure("api_response_times", tag=tag),
            aiohttp.ClientSession(headers=self._headers) as session,
            session.get(self.base_url + path) as response,
        ):
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data

    async def balances(self, wallets: list[str]) -> dict[str, float]:
        """One balance after the other."""
        return {
            w: float((await self._get(f"/balance/{w}", "GET /balance/{address}"))["sol"])
            for w in wallets
        }

    async def start(self, tokens: list[str]) -> None:
        """Subscribe and read updates in a loop that also runs the strategy."""
        self._ws = await connect(self.ws_url, additional_headers=self._headers, proxy=None)
        await self._ws.send(json.dumps({"type": "subscribe", "tokens": tokens}))
        self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") != "token_update":
                    continue
                # Delivery latency from the exchange's intended send time.
                self.tracker.record(
                    "websocket_latency", max(0.0, time.time() - message["timestamp"]), "delivery"
                )
                await self.on_update(message)  # inline: the reader waits for the strategy

    async def on_update(self, update: dict[str, Any]) -> None:
        """Keep every price; do the strategy's work in the reader."""
        self.prices.setdefault(update["token"], []).append(float(update["price"]))
        self.counted()
        if self.work:
            await asyncio.sleep(self.work)

    async def close(self) -> None:
        """Stop reading and close the stream."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
