"""ExchangeRouter and axiom_respx: the exchange's REST API for httpx users, via respx."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pytest_axiomperf.exchange import ExchangeSimulator
from pytest_axiomperf.respx_api import DEFAULT_BASE_URL, ExchangeRouter


@pytest.fixture
def router() -> Iterator[ExchangeRouter]:
    with ExchangeRouter() as mock:
        yield mock


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def real(exchange: ExchangeSimulator, method: str, path: str, body: bytes | None = None) -> Any:
    """The real exchange's answer: (status, JSON body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        exchange.base_url + path,
        data=body,
        method=method,
        headers={**auth(exchange.token), "Content-Type": "application/json"},
    )
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, httpx.Response(200, content=response.read()).json()
    except urllib.error.HTTPError as exc:
        return exc.code, httpx.Response(200, content=exc.read()).json()


def test_answers_match_the_real_exchange(
    router: ExchangeRouter, axiom_exchange: ExchangeSimulator
) -> None:
    axiom_exchange.reset()
    cases: list[tuple[str, str, bytes | None]] = [
        ("GET", "/balance/So1abcXYZ", None),
        ("GET", "/tokens/So1abcXYZ", None),
        ("GET", "/tokens/9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin", None),
        ("GET", "/balance/not-an-address", None),
        ("POST", "/orders", b'{"token": "BONK", "side": "sell", "amount": 5}'),
        ("POST", "/orders", b'{"token": "DOGE", "side": "buy", "amount": 1}'),
        ("POST", "/orders", b'{"token": "SOL", "side": "buy", "amount": -1}'),
        ("POST", "/orders", b"not json"),
        ("GET", "/orders/ord-00000001", None),
        ("GET", "/orders/ord-99999999", None),
        ("GET", "/nowhere", None),
        ("DELETE", "/orders", None),
    ]
    with httpx.Client(base_url=router.base_url, headers=auth(router.token)) as client:
        for method, path, body in cases:
            mocked = client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            status, expected = real(axiom_exchange, method, path, body)
            got = mocked.json()
            for answer in (got, expected):
                answer.pop("timestamp", None)
            assert (mocked.status_code, got) == (status, expected), (method, path)
    axiom_exchange.reset()


def test_sync_client_auth_and_tracking(router: ExchangeRouter) -> None:
    with httpx.Client(base_url=router.base_url) as client:
        assert client.get("/health").status_code == 401
        response = client.get("/balance/So1a", headers=auth(router.token))
        assert response.status_code == 200
        order = client.post(
            "/orders", json={"token": "SOL", "side": "buy", "amount": 1}, headers=auth(router.token)
        )
        assert order.status_code == 201
    tracker = router.tracker
    assert tracker.tags("api_response_times") == [
        "GET /balance/{address}",
        "GET /health",
        "POST /orders",
    ]
    assert tracker.stats("order_execution_times").count == 1
    assert tracker.errors == {"HTTP 4xx": 1}
    assert router.calls.call_count == 3
    assert router.token not in repr(router)


@pytest.mark.asyncio
async def test_async_latency_does_not_block_the_loop(router: ExchangeRouter) -> None:
    router.configure(latency=0.2)
    async with httpx.AsyncClient(base_url=router.base_url, headers=auth(router.token)) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(*(client.get(f"/tokens/w{i}") for i in range(10)))
        elapsed = time.perf_counter() - started
    assert [r.status_code for r in responses] == [200] * 10
    # Ten 200 ms requests overlap: about 0.2 s; a blocking sleep would take 2 s.
    assert elapsed < 1.0
    stats = router.tracker.stats("api_response_times", "GET /tokens/{address}")
    assert stats.count == 10 and stats.min >= 0.2


