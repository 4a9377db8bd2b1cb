"""The real axiomtradeapi SDK against the embedded exchange, through ``axiom_sdk``/``axiom_sdk_ws``.

The README's example test is run verbatim in a user project (pytester
subprocess), beside stricter checks of this file. No test may reach a real
host: the subprocess runs with every proxy variable pointing at a loopback port
that refuses connections (``NO_PROXY`` keeps the exchange reachable), and the
fixtures redirect or refuse every call of the SDK to AxiomTrade's hosts.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip(
    "axiomtradeapi",
    reason="axiomtradeapi is not installed (pip install -e '.[sdk]'): SDK integration skipped",
)

README = Path(__file__).resolve().parent.parent / "README.md"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
INI = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"


def readme_examples() -> dict[str, str]:
    """The README's ``<!-- sdk-example: NAME -->`` code blocks, by file name."""
    found = re.findall(
        r"<!-- sdk-example: (\S+) -->\n```python\n(.*?)```", README.read_text(), re.DOTALL
    )
    return dict(found)


class ProxyTrap:
    """A loopback "proxy" that refuses every request: it records the request line, then closes.

    With every proxy variable pointing at it (and ``NO_PROXY`` exempting loopback),
    anything the SDK sends to a real host ends here instead of leaving the
    machine, and the test can tell that nothing tried.
    """

    def __init__(self) -> None:
        """Listen on a free loopback port, in a daemon thread."""
        self.attempts: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, name="proxy-trap", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2.0)
                with contextlib.suppress(OSError):
                    line = connection.recv(1024).split(b"\r\n", 1)[0]
                    self.attempts.append(line.decode(errors="replace"))

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(5)
        self._server.close()


