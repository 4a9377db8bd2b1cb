"""The embedded exchange: an aiohttp application serving REST and a WebSocket stream.

It speaks the guide's protocol (below) and AxiomTrade's own protocol as the
``axiomtradeapi`` SDK uses it (rooms, cookies, its REST routes: see axiom.py).

REST (every route needs ``Authorization: Bearer <token>`` or a valid
``auth-access-token`` cookie, else 401):

- ``GET /health`` -> ``{"status": "ok", "timestamp": <epoch s>}``
- ``GET /balance/{address}`` -> deterministic SOL balance of a wallet
- ``GET /tokens/{address}`` -> deterministic token holdings of a wallet
- ``POST /orders`` with ``{"token", "side": "buy"|"sell", "amount" > 0, "price"?}``
  -> 201 and the filled order; a bad body -> 400 ``{"error": ...}``
- ``GET /orders/{id}`` -> the order, or 404

WebSocket at ``/ws`` (JSON text messages, dispatched on ``"type"``):

- ``{"type": "subscribe", "tokens": [...]}`` -> ``{"type": "subscribed", ...}``, then a
  ``token_update`` stream per token at ``push_rate``; each update's ``timestamp``
  is the time the server *intended* to send it (epoch seconds), so clients measure
  delivery latency without coordinated omission, and ``seq`` counts per token.
- ``{"type": "unsubscribe", "tokens": [...]}`` (no tokens: all) -> ``unsubscribed``
  with the tokens stopped
- ``{"type": "ping", "timestamp": t}`` -> ``{"type": "pong", "timestamp": t}``
- anything else -> ``{"type": "error", "error": ...}``; the connection stays open
  (a frame over 64 KiB is a protocol error: closed with 1009).

Every error is JSON. Faults and latency come from the `FaultModel` in force,
which the handle changes through the ``/_control/`` routes (enabled only with a
control secret; they bypass auth and faults). The first request on each new
connection (a WebSocket upgrade too) first waits ``connect_latency``, the
modelled handshakes; later requests on the same keep-alive connection do not.

To add a REST route, add it to the router returned by `create_app`; to add a
WebSocket message kind, add a handler to ``app[STATE].ws_handlers`` (or, for
messages carrying an ``"action"`` instead of a ``"type"``, to ``ws_actions``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from pytest_axiomperf.errors import ConfigError
from pytest_axiomperf.exchange.auth import ACCESS_COOKIE, AccessTokens
from pytest_axiomperf.exchange.data import (
    MAX_BODY,
    TOKENS,
    Answer,
    OrderBook,
    Token,
    balance,
    digest,
    error_body,
    holdings,
)
from pytest_axiomperf.exchange.models import ExchangeProfile, FaultModel

__all__ = [
    "CONTROL_HEADER",
    "STATE",
    "TOKENS",
    "ExchangeState",
    "Token",
    "WsSession",
    "create_app",
]

_log = logging.getLogger(__name__)

CONTROL_HEADER = "X-Axiom-Control"
"""Request header carrying the control secret on ``/_control/`` routes."""

_CONTROL_PREFIX = "/_control/"
_MAX_SUBSCRIPTIONS = 1_000


WsHandler = Callable[["WsSession", dict[str, Any]], Awaitable[None]]


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

    def apply(self, profile: ExchangeProfile) -> None:
        """Put `profile` in force from now on."""
        self.model = FaultModel(profile, asyncio.get_running_loop().time())


STATE: web.AppKey[ExchangeState] = web.AppKey("axiom_exchange_state", ExchangeState)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(status, message), status=status, headers=headers)


def _answer(answer: Answer) -> web.Response:
    status, body = answer
    return web.json_response(body, status=status)


@web.middleware
async def _gateway(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Auth, injected faults, and JSON for every error."""
    state = request.app[STATE]
    try:
        if request.path.startswith(_CONTROL_PREFIX):
            return await handler(request)
        await _handshake(request, state)
        refusal = None if request.path in state.auth_free_paths else state.refusal(request)
        if refusal is not None:
            return _error(401, refusal, {"WWW-Authenticate": "Bearer"})
        if request.path in state.fault_free_paths:
            return await handler(request)
        return await _with_faults(request, handler, state)
    except web.HTTPException as exc:
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        # aiohttp's default text only repeats the reason; a specific one (413's sizes) helps.
        text = exc.text or ""
        detail = exc.reason if text.startswith(f"{exc.status}:") or not text else text
        return _error(exc.status, detail, headers)
    except Exception:
        _log.exception("exchange: unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error")


