"""Tests of the embedded exchange: user projects run with pytester, plus direct checks."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from pytest_axiomperf.errors import ConfigError, ExchangeError
from pytest_axiomperf.exchange import ExchangeProfile, ExchangeSimulator
from pytest_axiomperf.exchange.models import FaultModel

# Helpers shared by the user projects below (written into each as helpers.py).
HELPERS = """
import json
import time

import aiohttp
from websockets.asyncio.client import connect


def auth(exchange, token=None):
    return {"Authorization": f"Bearer {token or exchange.token}"}


async def call(exchange, method, path, *, headers=None, **kwargs):
    \"\"\"One request: (status, JSON body, headers, seconds).\"\"\"
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(exchange.base_url, timeout=timeout) as session:
        start = time.perf_counter()
        async with session.request(
            method, path, headers=auth(exchange) if headers is None else headers, **kwargs
        ) as response:
            body = await response.json(content_type=None)
            return response.status, body, response.headers, time.perf_counter() - start


def ws_connect(exchange, token=None):
    return connect(
        exchange.ws_url, additional_headers=auth(exchange, token), proxy=None, open_timeout=5
    )


async def recv(ws, timeout=5.0):
    import asyncio

    return json.loads(await asyncio.wait_for(ws.recv(), timeout))
"""

INI = """
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
"""


def _project(pytester: pytest.Pytester, source: str, *, mode: str = "auto") -> None:
    pytester.makeini(INI.format(mode=mode))
    pytester.makepyfile(helpers=HELPERS, test_user=source)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=60)


ROUTES = """
import pytest
from helpers import auth, call, ws_connect


async def test_health(axiom_exchange):
    status, body, _, _ = await call(axiom_exchange, "GET", "/health")
    assert (status, body["status"]) == (200, "ok")


async def test_balance_is_deterministic(axiom_exchange):
    first = await call(axiom_exchange, "GET", "/balance/Wallet1")
    second = await call(axiom_exchange, "GET", "/balance/Wallet1")
    other = await call(axiom_exchange, "GET", "/balance/Wallet2")
    assert first[0] == 200 and first[1] == second[1] != other[1]
    assert first[1]["sol"] == first[1]["lamports"] / 1e9
    assert (await call(axiom_exchange, "GET", "/balance/not-valid!"))[0] == 400


async def test_tokens(axiom_exchange):
    status, body, _, _ = await call(axiom_exchange, "GET", "/tokens/Wallet1")
    assert status == 200 and body["address"] == "Wallet1"
    assert body["tokens"] and all(t["amount"] >= 0 and t["mint"] for t in body["tokens"])


async def test_order_round_trip(axiom_exchange):
    order = {"token": "SOL", "side": "buy", "amount": 1.5}
    status, created, _, _ = await call(axiom_exchange, "POST", "/orders", json=order)
    assert status == 201 and created["status"] == "filled" and created["amount"] == 1.5
    status, fetched, _, _ = await call(axiom_exchange, "GET", f"/orders/{created['id']}")
    assert (status, fetched) == (200, created)
    status, body, _, _ = await call(axiom_exchange, "GET", "/orders/ord-99999999")
    assert status == 404 and "ord-99999999" in body["error"]


@pytest.mark.parametrize(
    "order, culprit",
    [
        ({"token": "NOPE", "side": "buy", "amount": 1}, "unknown token"),
        ({"token": "SOL", "side": "hold", "amount": 1}, "side"),
        ({"token": "SOL", "side": "sell", "amount": 0}, "amount"),
        ({"token": "SOL", "side": "sell", "amount": "1"}, "amount"),
        ({"token": "SOL", "side": "sell", "amount": True}, "amount"),
        ({"token": "SOL", "side": "sell", "amount": 1, "price": -2}, "price"),
        (["SOL"], "JSON object"),
    ],
)
async def test_bad_orders_get_400(axiom_exchange, order, culprit):
    status, body, _, _ = await call(axiom_exchange, "POST", "/orders", json=order)
    assert status == 400 and culprit in body["error"]


