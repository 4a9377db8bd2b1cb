"""AxiomTrade's own protocol, as the public ``axiomtradeapi`` SDK (1.1.6) speaks it.

Installed on every exchange by `create_app`, beside the guide's protocol.

Auth: the ``auth-access-token`` cookie is accepted beside the bearer token on
every route and on the WebSocket handshake; ``POST /refresh-access-token``
(``auth-refresh-token`` cookie) issues a new access token, sets it as the
``auth-access-token`` cookie and returns ``{"accessToken", "expiresAt"}``
(auth.py tells which tokens are valid and for how long).

WebSocket (on ``/ws``, JSON text): ``{"action": "join", "room": R}`` and
``{"action": "leave", "room": R}``. No acknowledgement is sent (as on the real
service); a malformed message gets ``{"type": "error", ...}``. A joined room
receives pushes ``{"room": R, "content": ..., "emitted_at": t, "seq": n}`` at
the profile's ``push_rate``, with its latency, stalls and disconnects:

- ``emitted_at``: the time (epoch seconds, float) the exchange *intended* to
  send the push, before injected latency and stalls. ``receive time -
  emitted_at`` is the delivery latency, free of coordinated omission.
- ``seq``: the push's number in its room on this connection, from 1.

Rooms that push (content is never empty, so the SDK never drops it):

- ``new_pairs``: a new pair: ``pair_address``, ``token_address``,
  ``token_name``, ``token_ticker``, ``created_at`` (ISO 8601),
  ``initial_liquidity_sol``, ``initial_liquidity_token``, ``supply``,
  ``decimals``, ``deployer_address``, ``protocol``.
- a token mint (a base58 address of 32 to 44 characters): a price update:
  ``mint``, ``price_sol``, ``price_usd``, ``volume_sol``, ``market_cap_sol``,
  ``updated_at``.
- ``v:<wallet>``: a transaction of the wallet: ``created_at`` (ISO 8601),
  ``maker_address``, ``type`` (``buy``/``sell``), ``total_sol``, ``total_usd``,
  ``token_amount``, ``price_sol``, ``pair_address``, ``token_address``,
  ``signature``.
- ``e-<mint>``: the active users of the token, an integer >= 1.
- ``s:<mint>``: ``{"active_users": n}``.

Every other well-formed room name (the SDK also joins ``t:``, ``f:``, ``td:``,
``b-``, ``kol_tx:``, ``pump-cto:``, ``<mint>-dex-paid``, ``<mint>_refresh``,
``<mint>-wallet_funding``) is accepted and stays silent. Content is seeded by
the room name: every connection joining a room gets the same sequence (only
the times differ).

REST (the SDK's ``Endpoints.BASE_URL_API`` is ``<base>/api``):

- ``POST /api/batched-sol-balance`` ``{"publicKeys": [...]}`` ->
  ``{address: {"sol": x, "lamports": n}}`` (the balances of ``/balance/{address}``)
- ``POST /api/token-balance`` ``{"publicKey", "tokenMint"}`` -> ``{"balance": x, ...}``
- ``POST /api/send-transaction`` ``{"signedTransaction": <base64>}`` -> ``{"signature"}``
- ``GET /token-info``, ``/pair-info``, ``/pair-stats``, ``/last-transaction``
  (``?pairAddress=``), ``/meme-open-positions`` (``?walletAddress=``),
  ``/portfolio``, ``/server-time``: deterministic, plausible data.

A malformed body or a missing/invalid query parameter gets 400 ``{"error": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeGuard

from aiohttp import web

from pytest_axiomperf.exchange.auth import ACCESS_COOKIE, REFRESH_COOKIE
from pytest_axiomperf.exchange.core import STATE, WsSession, arrival, error_response, read_json
from pytest_axiomperf.exchange.data import ADDRESS, BY_MINT, TOKENS, Token, digest, lamports

__all__ = ["install", "listed_token", "new_pairs_feed", "price_content", "room_feed"]

_ROOM = re.compile(r"[!-~]{1,128}")  # printable ASCII, no spaces
_MINT = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_MAX_ROOMS = 1_000
_MAX_KEYS = 1_000
_SOL_USD = TOKENS["SOL"].price
_SUPPLY = 1_000_000_000
_PROTOCOLS = ("Pump V1", "Pump AMM", "Raydium CPMM", "Meteora DLMM")
_SYLLABLES = ("mo", "on", "pe", "pe", "ka", "to", "zu", "ri", "bo", "ba", "doge", "cat", "ai")

Content = Callable[[int, float], Any]
"""Builds a room's content from the push's number and intended time (epoch s)."""


def _base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_BASE58[rest])
    leading = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading + "".join(reversed(digits))


def _key(rng: random.Random) -> str:
    """A Solana-like address (32 random bytes in base58)."""
    return _base58(rng.randbytes(32))


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rng(*parts: str) -> random.Random:
    return random.Random(digest("axiom", ":".join(parts)))


def _base_price(mint: str) -> float:
    """Price in SOL of a token: the catalog's for known mints, else a seeded one."""
    token = BY_MINT.get(mint)
    if token is not None:
        return token.price / _SOL_USD
    return 1e-8 + (digest("price", mint) % 100_000) * 1e-9


