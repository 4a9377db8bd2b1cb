"""``axiom_sdk`` / ``axiom_sdk_ws``: the axiomtradeapi SDK on the venue under test, no glue.

Every run is a user's (pytester subprocess) with each proxy variable pointing at
a loopback trap that records and refuses: a request leaving the machine would
show there, and each test asserts none did.
"""

from __future__ import annotations

import http.server
import threading

import pytest

pytest.importorskip("axiomtradeapi", reason="axiomtradeapi is not installed: SDK tests skipped")

import test_sdk
from conftest import Standalone
from test_sdk import STRICT, ProxyTrap

from pytest_axiomperf.errors import AxiomPerfError
from pytest_axiomperf.target import Target

#: The proxy variables at a trap that records and refuses (as in test_sdk.py).
proxy_trap = test_sdk.proxy_trap


def test_the_sdks_calls_and_callbacks_in_auto_mode(
    pytester: pytest.Pytester, proxy_trap: ProxyTrap
) -> None:
    """Balances, data calls, room callbacks and refresh (test_sdk.py runs them in strict mode)."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_sdk_bot=STRICT)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--axiom-perf", "-v", timeout=120
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*API Response Times*", "*WebSocket Latency*"])
    assert proxy_trap.attempts == []


LATENCY = """
import http.server
import threading

import pytest


def test_balance_latency(axiom_sdk, axiom_exchange, axiom_tracker):
    axiom_exchange.configure(latency=0.05)
    for _ in range(5):
        assert axiom_sdk.get_batched_sol_balance(["Wallet1"])
    stats = axiom_tracker.stats("api_response_times", "POST /api/batched-sol-balance")
    assert stats.count == 5
    assert 0.05 <= stats.p50 < 0.5, stats


def test_off_machine_requests_are_refused(axiom_sdk, axiom_tracker):
    import requests
    from pytest_axiomperf.instruments.sdk import RefusedRequest

    with pytest.warns(Warning, match="axiom_sdk refused GET https://api3.axiom.trade/x"):
        with pytest.raises(RefusedRequest, match="it would leave this machine"):
            axiom_sdk.session.get("https://api3.axiom.trade/x")
    with pytest.warns(Warning, match="pumpportal.fun"):
        with pytest.raises(requests.ConnectionError):
            requests.post("https://pumpportal.fun/api/trade-local", data={})
    assert axiom_tracker.errors["axiom_sdk refused an off-machine request"] == 2
"""


def test_latency_and_refusals(pytester: pytest.Pytester, proxy_trap: ProxyTrap) -> None:
    """Injected latency shows in the SDK's call; requests to real hosts are refused, loudly."""
    pytester.makeini("[pytest]\nasyncio_mode = strict\n")
    pytester.makepyfile(test_sdk_bot=LATENCY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=2)
    assert proxy_trap.attempts == []


def test_against_a_standalone_exchange(
    pytester: pytest.Pytester,
    proxy_trap: ProxyTrap,
    standalone_exchange: Standalone,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With --axiom-base-url/--axiom-ws-url the SDK talks to that venue with its token."""
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", standalone_exchange.token)
    pytester.makeini("[pytest]\nasyncio_mode = strict\n")
    pytester.makepyfile(
        test_sdk_bot="""
        def test_balance(axiom_sdk, axiom_tracker, request):
            assert axiom_sdk.get_batched_sol_balance(["Wallet1", "Wallet2"])
            assert axiom_sdk.get_pair_info("Pair1")["pairAddress"] == "Pair1"
            assert axiom_tracker.tags("api_response_times") == [
                "GET /pair-info", "POST /api/batched-sol-balance"
            ]
            assert "axiom_exchange" not in request.fixturenames
        """
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--axiom-base-url={standalone_exchange.base_url}",
        f"--axiom-ws-url={standalone_exchange.ws_url}",
        timeout=120,
    )
    result.assert_outcomes(passed=1)
    assert proxy_trap.attempts == []


def test_a_missing_private_name_is_named_with_the_version() -> None:
    """An SDK without a name the fixture replaces fails clearly, naming the SDK version."""
    from pytest_axiomperf import PerformanceTracker
    from pytest_axiomperf.instruments.sdk import sdk_websocket

    class OtherWebSocketClient:
        ws_url = ws_url_token_price = "wss://x"

        async def _connect_curl(self) -> None: ...

    class Client:
        def get_websocket_client(self, log_level: int) -> OtherWebSocketClient:
            return OtherWebSocketClient()

    target = Target("http://127.0.0.1:1", "ws://127.0.0.1:1/ws", "t")
    named = r"axiomtradeapi 1\.1\.6 has no OtherWebSocketClient\._preflight_curl.*supports"
    with pytest.raises(AxiomPerfError, match=named):
        sdk_websocket(Client(), target, PerformanceTracker())


class _CountingServer(http.server.ThreadingHTTPServer):
    """A keep-alive HTTP server on 127.0.0.1 counting the connections it accepts."""

    daemon_threads = True
    connections = 0

    def process_request(self, request: object, client_address: object) -> None:
        self.connections += 1
        super().process_request(request, client_address)  # type: ignore[arg-type]


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_the_sdks_connections_are_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing does not pool what the SDK does not: each ``requests.get`` (a session of
    its own) opens a connection, as without the plugin; a long-lived session keeps one."""
    import requests

    from pytest_axiomperf import PerformanceTracker
    from pytest_axiomperf.instruments.sdk import _Guard

    server = _CountingServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        tracker = PerformanceTracker()
        _Guard(Target(url, None, None), tracker).install(monkeypatch.setattr)
        for _ in range(3):
            assert requests.get(url + "/pair-info", timeout=5).json() == {}
        assert server.connections == 3
        with requests.Session() as session:
            for _ in range(3):
                assert session.get(url + "/pair-info", timeout=5).status_code == 200
        assert server.connections == 4
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert tracker.stats("api_response_times", "GET /pair-info").count == 6