async def test_bad_bodies_and_routes(axiom_exchange):
    status, body, _, _ = await call(axiom_exchange, "POST", "/orders", data=b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]
    status, body, _, _ = await call(axiom_exchange, "POST", "/orders", data=b"x" * 200_000)
    assert status == 413 and body["status"] == 413
    status, body, _, _ = await call(axiom_exchange, "GET", "/no/such/route")
    assert (status, body["error"]) == (404, "Not Found")
    status, _, headers, _ = await call(axiom_exchange, "DELETE", "/health")
    assert status == 405 and "GET" in headers["Allow"]
    assert (await call(axiom_exchange, "GET", "/health"))[0] == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}],
    ids=["none", "wrong-token", "wrong-scheme"],
)
async def test_auth_required_everywhere(axiom_exchange, headers):
    for method, path in [("GET", "/health"), ("GET", "/balance/A"), ("GET", "/tokens/A"),
                         ("POST", "/orders"), ("GET", "/orders/x"), ("GET", "/nope")]:
        status, body, response_headers, _ = await call(
            axiom_exchange, method, path, headers=headers
        )
        assert status == 401, (method, path)
        assert response_headers["WWW-Authenticate"] == "Bearer"
    with pytest.raises(Exception, match="401"):
        async with ws_connect(axiom_exchange, token="wrong"):
            pass


def test_token_from_environment_and_hidden(axiom_exchange):
    assert axiom_exchange.token == "env-token-123"
    assert "env-token-123" not in repr(axiom_exchange)
    assert axiom_exchange.base_url.startswith("http://127.0.0.1:")
    assert axiom_exchange.ws_url == axiom_exchange.base_url.replace("http", "ws") + "/ws"


@pytest.mark.asyncio(loop_scope="session")
async def test_other_loop_scope_works(axiom_exchange):
    assert (await call(axiom_exchange, "GET", "/health"))[0] == 200
"""


def test_routes_and_auth(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every REST route, the auth rule and bad bodies, in a user project."""
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", "env-token-123")
    _project(pytester, ROUTES)
    result = _run(pytester)
    result.assert_outcomes(passed=17)
    assert "env-token-123" not in result.stdout.str() + result.stderr.str()