def new_pairs_feed(name: str = "new_pairs") -> Content:
    """The ``new_pairs`` room's content builder: each call a new pair, seeded by `name`."""
    rng = _rng(name)

    def content(seq: int, emitted_at: float) -> dict[str, Any]:
        ticker = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))).upper()[:10]
        liquidity = round(rng.uniform(5.0, 85.0), 3)
        return {
            "pair_address": _key(rng),
            "token_address": _key(rng),
            "token_name": f"{ticker.capitalize()} {rng.choice(('Coin', 'Inu', 'AI', 'Cat'))}",
            "token_ticker": ticker,
            "created_at": _iso(emitted_at),
            "initial_liquidity_sol": liquidity,
            "initial_liquidity_token": round(_SUPPLY * rng.uniform(0.7, 0.95)),
            "supply": _SUPPLY,
            "decimals": 6,
            "deployer_address": _key(rng),
            "protocol": rng.choice(_PROTOCOLS),
        }

    return content


def _prices(mint: str) -> Content:
    rng = _rng("price", mint)
    base = _base_price(mint)
    price = base

    def content(seq: int, emitted_at: float) -> dict[str, Any]:
        nonlocal price
        price = max(base * 0.01, price * (1.0 + rng.gauss(0.0, 0.002)))
        return {
            "mint": mint,
            "price_sol": price,
            "price_usd": round(price * _SOL_USD, 12),
            "volume_sol": round(rng.uniform(0.01, 50.0), 6),
            "market_cap_sol": round(price * _SUPPLY, 3),
            "updated_at": _iso(emitted_at),
        }

    return content


def listed_token(content: dict[str, Any]) -> Token:
    """The token a ``new_pairs`` content lists, as ``POST /orders`` trades it (by mint)."""
    price = content["initial_liquidity_sol"] / content["initial_liquidity_token"] * _SOL_USD
    return Token(content["token_ticker"], content["token_address"], content["decimals"], price)


def price_content(mint: str, factor: float, emitted_at: float) -> dict[str, Any]:
    """A price room's content with the token's price at `factor` times its base price."""
    price = _base_price(mint) * factor
    return {
        "mint": mint,
        "price_sol": price,
        "price_usd": round(price * _SOL_USD, 12),
        "volume_sol": 0.0,
        "market_cap_sol": round(price * _SUPPLY, 3),
        "updated_at": _iso(emitted_at),
    }


