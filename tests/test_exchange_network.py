"""The exchange's network model: ``connect_latency``, paid once per new connection."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import aiohttp
import httpx
import pytest
from websockets.asyncio.client import connect

from pytest_axiomperf.baseline import fingerprint_mismatches
from pytest_axiomperf.errors import ConfigError
from pytest_axiomperf.exchange import ExchangeProfile, ExchangeSimulator
from pytest_axiomperf.exchange.__main__ import _parser, _profile
from pytest_axiomperf.exchange.models import FaultModel
from pytest_axiomperf.respx_api import ExchangeRouter
from pytest_axiomperf.results import SessionResults
from pytest_axiomperf.results import TestResult as PerfResult
from pytest_axiomperf.tracker import PerformanceTracker

HANDSHAKE = 0.4
# Far below HANDSHAKE and far above a loopback request on a loaded machine.
KEPT_ALIVE = 0.2
TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest.fixture
def exchange(axiom_exchange: ExchangeSimulator) -> Iterator[ExchangeSimulator]:
    """The session's exchange, back to its default profile after the test."""
    axiom_exchange.reset()
    yield axiom_exchange
    axiom_exchange.reset()


async def timed_get(session: aiohttp.ClientSession, path: str = "/health") -> float:
    """Seconds for one GET on `session`, which must be answered 200."""
    start = time.perf_counter()
    async with session.get(path) as response:
        await response.read()
        assert response.status == 200
    return time.perf_counter() - start


def session_for(exchange: ExchangeSimulator) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        exchange.base_url,
        headers={"Authorization": f"Bearer {exchange.token}"},
        timeout=TIMEOUT,
    )


@pytest.mark.asyncio
async def test_a_new_connection_pays_connect_latency_once(exchange: ExchangeSimulator) -> None:
    exchange.configure(connect_latency=HANDSHAKE)
    async with session_for(exchange) as session:
        first = await timed_get(session)
        kept_alive = [await timed_get(session, "/balance/So1net") for _ in range(3)]
    async with session_for(exchange) as other:
        again = await timed_get(other)
    assert first >= HANDSHAKE and again >= HANDSHAKE
    assert max(kept_alive) < KEPT_ALIVE


@pytest.mark.asyncio
async def test_connections_open_before_the_knob_have_paid(exchange: ExchangeSimulator) -> None:
    """The handshake belongs to the connection: one already open never pays it."""
    async with session_for(exchange) as session:
        await timed_get(session)
        exchange.configure(connect_latency=HANDSHAKE)
        assert await timed_get(session) < KEPT_ALIVE


@pytest.mark.asyncio
async def test_connect_latency_comes_before_auth(exchange: ExchangeSimulator) -> None:
    """Round trips precede any answer, a refusal too."""
    exchange.configure(connect_latency=HANDSHAKE)
    async with aiohttp.ClientSession(exchange.base_url, timeout=TIMEOUT) as session:
        start = time.perf_counter()
        async with session.get("/health") as response:
            assert response.status == 401
        assert time.perf_counter() - start >= HANDSHAKE


def ws_connect(exchange: ExchangeSimulator) -> connect:
    return connect(
        exchange.ws_url,
        additional_headers={"Authorization": f"Bearer {exchange.token}"},
        proxy=None,
        open_timeout=10,
    )


@pytest.mark.asyncio
async def test_a_websocket_connect_pays_it_and_its_messages_do_not(
    exchange: ExchangeSimulator,
) -> None:
    exchange.configure(connect_latency=HANDSHAKE)
    start = time.perf_counter()
    async with ws_connect(exchange) as ws:
        opened = time.perf_counter() - start
        start = time.perf_counter()
        await ws.send(json.dumps({"type": "ping", "timestamp": 1}))
        pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
        answered = time.perf_counter() - start
    assert pong == {"type": "pong", "timestamp": 1}
    assert opened >= HANDSHAKE and answered < KEPT_ALIVE


