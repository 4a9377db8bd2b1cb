"""An aiohttp ``TraceConfig`` recording a bot's own ``ClientSession`` as ``axiom_client`` does.

``aiohttp.ClientSession(trace_configs=[tracker.aiohttp_trace()])``: every
request of the session is recorded in the tracker, whatever code sends it:

- ``api_response_times``: from the request's start to its whole body received
  (however the bot reads it; a body that came with the headers, at the headers), tagged
  ``"METHOD /route/{param}"`` by the same `RouteTemplates` as ``axiom_client``;
  order routes (``POST /orders``, ``POST /api/send-transaction``) also in
  ``order_execution_times``. A request that timed out is recorded too (the bot
  waited); one that failed before any answer counts as an error only;
- ``http_connect_times`` (pool wait and new connection, 0 from the pool),
  ``http_dns_times`` (0 when cached) and ``http_ttfb_times`` (start to the
  response headers), per request;
- errors by exception type, and ``"HTTP 4xx"``/``"HTTP 5xx"`` by status class.

``middleware`` records the same from an aiohttp 3.12+ client middleware, but the
connect and DNS phases.

What it costs (``benchmarks/bench_instrument_cost.py`` and
``bench_instruments.py``, figures in ``benchmarks/RESULTS.md``): aiohttp's
tracing itself, once any ``TraceConfig`` is set, is most of the trace's cost (a
context, a parameters object and an awaited signal per event of each request);
the receivers here add ~3.5 % of a pooled loopback request's instructions, the
middleware ~1.7 % over aiohttp's own middleware call. A response whose body never
completes (the connection lost mid-body) records no latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
from aiosignal import Signal
from yarl import URL

from pytest_axiomperf.histogram import BUFFER_SIZE
from pytest_axiomperf.instruments import ORDER_ROUTES, ROUTES
from pytest_axiomperf.routes import MAX_TARGETS, RouteSeries, RouteTemplates
from pytest_axiomperf.tracker import (
    API_RESPONSE_TIMES,
    HTTP_TTFB_TIMES,
    ORDER_EXECUTION_TIMES,
    PerformanceTracker,
)

__all__ = ["trace_config"]

_now = time.perf_counter_ns


class _Request(SimpleNamespace):
    """One request's clocks (ns), aiohttp's per-request trace context.

    The phases start at 0 as class attributes: aiohttp makes one context per
    request, and SimpleNamespace's own constructor is several times cheaper
    than one written in Python.
    """

    start = 0
    queued = 0
    created = 0
    resolving = 0
    connect = 0
    dns = 0


_Buffer = tuple[list[float], Callable[[], None]]


class _Route:
    """What the requests of one method and path record into, looked up once per request:
    the route's series and tag, whether it places orders, and the raw buffers of its
    histograms (`Histogram.raw_buffer`: durations, never negative), each taken at the
    route's first sample of it, so a series a route never recorded is never made."""

    __slots__ = ("_tracker", "answers", "is_order", "phases", "series", "tag", "ttfb")

    def __init__(
        self, tracker: PerformanceTracker, series: RouteSeries, tag: str, is_order: bool
    ) -> None:
        self._tracker = tracker
        self.series = series
        self.tag = tag
        self.is_order = is_order
        # Made at the first request that has phases (the middleware's have none).
        self.phases: tuple[_Buffer, ...] | None = None
        #: api_response_times (and order_execution_times on an order route)
        self.answers: tuple[_Buffer, ...] | None = None
        #: http_ttfb_times alone, for the middleware
        self.ttfb: _Buffer | None = None

    def take_answers(self) -> tuple[_Buffer, ...]:
        metrics = (
            [API_RESPONSE_TIMES, ORDER_EXECUTION_TIMES] if self.is_order else [API_RESPONSE_TIMES]
        )
        self.answers = tuple(
            self._tracker.live_series(metric, self.tag).raw_buffer() for metric in metrics
        )
        return self.answers

    def take_ttfb(self) -> _Buffer:
        self.ttfb = self._tracker.live_series(HTTP_TTFB_TIMES, self.tag).raw_buffer()
        return self.ttfb

    def answered(self, elapsed: float) -> None:
        """Record a whole answer's latency (an order's too, on an order route)."""
        for buffer, fold in self.answers or self.take_answers():
            buffer.append(elapsed)
            if len(buffer) >= BUFFER_SIZE:
                fold()

    def when_read(self, content: aiohttp.StreamReader, start: int) -> None:
        """Record the answer when the last byte of a body still coming arrives."""

        def answered() -> None:
            self.answered((_now() - start) / 1e9)

        content.on_eof(answered)