async def _handshake(request: web.Request, state: ExchangeState) -> None:
    """Hold the first request of a new connection for its modelled handshakes.

    ``connect_latency`` stands for round trips a real network spends before the
    request could even be sent, so it comes before auth and every other fault.
    """
    # The documented per-connection object; RequestHandler takes no weak references.
    transport = request.transport
    if transport is None or transport in state.connections:
        return
    state.connections.add(transport)
    wait = state.model.connect_delay(asyncio.get_running_loop().time())
    if wait:
        await asyncio.sleep(wait)


async def _with_faults(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    state: ExchangeState,
) -> web.StreamResponse:
    model = state.model
    loop = asyncio.get_running_loop()
    stall = model.stall_remaining(loop.time())
    if stall:
        await asyncio.sleep(stall)
    retry_after = model.retry_after(loop.time())
    failed = not retry_after and model.fails()
    delay = model.delay()
    if delay:
        await asyncio.sleep(delay)
    response: web.StreamResponse
    if retry_after:
        response = _error(
            429, "rate limit exceeded", {"Retry-After": str(max(1, math.ceil(retry_after)))}
        )
    elif failed:
        response = _error(500, "injected error (error_rate)")
    else:
        response = await handler(request)
    if model.profile.latency or model.profile.jitter:
        # Lets tests check the seeded draws exactly, whatever the machine's timing noise.
        response.headers["X-Axiom-Delay"] = f"{delay:.6f}"
    return response


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "timestamp": time.time()})


async def _balance(request: web.Request) -> web.Response:
    return _answer(balance(request.match_info["address"]))


async def _tokens(request: web.Request) -> web.Response:
    return _answer(holdings(request.match_info["address"]))


