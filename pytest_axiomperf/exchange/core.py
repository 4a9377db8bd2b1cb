"""The exchange's shared core: its state, JSON errors and WebSocket sessions.

`create_app` (app.py) builds an application around one `ExchangeState`; the
protocol modules (app.py's guide protocol, axiom.py's AxiomTrade protocol, the
scenario director) add routes and message handlers to it. They all import from
here, and none imports another, so there is no import cycle between them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSCloseCode, web

from pytest_axiomperf.exchange.auth import ACCESS_COOKIE, AccessTokens
from pytest_axiomperf.exchange.data import TOKENS, OrderBook, digest, error_body
from pytest_axiomperf.exchange.models import ExchangeProfile, FaultModel

__all__ = [
    "ARRIVED",
    "STATE",
    "Director",
    "ExchangeState",
    "WsHandler",
    "WsSession",
    "arrival",
    "error_response",
    "read_json",
]

WsHandler = Callable[["WsSession", dict[str, Any]], Awaitable[None]]


class Director(Protocol):
    """The scenario in force (director.py), as the protocols see it."""

    def owns(self, room: str) -> bool:
        """Whether the scenario alone feeds `room` (its own pacing must stay silent)."""

    def next_push(self, after: float) -> float | None:
        """The price streams' next push time after `after` (loop time); None: push_rate."""

    def order(self, names: list[str], arrived: float) -> None:
        """An accepted order naming `names` arrived at `arrived` (loop time)."""

    def transaction(self, raw: bytes, arrived: float) -> None:
        """A raw transaction arrived at `arrived` (loop time)."""


@dataclass
class ExchangeState:
    """Everything one exchange instance holds; reached as ``app[STATE]``."""

    token: str
    control_secret: str | None
    model: FaultModel
    ws_handlers: dict[str, WsHandler] = field(default_factory=dict)
    # Messages of AxiomTrade's room protocol, dispatched on "action" (see axiom.py).
    ws_actions: dict[str, WsHandler] = field(default_factory=dict)
    orders: OrderBook = field(default_factory=OrderBook)
    websockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)
    # Transports of the connections that have had a request: they paid connect_latency.
    # Weak, so a closed connection leaves; kept across profiles, as open connections are.
    connections: weakref.WeakSet[asyncio.BaseTransport] = field(default_factory=weakref.WeakSet)
    # Routes served without injected faults (the WebSocket handshake: pushes have their own).
    fault_free_paths: set[str] = field(default_factory=lambda: {"/ws"})
    # Routes that check credentials themselves (the token refresh takes a refresh token).
    auth_free_paths: set[str] = field(default_factory=set)
    # Converts the event loop's monotonic clock to epoch seconds.
    wall_offset: float = field(default_factory=lambda: time.time() - time.monotonic())
    tokens: AccessTokens = field(init=False)
    # Open WebSocket sessions, which scenario events are broadcast to.
    sessions: weakref.WeakSet[WsSession] = field(default_factory=weakref.WeakSet)
    # The scenario in force (axiom_exchange.scenario), None when none is: set with `direct`.
    director: Director | None = None
    # Set (and replaced) when the scenario in force changes: paced streams re-plan.
    replanned: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        """Accept the exchange's own token as access and refresh token too."""
        self.tokens = AccessTokens(self.token)

    def refusal(self, request: web.Request) -> str | None:
        """None when the request is authorized, else why it is not.

        Accepted: ``Authorization: Bearer <token>`` with the exchange's token, or
        the ``auth-access-token`` cookie holding a valid access token (auth.py).
        """
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), self.token.encode()
        ):
            return None
        cookie = request.cookies.get(ACCESS_COOKIE)
        if cookie:
            return self.tokens.check_access(cookie, time.time())
        return "missing or wrong bearer token"

    def direct(self, director: Director | None) -> None:
        """Put `director`'s scenario in force (None: none); paced streams follow it at once."""
        self.director = director
        self.replanned.set()
        self.replanned = asyncio.Event()

    def apply(self, profile: ExchangeProfile) -> None:
        """Put `profile` in force from now on."""
        self.model = FaultModel(profile, asyncio.get_running_loop().time())


STATE: web.AppKey[ExchangeState] = web.AppKey("axiom_exchange_state", ExchangeState)

# web.RequestKey where aiohttp has it (3.13+: a plain string key warns there), else a string.
_REQUEST_KEY: Any = getattr(web, "RequestKey", None)
ARRIVED: Any = "axiom_arrived" if _REQUEST_KEY is None else _REQUEST_KEY("axiom_arrived", float)
"""Key of a request's arrival time (loop time: when the loop saw its bytes, or after its
new connection's modelled handshakes; app.py)."""


def arrival(request: web.Request) -> float:
    """When `request` arrived at the exchange (loop time): orders' reaction clock."""
    arrived = request.get(ARRIVED)
    return arrived if isinstance(arrived, float) else asyncio.get_running_loop().time()


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(error_body(status, message), status=status, headers=headers)