def _wallet_transactions(wallet: str) -> Content:
    rng = _rng("wallet", wallet)
    mints = [_key(rng) for _ in range(3)]

    def content(seq: int, emitted_at: float) -> dict[str, Any]:
        mint = rng.choice(mints)
        price = _base_price(mint) * rng.uniform(0.8, 1.25)
        total_sol = round(rng.uniform(0.01, 5.0), 6)
        return {
            "created_at": _iso(emitted_at),
            "maker_address": wallet,
            "type": rng.choice(("buy", "sell")),
            "total_sol": total_sol,
            "total_usd": round(total_sol * _SOL_USD, 2),
            "token_amount": round(total_sol / price, 6),
            "price_sol": price,
            "pair_address": _base58(hashlib.sha256(f"pair:{mint}".encode()).digest()),
            "token_address": mint,
            "signature": _base58(rng.randbytes(64)),
        }

    return content


def _active_users(mint: str, *, wrapped: bool) -> Content:
    # Seeded by the mint, so the e- and s: rooms of a token tell the same counts.
    rng = _rng("users", mint)
    users = 200 + digest("users", mint) % 5_000

    def content(seq: int, emitted_at: float) -> int | dict[str, int]:
        nonlocal users
        users = max(1, users + round(rng.gauss(0.0, 5.0)))
        return {"active_users": users} if wrapped else users

    return content


def room_feed(room: str) -> Content | None:
    """The content builder of a room that pushes, or None for a silent room."""
    if room == "new_pairs":
        return new_pairs_feed()
    prefix, rest = room[:2], room[2:]
    if prefix == "v:" and ADDRESS.fullmatch(rest):
        return _wallet_transactions(rest)
    if prefix in ("e-", "s:") and ADDRESS.fullmatch(rest):
        return _active_users(rest, wrapped=prefix == "s:")
    if _MINT.fullmatch(room):
        return _prices(room)
    return None


def _room(message: dict[str, Any]) -> str | None:
    room = message.get("room")
    return room if isinstance(room, str) and _ROOM.fullmatch(room) else None


async def _join(session: WsSession, message: dict[str, Any]) -> None:
    room = _room(message)
    if room is None:
        await session.error("join needs 'room': 1-128 printable characters without spaces")
        return
    if room in session.rooms:
        return
    if len(session.rooms) >= _MAX_ROOMS:
        await session.error(f"at most {_MAX_ROOMS} rooms per connection")
        return
    director = session.state.director
    feed = None if director is not None and director.owns(room) else room_feed(room)
    if feed is None:
        session.rooms[room] = None
        return

    orders = session.state.orders

    def push(seq: int, emitted_at: float) -> dict[str, Any]:
        content = feed(seq, emitted_at)
        if room == "new_pairs":
            # A new pair can be ordered (by its mint) as soon as it is announced.
            orders.list_token(listed_token(content))
        return {
            "room": room,
            "content": content,
            "emitted_at": emitted_at,
            "seq": seq,
        }

    session.rooms[room] = session.spawn(session.pace(push))


async def _leave(session: WsSession, message: dict[str, Any]) -> None:
    room = _room(message)
    if room is None:
        await session.error("leave needs 'room': 1-128 printable characters without spaces")
        return
    task = session.rooms.pop(room, None)
    if task is not None:
        task.cancel()


