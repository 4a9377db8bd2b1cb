"""OptimizedClient against the embedded exchange and small local servers; axiom_client in
user projects (pytest-asyncio strict/auto modes, module and session loops)."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from pytest_axiomperf import ApiResponse, HttpStatusError, OptimizedClient, RetryPolicy
from pytest_axiomperf.client import RouteTemplates, _Deadlines, _socket_factory
from pytest_axiomperf.errors import AxiomPerfError
from pytest_axiomperf.exchange import ExchangeSimulator
from pytest_axiomperf.tracker import PerformanceTracker

SECRET = "tok-SECRET-6f1d0a9c-do-not-print"


@pytest.fixture
def exchange(axiom_exchange: ExchangeSimulator) -> Iterator[ExchangeSimulator]:
    """The session's exchange, back to its default profile after the test."""
    axiom_exchange.reset()
    yield axiom_exchange
    axiom_exchange.reset()


def client_for(exchange: ExchangeSimulator, **options: object) -> OptimizedClient:
    return OptimizedClient(exchange.base_url, token=exchange.token, **options)  # type: ignore[arg-type]


@asynccontextmanager
async def serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 in the running loop; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# -- route tags ---------------------------------------------------------------------------


def test_route_templates_fold_parameters_into_one_tag() -> None:
    routes = RouteTemplates()
    assert routes.tag("GET", "/balance/So11111111111111111111111111111111111111112") == (
        "GET /balance/{address}"
    )
    assert routes.tag("GET", "/balance/abc") == "GET /balance/{address}"
    assert routes.tag("POST", "/orders") == "POST /orders"
    assert routes.tag("GET", "/orders/ord-00000001") == "GET /orders/{order_id}"
    # Unknown routes: identifier-like segments fold, version segments stay.
    assert routes.tag("GET", "/api/v2/pairs/9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin") == (
        "GET /api/v2/pairs/{id}"
    )
    assert routes.tag("GET", "/api/candles/12345") == "GET /api/candles/{id}"


def test_route_templates_cap_the_number_of_tags() -> None:
    routes = RouteTemplates(["/a/{x}"])
    tags = {routes.tag("GET", f"/thing{i}x/leaf") for i in range(300)}
    # Each of these folds to the same {id} shape: one tag however many paths.
    assert tags == {"GET /{id}/leaf"}
    names = [a + b for a in "abcdefghijklmnopqrstuvwxyz" for b in "abcdefghijklmnopqrstuvwxyz"]
    fresh = RouteTemplates([])
    many = [fresh.tag("GET", f"/{name}") for name in names]
    assert len(set(many)) == 200 + 1
    assert many[199] == "GET /" + names[199]
    assert many[200:] == ["GET (other)"] * (len(names) - 200)
    with pytest.raises(AxiomPerfError, match="must start with '/'"):
        RouteTemplates(["balance/{a}"])


# -- requests against the embedded exchange ----------------------------------------------


@pytest.mark.asyncio
async def test_requests_are_measured_per_route(exchange: ExchangeSimulator) -> None:
    tracker = PerformanceTracker()
    async with client_for(exchange, tracker=tracker) as client:
        for address in ("So1aaa", "So1bbb", "So1ccc"):
            response = await client.get(f"/balance/{address}")
            assert response.status == 200
            assert response.json()["address"] == address
        order = await client.post("/orders", json={"token": "SOL", "side": "buy", "amount": 2})
        assert order.status == 201
        assert order.json()["amount"] == 2
        assert order.bytes_sent > 0 and order.bytes_received == len(order.body)
    assert tracker.tags("api_response_times") == ["GET /balance/{address}", "POST /orders"]
    assert tracker.stats("api_response_times", "GET /balance/{address}").count == 3
    assert tracker.stats("order_execution_times").count == 1
    for metric in ("http_connect_times", "http_dns_times", "http_ttfb_times", "network_throughput"):
        assert tracker.stats(metric).count == 4, metric
    # The first request opened the connection; the others reused it.
    connect = tracker.stats("http_connect_times", "GET /balance/{address}")
    ttfb = tracker.stats("http_ttfb_times", "GET /balance/{address}")
    assert connect.max <= ttfb.max
    assert tracker.stats("http_dns_times").max == 0.0  # an IP address: no lookup
    assert tracker.errors == {}
    assert not client.is_open