@pytest.fixture
def proxy_trap(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyTrap]:
    """Proxy variables (upper and lower case) at a `ProxyTrap`; loopback exempt."""
    trap = ProxyTrap()
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, trap.url)
        monkeypatch.setenv(name.lower(), trap.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("CF_CLEARANCE", "offline-test")
    yield trap
    trap.close()


STRICT = """
import asyncio
import json
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect

MINT = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"


def exchange_get(exchange, path):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        exchange.base_url + path, headers={"Authorization": f"Bearer {exchange.token}"}
    )
    with opener.open(request, timeout=5) as response:
        return json.load(response)


async def room_contents(exchange, room, n):
    \"\"\"The first `n` contents of `room`, heard on a plain WebSocket.\"\"\"
    headers = {"Cookie": f"auth-access-token={exchange.token}"}
    async with connect(exchange.ws_url, additional_headers=headers, proxy=None) as ws:
        await ws.send(json.dumps({"action": "join", "room": room}))
        return [json.loads(await asyncio.wait_for(ws.recv(), 5))["content"] for _ in range(n)]


def untimed(content):
    return {k: v for k, v in content.items() if k != "created_at"}


def test_batched_balance_is_the_exchanges(axiom_sdk, axiom_exchange, axiom_tracker):
    keys = ["Wallet1", "Wallet2", "Wallet3"]
    expected = {key: exchange_get(axiom_exchange, f"/balance/{key}")["sol"] for key in keys}
    assert axiom_sdk.get_batched_sol_balance(keys) == expected
    assert axiom_sdk.get_sol_balance("Wallet2") == expected["Wallet2"]
    assert axiom_tracker.tags("api_response_times") == ["POST /api/batched-sol-balance"]


def test_data_calls(axiom_sdk, axiom_exchange):
    for call in (axiom_sdk.get_pair_info, axiom_sdk.get_pair_stats,
                 axiom_sdk.get_token_info_by_pair, axiom_sdk.get_last_transaction):
        assert call("Pair1")["pairAddress"] == "Pair1"
    assert axiom_sdk.get_pair_info("Pair1") == exchange_get(
        axiom_exchange, "/pair-info?pairAddress=Pair1"
    )
    assert axiom_sdk.get_meme_open_positions("Wallet1")["positions"]
    assert axiom_sdk.get_user_portfolio()["balanceSol"] > 0
    assert axiom_sdk.get_token_balance("Wallet1", MINT) >= 0


@pytest.mark.asyncio
async def test_callbacks_get_the_exchanges_data(axiom_sdk_ws, axiom_exchange, axiom_tracker):
    axiom_exchange.configure(push_rate=50)
    pairs, trades, users = asyncio.Queue(), asyncio.Queue(), asyncio.Queue()

    async def on_new_pairs(items):
        for item in items:
            pairs.put_nowait(item)

    assert await axiom_sdk_ws.subscribe_new_tokens(on_new_pairs)
    assert await axiom_sdk_ws.subscribe_wallet_transactions("Wallet7", trades.put)
    assert await axiom_sdk_ws.subscribe_active_users(users.put, token_address=MINT)
    listener = asyncio.create_task(axiom_sdk_ws.start())
    try:
        got_pairs = [await asyncio.wait_for(pairs.get(), 5) for _ in range(3)]
        got_trades = [await asyncio.wait_for(trades.get(), 5) for _ in range(3)]
        got_users = [await asyncio.wait_for(users.get(), 5) for _ in range(2)]
    finally:
        listener.cancel()
        await axiom_sdk_ws.close()
    heard_pairs = await room_contents(axiom_exchange, "new_pairs", 3)
    heard_trades = await room_contents(axiom_exchange, "v:Wallet7", 3)
    assert [untimed(p) for p in got_pairs] == [untimed(p) for p in heard_pairs]
    assert [untimed(t) for t in got_trades] == [untimed(t) for t in heard_trades]
    assert all(t["maker_address"] == "Wallet7" for t in got_trades)
    assert all(isinstance(n, int) and n >= 1 for n in got_users)
    rooms = set(axiom_tracker.tags("websocket_latency"))
    assert {"new_pairs", "v:Wallet7", f"e-{MINT}", f"s:{MINT}"} <= rooms


def test_sdk_refresh_rotates_against_the_exchange(axiom_exchange, tmp_path, monkeypatch):
    from axiomtradeapi import AxiomTradeClient
    from curl_cffi import requests as cffi_requests

    post = cffi_requests.post

    def to_exchange(url, **kwargs):
        assert url == "https://api.axiom.trade/refresh-access-token"
        return post(axiom_exchange.base_url + "/refresh-access-token", **kwargs)

    monkeypatch.setattr(cffi_requests, "post", to_exchange)
    client = AxiomTradeClient(
        auth_token=axiom_exchange.token, refresh_token=axiom_exchange.token,
        use_saved_tokens=False, storage_dir=str(tmp_path),
    )
    assert client.refresh_access_token()
    first = client.access_token
    assert client.refresh_access_token()
    second = client.access_token
    assert len({axiom_exchange.token, first, second}) == 3
    assert client.get_tokens()["is_expired"] is False

    def status(token):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            axiom_exchange.base_url + "/server-time",
            headers={"Cookie": f"auth-access-token={token}"},
        )
        try:
            with opener.open(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert (status(first), status(second)) == (401, 200)
"""


def test_sdk_against_the_exchange(pytester: pytest.Pytester, proxy_trap: ProxyTrap) -> None:
    """The README's example (no conftest), then balances, data calls, callbacks and refresh."""
    examples = readme_examples()
    assert set(examples) == {"test_bot.py"}, "README sdk-example blocks changed"
    pytester.makeini(INI)
    pytester.makepyfile(test_bot=examples["test_bot.py"], test_strict=STRICT)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--axiom-perf", "-v", timeout=120
    )
    result.assert_outcomes(passed=6)
    # The report shows the SDK's calls, timed by axiom_sdk and axiom_sdk_ws.
    result.stdout.fnmatch_lines(
        ["*API Response Times*", "*POST /api/batched-sol-balance*", "*WebSocket Latency*"]
    )
    assert proxy_trap.attempts == []


def test_the_trap_catches_an_unpatched_sdk(
    pytester: pytest.Pytester, proxy_trap: ProxyTrap
) -> None:
    """Without the fixtures the SDK goes for real hosts: the trap sees it, not them."""
    pytester.makeini(INI)
    pytester.makepyfile(test_unpatched=UNPATCHED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)
    hosts = {line.split()[1] for line in proxy_trap.attempts if line.startswith("CONNECT ")}
    assert {"api.axiom.trade:443", "api6.axiom.trade:443", "cluster3.axiom.trade:443"} <= hosts


UNPATCHED = """
import asyncio
import logging


def test_unpatched_websocket_client(axiom_exchange, tmp_path):
    from axiomtradeapi import AxiomTradeClient

    client = AxiomTradeClient(
        auth_token="not-the-token", refresh_token="x",
        use_saved_tokens=False, storage_dir=str(tmp_path),
    )
    ws = client.get_websocket_client(log_level=logging.CRITICAL)
    ws.ws_url = axiom_exchange.ws_url
    # Pre-flights go out, the exchange refuses the token, the fallback clusters are tried.
    assert asyncio.run(ws.connect()) is False
"""