async def _object_body(request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
    body, problem = await read_json(request)
    if problem is not None:
        return {}, problem
    if not isinstance(body, dict):
        return {}, error_response(400, "body must be a JSON object")
    return body, None


def _is_address(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ADDRESS.fullmatch(value) is not None


async def _batched_sol_balance(request: web.Request) -> web.Response:
    body, problem = await _object_body(request)
    if problem is not None:
        return problem
    keys = body.get("publicKeys")
    if (
        not isinstance(keys, list)
        or len(keys) > _MAX_KEYS
        or not all(_is_address(key) for key in keys)
    ):
        return error_response(
            400, f"publicKeys must be a list of at most {_MAX_KEYS} addresses (1-64 letters/digits)"
        )
    balances = {}
    for key in keys:
        amount = lamports(key)
        balances[key] = {"sol": amount / 1e9, "lamports": amount}
    return web.json_response(balances)


async def _token_balance(request: web.Request) -> web.Response:
    body, problem = await _object_body(request)
    if problem is not None:
        return problem
    wallet, mint = body.get("publicKey"), body.get("tokenMint")
    if not _is_address(wallet) or not _is_address(mint):
        return error_response(
            400, "publicKey and tokenMint must be addresses (1-64 letters/digits)"
        )
    token = BY_MINT.get(mint)
    decimals = token.decimals if token is not None else 6
    raw = digest(f"token-balance:{mint}", wallet) % (10**6 * 10**decimals)
    return web.json_response(
        {
            "publicKey": wallet,
            "tokenMint": mint,
            "balance": raw / 10**decimals,
            "rawBalance": str(raw),
            "decimals": decimals,
        }
    )


async def _send_transaction(request: web.Request) -> web.Response:
    body, problem = await _object_body(request)
    if problem is not None:
        return problem
    encoded = body.get("signedTransaction")
    try:
        raw = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        return error_response(400, "signedTransaction must be a non-empty base64 string")
    director = request.app[STATE].director
    if director is not None:
        director.transaction(raw, arrival(request))
    signature = _base58(hashlib.sha512(raw).digest())
    return web.json_response({"success": True, "signature": signature})


def _query_address(request: web.Request, name: str) -> tuple[str, web.Response | None]:
    value = request.query.get(name, "")
    if not ADDRESS.fullmatch(value):
        return "", error_response(
            400, f"query parameter {name} must be an address (1-64 letters/digits)"
        )
    return value, None


def _pair(pair: str) -> dict[str, Any]:
    rng = _rng("pair", pair)
    ticker = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))).upper()[:10]
    return {
        "pairAddress": pair,
        "tokenAddress": _key(rng),
        "tokenName": f"{ticker.capitalize()} Coin",
        "tokenTicker": ticker,
        "tokenDecimals": 6,
        "supply": _SUPPLY,
        "protocol": rng.choice(_PROTOCOLS),
        "deployerAddress": _key(rng),
        "createdAt": _iso(1.7e9 + digest("created", pair) % 30_000_000),
        "initialLiquiditySol": round(rng.uniform(5.0, 85.0), 3),
        "priceSol": 1e-8 + (digest("price", pair) % 100_000) * 1e-9,
    }


async def _token_info(request: web.Request) -> web.Response:
    pair, problem = _query_address(request, "pairAddress")
    if problem is not None:
        return problem
    rng = _rng("token-info", pair)
    return web.json_response(
        {
            "pairAddress": pair,
            "tokenAddress": _pair(pair)["tokenAddress"],
            "numHolders": rng.randint(10, 50_000),
            "top10HoldersPercent": round(rng.uniform(5.0, 60.0), 2),
            "devHoldsPercent": round(rng.uniform(0.0, 10.0), 2),
            "snipersHoldPercent": round(rng.uniform(0.0, 20.0), 2),
            "insidersHoldPercent": round(rng.uniform(0.0, 20.0), 2),
            "bundlersHoldPercent": round(rng.uniform(0.0, 20.0), 2),
            "dexPaid": rng.random() < 0.3,
        }
    )


async def _pair_info(request: web.Request) -> web.Response:
    pair, problem = _query_address(request, "pairAddress")
    if problem is not None:
        return problem
    return web.json_response(_pair(pair))


async def _pair_stats(request: web.Request) -> web.Response:
    pair, problem = _query_address(request, "pairAddress")
    if problem is not None:
        return problem
    rng = _rng("pair-stats", pair)
    price = _pair(pair)["priceSol"]
    buys, sells = rng.randint(0, 5_000), rng.randint(0, 5_000)
    return web.json_response(
        {
            "pairAddress": pair,
            "priceSol": price,
            "priceUsd": price * _SOL_USD,
            "marketCapSol": round(price * _SUPPLY, 3),
            "liquiditySol": round(rng.uniform(5.0, 500.0), 3),
            "volumeSol24h": round(rng.uniform(0.0, 10_000.0), 3),
            "buyCount24h": buys,
            "sellCount24h": sells,
            "txCount24h": buys + sells,
            "priceChange24h": round(rng.uniform(-90.0, 500.0), 2),
        }
    )


