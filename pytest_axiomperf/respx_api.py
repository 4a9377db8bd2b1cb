"""The embedded exchange's REST API as a respx router, for bots built on httpx.

`ExchangeRouter` answers ``httpx.AsyncClient`` and ``httpx.Client`` requests to
its base URL the way the embedded exchange does (same routes, bodies, bearer
token rule and JSON errors) with the same latency and fault profile
(`ExchangeProfile` knobs via `ExchangeRouter.configure`), in process and without
sockets. Without sockets there are no connections: ``connect_latency`` (the
cost of a new connection's handshakes) is accepted but not applied. Each
request's latency (from reaching httpx's transport to its response, as a
network would add it) goes to the tracker's ``api_response_times`` (tagged
``"METHOD /route/{param}"``; ``POST /orders`` also to
``order_execution_times``), error statuses to its error counts.

The injected delay is awaited with ``asyncio.sleep`` for async clients, so other
tasks run meanwhile, and slept with ``time.sleep`` for sync clients, which block
their thread on a real network just the same. This module needs the ``respx``
extra; the plugin imports it only when a test asks for ``axiom_respx``.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import respx
from respx.models import AllMockedAssertionError

from pytest_axiomperf.errors import AxiomPerfError
from pytest_axiomperf.exchange.data import (
    MAX_BODY,
    Answer,
    OrderBook,
    balance,
    error_body,
    holdings,
)
from pytest_axiomperf.exchange.models import ExchangeProfile, FaultModel
from pytest_axiomperf.redact import redact_text, safe_url
from pytest_axiomperf.routes import EXCHANGE_ROUTES, ORDER_ROUTES, RouteTemplates
from pytest_axiomperf.tracker import API_RESPONSE_TIMES, ORDER_EXECUTION_TIMES, PerformanceTracker

__all__ = ["DEFAULT_BASE_URL", "ExchangeRouter"]

#: Base URL served when none is given (a reserved name: it never reaches a network).
DEFAULT_BASE_URL = "http://axiom-exchange.test"

_Handler = Callable[[httpx.Request, dict[str, str]], httpx.Response]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=error_body(status, message), headers=headers)


def _answer(answer: Answer) -> httpx.Response:
    status, body = answer
    return httpx.Response(status, json=body)


class ExchangeRouter(respx.MockRouter):
    """A respx `MockRouter` serving the embedded exchange's REST API.

    ``with ExchangeRouter() as router:`` patches httpx; then
    ``httpx.AsyncClient(base_url=router.base_url, headers={"Authorization":
    f"Bearer {router.token}"})`` talks to it. Requests to other hosts are not
    mocked (respx raises, as for any unmatched request).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        tracker: PerformanceTracker | None = None,
        profile: ExchangeProfile | None = None,
    ) -> None:
        """Serve ``base_url`` (default `DEFAULT_BASE_URL`) to requests bearing ``token``."""
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise AxiomPerfError(
                f"ExchangeRouter: base_url must be http(s)://..., got {redact_text(base)!r}"
            )
        super().__init__(assert_all_called=False, assert_all_mocked=True, base_url=base)
        self.base_url = base
        self._base_path = httpx.URL(base).path.rstrip("/")
        self._origin = httpx.URL(base).copy_with(path="/", query=None)
        self._token = token or secrets.token_urlsafe(32)
        self.tracker = tracker if tracker is not None else PerformanceTracker("ExchangeRouter")
        self._tags = RouteTemplates(EXCHANGE_ROUTES)
        self._model = FaultModel(profile or ExchangeProfile(), time.monotonic())
        self._orders = OrderBook()
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            ("GET", re.compile(r"/health"), self._health),
            ("GET", re.compile(r"/balance/(?P<address>[^/]+)"), self._balance),
            ("GET", re.compile(r"/tokens/(?P<address>[^/]+)"), self._tokens),
            ("POST", re.compile(r"/orders"), self._create_order),
            ("GET", re.compile(r"/orders/(?P<order_id>[^/]+)"), self._get_order),
        ]
        # One respx route takes the exchange's paths; dispatch is ours, so 405 answers
        # match the exchange's. Other paths fall through to routes the user adds
        # (``router.get("/mine").respond(...)``), then to the exchange's 404.
        self.route(name="axiom-exchange").mock(side_effect=self._dispatch)

    def __repr__(self) -> str:
        """Where it serves; never the token."""
        return f"<ExchangeRouter base_url={safe_url(self.base_url)!r}>"

    @property
    def token(self) -> str:
        """The bearer token requests must send (``Authorization: Bearer <token>``)."""
        return self._token

    # -- profile ---------------------------------------------------------------------

    def configure(
        self,
        latency: float = 0.0,
        jitter: float = 0.0,
        error_rate: float = 0.0,
        seed: int | None = None,
        **knobs: Any,
    ) -> None:
        """Put a latency/fault profile in force, as `ExchangeSimulator.configure` does.

        REST knobs apply (``latency``, ``jitter``, ``distribution``, ``seed``,
        ``error_rate``, ``rate_limit``, ``rate_limit_burst``, ``stall*``); a bad
        knob raises ConfigError. ``connect_latency`` is accepted and shown in
        `profile` but not applied: respx replaces httpx's connection pool, so no
        request ever opens a connection to pay it on.
        """
        profile = ExchangeProfile.from_dict(
            {"latency": latency, "jitter": jitter, "error_rate": error_rate, "seed": seed, **knobs}
        )
        self._model = FaultModel(profile, time.monotonic())

    def reset(self) -> None:
        """Restore the default profile (no latency, no faults) and forget all orders."""
        self._model = FaultModel(ExchangeProfile(), time.monotonic())
        self._orders.clear()

    @property
    def profile(self) -> dict[str, Any]:
        """The profile in force, as plain values."""
        return self._model.profile.to_dict()

    # -- transport-level gate: auth, faults, delay, measurement -------------------------

    def _ours(self, request: httpx.Request) -> bool:
        url = request.url
        return (
            url.scheme == self._origin.scheme
            and url.host == self._origin.host
            and url.port == self._origin.port
            and url.path.startswith(self._base_path + "/")
        )

    def _gate(self, request: httpx.Request) -> tuple[float, httpx.Response | None]:
        """The delay to inject, and the answer when the exchange's gateway refuses."""
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._token.encode()
        ):
            return 0.0, _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        model = self._model
        now = time.monotonic()
        stall = model.stall_remaining(now)
        retry_after = model.retry_after(now + stall)
        failed = not retry_after and model.fails()
        wait = stall + model.delay()
        if retry_after:
            seconds = str(max(1, math.ceil(retry_after)))
            return wait, _error(429, "rate limit exceeded", {"Retry-After": seconds})
        if failed:
            return wait, _error(500, "injected error (error_rate)")
        return wait, None

    def _tag(self, request: httpx.Request) -> str:
        path = request.url.path[len(self._base_path) :] or "/"
        return self._tags.tag(request.method, path)

    def _record(self, tag: str, start: int, response: httpx.Response | None) -> None:
        if response is None:
            # No answer (a side effect raised): an error, counted by the caller, and no
            # latency sample, as OptimizedClient does; a dead route must not pass a budget.
            return
        elapsed = (time.perf_counter_ns() - start) / 1e9
        self.tracker.record(API_RESPONSE_TIMES, elapsed, tag)
        if tag in ORDER_ROUTES:
            self.tracker.record(ORDER_EXECUTION_TIMES, elapsed, tag)
        if response.status_code >= 400:
            self.tracker.record_error("HTTP 5xx" if response.status_code >= 500 else "HTTP 4xx")

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Answer a sync client's request (the delay blocks, as a sync client's network does)."""
        if not self._ours(request):
            return super().handler(request)
        start = time.perf_counter_ns()
        tag = self._tag(request)
        response: httpx.Response | None = None
        try:
            wait, response = self._gate(request)
            if wait:
                time.sleep(wait)
            if response is None:
                try:
                    response = super().handler(request)
                except AllMockedAssertionError:
                    response = self._not_found(request)
            else:
                self.record(request, response=response)
            return response
        except Exception as exc:
            self.tracker.record_error(exc)
            raise
        finally:
            self._record(tag, start, response)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        """Answer an async client's request; the delay is awaited, so the loop runs on."""
        if not self._ours(request):
            return await super().async_handler(request)
        start = time.perf_counter_ns()
        tag = self._tag(request)
        response: httpx.Response | None = None
        try:
            wait, response = self._gate(request)
            if wait:
                await asyncio.sleep(wait)
            if response is None:
                try:
                    response = await super().async_handler(request)
                except AllMockedAssertionError:
                    response = self._not_found(request)
            else:
                self.record(request, response=response)
            return response
        except Exception as exc:
            self.tracker.record_error(exc)
            raise
        finally:
            self._record(tag, start, response)

    def _not_found(self, request: httpx.Request) -> httpx.Response:
        response = _error(404, "Not Found")
        self.record(request, response=response)
        return response

    # -- routes ------------------------------------------------------------------------

    def _dispatch(self, request: httpx.Request) -> httpx.Response | None:
        path = request.url.path[len(self._base_path) :]
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method == request.method or (method == "GET" and request.method == "HEAD"):
                if len(request.content) > MAX_BODY:
                    return _error(
                        413,
                        f"Maximum request body size {MAX_BODY} exceeded, "
                        f"actual body size {len(request.content)}",
                    )
                return handler(request, match.groupdict())
            allowed.append(method)
        if allowed:
            return _error(405, "Method Not Allowed", {"Allow": ",".join(sorted(set(allowed)))})
        return None

    def _health(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok", "timestamp": time.time()})

    def _balance(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        return _answer(balance(params["address"]))

    def _tokens(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        return _answer(holdings(params["address"]))

    def _create_order(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        return _answer(self._orders.create(request.content))

    def _get_order(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        return _answer(self._orders.get(params["order_id"]))
