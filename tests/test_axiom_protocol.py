"""The exchange speaks AxiomTrade's protocol: rooms, auth cookies, token rotation, SDK routes.

Each test file runs in a user project (pytester subprocess) against the real
embedded exchange, as a user's bot would meet it.
"""

from __future__ import annotations

import pytest

HELPERS = """
import asyncio
import json
import time

import aiohttp
from websockets.asyncio.client import connect


def cookies(access=None, refresh=None):
    jar = {}
    if access is not None:
        jar["auth-access-token"] = access
    if refresh is not None:
        jar["auth-refresh-token"] = refresh
    return "; ".join(f"{k}={v}" for k, v in jar.items())


async def call(exchange, method, path, *, access=None, refresh=None, bearer=False, **kwargs):
    \"\"\"One request authenticated by cookie (or bearer): (status, JSON body, response).\"\"\"
    headers = {}
    if bearer:
        headers["Authorization"] = f"Bearer {exchange.token}"
    jar = cookies(access, refresh)
    if jar:
        headers["Cookie"] = jar
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(exchange.base_url, timeout=timeout) as session:
        async with session.request(method, path, headers=headers, **kwargs) as response:
            return response.status, await response.json(content_type=None), response


def ws_connect(exchange, access=None):
    jar = cookies(exchange.token if access is None else access, exchange.token)
    return connect(
        exchange.ws_url, additional_headers={"Cookie": jar}, proxy=None, open_timeout=5
    )


async def recv(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def join(ws, *rooms):
    for room in rooms:
        await ws.send(json.dumps({"action": "join", "room": room}))


async def barrier(ws):
    \"\"\"Wait until the exchange processed everything sent before (a ping's pong).\"\"\"
    stamp = time.time()
    await ws.send(json.dumps({"type": "ping", "timestamp": stamp}))
    before = []
    for _ in range(1_000):
        message = await recv(ws)
        if message == {"type": "pong", "timestamp": stamp}:
            return before
        before.append(message)
    raise AssertionError("no pong after 1,000 messages")
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

CLEAN = """
import pytest


@pytest.fixture(autouse=True)
def clean(axiom_exchange):
    axiom_exchange.reset()
    yield
    axiom_exchange.reset()
"""


def _run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(helpers=HELPERS, conftest=CLEAN, test_user=source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=90)


ROOMS = """
import asyncio
import json
import time
from datetime import datetime

import pytest
from helpers import barrier, join, recv, ws_connect
from websockets.exceptions import ConnectionClosed

SOL = "So11111111111111111111111111111111111111112"
MINT = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"


async def first_by_room(ws, rooms):
    seen = {}
    for _ in range(500):
        message = await recv(ws)
        seen.setdefault(message["room"], message)
        if set(seen) == set(rooms):
            return seen
    raise AssertionError(f"rooms heard after 500 pushes: {sorted(seen)}")


async def test_every_pushing_room_and_its_content(axiom_exchange):
    rooms = ["new_pairs", SOL, "v:Wallet1", f"e-{MINT}", f"s:{MINT}"]
    async with ws_connect(axiom_exchange) as ws:
        await join(ws, *rooms, f"t:{MINT}", f"{MINT}-dex-paid", f"kol_tx:{MINT}")
        seen = await first_by_room(ws, rooms)
    for room, message in seen.items():
        assert set(message) == {"room", "content", "emitted_at", "seq"}, room
        assert message["content"] and message["seq"] == 1
        assert abs(time.time() - message["emitted_at"]) < 5
    pair = seen["new_pairs"]["content"]
    assert pair["pair_address"] != pair["token_address"] and pair["token_name"]
    assert pair["token_ticker"] and pair["initial_liquidity_sol"] > 0
    datetime.fromisoformat(pair["created_at"].replace("Z", "+00:00"))
    price = seen[SOL]["content"]
    assert price["mint"] == SOL and 0.5 < price["price_sol"] < 2 and price["price_usd"] > 0
    tx = seen["v:Wallet1"]["content"]
    assert tx["maker_address"] == "Wallet1" and tx["type"] in ("buy", "sell")
    assert tx["total_sol"] > 0 and tx["total_usd"] == round(tx["total_sol"] * 150, 2)
    datetime.fromisoformat(tx["created_at"].replace("Z", "+00:00"))
    users = seen[f"e-{MINT}"]["content"]
    assert isinstance(users, int) and users >= 1
    assert seen[f"s:{MINT}"]["content"] == {"active_users": users}