FAULTS = """
import asyncio
import time

import pytest
from helpers import call, recv, ws_connect
from websockets.exceptions import ConnectionClosed
from pytest_axiomperf.errors import ConfigError


@pytest.fixture(autouse=True)
def clean(axiom_exchange):
    axiom_exchange.reset()
    yield
    axiom_exchange.reset()


async def test_fixed_latency(axiom_exchange):
    axiom_exchange.configure(latency=0.3)
    status, _, headers, elapsed = await call(axiom_exchange, "GET", "/health")
    assert status == 200 and elapsed >= 0.3 and headers["X-Axiom-Delay"] == "0.300000"
    assert axiom_exchange.profile["latency"] == 0.3
    axiom_exchange.reset()
    status, _, headers, _ = await call(axiom_exchange, "GET", "/health")
    assert "X-Axiom-Delay" not in headers and axiom_exchange.profile["latency"] == 0.0


async def delays(exchange, n=8):
    return [float((await call(exchange, "GET", "/health"))[2]["X-Axiom-Delay"]) for _ in range(n)]


@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
async def test_jitter_is_seeded(axiom_exchange, distribution):
    axiom_exchange.configure(latency=0.01, jitter=0.005, seed=7, distribution=distribution)
    first = await delays(axiom_exchange)
    axiom_exchange.configure(latency=0.01, jitter=0.005, seed=7, distribution=distribution)
    again = await delays(axiom_exchange)
    axiom_exchange.configure(latency=0.01, jitter=0.005, seed=8, distribution=distribution)
    other = await delays(axiom_exchange)
    assert first == again != other and len(set(first)) == len(first)
    if distribution == "lognormal":
        assert min(first + other) >= 0.01


async def test_error_rate(axiom_exchange):
    axiom_exchange.configure(error_rate=1.0)
    status, body, _, _ = await call(axiom_exchange, "GET", "/balance/A")
    assert status == 500 and "error_rate" in body["error"]
    axiom_exchange.configure(error_rate=0.5, seed=1)
    statuses = [(await call(axiom_exchange, "GET", "/health"))[0] for _ in range(30)]
    assert set(statuses) == {200, 500}


async def test_rate_limit(axiom_exchange):
    axiom_exchange.configure(rate_limit=1, rate_limit_burst=2)
    answers = [await call(axiom_exchange, "GET", "/health") for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 429, 429]
    assert int(answers[2][2]["Retry-After"]) >= 1
    assert answers[2][1]["error"] == "rate limit exceeded"


async def test_stall_on_rest(axiom_exchange):
    axiom_exchange.configure(stall=0.5)
    _, _, _, stalled = await call(axiom_exchange, "GET", "/health")
    _, _, _, after = await call(axiom_exchange, "GET", "/health")
    assert stalled >= 0.35 and after < 0.3


async def test_stall_on_pushes_shows_in_intended_timestamps(axiom_exchange):
    async with ws_connect(axiom_exchange) as ws:
        axiom_exchange.configure(push_rate=20, stall=0.5, stall_after=0.3)
        await ws.send('{"type": "subscribe", "tokens": ["SOL"]}')
        assert (await recv(ws))["type"] == "subscribed"
        lateness = []
        for _ in range(20):
            update = await recv(ws)
            lateness.append(time.time() - update["timestamp"])
    assert max(lateness) >= 0.3 and min(lateness) < 0.2


async def test_ws_disconnect_every(axiom_exchange):
    axiom_exchange.configure(ws_disconnect_every=5, push_rate=100)
    received = []
    async with ws_connect(axiom_exchange) as ws:
        await ws.send('{"type": "subscribe", "tokens": ["SOL"]}')
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(await recv(ws))
    assert len(received) == 5 and closed.value.rcvd.code == 1001


def test_bad_knob_is_refused(axiom_exchange):
    with pytest.raises(ConfigError, match="error_rate"):
        axiom_exchange.configure(error_rate=2)
    with pytest.raises(ConfigError, match="unknown knob.*'latncy'"):
        axiom_exchange.configure(latncy=0.1)
    assert axiom_exchange.profile["error_rate"] == 0.0
"""


def test_fault_knobs(pytester: pytest.Pytester) -> None:
    """Latency, seeded jitter, 500s, 429s, stalls and WebSocket disconnects."""
    _project(pytester, FAULTS)
    _run(pytester).assert_outcomes(passed=9)


