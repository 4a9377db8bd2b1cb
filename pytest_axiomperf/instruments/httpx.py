"""A transport recording a bot's own ``httpx.AsyncClient``/``httpx.Client`` as ``axiom_client``.

``httpx.AsyncClient(transport=tracker.httpx_transport())``, or around a
transport of the bot's own: ``tracker.httpx_transport(httpx.AsyncHTTPTransport(
retries=2))`` (``httpx.HTTPTransport`` for a ``httpx.Client``). Every request
the transport sends, to any venue, is recorded:

- ``api_response_times``: from the request to its whole body received (or the
  response closed, if the bot stops reading first), tagged ``"METHOD /route"``
  by the same `RouteTemplates` as ``axiom_client``; order routes also in
  ``order_execution_times``. A timeout is recorded (the bot waited); a request
  that failed before any answer counts as an error only;
- ``http_connect_times`` (TCP connect plus TLS of a new connection, from
  httpcore's trace events; 0 for a pooled one) and ``http_ttfb_times`` (request
  to response headers). httpcore resolves names inside its connect, so there is
  no separate ``http_dns_times``;
- errors by exception type, and ``"HTTP 4xx"``/``"HTTP 5xx"`` by status class.

A transport given to the client serves the requests no mount claims: a proxy
that httpx takes from the environment (``trust_env``) bypasses it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpx

from pytest_axiomperf.instruments import ORDER_ROUTES, ROUTES
from pytest_axiomperf.routes import RouteTemplates
from pytest_axiomperf.tracker import (
    API_RESPONSE_TIMES,
    HTTP_CONNECT_TIMES,
    HTTP_TTFB_TIMES,
    ORDER_EXECUTION_TIMES,
    PerformanceTracker,
)

__all__ = ["AsyncTimedTransport", "TimedTransport", "transport"]

_now = time.perf_counter_ns
# httpcore's trace events that time a new connection's set-up.
_CONNECT_STEPS = ("connection.connect_tcp", "connection.start_tls")


class _Recorder:
    """What the sync and async transports share: the tags and the records."""

    def __init__(
        self, tracker: PerformanceTracker, routes: Iterable[str], order_routes: Iterable[str]
    ) -> None:
        self.tracker = tracker
        self.routes = RouteTemplates(routes)
        self.order_routes = frozenset(order_routes)

    def tag(self, request: httpx.Request) -> str:
        return self.routes.tag(request.method, request.url.path)

    def answered(
        self, request: httpx.Request, response: httpx.Response, start: int, connect: int
    ) -> Callable[[], None]:
        """Record the headers' arrival; returns what records the end of the body (once)."""
        tracker, tag = self.tracker, self.tag(request)
        tracker.record(HTTP_CONNECT_TIMES, connect / 1e9, tag)
        tracker.record(HTTP_TTFB_TIMES, (_now() - start) / 1e9, tag)
        status = response.status_code
        if status >= 400:
            tracker.record_error("HTTP 5xx" if status >= 500 else "HTTP 4xx")
        pending = [True]

        def finished() -> None:
            if pending[0]:
                pending[0] = False
                self.latency(tag, start)

        return finished

    def latency(self, tag: str, start: int) -> None:
        elapsed = (_now() - start) / 1e9
        self.tracker.record(API_RESPONSE_TIMES, elapsed, tag)
        if tag in self.order_routes:
            self.tracker.record(ORDER_EXECUTION_TIMES, elapsed, tag)

    def failed(self, request: httpx.Request, exc: Exception, start: int) -> None:
        self.tracker.record_error(exc)
        if isinstance(exc, httpx.TimeoutException):  # the bot waited: that wait is latency
            self.latency(self.tag(request), start)