async def test_content_is_seeded_by_room(axiom_exchange):
    async def contents(room):
        async with ws_connect(axiom_exchange) as ws:
            await join(ws, room)
            return [(await recv(ws))["content"] for _ in range(3)]

    first, again, other = await contents("v:W1"), await contents("v:W1"), await contents("v:W2")
    drop = lambda items: [{k: v for k, v in c.items() if k != "created_at"} for c in items]
    assert drop(first) == drop(again) != drop(other)


async def test_rate_and_intended_times(axiom_exchange):
    axiom_exchange.configure(push_rate=50)
    async with ws_connect(axiom_exchange) as ws:
        await join(ws, "new_pairs")
        pushes = [await recv(ws) for _ in range(10)]
    assert [p["seq"] for p in pushes] == list(range(1, 11))
    gaps = [b["emitted_at"] - a["emitted_at"] for a, b in zip(pushes, pushes[1:])]
    assert all(abs(gap - 0.02) < 1e-6 for gap in gaps)


async def test_injected_latency_shows_in_delivery(axiom_exchange):
    axiom_exchange.configure(latency=0.2, push_rate=20)
    async with ws_connect(axiom_exchange) as ws:
        await join(ws, "v:Wallet1")
        received = [(await recv(ws), time.time()) for _ in range(5)]
    assert all(at - push["emitted_at"] >= 0.19 for push, at in received)


async def test_leave_stops_the_room_and_silent_rooms_stay_silent(axiom_exchange):
    axiom_exchange.configure(push_rate=50)
    async with ws_connect(axiom_exchange) as ws:
        await join(ws, "new_pairs", "t:Quiet1", "new_pairs")
        assert (await recv(ws))["room"] == "new_pairs"
        await ws.send(json.dumps({"action": "leave", "room": "new_pairs"}))
        before = await barrier(ws)
        assert all(m["room"] == "new_pairs" for m in before)
        with pytest.raises(asyncio.TimeoutError):
            await recv(ws, timeout=0.3)
        await join(ws, "new_pairs")
        assert (await recv(ws))["seq"] == 1


@pytest.mark.parametrize(
    "message, culprit",
    [
        ({"action": "join"}, "join needs 'room'"),
        ({"action": "join", "room": "has space"}, "join needs 'room'"),
        ({"action": "join", "room": 7}, "join needs 'room'"),
        ({"action": "leave", "room": ""}, "leave needs 'room'"),
        ({"action": "dance", "room": "new_pairs"}, "unknown action 'dance'"),
    ],
)
async def test_bad_room_messages_keep_the_connection(axiom_exchange, message, culprit):
    async with ws_connect(axiom_exchange) as ws:
        await ws.send(json.dumps(message))
        answer = await recv(ws)
        assert answer["type"] == "error" and culprit in answer["error"]
        assert await barrier(ws) == []


async def test_disconnect_fault_applies_to_rooms(axiom_exchange):
    axiom_exchange.configure(ws_disconnect_every=3, push_rate=100)
    received = []
    async with ws_connect(axiom_exchange) as ws:
        await join(ws, "new_pairs")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(await recv(ws))
    assert len(received) == 3 and closed.value.rcvd.code == 1001


async def test_guide_stream_and_rooms_share_a_connection(axiom_exchange):
    axiom_exchange.configure(push_rate=50)
    async with ws_connect(axiom_exchange) as ws:
        await ws.send(json.dumps({"type": "subscribe", "tokens": ["SOL"]}))
        await join(ws, "new_pairs")
        kinds = {(await recv(ws)).get("type")}
        for _ in range(200):
            message = await recv(ws)
            kinds.add(message.get("type") or message.get("room"))
            if "token_update" in kinds and "new_pairs" in kinds:
                break
        assert kinds == {"subscribed", "token_update", "new_pairs"}
        await ws.send(json.dumps({"type": "unsubscribe"}))
        for _ in range(200):
            if (message := await recv(ws)).get("type") == "unsubscribed":
                break
        assert message == {"type": "unsubscribed", "tokens": ["SOL"]}
        assert (await recv(ws))["room"] == "new_pairs"