@pytest.mark.asyncio
async def test_faults_follow_the_profile(router: ExchangeRouter) -> None:
    router.configure(error_rate=1.0, seed=1)
    assert router.profile["error_rate"] == 1.0
    async with httpx.AsyncClient(base_url=router.base_url, headers=auth(router.token)) as client:
        assert (await client.get("/health")).status_code == 500
        router.configure(rate_limit=1.0, rate_limit_burst=1)
        assert (await client.get("/health")).status_code == 200
        limited = await client.get("/health")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"
    assert router.tracker.errors == {"HTTP 5xx": 1, "HTTP 4xx": 1}
    router.reset()
    assert router.profile["rate_limit"] == 0.0


def test_user_routes_extend_the_api(router: ExchangeRouter) -> None:
    mine = router.get("/api/pairs").respond(json={"pairs": []})
    with httpx.Client(base_url=router.base_url, headers=auth(router.token)) as client:
        assert client.get("/api/pairs").json() == {"pairs": []}
        assert client.get("/api/other").status_code == 404
        assert client.get("/health").json()["status"] == "ok"
    assert mine.call_count == 1
    assert router.calls.call_count == 3
    assert router.tracker.tags("api_response_times") == [
        "GET /api/other",
        "GET /api/pairs",
        "GET /health",
    ]


def test_a_route_that_raises_is_an_error_not_a_latency_sample(router: ExchangeRouter) -> None:
    router.get("/api/down").mock(side_effect=httpx.ConnectError)
    with httpx.Client(base_url=router.base_url, headers=auth(router.token)) as client:
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                client.get("/api/down")
    assert router.tracker.errors == {"ConnectError": 3}
    assert router.tracker.stats("api_response_times").count == 0


def test_other_hosts_are_not_mocked(router: ExchangeRouter) -> None:
    with httpx.Client() as client, pytest.raises(Exception, match="not mocked"):
        client.get("http://elsewhere.test/health")
    assert router.base_url == DEFAULT_BASE_URL


USER_TEST = """
import httpx
import pytest

@pytest.mark.asyncio
@pytest.mark.latency_budget(p95="50ms", tag="GET /balance/{address}")
async def test_bot_is_fast(axiom_respx):
    headers = {"Authorization": f"Bearer {axiom_respx.token}"}
    async with httpx.AsyncClient(base_url=axiom_respx.base_url, headers=headers) as client:
        for i in range(5):
            assert (await client.get(f"/balance/w{i}")).status_code == 200

@pytest.mark.asyncio
@pytest.mark.latency_budget(p95="50ms", tag="GET /balance/{address}")
async def test_bot_is_slow(axiom_respx):
    axiom_respx.configure(latency=0.2)
    headers = {"Authorization": f"Bearer {axiom_respx.token}"}
    async with httpx.AsyncClient(base_url=axiom_respx.base_url, headers=headers) as client:
        for i in range(3):
            assert (await client.get(f"/balance/w{i}")).status_code == 200

def test_sync_bot(axiom_respx, axiom_tracker):
    with httpx.Client(base_url=axiom_respx.base_url) as client:
        response = client.get("/health", headers={"Authorization": f"Bearer {axiom_respx.token}"})
    assert response.json()["status"] == "ok"
    assert axiom_tracker.stats("api_response_times", "GET /health").count == 1
"""


def test_axiom_respx_fixture_with_budgets(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(USER_TEST)
    result = user_project.runpytest("--axiom-perf", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_bot_is_slow _*",
            "1 performance budget(s) exceeded:",
            "  latency budget: api_response_times[[]GET /balance/{address}[]] p95 = 2*ms > 50*",
        ]
    )


def test_axiom_respx_without_respx_says_what_to_install(user_project: pytest.Pytester) -> None:
    user_project.makeconftest(
        """
        import sys

        sys.modules["respx"] = None  # as if the extra were not installed
        """
    )
    user_project.makepyfile(
        """
        def test_needs_respx(axiom_respx):
            pass

        def test_plugin_still_works(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.001)
        """
    )
    result = user_project.runpytest_subprocess("-p", "no:respx", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*axiom_respx needs respx and httpx (respx is missing)*pytest-axiomperf[[]respx[]]*"]
    )