@pytest.mark.asyncio
async def test_error_statuses_are_counted_and_returned(exchange: ExchangeSimulator) -> None:
    async with client_for(exchange) as client:
        missing = await client.get("/orders/nope")
        assert missing.status == 404 and not missing.ok
        with pytest.raises(HttpStatusError, match=r"GET /orders/\{order_id\} answered 404") as info:
            missing.raise_for_status()
        assert info.value.status == 404
        unauthorized = await client.get("/health", headers={"Authorization": "Bearer wrong"})
        assert unauthorized.status == 401
        assert "WWW-Authenticate" in unauthorized.headers
    assert client.tracker.errors == {"HTTP 4xx": 2}


@pytest.mark.asyncio
async def test_idempotent_requests_retry_on_500(exchange: ExchangeSimulator) -> None:
    exchange.configure(error_rate=1.0, seed=7)
    async with client_for(exchange, retry=RetryPolicy(attempts=3, backoff=0.01)) as client:
        response = await client.get("/health")
    assert response.status == 500
    assert response.attempts == 3
    assert client.retries == 2
    assert client.tracker.errors == {"HTTP 5xx": 3, "retry": 2}
    # One logical request: one latency sample covering all attempts.
    assert client.tracker.stats("api_response_times").count == 1
    assert client.tracker.stats("http_ttfb_times").count == 3


@pytest.mark.asyncio
async def test_retry_recovers_from_intermittent_errors(exchange: ExchangeSimulator) -> None:
    exchange.configure(error_rate=0.5, seed=3)
    policy = RetryPolicy(attempts=8, backoff=0.001, max_backoff=0.005)
    async with client_for(exchange, retry=policy) as client:
        statuses = [(await client.get("/health")).status for _ in range(10)]
    assert statuses == [200] * 10
    assert client.retries > 0
    assert client.tracker.errors["retry"] == client.retries == client.tracker.errors["HTTP 5xx"]


@pytest.mark.asyncio
async def test_post_orders_is_never_retried(exchange: ExchangeSimulator) -> None:
    exchange.configure(error_rate=1.0, seed=7)
    async with client_for(exchange, retry=RetryPolicy(attempts=5, backoff=0.001)) as client:
        response = await client.post("/orders", json={"token": "SOL", "side": "buy", "amount": 1})
        assert response.status == 500
        assert response.attempts == 1
        # The caller may opt in, e.g. with an idempotency key the server honours.
        forced = await client.post("/orders", json={"token": "SOL"}, idempotent=True)
        assert forced.attempts == 5
    assert client.tracker.errors == {"HTTP 5xx": 6, "retry": 4}
    assert client.tracker.stats("order_execution_times").count == 2


@pytest.mark.asyncio
async def test_429_waits_for_retry_after(exchange: ExchangeSimulator) -> None:
    exchange.configure(rate_limit=1.0, rate_limit_burst=1)
    async with client_for(exchange, retry=RetryPolicy(backoff=0.01)) as client:
        assert (await client.get("/health")).status == 200
        response = await client.get("/health")
    assert response.status == 200
    assert response.attempts == 2
    # The exchange asked for Retry-After: 1 (whole seconds); the backoff alone is 10 ms.
    assert response.response_time >= 0.95
    assert client.tracker.errors == {"HTTP 4xx": 1, "retry": 1}


