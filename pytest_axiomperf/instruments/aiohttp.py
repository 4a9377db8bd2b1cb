"""An aiohttp ``TraceConfig`` recording a bot's own ``ClientSession`` as ``axiom_client`` does.

``aiohttp.ClientSession(trace_configs=[tracker.aiohttp_trace()])``: every
request of the session is recorded in the tracker, whatever code sends it:

- ``api_response_times``: from the request's start to its whole body received
  (however the bot reads it, or when it is already buffered), tagged
  ``"METHOD /route/{param}"`` by the same `RouteTemplates` as ``axiom_client``;
  order routes (``POST /orders``, ``POST /api/send-transaction``) also in
  ``order_execution_times``. A request that timed out is recorded too (the bot
  waited); one that failed before any answer counts as an error only;
- ``http_connect_times`` (pool wait and new connection, 0 from the pool),
  ``http_dns_times`` (0 when cached) and ``http_ttfb_times`` (start to the
  response headers), per request;
- errors by exception type, and ``"HTTP 4xx"``/``"HTTP 5xx"`` by status class.

What it costs: aiohttp sends a trace's signals as coroutines; with the
receivers here a request costs a few microseconds more of CPU
(``benchmarks/bench_instruments.py``, figures in ``benchmarks/RESULTS.md``).
A response whose body never completes (the connection lost mid-body) records
no latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import aiohttp

from pytest_axiomperf.client import RouteTemplates, _RouteSeries
from pytest_axiomperf.instruments import ORDER_ROUTES, ROUTES
from pytest_axiomperf.tracker import API_RESPONSE_TIMES, ORDER_EXECUTION_TIMES, PerformanceTracker

__all__ = ["trace_config"]

_now = time.perf_counter_ns


class _Request(SimpleNamespace):
    """One request's clocks (ns), aiohttp's per-request trace context."""

    def __init__(self, trace_request_ctx: Any = None) -> None:
        # Plain attributes, set once here: aiohttp creates one per request.
        self.trace_request_ctx = trace_request_ctx
        self.start = 0
        self.queued = 0
        self.created = 0
        self.resolving = 0
        self.connect = 0
        self.dns = 0


class _Recorder:
    """The receivers of one trace config: one tracker, one set of route templates."""

    def __init__(
        self, tracker: PerformanceTracker, routes: RouteTemplates, order_routes: frozenset[str]
    ) -> None:
        self.tracker = tracker
        self.routes = routes
        self.order_routes = order_routes
        self._series: dict[str, _RouteSeries] = {}

    def series(self, tag: str) -> _RouteSeries:
        series = self._series.get(tag)
        if series is None:
            series = self._series[tag] = _RouteSeries(self.tracker, tag)
        return series

    async def request_start(self, session: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
        ctx.start = _now()

    # The slow ways to a connection only: a connection straight from the pool sends none
    # of these (its connect and DNS times are 0). DNS runs inside a new connection.

    async def queued_start(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.queued = _now()

    async def queued_end(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.connect += _now() - ctx.queued

    async def create_start(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.created = _now()

    async def create_end(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.connect += _now() - ctx.created

    async def dns_start(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.resolving = _now()

    async def dns_end(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.dns += _now() - ctx.resolving

    async def request_end(
        self, session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        headers_at = _now()
        start = ctx.start
        tag = self.routes.tag(params.method, params.url.path)
        series = self.series(tag)
        series.record_phases(ctx.connect / 1e9, ctx.dns / 1e9, (headers_at - start) / 1e9)
        response = params.response
        status = response.status
        if status >= 400:
            self.tracker.record_error("HTTP 5xx" if status >= 500 else "HTTP 4xx")
        is_order = tag in self.order_routes

        def answered() -> None:
            series.record_answer((_now() - start) / 1e9, None, is_order)

        response.content.on_eof(answered)

    async def request_exception(
        self,
        session: aiohttp.ClientSession,
        ctx: Any,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        exc = params.exception
        tracker = self.tracker
        # raise_for_status: an answer, counted by its status class like any other.
        status = exc.status if isinstance(exc, aiohttp.ClientResponseError) else 0
        answered = status >= 400
        if answered:
            tracker.record_error("HTTP 5xx" if status >= 500 else "HTTP 4xx")
        else:
            tracker.record_error(exc)
        # A timeout kept the bot waiting: that wait is latency. A request refused before
        # any answer measured no API at all (a budget on a dead server must not pass).
        if answered or isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            elapsed = (_now() - ctx.start) / 1e9
            tag = self.routes.tag(params.method, params.url.path)
            tracker.record(API_RESPONSE_TIMES, elapsed, tag)
            if tag in self.order_routes:
                tracker.record(ORDER_EXECUTION_TIMES, elapsed, tag)


def trace_config(
    tracker: PerformanceTracker,
    *,
    routes: Iterable[str] = ROUTES,
    order_routes: Iterable[str] = ORDER_ROUTES,
) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` recording every request of a session into ``tracker``.

    ``routes``: the route templates requests are tagged by (``"/users/{id}"``;
    default: the embedded exchange's and AxiomTrade's); a path matching none keeps its segments,
    identifiers folded into ``{id}``. ``order_routes``: tags also recorded as
    ``order_execution_times``. One trace config can serve several sessions.
    """
    recorder = _Recorder(tracker, RouteTemplates(routes), frozenset(order_routes))
    config = aiohttp.TraceConfig(trace_config_ctx_factory=_Request)
    config.on_request_start.append(recorder.request_start)
    config.on_connection_queued_start.append(recorder.queued_start)
    config.on_connection_queued_end.append(recorder.queued_end)
    config.on_connection_create_start.append(recorder.create_start)
    config.on_connection_create_end.append(recorder.create_end)
    config.on_dns_resolvehost_start.append(recorder.dns_start)
    config.on_dns_resolvehost_end.append(recorder.dns_end)
    config.on_request_end.append(recorder.request_end)
    config.on_request_exception.append(recorder.request_exception)
    return config