STREAM = """
import asyncio
import json
import time

import aiohttp
import pytest
from helpers import auth, recv, ws_connect


@pytest.fixture(autouse=True)
def clean(axiom_exchange):
    axiom_exchange.reset()
    yield
    axiom_exchange.reset()


@pytest.mark.asyncio
async def test_stream_at_configured_rate(axiom_exchange):
    axiom_exchange.configure(push_rate=50)
    async with ws_connect(axiom_exchange) as ws:
        await ws.send(json.dumps({"type": "subscribe", "tokens": ["SOL", "NEWMINT"]}))
        assert await recv(ws) == {"type": "subscribed", "tokens": ["SOL", "NEWMINT"]}
        updates = [await recv(ws) for _ in range(40)]
    sol = [u for u in updates if u["token"] == "SOL"]
    assert {u["type"] for u in updates} == {"token_update"} and len(sol) >= 15
    assert [u["seq"] for u in sol] == list(range(1, len(sol) + 1))
    gaps = [b["timestamp"] - a["timestamp"] for a, b in zip(sol, sol[1:])]
    assert all(abs(gap - 0.02) < 1e-6 for gap in gaps)
    assert all(u["price"] > 0 and u["volume"] >= 0 for u in updates)


@pytest.mark.asyncio
async def test_push_latency_is_measurable(axiom_exchange):
    axiom_exchange.configure(latency=0.2, push_rate=20)
    async with ws_connect(axiom_exchange) as ws:
        await ws.send(json.dumps({"type": "subscribe", "tokens": ["SOL"]}))
        await recv(ws)
        updates = [(await recv(ws), time.time()) for _ in range(5)]
    assert all(received - u["timestamp"] >= 0.19 for u, received in updates)


@pytest.mark.asyncio
async def test_ping_pong_and_unsubscribe(axiom_exchange):
    axiom_exchange.configure(push_rate=50)
    async with ws_connect(axiom_exchange) as ws:
        await ws.send(json.dumps({"type": "ping", "timestamp": 12.5}))
        assert await recv(ws) == {"type": "pong", "timestamp": 12.5}
        await ws.send(json.dumps({"type": "subscribe", "tokens": ["SOL"]}))
        while (await recv(ws))["type"] != "token_update":
            pass
        await ws.send(json.dumps({"type": "unsubscribe"}))
        while (message := await recv(ws))["type"] == "token_update":
            pass
        assert message == {"type": "unsubscribed", "tokens": ["SOL"]}
        with pytest.raises(asyncio.TimeoutError):
            await recv(ws, timeout=0.3)


@pytest.mark.asyncio
async def test_invalid_messages_keep_the_connection(axiom_exchange):
    bad = ["{nope", "[1, 2]", '{"type": "dance"}', '{"no": "type"}',
           '{"type": "subscribe"}', '{"type": "subscribe", "tokens": [1]}', b"\\x00\\x01"]
    async with ws_connect(axiom_exchange) as ws:
        for message in bad:
            await ws.send(message)
            answer = await recv(ws)
            assert answer["type"] == "error" and answer["error"], message
        await ws.send(json.dumps({"type": "ping", "timestamp": 1}))
        assert await recv(ws) == {"type": "pong", "timestamp": 1}


@pytest.mark.asyncio
async def test_thousand_concurrent_connections(axiom_exchange):
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def cycle(i):
            ws = await session.ws_connect(axiom_exchange.ws_url, headers=auth(axiom_exchange))
            return ws

        async def run():
            sockets = await asyncio.gather(*(cycle(i) for i in range(1000)))
            for i, ws in enumerate(sockets):
                await ws.send_json({"type": "ping", "timestamp": i})
            answers = [await ws.receive_json() for ws in sockets]
            await asyncio.gather(*(ws.close() for ws in sockets))
            return answers

        answers = await asyncio.wait_for(run(), 40)
    assert [a["timestamp"] for a in answers] == list(range(1000))
    async with ws_connect(axiom_exchange) as ws:
        await ws.send(json.dumps({"type": "ping", "timestamp": 2}))
        assert (await recv(ws))["type"] == "pong"
"""


def test_websocket_stream(pytester: pytest.Pytester) -> None:
    """The token_update stream, ping/pong, bad messages, 1,000 concurrent connections."""
    _project(pytester, STREAM, mode="strict")
    _run(pytester).assert_outcomes(passed=5)