@pytest.mark.asyncio
async def test_retry_after_past_the_deadline_is_not_waited(exchange: ExchangeSimulator) -> None:
    exchange.configure(rate_limit=1.0, rate_limit_burst=1)
    async with client_for(exchange, retry=RetryPolicy(deadline=0.5)) as client:
        await client.get("/health")
        response = await client.get("/health")
    assert response.status == 429
    assert response.attempts == 1
    assert response.response_time < 0.5
    assert response.headers["Retry-After"] == "1"


@pytest.mark.asyncio
async def test_connection_errors_are_retried_then_raised() -> None:
    with socket_closed_port() as port:
        client = OptimizedClient(
            f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=3, backoff=0.001)
        )
        async with client:
            with pytest.raises(aiohttp.ClientConnectorError):
                await client.get("/health")
    assert client.tracker.errors == {"ClientConnectorError": 3, "retry": 2}
    # No answer came: nothing was measured, so no latency sample (a budget on a dead
    # server must fail for lack of samples, not pass on microseconds of refusals).
    assert client.tracker.stats("api_response_times", "GET /health").count == 0


@pytest.mark.asyncio
async def test_a_timed_out_request_is_a_latency_sample(exchange: ExchangeSimulator) -> None:
    exchange.configure(latency=0.5)
    async with client_for(exchange, timeout=0.1, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(asyncio.TimeoutError):  # TimeoutError on 3.11+
            await client.get("/health")
    stats = client.tracker.stats("api_response_times", "GET /health")
    assert stats.count == 1 and stats.min >= 0.09  # the wait the bot had


@pytest.mark.asyncio
async def test_each_attempt_gets_the_whole_timeout_and_retries_count(
    exchange: ExchangeSimulator,
) -> None:
    exchange.configure(latency=1.0)
    async with client_for(
        exchange, timeout=0.15, retry=RetryPolicy(attempts=2, backoff=0.01, deadline=5.0)
    ) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncio.TimeoutError, match=r"GET /health: no complete answer"):
            await client.get("/health")
        elapsed = asyncio.get_running_loop().time() - started
    assert client.retries == 1
    assert client.tracker.errors["TimeoutError"] == 2
    assert 0.3 <= elapsed < 0.9  # two attempts cut at 0.15 s, not one 1 s answer


@pytest.mark.asyncio
async def test_the_timeout_clock_stops_with_the_request(exchange: ExchangeSimulator) -> None:
    async with client_for(exchange, timeout=0.1) as client:
        assert (await client.get("/health")).status == 200
        # The client's timer fires at the request's deadline and must find it finished,
        # not cancel whatever this task awaits by then.
        await asyncio.sleep(0.3)
        assert (await client.get("/health")).status == 200