async def _last_transaction(request: web.Request) -> web.Response:
    pair, problem = _query_address(request, "pairAddress")
    if problem is not None:
        return problem
    rng = _rng("last-transaction", pair)
    info = _pair(pair)
    total_sol = round(rng.uniform(0.01, 5.0), 6)
    return web.json_response(
        {
            "pairAddress": pair,
            "tokenAddress": info["tokenAddress"],
            "signature": _base58(rng.randbytes(64)),
            "makerAddress": _key(rng),
            "type": rng.choice(("buy", "sell")),
            "totalSol": total_sol,
            "totalUsd": round(total_sol * _SOL_USD, 2),
            "tokenAmount": round(total_sol / info["priceSol"], 6),
            "priceSol": info["priceSol"],
            "createdAt": _iso(time.time() - rng.uniform(0.0, 60.0)),
        }
    )


def _positions(wallet: str) -> list[dict[str, Any]]:
    rng = _rng("positions", wallet)
    positions = []
    for _ in range(rng.randint(1, 4)):
        pair = _key(rng)
        info = _pair(pair)
        bought = round(rng.uniform(0.1, 10.0), 6)
        value = round(bought * rng.uniform(0.2, 3.0), 6)
        positions.append(
            {
                "pairAddress": pair,
                "tokenAddress": info["tokenAddress"],
                "tokenTicker": info["tokenTicker"],
                "tokenAmount": round(value / info["priceSol"], 6),
                "boughtSol": bought,
                "valueSol": value,
                "unrealizedPnlSol": round(value - bought, 6),
            }
        )
    return positions


async def _meme_open_positions(request: web.Request) -> web.Response:
    wallet, problem = _query_address(request, "walletAddress")
    if problem is not None:
        return problem
    return web.json_response({"walletAddress": wallet, "positions": _positions(wallet)})


async def _portfolio(request: web.Request) -> web.Response:
    wallet = _base58(hashlib.sha256(b"axiomperf-user").digest())
    positions = _positions(wallet)
    balance = lamports(wallet) / 1e9
    invested = sum(p["valueSol"] for p in positions)
    return web.json_response(
        {
            "walletAddress": wallet,
            "balanceSol": balance,
            "totalValueSol": round(balance + invested, 6),
            "unrealizedPnlSol": round(sum(p["unrealizedPnlSol"] for p in positions), 6),
            "positions": positions,
        }
    )


async def _server_time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": int(time.time() * 1000)})


async def _refresh_access_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not state.tokens.valid_refresh(request.cookies.get(REFRESH_COOKIE, "")):
        return error_response(
            401, "missing or unknown refresh token", {"WWW-Authenticate": "Bearer"}
        )
    ttl = state.model.profile.access_token_ttl
    token, expires = state.tokens.issue(time.time(), ttl, request.cookies.get(ACCESS_COOKIE))
    response = web.json_response({"accessToken": token, "expiresAt": expires})
    response.set_cookie(ACCESS_COOKIE, token, max_age=max(1, int(ttl)), httponly=True, path="/")
    return response


def install(app: web.Application) -> None:
    """Add AxiomTrade's routes and room actions to an exchange app built by `create_app`."""
    state = app[STATE]
    state.ws_actions.update({"join": _join, "leave": _leave})
    state.auth_free_paths.add("/refresh-access-token")
    app.router.add_routes(
        [
            web.post("/refresh-access-token", _refresh_access_token),
            web.post("/api/batched-sol-balance", _batched_sol_balance),
            web.post("/api/token-balance", _token_balance),
            web.post("/api/send-transaction", _send_transaction),
            web.get("/token-info", _token_info),
            web.get("/pair-info", _pair_info),
            web.get("/pair-stats", _pair_stats),
            web.get("/last-transaction", _last_transaction),
            web.get("/meme-open-positions", _meme_open_positions),
            web.get("/portfolio", _portfolio),
            web.get("/server-time", _server_time),
        ]
    )