"""


def test_rooms(pytester: pytest.Pytester) -> None:
    """Join/leave, every pushing room's content, rate, latency, faults, bad messages."""
    _run(pytester, ROOMS).assert_outcomes(passed=12)


AUTH = """
import asyncio
import base64
import json
import time

import pytest
from helpers import call, recv, ws_connect


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def refresh(exchange, access=None, refresh_token=None):
    return await call(
        exchange, "POST", "/refresh-access-token",
        access=access, refresh=exchange.token if refresh_token is None else refresh_token,
    )


async def test_cookie_is_accepted_beside_the_bearer(axiom_exchange):
    assert (await call(axiom_exchange, "GET", "/health", access=axiom_exchange.token))[0] == 200
    assert (await call(axiom_exchange, "GET", "/health", bearer=True))[0] == 200
    status, body, response = await call(axiom_exchange, "GET", "/health", access="nope")
    assert status == 401 and body["error"] == "unknown access token"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    async with ws_connect(axiom_exchange) as ws:
        await ws.send(json.dumps({"type": "ping", "timestamp": 1}))
        assert (await recv(ws))["type"] == "pong"
    with pytest.raises(Exception, match="401"):
        async with ws_connect(axiom_exchange, access="nope"):
            pass


async def test_refresh_rotates_the_access_token(axiom_exchange):
    status, body, response = await refresh(axiom_exchange)
    first = body["accessToken"]
    assert status == 200 and response.cookies["auth-access-token"].value == first
    assert abs(claims(first)["exp"] - (time.time() + 3600)) < 60
    assert body["expiresAt"] == claims(first)["exp"]
    assert (await call(axiom_exchange, "GET", "/portfolio", access=first))[0] == 200
    async with ws_connect(axiom_exchange, access=first):
        pass
    status, body, _ = await refresh(axiom_exchange, access=first)
    second = body["accessToken"]
    assert status == 200 and second != first
    status, body, _ = await call(axiom_exchange, "GET", "/portfolio", access=first)
    assert status == 401 and body["error"] == "unknown access token"
    assert (await call(axiom_exchange, "GET", "/portfolio", access=second))[0] == 200
    # The exchange's own token is never revoked: other clients of the session keep working.
    await refresh(axiom_exchange, access=axiom_exchange.token)
    assert (await call(axiom_exchange, "GET", "/health", access=axiom_exchange.token))[0] == 200


@pytest.mark.parametrize("refresh_token", ["", "wrong"])
async def test_refresh_needs_the_refresh_token(axiom_exchange, refresh_token):
    status, body, _ = await refresh(axiom_exchange, refresh_token=refresh_token)
    assert status == 401 and "refresh token" in body["error"]


async def test_issued_tokens_expire(axiom_exchange):
    axiom_exchange.configure(access_token_ttl=0.3)
    _, body, _ = await refresh(axiom_exchange)
    token = body["accessToken"]
    assert (await call(axiom_exchange, "GET", "/health", access=token))[0] == 200
    await asyncio.sleep(max(0.0, body["expiresAt"] - time.time()) + 0.05)
    status, body, _ = await call(axiom_exchange, "GET", "/health", access=token)
    assert status == 401 and body["error"] == "access token expired"


async def test_reset_revokes_issued_tokens(axiom_exchange):
    _, body, _ = await refresh(axiom_exchange)
    axiom_exchange.reset()
    assert (await call(axiom_exchange, "GET", "/health", access=body["accessToken"]))[0] == 401


def test_bad_ttl_is_refused(axiom_exchange):
    from pytest_axiomperf.errors import ConfigError

    with pytest.raises(ConfigError, match="access_token_ttl"):
        axiom_exchange.configure(access_token_ttl=0)
"""


def test_cookie_auth_and_token_rotation(pytester: pytest.Pytester) -> None:
    """Cookies beside the bearer, refresh rotates, unknown/expired tokens get 401."""
    _run(pytester, AUTH).assert_outcomes(passed=7)