async def read_json(request: web.Request) -> tuple[Any, web.Response | None]:
    """The request's JSON body, or a 400 response saying why it is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw), None
    except ValueError as exc:
        return None, error_response(400, f"body is not valid JSON: {exc}")


class WsSession:
    """One WebSocket connection: sends, counts messages, runs its token streams."""

    def __init__(self, ws: web.WebSocketResponse, state: ExchangeState) -> None:
        """Wrap a prepared `ws` of the exchange holding `state`."""
        self.ws = ws
        self.state = state
        self.sent = 0
        self.streams: dict[str, asyncio.Task[None]] = {}
        # Joined rooms of the room protocol; None for a room that pushes nothing.
        self.rooms: dict[str, asyncio.Task[None] | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        state.sessions.add(self)

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self.ws.closed

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send one message; False once the connection is closed.

        Applies ``ws_disconnect_every``: the N-th message sent is followed by a close.
        """
        if self.ws.closed:
            return False
        try:
            await self.ws.send_str(json.dumps(payload))
        except ConnectionError:
            return False
        self.sent += 1
        every = self.state.model.profile.ws_disconnect_every
        if every and self.sent % every == 0:
            await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"ws_disconnect_every")
            return False
        return True

    async def reply(self, payload: dict[str, Any]) -> None:
        """Send a reply after the injected stall and delay, without blocking the reader."""
        model = self.state.model
        wait = model.stall_remaining(asyncio.get_running_loop().time()) + model.delay()
        if not wait:
            await self.send(payload)
            return

        async def later() -> None:
            await asyncio.sleep(wait)
            await self.send(payload)

        self.spawn(later())

    async def error(self, message: str) -> None:
        """Tell the client its message was refused; the connection stays open."""
        await self.send({"type": "error", "error": message})

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        """Run `coro` for this connection; cancelled when the connection ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Cancel the connection's streams and pending replies."""
        for task in list(self._tasks):
            task.cancel()
        self.streams.clear()
        self.rooms.clear()

    async def handle_text(self, data: str) -> None:
        """Dispatch one text message on its ``type`` (or its ``action``: room protocol)."""
        try:
            message = json.loads(data)
        except ValueError as exc:
            await self.error(f"message is not valid JSON: {exc}")
            return
        if not isinstance(message, dict):
            await self.error("message must be a JSON object with a 'type'")
            return
        if "type" not in message and "action" in message:
            action = message["action"]
            on_action = self.state.ws_actions.get(action) if isinstance(action, str) else None
            if on_action is None:
                known = ", ".join(sorted(self.state.ws_actions))
                await self.error(f"unknown action {action!r}; known: {known}")
                return
            await on_action(self, message)
            return
        kind = message.get("type")
        handler = self.state.ws_handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            known = ", ".join(sorted(self.state.ws_handlers))
            await self.error(f"unknown message type {kind!r}; known: {known}")
            return
        await handler(self, message)

    async def stream(self, token: str) -> None:
        """Push ``token_update`` messages for `token`, scheduled at absolute times."""
        seed = digest("price", token)
        rng = random.Random(seed)
        base = TOKENS[token].price if token in TOKENS else 0.001 + (seed % 100_000) / 1_000
        price = base

        def update(seq: int, intended: float) -> dict[str, Any]:
            nonlocal price
            price = max(base * 0.01, price * (1.0 + rng.gauss(0.0, 0.001)))
            return {
                "type": "token_update",
                "token": token,
                "price": round(price, 9),
                "volume": round(rng.uniform(0.0, 1_000.0), 3),
                "timestamp": intended,
                "seq": seq,
            }

        await self.pace(update)

    async def _replanned_during(self, wait: float) -> bool:
        """Sleep `wait` seconds; True (early) when the scenario in force changed."""
        if wait < 0.05:
            # Short waits (the usual push_rate) stay cheap plain sleeps.
            await asyncio.sleep(wait)
            return False
        try:
            await asyncio.wait_for(self.state.replanned.wait(), wait)
        except asyncio.TimeoutError:
            return False
        return True

    async def pace(self, build: Callable[[int, float], dict[str, Any]]) -> None:
        """Send ``build(seq, intended)`` at ``push_rate`` until the connection ends.

        Messages are scheduled at absolute times; `intended` is the time (epoch
        seconds) the server intended to send message number `seq` (from 1),
        before injected delays and stalls, so clients measure delivery latency
        without coordinated omission.
        """
        loop = asyncio.get_running_loop()
        intended = loop.time()
        last_send = intended
        sent = intended  # the intended time of the last message sent
        seq = 0
        while True:
            model = self.state.model
            # FIFO like a network link: a short delay never overtakes a longer one.
            send_at = max(intended + model.delay(), last_send)
            send_at += model.stall_remaining(send_at)
            wait = send_at - loop.time()
            if wait > 0:
                if await self._replanned_during(wait):
                    director = self.state.director
                    scheduled = None if director is None else director.next_push(sent)
                    intended = scheduled if scheduled is not None else intended
                    continue
            elif seq % 64 == 0:
                # Behind schedule: still let the reader and other connections run.
                await asyncio.sleep(0)
            last_send = send_at
            seq += 1
            if not await self.send(build(seq, intended + self.state.wall_offset)):
                return
            sent = intended
            director = self.state.director
            scheduled = None if director is None else director.next_push(intended)
            intended = (
                scheduled if scheduled is not None else intended + 1.0 / model.profile.push_rate
            )