class _Connect:
    """httpcore's ``trace`` extension for one request: times a new connection's set-up,
    then passes each event on to the trace the bot set, if any."""

    __slots__ = ("_marks", "_outer", "total")

    def __init__(self, outer: Any) -> None:
        self._outer = outer
        self._marks: dict[str, int] = {}
        self.total = 0

    def event(self, name: str) -> None:
        step, _, phase = name.rpartition(".")
        if step in _CONNECT_STEPS:
            if phase == "started":
                self._marks[step] = _now()
            elif step in self._marks:
                self.total += _now() - self._marks.pop(step)

    def __call__(self, name: str, info: dict[str, Any]) -> Any:
        self.event(name)
        return None if self._outer is None else self._outer(name, info)


class _AsyncConnect(_Connect):
    __slots__ = ()

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.event(name)
        if self._outer is not None:
            await self._outer(name, info)


class _TimedAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, finished: Callable[[], None]) -> None:
        self._inner = inner
        self._finished = finished

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk
        self._finished()

    async def aclose(self) -> None:
        self._finished()
        await self._inner.aclose()


class _TimedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, finished: Callable[[], None]) -> None:
        self._inner = inner
        self._finished = finished

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner
        self._finished()

    def close(self) -> None:
        self._finished()
        self._inner.close()


class AsyncTimedTransport(httpx.AsyncBaseTransport):
    """Wraps an async transport (default ``httpx.AsyncHTTPTransport()``), recording each request."""

    def __init__(
        self,
        tracker: PerformanceTracker,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        routes: Iterable[str] = ROUTES,
        order_routes: Iterable[str] = ORDER_ROUTES,
    ) -> None:
        """Record into ``tracker``; tags from ``routes``, orders from ``order_routes``."""
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._recorder = _Recorder(tracker, routes, order_routes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the wrapped transport, timing it."""
        connect = _AsyncConnect(request.extensions.get("trace"))
        request.extensions["trace"] = connect
        start = _now()
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            self._recorder.failed(request, exc, start)
            raise
        finished = self._recorder.answered(request, response, start, connect.total)
        if response.is_closed:  # read already (a mock's, a cache's): its body is here
            finished()
            return response
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _TimedAsyncStream(stream, finished)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


class TimedTransport(httpx.BaseTransport):
    """Wraps a sync transport (default ``httpx.HTTPTransport()``), recording each request."""

    def __init__(
        self,
        tracker: PerformanceTracker,
        transport: httpx.BaseTransport | None = None,
        *,
        routes: Iterable[str] = ROUTES,
        order_routes: Iterable[str] = ORDER_ROUTES,
    ) -> None:
        """Record into ``tracker``; tags from ``routes``, orders from ``order_routes``."""
        self._inner = transport if transport is not None else httpx.HTTPTransport()
        self._recorder = _Recorder(tracker, routes, order_routes)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the wrapped transport, timing it."""
        connect = _Connect(request.extensions.get("trace"))
        request.extensions["trace"] = connect
        start = _now()
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            self._recorder.failed(request, exc, start)
            raise
        finished = self._recorder.answered(request, response, start, connect.total)
        if response.is_closed:  # read already (a mock's, a cache's): its body is here
            finished()
            return response
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        response.stream = _TimedStream(stream, finished)
        return response

    def close(self) -> None:
        """Close the wrapped transport."""
        self._inner.close()


def transport(
    tracker: PerformanceTracker,
    inner: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None,
    *,
    sync: bool = False,
    routes: Iterable[str] = ROUTES,
    order_routes: Iterable[str] = ORDER_ROUTES,
) -> AsyncTimedTransport | TimedTransport:
    """A timed transport around ``inner``: async unless ``inner`` is sync or ``sync=True``
    (which also picks the sync side of a transport that is both, as ``httpx.MockTransport``)."""
    is_async = isinstance(inner, httpx.AsyncBaseTransport)
    if (isinstance(inner, httpx.BaseTransport) and (sync or not is_async)) or (
        inner is None and sync
    ):
        return TimedTransport(tracker, inner, routes=routes, order_routes=order_routes)
    if inner is None or isinstance(inner, httpx.AsyncBaseTransport):
        return AsyncTimedTransport(tracker, inner, routes=routes, order_routes=order_routes)
    raise TypeError(f"expected an httpx transport, got {type(inner).__name__}")