REST = """
import base64
import time

import pytest
from helpers import call


async def test_batched_sol_balance_matches_the_balance_route(axiom_exchange):
    keys = ["Wallet1", "Wallet2"]
    status, body, _ = await call(
        axiom_exchange, "POST", "/api/batched-sol-balance", bearer=True,
        json={"publicKeys": keys, "v": 1},
    )
    assert status == 200 and set(body) == set(keys)
    for key in keys:
        _, single, _ = await call(axiom_exchange, "GET", f"/balance/{key}", bearer=True)
        assert body[key] == {"sol": single["sol"], "lamports": single["lamports"]}


async def test_token_balance_and_send_transaction(axiom_exchange):
    request = {"publicKey": "Wallet1", "tokenMint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"}
    first = await call(axiom_exchange, "POST", "/api/token-balance", bearer=True, json=request)
    again = await call(axiom_exchange, "POST", "/api/token-balance", bearer=True, json=request)
    assert first[0] == 200 and first[1] == again[1] and first[1]["decimals"] == 6
    assert first[1]["balance"] >= 0
    tx = base64.b64encode(b"signed transaction bytes").decode()
    status, body, _ = await call(
        axiom_exchange, "POST", "/api/send-transaction", bearer=True,
        json={"signedTransaction": tx},
    )
    assert status == 200 and len(body["signature"]) > 60


@pytest.mark.parametrize(
    "path, body, culprit",
    [
        ("/api/batched-sol-balance", b"{nope", "not valid JSON"),
        ("/api/batched-sol-balance", b"[]", "JSON object"),
        ("/api/batched-sol-balance", b'{"publicKeys": "Wallet1"}', "publicKeys"),
        ("/api/batched-sol-balance", b'{"publicKeys": ["bad key!"]}', "publicKeys"),
        ("/api/token-balance", b'{"publicKey": "W"}', "tokenMint"),
        ("/api/send-transaction", b'{"signedTransaction": "***"}', "base64"),
        ("/api/send-transaction", b'{}', "signedTransaction"),
    ],
)
async def test_malformed_bodies_get_400(axiom_exchange, path, body, culprit):
    status, answer, _ = await call(axiom_exchange, "POST", path, bearer=True, data=body)
    assert status == 400 and culprit in answer["error"] and answer["status"] == 400


@pytest.mark.parametrize(
    "path, keys",
    [
        ("/token-info?pairAddress=Pair1", {"pairAddress", "tokenAddress", "numHolders"}),
        ("/pair-info?pairAddress=Pair1", {"tokenName", "tokenTicker", "createdAt"}),
        ("/pair-stats?pairAddress=Pair1", {"priceSol", "priceUsd", "volumeSol24h"}),
        ("/last-transaction?pairAddress=Pair1", {"signature", "type", "totalSol"}),
        ("/meme-open-positions?walletAddress=Wallet1", {"walletAddress", "positions"}),
        ("/portfolio", {"balanceSol", "totalValueSol", "positions"}),
        ("/server-time", {"serverTime"}),
    ],
)
async def test_data_routes(axiom_exchange, path, keys):
    status, body, _ = await call(axiom_exchange, "GET", path, access=axiom_exchange.token)
    assert status == 200 and keys <= set(body)
    again = (await call(axiom_exchange, "GET", path, bearer=True))[1]
    untimed = lambda b: {k: v for k, v in b.items() if k not in ("createdAt", "serverTime")}
    assert untimed(again) == untimed(body)
    if "pairAddress=" in path:
        assert body["pairAddress"] == "Pair1"


@pytest.mark.parametrize(
    "path", ["/pair-info", "/token-info?pairAddress=bad!", "/meme-open-positions"]
)
async def test_bad_query_gets_400(axiom_exchange, path):
    status, body, _ = await call(axiom_exchange, "GET", path, bearer=True)
    assert status == 400 and "query parameter" in body["error"]


async def test_server_time_and_faults(axiom_exchange):
    _, body, _ = await call(axiom_exchange, "GET", "/server-time", bearer=True)
    assert abs(body["serverTime"] / 1000 - time.time()) < 5
    axiom_exchange.configure(error_rate=1.0)
    status, _, _ = await call(
        axiom_exchange, "POST", "/api/batched-sol-balance", bearer=True, json={"publicKeys": []}
    )
    assert status == 500
"""


def test_sdk_rest_routes(pytester: pytest.Pytester) -> None:
    """The SDK's REST routes: balances, transactions, data routes, 400s, faults."""
    _run(pytester, REST).assert_outcomes(passed=20)