async def _read_json(request: web.Request) -> tuple[Any, web.Response | None]:
    """The request's JSON body, or a 400 response saying why it is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw), None
    except ValueError as exc:
        return None, _error(400, f"body is not valid JSON: {exc}")


async def _create_order(request: web.Request) -> web.Response:
    return _answer(request.app[STATE].orders.create(await request.read()))


async def _get_order(request: web.Request) -> web.Response:
    return _answer(request.app[STATE].orders.get(request.match_info["order_id"]))


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
        seq = 0
        while True:
            model = self.state.model
            # FIFO like a network link: a short delay never overtakes a longer one.
            send_at = max(intended + model.delay(), last_send)
            send_at += model.stall_remaining(send_at)
            wait = send_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif seq % 64 == 0:
                # Behind schedule: still let the reader and other connections run.
                await asyncio.sleep(0)
            last_send = send_at
            seq += 1
            if not await self.send(build(seq, intended + self.state.wall_offset)):
                return
            intended += 1.0 / model.profile.push_rate


def _token_list(message: dict[str, Any], *, required: bool) -> list[str] | None:
    tokens = message.get("tokens")
    if tokens is None and not required:
        return []
    if (
        not isinstance(tokens, list)
        or not tokens
        or len(tokens) > _MAX_SUBSCRIPTIONS
        or not all(isinstance(t, str) and 0 < len(t) <= 128 for t in tokens)
    ):
        return None
    return list(dict.fromkeys(tokens))


async def _ws_subscribe(session: WsSession, message: dict[str, Any]) -> None:
    tokens = _token_list(message, required=True)
    if tokens is None:
        await session.error("subscribe needs 'tokens': a non-empty list of token names")
        return
    new = [t for t in tokens if t not in session.streams]
    if len(session.streams) + len(new) > _MAX_SUBSCRIPTIONS:
        await session.error(f"at most {_MAX_SUBSCRIPTIONS} subscriptions per connection")
        return
    await session.send({"type": "subscribed", "tokens": tokens})
    for token in new:
        session.streams[token] = session.spawn(session.stream(token))


async def _ws_unsubscribe(session: WsSession, message: dict[str, Any]) -> None:
    tokens = _token_list(message, required=False)
    if tokens is None:
        await session.error("unsubscribe takes 'tokens': a non-empty list of token names")
        return
    tokens = tokens or list(session.streams)
    for token in tokens:
        task = session.streams.pop(token, None)
        if task is not None:
            task.cancel()
    await session.send({"type": "unsubscribed", "tokens": tokens})


async def _ws_ping(session: WsSession, message: dict[str, Any]) -> None:
    await session.reply({"type": "pong", "timestamp": message.get("timestamp")})


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    state = request.app[STATE]
    ws = web.WebSocketResponse(max_msg_size=MAX_BODY, timeout=2.0)
    await ws.prepare(request)
    state.websockets.add(ws)
    session = WsSession(ws, state)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await session.handle_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await session.error("binary frames are not supported: send JSON text")
    finally:
        session.close()
    return ws


def _control_allowed(request: web.Request) -> web.Response | None:
    secret = request.app[STATE].control_secret
    if secret is None:
        return _error(404, "control routes are disabled")
    presented = request.headers.get(CONTROL_HEADER, "")
    if not hmac.compare_digest(presented.encode(), secret.encode()):
        return _error(403, "wrong control secret")
    return None


async def _control_get_profile(request: web.Request) -> web.Response:
    refused = _control_allowed(request)
    if refused is not None:
        return refused
    return web.json_response(request.app[STATE].model.profile.to_dict())


async def _control_set_profile(request: web.Request) -> web.Response:
    refused = _control_allowed(request)
    if refused is not None:
        return refused
    body, problem = await _read_json(request)
    if problem is not None:
        return problem
    if not isinstance(body, dict):
        return _error(400, "profile must be a JSON object")
    try:
        profile = ExchangeProfile.from_dict(body)
    except (ConfigError, TypeError) as exc:
        return _error(400, str(exc))
    state = request.app[STATE]
    state.apply(profile)
    return web.json_response(profile.to_dict())


async def _control_reset(request: web.Request) -> web.Response:
    refused = _control_allowed(request)
    if refused is not None:
        return refused
    state = request.app[STATE]
    state.apply(ExchangeProfile())
    state.orders.clear()
    state.tokens.clear()
    return web.json_response(state.model.profile.to_dict())


async def _close_websockets(app: web.Application) -> None:
    # Without this, runner cleanup waits for connected clients (see PITFALLS.md).
    await asyncio.gather(
        *(
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
            for ws in list(app[STATE].websockets)
        ),
        return_exceptions=True,
    )


def create_app(
    token: str,
    *,
    profile: ExchangeProfile | None = None,
    control_secret: str | None = None,
) -> web.Application:
    """Build the exchange application.

    `token` is the bearer token every route requires; `profile` the initial
    latency/fault profile; `control_secret` enables the ``/_control/`` routes
    (``GET``/``POST /_control/profile``, ``POST /_control/reset``) for callers
    sending it in the ``X-Axiom-Control`` header.
    """
    if not token:
        raise ConfigError("exchange: the bearer token must not be empty")
    app = web.Application(middlewares=[_gateway], client_max_size=MAX_BODY)
    # The loop clock starts at 0 here; `apply` restarts it in the serving loop.
    state = ExchangeState(token, control_secret, FaultModel(profile or ExchangeProfile(), 0.0))
    state.ws_handlers.update(
        {"subscribe": _ws_subscribe, "unsubscribe": _ws_unsubscribe, "ping": _ws_ping}
    )
    app[STATE] = state
    # Imported here: axiom.py builds on this module's WsSession and helpers.
    from pytest_axiomperf.exchange import axiom

    axiom.install(app)

    async def start_clock(app: web.Application) -> None:
        state.apply(state.model.profile)
        loop = asyncio.get_running_loop()
        state.wall_offset = time.time() - loop.time()

    app.on_startup.append(start_clock)
    app.on_shutdown.append(_close_websockets)
    app.router.add_routes(
        [
            web.get("/health", _health),
            web.get("/balance/{address}", _balance),
            web.get("/tokens/{address}", _tokens),
            web.post("/orders", _create_order),
            web.get("/orders/{order_id}", _get_order),
            web.get("/ws", _websocket),
            web.get(_CONTROL_PREFIX + "profile", _control_get_profile),
            web.post(_CONTROL_PREFIX + "profile", _control_set_profile),
            web.post(_CONTROL_PREFIX + "reset", _control_reset),
        ]
    )
    return app