@pytest.mark.asyncio
async def test_a_handshake_due_in_a_stall_ends_with_it(exchange: ExchangeSimulator) -> None:
    """The WebSocket upgrade ignores stalls, unless it has handshakes to finish."""
    exchange.configure(stall=0.8)
    start = time.perf_counter()
    async with ws_connect(exchange):
        assert time.perf_counter() - start < 0.4
    exchange.configure(stall=0.8, connect_latency=0.05)
    start = time.perf_counter()
    async with ws_connect(exchange):
        # The stall began when configure() returned, a few ms before the connect.
        assert time.perf_counter() - start >= 0.6


def test_fault_model_connect_delay() -> None:
    """connect_latency, lengthened to the end of a stall the handshakes would end in."""
    model = FaultModel(ExchangeProfile(connect_latency=0.25, stall=1, stall_after=5), 100)
    assert model.connect_delay(100.0) == 0.25
    assert model.connect_delay(104.0) == 0.25  # ends before the stall
    assert model.connect_delay(104.75) == 1.25  # ends at 105.0, the stall's start
    assert model.connect_delay(105.5) == 0.5  # would end at 105.75: ends at 106.0
    assert model.connect_delay(106.0) == 0.25
    assert FaultModel(ExchangeProfile(stall=1), 100).connect_delay(100.0) == 0.0


@pytest.mark.parametrize("value", [-0.1, float("nan"), 61.0, True, "0.1"])
def test_a_bad_connect_latency_is_refused(exchange: ExchangeSimulator, value: object) -> None:
    with pytest.raises(ConfigError, match="connect_latency"):
        exchange.configure(connect_latency=value)
    assert exchange.profile["connect_latency"] == 0.0


@pytest.mark.asyncio
async def test_reset_clears_connect_latency(exchange: ExchangeSimulator) -> None:
    exchange.configure(latency=0.01, connect_latency=HANDSHAKE)
    assert exchange.profile["connect_latency"] == HANDSHAKE
    assert exchange.configured is not None and exchange.configured["connect_latency"] == HANDSHAKE
    exchange.reset()
    assert exchange.profile == ExchangeProfile().to_dict()
    async with session_for(exchange) as session:
        assert await timed_get(session) < KEPT_ALIVE


def test_standalone_option() -> None:
    args = _parser().parse_args(["--connect-latency", "0.04"])
    assert _profile(args) == ExchangeProfile(connect_latency=0.04)
    with pytest.raises(ConfigError, match="connect_latency"):
        _profile(_parser().parse_args(["--connect-latency", "-1"]))


def _session_with_profile(profile: dict[str, object]) -> SessionResults:
    results = SessionResults()
    result = PerfResult(nodeid="t", tracker=PerformanceTracker("t"))
    result.extra["exchange_profile"] = profile
    results.add(result)
    return results


def test_baselines_saved_before_the_knob_still_compare() -> None:
    """A stored profile lacking connect_latency was measured under its default (0)."""
    before = {k: v for k, v in ExchangeProfile().to_dict().items() if k != "connect_latency"}
    now = ExchangeProfile().to_dict()
    assert fingerprint_mismatches(_session_with_profile(before), _session_with_profile(now)) == []
    network = ExchangeProfile(connect_latency=0.04).to_dict()
    assert fingerprint_mismatches(
        _session_with_profile(before), _session_with_profile(network)
    ) == ["t: exchange latency profile: connect_latency baseline 0.0, now 0.04"]


@pytest.mark.asyncio
async def test_respx_accepts_connect_latency_without_applying_it() -> None:
    router = ExchangeRouter()
    with router:
        router.configure(connect_latency=0.5)
        assert router.profile["connect_latency"] == 0.5
        headers = {"Authorization": f"Bearer {router.token}"}
        async with httpx.AsyncClient(base_url=router.base_url, headers=headers) as client:
            start = time.perf_counter()
            response = await client.get("/health")
        assert response.status_code == 200 and time.perf_counter() - start < 0.3
