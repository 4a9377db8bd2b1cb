"""The embedded exchange's REST API as a respx router, for bots built on httpx.

`ExchangeRouter` answers ``httpx.AsyncClient`` and ``httpx.Client`` requests to
its base URL the way the embedded exchange does (same routes, bodies, bearer
token rule and JSON errors) with the same latency and fault profile
(`ExchangeProfile` knobs via `ExchangeRouter.configure`), in process and without
sockets. Each request's latency (from reaching httpx's transport to its
response, as a network would add it) goes to the tracker's
``api_response_times`` (tagged ``"METHOD /route/{param}"``; ``POST /orders``
also to ``order_execution_times``), error statuses to its error counts.

The injected delay is awaited with ``asyncio.sleep`` for async clients, so other
tasks run meanwhile, and slept with ``time.sleep`` for sync clients, which block
their thread on a real network just the same. This module needs the ``respx``
extra; the plugin imports it only when a test asks for ``axiom_respx``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
import respx
from respx.models import AllMockedAssertionError

from pytest_axiomperf.client import EXCHANGE_ROUTES, ORDER_ROUTES, RouteTemplates
from pytest_axiomperf.errors import AxiomPerfError
from pytest_axiomperf.exchange.app import TOKENS
from pytest_axiomperf.exchange.models import ExchangeProfile, FaultModel
from pytest_axiomperf.tracker import API_RESPONSE_TIMES, ORDER_EXECUTION_TIMES, PerformanceTracker

__all__ = ["DEFAULT_BASE_URL", "ExchangeRouter"]

#: Base URL served when none is given (a reserved name: it never reaches a network).
DEFAULT_BASE_URL = "http://axiom-exchange.test"

# Mirrors of the exchange's limits (pytest_axiomperf.exchange.app); tests compare
# the router's answers with the real exchange's so the two cannot drift apart.
_MAX_BODY = 64 * 1024
_MAX_ORDERS = 100_000
_ADDRESS = re.compile(r"[A-Za-z0-9]{1,64}")
_BY_MINT = {t.mint: t for t in TOKENS.values()}

_Handler = Callable[[httpx.Request, dict[str, str]], httpx.Response]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": message, "status": status}, headers=headers)


def _digest(kind: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{kind}:{key}".encode()).digest()[:8], "big")


def _positive(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


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
            raise AxiomPerfError(f"ExchangeRouter: base_url must be http(s)://..., got {base!r}")
        super().__init__(assert_all_called=False, assert_all_mocked=True, base_url=base)
        self.base_url = base
        self._base_path = httpx.URL(base).path.rstrip("/")
        self._origin = httpx.URL(base).copy_with(path="/", query=None)
        self._token = token or secrets.token_urlsafe(32)
        self.tracker = tracker if tracker is not None else PerformanceTracker("ExchangeRouter")
        self._tags = RouteTemplates(EXCHANGE_ROUTES)
        self._model = FaultModel(profile or ExchangeProfile(), time.monotonic())
        self._orders: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._order_seq = 0
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
        return f"<ExchangeRouter base_url={self.base_url!r}>"

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
        knob raises ConfigError.
        """
        profile = ExchangeProfile.from_dict(
            {"latency": latency, "jitter": jitter, "error_rate": error_rate, "seed": seed, **knobs}
        )
        self._model = FaultModel(profile, time.monotonic())

    def reset(self) -> None:
        """Restore the default profile (no latency, no faults) and forget all orders."""
        self._model = FaultModel(ExchangeProfile(), time.monotonic())
        self._orders.clear()
        self._order_seq = 0

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
        elapsed = (time.perf_counter_ns() - start) / 1e9
        self.tracker.record(API_RESPONSE_TIMES, elapsed, tag)
        if tag in ORDER_ROUTES:
            self.tracker.record(ORDER_EXECUTION_TIMES, elapsed, tag)
        if response is not None and response.status_code >= 400:
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
                if len(request.content) > _MAX_BODY:
                    return _error(
                        413,
                        f"Maximum request body size {_MAX_BODY} exceeded, "
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
        address = params["address"]
        if not _ADDRESS.fullmatch(address):
            return _error(400, "address must be 1-64 letters or digits")
        lamports = _digest("balance", address) % (1_000 * 10**9)
        return httpx.Response(
            200, json={"address": address, "lamports": lamports, "sol": lamports / 1e9}
        )

    def _tokens(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        address = params["address"]
        if not _ADDRESS.fullmatch(address):
            return _error(400, "address must be 1-64 letters or digits")
        digest = _digest("tokens", address)
        catalog = sorted(TOKENS)
        held = [catalog[(digest >> (8 * i)) % len(catalog)] for i in range(1 + digest % 4)]
        holdings = []
        for symbol in sorted(set(held)):
            token = TOKENS[symbol]
            raw = _digest(f"amount:{symbol}", address) % (10**6 * 10**token.decimals)
            holdings.append(
                {
                    "token": symbol,
                    "mint": token.mint,
                    "decimals": token.decimals,
                    "amount": raw / 10**token.decimals,
                    "price": token.price,
                }
            )
        return httpx.Response(200, json={"address": address, "tokens": holdings})

    def _create_order(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        try:
            body = json.loads(request.content)
        except ValueError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        name = body.get("token")
        token = (TOKENS.get(name) or _BY_MINT.get(name)) if isinstance(name, str) else None
        if token is None:
            return _error(400, f"unknown token {name!r}; known: {', '.join(TOKENS)}")
        side = body.get("side")
        if side not in ("buy", "sell"):
            return _error(400, f"side must be 'buy' or 'sell', got {side!r}")
        amount = body.get("amount")
        if not _positive(amount):
            return _error(400, f"amount must be a number > 0, got {amount!r}")
        price = body.get("price", token.price)
        if not _positive(price):
            return _error(400, f"price must be a number > 0, got {price!r}")
        self._order_seq += 1
        order = {
            "id": f"ord-{self._order_seq:08d}",
            "status": "filled",
            "token": token.symbol,
            "side": side,
            "amount": amount,
            "price": price,
            "timestamp": time.time(),
        }
        self._orders[order["id"]] = order
        while len(self._orders) > _MAX_ORDERS:
            self._orders.popitem(last=False)
        return httpx.Response(201, json=order)

    def _get_order(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        order_id = params["order_id"]
        order = self._orders.get(order_id)
        if order is None:
            return _error(404, f"unknown order id {order_id!r}")
        return httpx.Response(200, json=order)
