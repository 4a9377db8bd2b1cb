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
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from pytest_axiomperf.errors import ConfigError
from pytest_axiomperf.exchange import axiom, clock
from pytest_axiomperf.exchange.core import (
    ARRIVED,
    STATE,
    ExchangeState,
    WsSession,
    arrival,
    error_response,
    read_json,
)
from pytest_axiomperf.exchange.data import (
    MAX_BODY,
    TOKENS,
    Answer,
    Token,
    balance,
    holdings,
)
from pytest_axiomperf.exchange.director import ScenarioDirector
from pytest_axiomperf.exchange.models import ExchangeProfile, FaultModel
from pytest_axiomperf.exchange.scenario import Scenario

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
        request[ARRIVED] = await _arrival(request, state)
        refusal = None if request.path in state.auth_free_paths else state.refusal(request)
        if refusal is not None:
            return error_response(401, refusal, {"WWW-Authenticate": "Bearer"})
        if request.path in state.fault_free_paths:
            return await handler(request)
        return await _with_faults(request, handler, state)
    except web.HTTPException as exc:
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        # aiohttp's default text only repeats the reason; a specific one (413's sizes) helps.
        text = exc.text or ""
        detail = exc.reason if text.startswith(f"{exc.status}:") or not text else text
        return error_response(exc.status, detail, headers)
    except Exception:
        _log.exception("exchange: unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error")


async def _arrival(request: web.Request, state: ExchangeState) -> float:
    """When `request` arrived (loop time), after holding the first request of a new
    connection for its modelled handshakes.

    ``connect_latency`` stands for round trips a real network spends before the
    request could even be sent, so it comes before auth and every other fault, and
    such a request arrives when it is over. Any other arrives when the loop saw its
    connection's bytes (clock.py), before the loop parsed and routed them: on Python
    3.11 two loop iterations and ~0.2 ms later, more when the loop is busy.
    """
    loop = asyncio.get_running_loop()
    # The documented per-connection object; RequestHandler takes no weak references.
    transport = request.transport
    if transport is not None and transport not in state.connections:
        state.connections.add(transport)
        wait = state.model.connect_delay(loop.time())
        if wait:
            await asyncio.sleep(wait)
            return loop.time()
    sock = None if transport is None else transport.get_extra_info("socket")
    seen = None if sock is None else clock.read_at(loop, sock.fileno())
    return loop.time() if seen is None else seen


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
        response = error_response(
            429, "rate limit exceeded", {"Retry-After": str(max(1, math.ceil(retry_after)))}
        )
    elif failed:
        response = error_response(500, "injected error (error_rate)")
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


async def _create_order(request: web.Request) -> web.Response:
    state = request.app[STATE]
    status, order = state.orders.create(await request.read())
    if status == 201 and state.director is not None:
        state.director.order([order["token"], order["mint"]], arrival(request))
    return _answer((status, order))


async def _get_order(request: web.Request) -> web.Response:
    return _answer(request.app[STATE].orders.get(request.match_info["order_id"]))


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
        return error_response(404, "control routes are disabled")
    presented = request.headers.get(CONTROL_HEADER, "")
    if not hmac.compare_digest(presented.encode(), secret.encode()):
        return error_response(403, "wrong control secret")
    return None


async def _control_get_profile(request: web.Request) -> web.Response:
    refused = _control_allowed(request)
    if refused is not None:
        return refused
    return web.json_response(request.app[STATE].model.profile.to_dict())


async def _control_object(request: web.Request, what: str) -> dict[str, Any] | web.Response:
    """A control request's JSON object body, or the response refusing it."""
    refused = _control_allowed(request)
    if refused is not None:
        return refused
    body, problem = await read_json(request)
    if problem is not None:
        return problem
    if not isinstance(body, dict):
        return error_response(400, f"{what} must be a JSON object")
    return body


async def _control_set_profile(request: web.Request) -> web.Response:
    body = await _control_object(request, "profile")
    if isinstance(body, web.Response):
        return body
    try:
        profile = ExchangeProfile.from_dict(body)
    except (ConfigError, TypeError) as exc:
        return error_response(400, str(exc))
    state = request.app[STATE]
    state.apply(profile)
    return web.json_response(profile.to_dict())


async def _control_start_scenario(request: web.Request) -> web.Response:
    body = await _control_object(request, "scenario")
    if isinstance(body, web.Response):
        return body
    try:
        scenario = Scenario.from_dict(body)
    except (ConfigError, TypeError) as exc:
        return error_response(400, str(exc))
    state = request.app[STATE]
    _end_scenario(state)
    director = ScenarioDirector(state, scenario)
    state.direct(director)
    director.begin()
    return web.json_response({"events": len(director.timeline), "duration": director.duration})


async def _control_reactions(request: web.Request) -> web.Response:
    """The scenario's reaction summary so far; ``?end=1`` also ends the scenario."""
    refused = _control_allowed(request)
    if refused is not None:
        return refused
    state = request.app[STATE]
    if not isinstance(state.director, ScenarioDirector):
        return web.json_response({})
    summary = state.director.summary()
    if request.query.get("end"):
        _end_scenario(state)
    return web.json_response(summary)


def _end_scenario(state: ExchangeState) -> None:
    if isinstance(state.director, ScenarioDirector):
        state.director.stop()
        state.direct(None)


async def _control_reset(request: web.Request) -> web.Response:
    refused = _control_allowed(request)
    if refused is not None:
        return refused
    state = request.app[STATE]
    _end_scenario(state)
    state.apply(ExchangeProfile())
    state.orders.clear()
    state.tokens.clear()
    return web.json_response(state.model.profile.to_dict())


async def _close_websockets(app: web.Application) -> None:
    _end_scenario(app[STATE])
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
    (``GET``/``POST /_control/profile``, ``POST /_control/reset``, ``POST
    /_control/scenario`` with a scenario's JSON, ``GET /_control/reactions[?end=1]``
    for its reaction summary: director.py) for callers
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
            web.post(_CONTROL_PREFIX + "scenario", _control_start_scenario),
            web.get(_CONTROL_PREFIX + "reactions", _control_reactions),
        ]
    )
    return app