TEARDOWN = """
import os
from pathlib import Path


def test_record_pid(axiom_exchange):
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(os.environ["PID_DIR"], name).write_text(str(axiom_exchange.pid))
    assert axiom_exchange.running
"""


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process `pid` ends (or is a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_one_exchange_per_xdist_worker_and_none_left(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each worker starts its own exchange; all are gone when the run ends."""
    monkeypatch.setenv("PID_DIR", str(tmp_path))
    _project(pytester, TEARDOWN)
    _run(pytester, "-n", "2", "--dist", "each").assert_outcomes(passed=2)
    pids = {int(p.read_text()) for p in tmp_path.iterdir()}
    assert len(pids) == 2
    assert all(_gone(pid) for pid in pids)


def test_no_orphan_when_the_test_process_is_killed(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """SIGKILL of the pytest process still ends its exchange (stdin EOF)."""
    pid_file = tmp_path / "pid"
    _project(pytester, "")
    pytester.makepyfile(
        test_hang=f"""
        import time
        from pathlib import Path

        def test_hang(axiom_exchange):
            Path({str(pid_file)!r}).write_text(str(axiom_exchange.pid))
            time.sleep(60)
        """
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_hang.py"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text():
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        exchange_pid = int(pid_file.read_text())
        assert psutil.pid_exists(exchange_pid)
    finally:
        runner.kill()
        runner.wait(10)
    assert _gone(exchange_pid)


def _standalone(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_axiomperf.exchange", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _get(url: str, token: str) -> tuple[int, dict[str, str]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_standalone_command() -> None:
    """Prints both URLs first, serves with the given knobs, exits cleanly on SIGINT."""
    process = _standalone(
        "--port", "0", "--latency", "0.05", env={"AXIOM_AUTH_TOKEN": "cli-secret"}
    )
    try:
        assert process.stdout is not None
        rest = process.stdout.readline().split()
        ws = process.stdout.readline().split()
        assert rest[0] == "REST" and rest[1].startswith("http://127.0.0.1:")
        assert ws == ["WS", rest[1].replace("http", "ws") + "/ws"]
        status, headers = _get(rest[1] + "/health", "cli-secret")
        assert status == 200 and headers["X-Axiom-Delay"] == "0.050000"
        assert _get(rest[1] + "/health", "wrong")[0] == 401
        assert _get(rest[1] + "/_control/profile", "cli-secret")[0] == 404
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "cli-secret" not in out + err


def test_standalone_token_printed_only_on_request() -> None:
    """A token from the environment is printed with --print-token, and only then."""
    env = {"AXIOM_AUTH_TOKEN": "env-secret"}
    for flags, shown in [((), False), (("--print-token",), True)]:
        process = _standalone("--port", "0", *flags, env=env)
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(2 + shown)]
            process.terminate()
            out, err = process.communicate(timeout=10)
        finally:
            process.kill()
        assert ("TOKEN env-secret\n" in lines) is shown
        assert "env-secret" not in out + err
        assert process.returncode == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (("--host", "0.0.0.0"), "loopback"),
        (("--host", "example.com"), "loopback"),
        (("--latency", "-1"), "latency"),
        (("--ws-disconnect-every", "-3"), "ws_disconnect_every"),
    ],
)
def test_standalone_refuses_bad_arguments(args: tuple[str, ...], message: str) -> None:
    """Non-loopback hosts and bad knobs: exit 2 with a message naming the culprit."""
    process = _standalone("--port", "0", *args)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 2 and message in err and out == ""


@pytest.mark.parametrize(
    "knobs, culprit",
    [
        ({"latency": -0.1}, "latency"),
        ({"jitter": math.inf}, "jitter"),
        ({"distribution": "pareto"}, "distribution"),
        ({"seed": 1.5}, "seed"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"rate_limit": True}, "rate_limit"),
        ({"ws_disconnect_every": 2.0}, "ws_disconnect_every"),
        ({"stall": 1.0, "stall_every": 0.5}, "stall_every"),
        ({"push_rate": 0}, "push_rate"),
        ({"latncy": 0.1}, "latncy"),
    ],
)
def test_profile_validation(knobs: dict[str, object], culprit: str) -> None:
    """Each bad knob is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=culprit):
        ExchangeProfile.from_dict(knobs)


def test_profile_round_trips_through_dict() -> None:
    """`to_dict` holds every knob and rebuilds the same profile (results store it)."""
    profile = ExchangeProfile(latency=0.05, jitter=0.01, distribution="lognormal", seed=3)
    assert ExchangeProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_fault_model_clock() -> None:
    """Rate-limit bucket refills at the rate; stall windows start and repeat on time."""
    model = FaultModel(ExchangeProfile(rate_limit=2, stall=1, stall_after=5, stall_every=10), 100)
    assert [model.retry_after(100.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert model.retry_after(100.5) == 0.0
    assert model.stall_remaining(104.9) == 0.0
    assert model.stall_remaining(105.25) == 0.75
    assert model.stall_remaining(106.5) == 0.0
    assert model.stall_remaining(115.5) == 0.5


def test_simulator_handle_errors() -> None:
    """Misuse of the handle is reported clearly and shows no token."""
    with pytest.raises(ConfigError, match="token"):
        ExchangeSimulator("  ")
    handle = ExchangeSimulator("handle-secret")
    with pytest.raises(ExchangeError, match="not started"):
        _ = handle.base_url
    assert "handle-secret" not in repr(handle) and not handle.running
    handle.stop()
    with handle:
        with pytest.raises(ExchangeError, match="already started"):
            handle.start()
        assert "handle-secret" not in repr(handle) and handle.running
        pid = handle.pid
    assert pid is not None and _gone(pid) and not handle.running


def test_stop_with_a_connected_websocket_is_prompt() -> None:
    """Shutdown closes connected WebSockets (1001) instead of waiting for them."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    exchange = ExchangeSimulator().start()
    headers = {"Authorization": f"Bearer {exchange.token}"}
    try:
        with connect(exchange.ws_url, additional_headers=headers, proxy=None) as ws:
            ws.send('{"type": "subscribe", "tokens": ["SOL"]}')
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
            start = time.monotonic()
            exchange.stop()
            # Stopping escalates to SIGKILL only after 3 s: a graceful stop is well below that.
            assert time.monotonic() - start < 2.5
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=5)
    finally:
        exchange.stop()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_an_exchange_killed_mid_test_is_named_and_replaced(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # whole summary lines
    user_project.makepyfile(
        """
        import asyncio
        import os
        import signal
        import time

        import pytest


        @pytest.mark.asyncio
        async def test_killed(axiom_client, axiom_exchange):
            assert (await axiom_client.get("/health")).status == 200
            os.kill(axiom_exchange.pid, signal.SIGKILL)
            for _ in range(500):  # the kernel ends it within milliseconds
                if not axiom_exchange.running:
                    break
                await asyncio.sleep(0.01)
            await axiom_client.get("/health")


        @pytest.mark.asyncio
        async def test_next_client_only(axiom_client):
            assert (await axiom_client.get("/health")).status == 200


        def test_next_configures(axiom_exchange):
            axiom_exchange.configure(latency=0.001)
            assert axiom_exchange.profile["latency"] == 0.001


        def test_killed_again(axiom_exchange):
            os.kill(axiom_exchange.pid, signal.SIGKILL)
            for _ in range(500):
                if not axiom_exchange.running:
                    break
                time.sleep(0.01)
            axiom_exchange.reset()


        @pytest.mark.asyncio
        async def test_last(axiom_client):
            assert (await axiom_client.get("/health")).status == 200
        """
    )
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- axiom_exchange -*",
            "the embedded exchange died during this test (killed by SIGKILL); the next test "
            "that uses it gets a fresh one",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED *::test_killed - the embedded exchange died during this test "
            "(killed by SIGKILL): *ClientConnectorError*",
            "FAILED *::test_killed_again - the embedded exchange died during this test "
            "(killed by SIGKILL): *ExchangeError*the embedded exchange died: killed by SIGKILL*",
        ]
    )
    assert "killed by SIGKILL" in (user_project.path / "junit.xml").read_text()
