"""Route tags for HTTP requests, and the tracker series a route's requests record into.

Shared by every HTTP client the plugin measures (its own aiohttp client, the
instruments for a bot's aiohttp, httpx and requests clients, the respx router);
it imports no HTTP library, so a bot using httpx alone never imports aiohttp.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from pytest_axiomperf.errors import AxiomPerfError
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.tracker import (
    API_RESPONSE_TIMES,
    HTTP_CONNECT_TIMES,
    HTTP_DNS_TIMES,
    HTTP_TTFB_TIMES,
    NETWORK_THROUGHPUT,
    ORDER_EXECUTION_TIMES,
    PerformanceTracker,
)

__all__ = ["EXCHANGE_ROUTES", "MAX_TARGETS", "ORDER_ROUTES", "RouteSeries", "RouteTemplates"]

#: The embedded exchange's REST routes: requests are tagged with these templates.
EXCHANGE_ROUTES: tuple[str, ...] = (
    "/health",
    "/balance/{address}",
    "/tokens/{address}",
    "/orders",
    "/orders/{order_id}",
)

#: Routes whose latency also goes to ``order_execution_times``.
ORDER_ROUTES: frozenset[str] = frozenset({"POST /orders"})

# Distinct tags one client creates before folding the rest into "METHOD (other)":
# a tag per wallet address would make the tracker and the report grow without bound.
_MAX_TAGS = 200
# Requests whose URL and tag are remembered (bounded: paths can embed anything).
MAX_TARGETS = 4096
_VERSION_SEGMENT = re.compile(r"v\d{1,3}")


class RouteTemplates:
    """Maps a request path to its route template, so tags stay few.

    ``RouteTemplates(["/balance/{address}"]).tag("GET", "/balance/So1x")`` is
    ``"GET /balance/{address}"``. A path matching no template keeps its
    segments, except the ones that look like identifiers (any digit, or 16
    characters and more; ``v1``-style version segments are kept), which become
    ``{id}``. Past 200 distinct tags, new ones are folded into ``"METHOD (other)"``.
    """

    def __init__(self, templates: Iterable[str] = EXCHANGE_ROUTES) -> None:
        """Compile ``templates`` (``{name}`` matches one path segment)."""
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for template in templates:
            if not template.startswith("/"):
                raise AxiomPerfError(f"route template {template!r} must start with '/'")
            regex = re.sub(r"\\\{[^/{}]+\\\}", "[^/]+", re.escape(template))
            self._patterns.append((re.compile(regex + "/?"), template))
        self._cache: dict[tuple[str, str], str] = {}
        self._tags: set[str] = set()

    def tag(self, method: str, path: str) -> str:
        """The tag of a request: ``"METHOD template"``."""
        key = (method, path)
        tag = self._cache.get(key)
        if tag is not None:
            return tag
        tag = f"{method} {self._route(path)}"
        if tag not in self._tags:
            if len(self._tags) >= _MAX_TAGS:
                tag = f"{method} (other)"
            self._tags.add(tag)
        # Bounded: paths can embed anything (one per wallet address).
        if len(self._cache) < MAX_TARGETS:
            self._cache[key] = tag
        return tag

    def _route(self, path: str) -> str:
        for pattern, template in self._patterns:
            if pattern.fullmatch(path):
                return template
        segments = [
            "{id}"
            if (len(s) >= 16 or any(c.isdigit() for c in s)) and not _VERSION_SEGMENT.fullmatch(s)
            else s
            for s in path.split("/")
        ]
        return "/".join(segments) or "/"


class RouteSeries:
    """The tracker series the answered requests of one route tag record into.

    Looked up once per tag rather than per record, and each made at its first
    sample, so a route whose requests never completed leaves no empty series.
    """

    __slots__ = ("_latency", "_order", "_phases", "_tag", "_throughput", "_tracker", "_ttfb")

    def __init__(self, tracker: PerformanceTracker, tag: str) -> None:
        self._tracker = tracker
        self._tag = tag
        self._latency: Histogram | None = None
        self._throughput: Histogram | None = None
        self._order: Histogram | None = None
        self._phases: tuple[Histogram, Histogram, Histogram] | None = None
        self._ttfb: Histogram | None = None

    def record_answer(self, elapsed: float, throughput: float | None, is_order: bool) -> None:
        """Record a request's latency (also as an order's) and its bytes per second."""
        latency = self._latency
        if latency is None:
            latency = self._latency = self._tracker.live_series(API_RESPONSE_TIMES, self._tag)
        latency.record(elapsed)
        if is_order:
            order = self._order
            if order is None:
                order = self._order = self._tracker.live_series(ORDER_EXECUTION_TIMES, self._tag)
            order.record(elapsed)
        if throughput is not None:
            series = self._throughput
            if series is None:
                series = self._throughput = self._tracker.live_series(NETWORK_THROUGHPUT, self._tag)
            series.record(throughput)

    def record_ttfb(self, ttfb: float) -> None:
        """Record a time to first byte alone (an instrument that cannot see the phases)."""
        series = self._ttfb
        if series is None:
            series = self._ttfb = self._tracker.live_series(HTTP_TTFB_TIMES, self._tag)
        series.record(ttfb)

    def _phase_series(self) -> tuple[Histogram, Histogram, Histogram]:
        phases = self._phases
        if phases is None:
            tracker, tag = self._tracker, self._tag
            phases = self._phases = (
                tracker.live_series(HTTP_CONNECT_TIMES, tag),
                tracker.live_series(HTTP_DNS_TIMES, tag),
                tracker.live_series(HTTP_TTFB_TIMES, tag),
            )
        return phases

    def record_phases(self, connect: float, dns: float, ttfb: float) -> None:
        """Record one attempt's connect, DNS and time-to-first-byte durations."""
        phases = self._phase_series()
        phases[0].record(connect)
        phases[1].record(dns)
        phases[2].record(ttfb)

    def phase_buffers(self) -> tuple[tuple[list[float], Callable[[], None]], ...]:
        """The connect, DNS and TTFB histograms' raw buffers (`Histogram.raw_buffer`), for
        a hot path that records durations (never negative) in all three at once."""
        return tuple(series.raw_buffer() for series in self._phase_series())