class _Recorder:
    """The receivers of one trace config: one tracker, one set of route templates."""

    def __init__(
        self, tracker: PerformanceTracker, routes: RouteTemplates, order_routes: frozenset[str]
    ) -> None:
        self.tracker = tracker
        self.routes = routes
        self.order_routes = order_routes
        self._series: dict[str, RouteSeries] = {}
        self._routes: dict[tuple[str, str], _Route] = {}

    def series(self, tag: str) -> RouteSeries:
        series = self._series.get(tag)
        if series is None:
            series = self._series[tag] = RouteSeries(self.tracker, tag)
        return series

    def route(self, method: str, path: str) -> _Route:
        """The route of a request (remembered for MAX_TARGETS methods and paths)."""
        key = (method, path)
        route = self._routes.get(key)
        if route is None:
            tag = self.routes.tag(method, path)
            route = _Route(self.tracker, self.series(tag), tag, tag in self.order_routes)
            if len(self._routes) < MAX_TARGETS:  # paths can embed anything
                self._routes[key] = route
        return route

    def request_start(self, session: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
        ctx.start = _now()

    # The slow ways to a connection only: a connection straight from the pool sends none
    # of these (its connect and DNS times are 0). DNS runs inside a new connection.

    def queued_start(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.queued = _now()

    def queued_end(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.connect += _now() - ctx.queued

    def create_start(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.created = _now()

    def create_end(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.connect += _now() - ctx.created

    def dns_start(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.resolving = _now()

    def dns_end(self, session: aiohttp.ClientSession, ctx: Any, _: Any) -> None:
        ctx.dns += _now() - ctx.resolving

    def request_end(
        self, session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        headers_at = _now()
        start = ctx.start
        method, path = params.method, params.url.raw_path
        route = self._routes.get((method, path)) or self.route(method, path)
        # Straight into the three phase histograms' buffers: a method call less each.
        phases = route.phases
        if phases is None:
            phases = route.phases = route.series.phase_buffers()
        (connect, connect_fold), (dns, dns_fold), (ttfb, ttfb_fold) = phases
        connect.append(ctx.connect / 1e9)
        dns.append(ctx.dns / 1e9)
        ttfb.append((headers_at - start) / 1e9)
        if len(connect) >= BUFFER_SIZE:
            connect_fold()
        if len(dns) >= BUFFER_SIZE:
            dns_fold()
        if len(ttfb) >= BUFFER_SIZE:
            ttfb_fold()
        response = params.response
        if response.status >= 400:
            self.status_error(response.status)
        content = response.content
        if content.is_eof():  # the body came with the headers (a small one usually does)
            route.answered((headers_at - start) / 1e9)
        else:  # timed at its last byte, however the bot reads it
            route.when_read(content, start)

    def status_error(self, status: int) -> None:
        self.tracker.record_error("HTTP 5xx" if status >= 500 else "HTTP 4xx")

    def request_exception(
        self,
        session: aiohttp.ClientSession,
        ctx: Any,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        self.failed(params.method, params.url, params.exception, ctx.start)

    def failed(self, method: str, url: URL, exc: BaseException, start: int) -> None:
        """Count a request's exception; a timeout (or a raised status) is also latency."""
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
            elapsed = (_now() - start) / 1e9
            tag = self.routes.tag(method, url.raw_path)
            tracker.record(API_RESPONSE_TIMES, elapsed, tag)
            if tag in self.order_routes:
                tracker.record(ORDER_EXECUTION_TIMES, elapsed, tag)

    async def middleware(
        self, request: aiohttp.ClientRequest, handler: Callable[..., Awaitable[Any]]
    ) -> Any:
        """The same records from a client middleware: no connect/DNS phases, at less cost.

        Written inline (a call less per record): this runs for every request.
        """
        start = _now()
        try:
            response = await handler(request)
        except Exception as exc:
            self.failed(request.method, request.url, exc, start)
            raise
        headers_at = _now()
        method, path = request.method, request.url.raw_path
        route = self._routes.get((method, path)) or self.route(method, path)
        elapsed = (headers_at - start) / 1e9
        buffer, fold = route.ttfb or route.take_ttfb()
        buffer.append(elapsed)
        if len(buffer) >= BUFFER_SIZE:
            fold()
        if response.status >= 400:
            self.status_error(response.status)
        content = response.content
        if content.is_eof():  # the body came with the headers: answered then
            route.answered(elapsed)
        else:
            route.when_read(content, start)
        return response


_SIGNALS = (
    "on_request_start",
    "on_request_chunk_sent",
    "on_response_chunk_received",
    "on_request_end",
    "on_request_exception",
    "on_request_redirect",
    "on_connection_queued_start",
    "on_connection_queued_end",
    "on_connection_create_start",
    "on_connection_create_end",
    "on_connection_reuseconn",
    "on_dns_resolvehost_start",
    "on_dns_resolvehost_end",
    "on_dns_cache_hit",
    "on_dns_cache_miss",
    "on_request_headers_sent",
)


class _Done:
    """An awaitable that is already done: what a signal with nothing async to run returns."""

    __slots__ = ()

    def __await__(self) -> Iterator[None]:
        return iter(())  # an exhausted iterator: C-level, no generator frame


# Typed as the awaitable it is (an exhausted iterator is no Generator to mypy).
_DONE = cast(Awaitable[None], _Done())


class _FastSignal(Signal):
    """A trace signal that runs its recorder synchronously.

    aiohttp awaits ``signal.send(...)`` for each of a request's events, and a
    plain ``Signal`` awaits each receiver: two coroutines per event, about half of
    what a trace costs a request. Here the recorder (plain code, nothing to await)
    is called directly and an already-done awaitable returned. Receivers a user
    appends to the signal still run, awaited as aiohttp would.
    """

    __slots__ = ("_handler",)

    def __init__(self, owner: object, handler: Callable[..., None] | None) -> None:
        super().__init__(owner)
        self._handler = handler

    def send(self, *args: Any) -> Awaitable[None]:  # type: ignore[override]
        # Positional only, as aiohttp sends: a **kwargs would be a new dict per event.
        handler = self._handler
        if handler is not None:
            handler(*args)
        if len(self):
            return Signal.send(self, *args)
        return _DONE


class _TraceConfig(aiohttp.TraceConfig):
    """A TraceConfig whose signals (the public ``on_*`` properties aiohttp's tracing
    reads) are `_FastSignal`; set up by `trace_config`."""

    def __init__(self, handlers: dict[str, Callable[..., None]]) -> None:
        super().__init__(trace_config_ctx_factory=_Request)
        self._fast = {name: _FastSignal(self, handlers.get(name)) for name in _SIGNALS}

    def freeze(self) -> None:
        super().freeze()
        for signal in self._fast.values():
            signal.freeze()


def _fast_property(name: str) -> property:
    return property(lambda self: self._fast[name], doc=f"The {name} signal (runs the recorder).")


for _name in _SIGNALS:
    setattr(_TraceConfig, _name, _fast_property(_name))


def trace_config(
    tracker: PerformanceTracker,
    *,
    routes: Iterable[str] = ROUTES,
    order_routes: Iterable[str] = ORDER_ROUTES,
) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` recording every request of a session into ``tracker``.

    ``routes``: the route templates requests are tagged by (``"/users/{id}"``;
    default: the embedded exchange's and AxiomTrade's); a path matching none keeps
    its segments, identifiers folded into ``{id}``. ``order_routes``: tags also
    recorded as ``order_execution_times``. One trace config can serve several
    sessions; more receivers can be appended to its signals as to any.
    """
    recorder = _Recorder(tracker, RouteTemplates(routes), frozenset(order_routes))
    return _TraceConfig(
        {
            "on_request_start": recorder.request_start,
            "on_connection_queued_start": recorder.queued_start,
            "on_connection_queued_end": recorder.queued_end,
            "on_connection_create_start": recorder.create_start,
            "on_connection_create_end": recorder.create_end,
            "on_dns_resolvehost_start": recorder.dns_start,
            "on_dns_resolvehost_end": recorder.dns_end,
            "on_request_end": recorder.request_end,
            "on_request_exception": recorder.request_exception,
        }
    )


def middleware(
    tracker: PerformanceTracker,
    *,
    routes: Iterable[str] = ROUTES,
    order_routes: Iterable[str] = ORDER_ROUTES,
) -> Callable[[aiohttp.ClientRequest, Any], Awaitable[Any]]:
    """A client middleware (aiohttp 3.12+) recording what `trace_config` records, except
    the connect and DNS phases, without aiohttp's tracing machinery (its cost is in
    ``benchmarks/RESULTS.md``): ``aiohttp.ClientSession(middlewares=[...])``. Each
    redirect hop is a request of its own.
    """
    recorder = _Recorder(tracker, RouteTemplates(routes), frozenset(order_routes))
    return recorder.middleware