@pytest.mark.asyncio
async def test_a_cancelled_request_stays_cancelled(exchange: ExchangeSimulator) -> None:
    exchange.configure(latency=1.0)
    async with client_for(exchange, timeout=0.3) as client:
        task = asyncio.ensure_future(client.get("/health"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "TimeoutError" not in client.tracker.errors


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.uncancel() is 3.11+")
@pytest.mark.asyncio
async def test_a_deadline_never_swallows_another_cancellation() -> None:
    deadlines = _Deadlines(asyncio.get_running_loop(), 0.001)
    outcome: list[bool] = []

    async def request() -> None:
        key = deadlines.start(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            outcome.append(deadlines.stop(key))
            raise

    for other_first in (False, True):
        task = asyncio.ensure_future(request())
        await asyncio.sleep(0)  # the request is now waiting
        time.sleep(0.005)  # past its deadline, whatever the machine's speed
        if other_first:
            task.cancel()  # somebody else cancels it in the same loop turn, just before
        deadlines._fire()  # the timer's callback: cancels the task for its deadline
        if not other_first:
            task.cancel()  # somebody else cancels it just after
        with pytest.raises(asyncio.CancelledError):
            await task
    assert outcome == [False, False]  # never a timeout: the other cancellation wins
    deadlines.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is 3.11+")
@pytest.mark.asyncio
async def test_the_bots_own_timeout_is_not_retried_as_the_clients(
    exchange: ExchangeSimulator,
) -> None:
    # Both clocks run out in the same loop turn: the bot's must win, at once.
    exchange.configure(latency=0.5)
    async with client_for(exchange, timeout=0.1, retry=RetryPolicy(attempts=3)) as client:
        started = asyncio.get_running_loop().time()
        for _ in range(3):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await client.get("/health")
        elapsed = asyncio.get_running_loop().time() - started
    assert client.retries == 0
    assert elapsed < 0.9  # three 0.1 s waits, not three retried 0.3 s ones


@pytest.mark.asyncio
async def test_a_route_that_never_completed_leaves_no_empty_series(
    exchange: ExchangeSimulator,
) -> None:
    exchange.configure(error_rate=1.0)
    retry = RetryPolicy(attempts=3, backoff=5.0, max_backoff=5.0, deadline=30.0)
    async with client_for(exchange, retry=retry) as client:
        # Answered once (a 500), then cancelled during the backoff before its retry.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.get("/health"), 0.5)
    tracker = client.tracker
    assert tracker.metrics() == ["http_connect_times", "http_dns_times", "http_ttfb_times"]
    assert all(tracker.stats(m).count == 1 for m in tracker.metrics())


def test_a_budget_on_a_dead_server_fails_for_lack_of_samples(
    user_project: pytest.Pytester,
) -> None:
    with socket_closed_port() as port:
        user_project.makepyfile(
            """
            import pytest

            @pytest.mark.asyncio
            @pytest.mark.latency_budget(p95="50ms", metric="api_response_times")
            async def test_balances(axiom_client):
                for i in range(5):
                    try:
                        await axiom_client.get(f"/balance/So1wallet{i}")
                    except Exception:
                        pass
            """
        )
        result = user_project.runpytest("--axiom-perf", f"--axiom-base-url=http://127.0.0.1:{port}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*api_response_times: 0 samples recorded*; the budget needs at least 1 (min_samples)"]
    )


@pytest.mark.asyncio
async def test_gather_keeps_order_and_failures(exchange: ExchangeSimulator) -> None:
    async with client_for(exchange, retry=RetryPolicy(attempts=1)) as client:
        with socket_closed_port() as port:
            requests = [
                client.get("/balance/a1"),
                client.get(f"http://127.0.0.1:{port}/health"),
                client.get("/balance/a3"),
                lambda: client.get("/tokens/a4"),
            ]
            results = await client.gather(requests, limit=2)
    assert len(results) == 4
    first, failed, third, fourth = results
    assert isinstance(first, ApiResponse) and first.json()["address"] == "a1"
    assert isinstance(failed, aiohttp.ClientConnectorError)
    assert isinstance(third, ApiResponse) and third.json()["address"] == "a3"
    assert isinstance(fourth, ApiResponse) and fourth.json()["address"] == "a4"
    with pytest.raises(AxiomPerfError, match="limit must be >= 1"):
        await client.gather([], limit=0)


@pytest.mark.asyncio
async def test_gather_limits_concurrency(exchange: ExchangeSimulator) -> None:
    exchange.configure(latency=0.1)
    async with client_for(exchange) as client:
        results = await client.gather([client.get(f"/balance/a{i}") for i in range(6)], limit=3)
    assert all(isinstance(r, ApiResponse) and r.status == 200 for r in results)
    # 6 requests of 100 ms, 3 at a time: two waves, so about 200 ms; never one wave.
    total = client.tracker.stats("api_response_times")
    assert total.count == 6 and total.min >= 0.1


@pytest.mark.asyncio
async def test_warmup_opens_connections_and_reports_failures(exchange: ExchangeSimulator) -> None:
    async with client_for(exchange) as client:
        report = await client.warmup(4)
        assert report.ok and report.succeeded == 4
        assert 1 <= report.opened <= 4
        assert client.tracker.stats("api_response_times").count == 0
    with socket_closed_port() as port:
        async with OptimizedClient(f"http://127.0.0.1:{port}") as broken:
            report = await broken.warmup(3)
    assert not report.ok
    assert len(report.failures) == 3
    assert report.failures[0].startswith("ClientConnectorError")
    assert broken.tracker.errors == {"ClientConnectorError": 3}


@pytest.mark.asyncio
async def test_connect_time_is_the_pool_wait_or_a_new_connection(
    exchange: ExchangeSimulator,
) -> None:
    async with client_for(exchange, limit=1) as client:
        first = await client.warmup(1)
        assert first.opened == 1
        again = await client.warmup(1)
        assert again.ok and again.opened == 0  # the pooled connection was reused
        exchange.configure(latency=0.3)
        await asyncio.gather(client.get("/health"), client.get("/health"))
    connect = client.tracker.stats("http_connect_times", "GET /health")
    assert connect.count == 2
    assert connect.min == 0.0  # taken straight from the pool: nothing to time
    # The other waited for the single connection while the first request held it (0.3 s
    # from the first's arrival; 0.2 s of slack for the second to start on a busy machine).
    assert connect.max >= 0.1


@pytest.mark.asyncio
async def test_token_is_never_shown(
    exchange: ExchangeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    exchange.configure(error_rate=1.0, seed=1)
    client = client_for(exchange, retry=RetryPolicy(attempts=2, backoff=0.001))
    async with client:
        response = await client.get("/health")
    shown = " ".join([repr(client), str(client), repr(response), caplog.text])
    assert "retrying GET /health after HTTP 500" in caplog.text
    assert exchange.token not in shown
    assert "token=<set>" in repr(client)
    assert exchange.token not in json.dumps(client.tracker.to_dict())


@pytest.mark.asyncio
async def test_dns_lookups_are_timed_when_not_cached(exchange: ExchangeSimulator) -> None:
    port = URL(exchange.base_url).port
    async with OptimizedClient(f"http://localhost:{port}", token=exchange.token) as client:
        for _ in range(3):
            assert (await client.get("/health")).status == 200
    dns = client.tracker.stats("http_dns_times", "GET /health")
    connect = client.tracker.stats("http_connect_times", "GET /health")
    assert dns.count == 3
    assert dns.max > 0.0  # the first request resolved "localhost"
    assert dns.min == 0.0  # the others were answered by aiohttp's DNS cache
    assert connect.max >= dns.max  # the lookup is part of getting the connection


@pytest.mark.asyncio
async def test_user_trace_configs_still_run(exchange: ExchangeSimulator) -> None:
    seen: list[str] = []

    async def on_request_end(session: object, ctx: object, params: object) -> None:
        seen.append(str(getattr(params, "method", "?")))

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    async with client_for(exchange, trace_configs=[trace]) as client:
        await client.get("/health")
    assert seen == ["GET"]


def test_socket_factory_applies_the_guide_options() -> None:
    factory = _socket_factory(30, 1 << 17)
    with factory(
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 0))
    ) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
        # Linux doubles the value asked for (bookkeeping space): at least what was set.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 17


# -- bodies and headers, against a local server ------------------------------------------


@pytest.mark.asyncio
async def test_large_chunked_body_and_secret_headers() -> None:
    payload = bytes(range(256)) * (12 * 1024)  # 3 MiB

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Set-Cookie": "auth-access-token=s3cr3t"})
        response.headers["X-Auth-Token"] = "s3cr3t"
        response.headers["X-Request-Id"] = "r-1"
        await response.prepare(request)  # no Content-Length: chunked
        for i in range(0, len(payload), 100_000):
            await response.write(payload[i : i + 100_000])
        return response

    async def text(request: web.Request) -> web.Response:
        return web.Response(
            body="prix: 3€".encode("iso8859_15"), content_type="text/plain", charset="iso-8859-15"
        )

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/text", text)
    async with serve(app) as url, OptimizedClient(url) as client:
        response = await client.get("/big")
        assert response.body == payload
        assert response.bytes_received == len(payload)
        assert "Set-Cookie" not in response.headers
        assert "X-Auth-Token" not in response.headers
        assert response.headers["X-Request-Id"] == "r-1"
        assert (await client.get("/text")).text() == "prix: 3€"
    throughput = client.tracker.stats("network_throughput", "GET /big")
    assert throughput.count == 1 and throughput.max > 0


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.mark.asyncio
async def test_tls_is_verified_by_default(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    async with serve(app, server_ctx) as url:
        default = OptimizedClient(url)
        assert default.connector_ssl is True
        async with default:
            assert default.session.connector is not None
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await default.get("/health")
        # A certificate error is permanent: not retried.
        assert default.tracker.errors == {"ClientConnectorCertificateError": 1}

        trusting = ssl.create_default_context(cafile=str(cert))
        async with OptimizedClient(url, ssl_context=trusting) as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
        async with OptimizedClient(url, verify_tls=False) as insecure:
            assert insecure.connector_ssl is False
            assert (await insecure.get("/health")).status == 200
    with pytest.raises(AxiomPerfError, match="not both"):
        OptimizedClient(url, ssl_context=trusting, verify_tls=False)


# -- lifecycle -----------------------------------------------------------------------------


def test_client_closes_itself_when_its_loop_ends(
    exchange: ExchangeSimulator, recwarn: pytest.WarningsRecorder
) -> None:
    client = client_for(exchange)

    async def use() -> None:
        assert (await client.get("/health")).status == 200

    asyncio.run(use())  # never closed by the caller
    assert not client.is_open
    client.close_blocking()  # the loop is gone: nothing to do, no error
    gc.collect()
    assert not [w for w in recwarn if "Unclosed" in str(w.message)]


def test_client_used_in_another_loop_says_so(exchange: ExchangeSimulator) -> None:
    client = client_for(exchange)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(client.get("/health"))

        async def elsewhere() -> None:
            with pytest.raises(AxiomPerfError, match="open in another event loop"):
                await client.get("/health")

        asyncio.run(elsewhere())
        client.close_blocking()
        assert not client.is_open
    finally:
        loop.close()

    async def after_close() -> None:
        with pytest.raises(AxiomPerfError, match="is closed"):
            await client.get("/health")

    asyncio.run(after_close())


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(AxiomPerfError, match="must be absolute"):
        OptimizedClient("127.0.0.1:8080")
    with pytest.raises(AxiomPerfError, match="attempts must be >= 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(AxiomPerfError, match="limit must be >= 0"):
        OptimizedClient("http://127.0.0.1", limit=-1)


@contextmanager
def socket_closed_port() -> Iterator[int]:
    """A 127.0.0.1 port nothing listens on (bound, never listening, for the block)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


# -- the axiom_client fixture in user projects --------------------------------------------

USER_TEST = """
import asyncio
import pytest

{marker}
async def test_one(axiom_client, axiom_tracker):
    response = await axiom_client.get("/balance/So1user")
    assert response.status == 200
    assert axiom_tracker.stats("api_response_times", "GET /balance/{{address}}").count == 1
    TESTS_LOOPS.append(asyncio.get_running_loop())

{marker}
async def test_two(axiom_client, axiom_tracker):
    order = await axiom_client.post("/orders", json={{"token": "SOL", "side": "buy", "amount": 1}})
    assert order.status == 201
    assert axiom_tracker.stats("order_execution_times").count == 1
    TESTS_LOOPS.append(asyncio.get_running_loop())

def test_loops_as_configured():
    assert len(TESTS_LOOPS) == 2
    assert (TESTS_LOOPS[0] is TESTS_LOOPS[1]) is {shared}

TESTS_LOOPS = []
"""

CONFTEST = """
import gc

def pytest_sessionfinish(session):
    # Unclosed sessions warn when collected: collect while output is still captured.
    gc.collect()
"""


@pytest.mark.parametrize(
    ("mode", "marker", "shared"),
    [
        ("strict", "@pytest.mark.asyncio", False),
        ("auto", "", False),
        ("strict", '@pytest.mark.asyncio(loop_scope="module")', True),
        ("auto", '@pytest.mark.asyncio(loop_scope="session")', True),
    ],
    ids=["strict-function", "auto-function", "strict-module", "auto-session"],
)
def test_axiom_client_fixture_in_user_projects(
    pytester: pytest.Pytester, mode: str, marker: str, shared: bool
) -> None:
    pytester.makeini(
        f"""
        [pytest]
        asyncio_mode = {mode}
        asyncio_default_fixture_loop_scope = function
        """
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(USER_TEST.format(marker=marker, shared=shared))
    result = pytester.runpytest_subprocess(
        "-W", "always::ResourceWarning", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3)
    output = result.stdout.str() + result.stderr.str()
    assert "Unclosed" not in output
    assert "Task was destroyed" not in output


def test_token_absent_from_every_output(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", SECRET)
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        """
    )
    pytester.makepyfile(
        """
        import logging
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.latency_budget(p99="10s")
        async def test_fails_showing_the_client(axiom_client, axiom_exchange):
            axiom_exchange.configure(error_rate=1.0, seed=1)
            try:
                response = await axiom_client.get("/health")
            finally:
                axiom_exchange.reset()
            logging.getLogger("test").warning("client %r response %r", axiom_client, response)
            print(axiom_client, response, response.headers, axiom_exchange)
            assert response.status == 200, (axiom_client, response)
        """
    )
    result = pytester.runpytest_subprocess(
        "--axiom-perf",
        "--axiom-perf-json=results.json",
        "-l",
        "-rA",
        "--log-level=DEBUG",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "token=<set>" in output
    assert "retrying GET /health after HTTP 500" in output
    assert SECRET not in output
    results = (pytester.path / "results.json").read_text()
    assert "api_response_times" in results
    assert SECRET not in results


def test_latency_budget_catches_injected_latency(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.latency_budget(p95="50ms", metric="api_response_times", tag="GET /health")
        async def test_fast(axiom_client):
            for _ in range(3):
                assert (await axiom_client.get("/health")).ok

        @pytest.mark.asyncio
        @pytest.mark.latency_budget(p95="50ms", metric="api_response_times", tag="GET /health")
        async def test_slow(axiom_client, axiom_exchange):
            axiom_exchange.configure(latency=0.2)
            try:
                for _ in range(3):
                    assert (await axiom_client.get("/health")).ok
            finally:
                axiom_exchange.reset()
        """
    )
    result = pytester.runpytest_subprocess("--axiom-perf", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_slow _*",
            "1 performance budget(s) exceeded:",
            "  latency budget: api_response_times[[]GET /health[]] p95 = 2??.??ms > 50.00ms*",
        ]
    )


def test_a_refused_client_shows_cleanly_in_a_traceback_with_locals(
    pytester: pytest.Pytester,
) -> None:
    """``--tb=long -l`` shows the half-built client among __init__'s locals: its repr says
    so instead of failing (pytest printed "AttributeError ... raised in repr()")."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        from pytest_axiomperf.client import OptimizedClient


        def test_refused():
            OptimizedClient("http://127.0.0.1:9", limit=-1)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=long", "-l")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*OptimizedClient: limit must be >= 0, got -1*"])
    assert "self       = OptimizedClient(<not configured>)" in result.stdout.str()
    assert "raised in repr()" not in result.stdout.str()
