"""PerformanceTracker: records latencies and other metrics, computes their statistics."""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from pytest_axiomperf.histogram import BUFFER_SIZE, Histogram, check_value
from pytest_axiomperf.report.text import render_guide_report
from pytest_axiomperf.timeline import Timeline

if TYPE_CHECKING:  # the instruments import their libraries only when used
    import aiohttp
    import httpx

    from pytest_axiomperf.instruments.httpx import AsyncTimedTransport, TimedTransport
    from pytest_axiomperf.instruments.websockets import InstrumentedConnect, Timestamp

P = ParamSpec("P")
R = TypeVar("R")

#: The guide's standard metric names.
API_RESPONSE_TIMES = "api_response_times"
WEBSOCKET_LATENCY = "websocket_latency"
ORDER_EXECUTION_TIMES = "order_execution_times"
MEMORY_USAGE = "memory_usage"
CPU_USAGE = "cpu_usage"
NETWORK_THROUGHPUT = "network_throughput"
#: The phases of an HTTP request (``OptimizedClient`` records them per attempt).
HTTP_CONNECT_TIMES = "http_connect_times"
HTTP_DNS_TIMES = "http_dns_times"
HTTP_TTFB_TIMES = "http_ttfb_times"
#: Diagnostic parts of a request's latency, not latencies a bot sees on their own.
PHASE_METRICS = frozenset({HTTP_CONNECT_TIMES, HTTP_DNS_TIMES, HTTP_TTFB_TIMES})

#: Units of the standard metrics that are not durations; every other metric is
#: a duration in seconds unless declared with :meth:`PerformanceTracker.set_unit`.
DEFAULT_UNITS: dict[str, str] = {
    MEMORY_USAGE: "MB",
    CPU_USAGE: "%",
    NETWORK_THROUGHPUT: "B/s",
}
SECONDS = "s"

#: The percentiles every report shows.
REPORTED_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


@dataclass(frozen=True)
class MetricStats:
    """Statistics of one metric (optionally one tag of it).

    Percentiles follow the nearest-rank definition documented in
    :mod:`pytest_axiomperf.histogram` (never below the exact value, at most
    0.78 % above it). Empty metrics have ``count == 0`` and NaN statistics.
    """

    metric: str
    tag: str | None
    unit: str
    count: int
    mean: float
    median: float
    p50: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float
    std_dev: float

    @classmethod
    def from_histogram(
        cls, metric: str, tag: str | None, unit: str, hist: Histogram
    ) -> MetricStats:
        """Compute the statistics of ``hist``."""
        pct = hist.percentiles(REPORTED_PERCENTILES)
        return cls(
            metric=metric,
            tag=tag,
            unit=unit,
            count=hist.count,
            mean=hist.mean,
            median=pct[50.0],
            p50=pct[50.0],
            p90=pct[90.0],
            p95=pct[95.0],
            p99=pct[99.0],
            min=hist.min,
            max=hist.max,
            std_dev=hist.std_dev,
        )

    def get(self, statistic: str) -> float:
        """One statistic by name (``"p95"``, ``"mean"``, ``"max"`` ...)."""
        if statistic not in _STATISTICS:
            raise KeyError(statistic)
        return float(getattr(self, statistic))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; NaN becomes ``None``."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


_STATISTICS = frozenset(("mean", "median", "p50", "p90", "p95", "p99", "min", "max", "std_dev"))


def error_name(error: BaseException | type[BaseException] | str) -> str:
    """The name an error is counted under: its type name, or the text given."""
    if isinstance(error, str):
        return error
    if isinstance(error, type):
        return error.__name__
    return type(error).__name__


class _Measure:
    """Times a block (``with`` / ``async with``) or every call of a decorated function."""

    __slots__ = ("_metric", "_start", "_tag", "_tracker")

    def __init__(self, tracker: PerformanceTracker, metric: str, tag: str | None) -> None:
        self._tracker = tracker
        self._metric = metric
        self._tag = tag
        self._start = 0

    def __enter__(self) -> _Measure:
        self._start = time.perf_counter_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = (time.perf_counter_ns() - self._start) / 1e9
        self._tracker.record(self._metric, elapsed, self._tag)
        if exc is not None and isinstance(exc, Exception):
            self._tracker.record_error(exc)

    async def __aenter__(self) -> _Measure:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``func`` so each call is timed; coroutine functions are awaited."""
        tracker, metric, tag = self._tracker, self._metric, self._tag
        if inspect.iscoroutinefunction(func):
            async_func: Callable[P, Awaitable[Any]] = func

            @functools.wraps(func)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with _Measure(tracker, metric, tag):
                    return await async_func(*args, **kwargs)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(func)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            return tracker._timed_call(metric, tag, func, *args, **kwargs)

        return timed


class PerformanceTracker:
    """Collects one test's (or one bot run's) metrics.

    ``record`` is cheap (an append to a bounded buffer), thread-safe and keeps
    memory bounded whatever the sample count. Metrics may carry a tag (an
    endpoint, a message kind) so a budget or the report can split them.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._series: dict[tuple[str, str | None], Histogram] = {}
        # Each series' raw buffer by metric, then tag: for the hot path of ``record``.
        self._buffers: dict[str, dict[str | None, list[float]]] = {}
        self._units: dict[str, str] = dict(DEFAULT_UNITS)
        self._errors: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._started_ns = time.perf_counter_ns()
        self._runtime: float | None = None  # fixed when rebuilt from data
        #: The metrics over time (windows of count/p50/p99) and CPU/RSS samples.
        self.timeline = Timeline(self._started_ns)
        #: Notes about how the numbers were obtained (e.g. "tracemalloc").
        self.flags: set[str] = set()
        #: Tables attached with :meth:`add_table`, printed in the session report.
        self.tables: list[dict[str, Any]] = []

    # -- recording -------------------------------------------------------------

    def record(self, metric: str, seconds: float, tag: str | None = None) -> None:
        """Record one value of ``metric`` (seconds for durations; see :meth:`set_unit`).

        Raises ``ValueError`` for a negative, NaN or infinite value, or one above
        ``histogram.MAX_VALUE`` (3.4e38); ``TypeError`` for what is not a number.
        An int counts as its float.
        """
        # The hot path, inlined from Histogram.record: two dict lookups (no key tuple
        # to build), one append; the fold runs once per BUFFER_SIZE samples.
        try:
            buf = self._buffers[metric][tag]
        except KeyError:
            buf = self._new_series(metric, tag)._buf
        try:
            if not 0.0 <= seconds <= 3.4028234663852886e38:  # MAX_VALUE, a constant: faster
                check_value(seconds, f" for {metric!r}")
        except TypeError:  # not comparable with a float
            check_value(seconds, f" for {metric!r}")
        buf.append(seconds)
        if len(buf) >= BUFFER_SIZE:
            self._series[(metric, tag)]._fold()

    def _new_series(self, metric: str, tag: str | None) -> Histogram:
        if not isinstance(metric, str) or not metric:
            raise TypeError(f"metric must be a non-empty str, not {metric!r}")
        if tag is not None and not isinstance(tag, str):
            raise TypeError(f"tag must be a str or None, not {tag!r}")
        with self._lock:
            hist = self._series.get((metric, tag))
            if hist is None:
                hist = self._series[(metric, tag)] = Histogram()
                hist._on_fold = self.timeline.feeder(metric, tag)
            self._buffers.setdefault(metric, {})[tag] = hist._buf
            return hist

    def tick(self) -> None:
        """Fold every series' raw samples now, so the timeline files them under this
        moment (the plugin's resource sampler calls it every sample interval)."""
        for hist in list(self._series.values()):
            hist._fold()
        self.timeline.ticked()

    def set_unit(self, metric: str, unit: str) -> None:
        """Declare the unit of a metric that is not a duration in seconds."""
        self._units[metric] = unit

    def unit(self, metric: str) -> str:
        """The unit of ``metric`` (``"s"`` for durations)."""
        return self._units.get(metric, SECONDS)

    def measure(self, metric: str, tag: str | None = None) -> _Measure:
        """Time a block: ``with tracker.measure(m):`` or ``async with``; or decorate a function.

        A block that raises is still recorded, and its exception counted.
        """
        return _Measure(self, metric, tag)

    def call(self, metric: str, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call a plain (sync) ``func`` and record how long it took.

        Raises ``TypeError`` for a coroutine function or anything returning an
        awaitable: timing it would time the creation of a coroutine, not the work.
        """
        return self._timed_call(metric, None, func, *args, **kwargs)

    def _timed_call(
        self,
        metric: str,
        tag: str | None,
        func: Callable[P, R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        if inspect.iscoroutinefunction(func):
            raise TypeError(
                f"{getattr(func, '__qualname__', func)!r} is a coroutine function; "
                "use `await tracker.track_api_call(...)` or `async with tracker.measure(...)`"
            )
        with _Measure(self, metric, tag):
            result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError(
                f"{getattr(func, '__qualname__', func)!r} returned an awaitable: timing it "
                "would measure nothing; await it inside `async with tracker.measure(...)`"
            )
        return result

    async def track_api_call(
        self, func: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func(*args, **kwargs)``, recording its duration in ``api_response_times``.

        An exception is counted by type in the error counts and re-raised.
        """
        start = time.perf_counter_ns()
        try:
            awaitable = func(*args, **kwargs)
            if not inspect.isawaitable(awaitable):
                raise TypeError(
                    f"{getattr(func, '__qualname__', func)!r} did not return an awaitable; "
                    "use tracker.call(...) for plain functions"
                )
            result = await awaitable
        except Exception as exc:
            self.record_error(exc)
            raise
        finally:
            self.record(API_RESPONSE_TIMES, (time.perf_counter_ns() - start) / 1e9)
        return result

    def record_error(self, error: BaseException | type[BaseException] | str, n: int = 1) -> None:
        """Count an error under its exception type name (or the given text, e.g. ``"HTTP 5xx"``)."""
        name = error_name(error)
        with self._lock:
            self._errors[name] += n

    def add_table(
        self, title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
    ) -> None:
        """Attach a table (e.g. a side-by-side comparison) to the performance report.

        Cells are strings or numbers; floats print with 2 decimals. ``ValueError`` for
        no column, or a row whose cells do not match the columns.
        """
        header = [str(c) for c in columns]
        if not header:
            raise ValueError(f"table {title!r}: no columns")
        body = [[c if isinstance(c, (int, float)) else str(c) for c in row] for row in rows]
        for row in body:
            if len(row) != len(header):
                raise ValueError(
                    f"table {title!r}: row {row!r} has {len(row)} cells, expected {len(header)}"
                )
        self.tables.append({"title": str(title), "columns": header, "rows": body})

    # -- instruments for a bot's own clients -------------------------------------

    def aiohttp_trace(
        self, *, routes: Iterable[str] | None = None, order_routes: Iterable[str] | None = None
    ) -> aiohttp.TraceConfig:
        """An aiohttp ``TraceConfig`` recording a session's requests here, as ``axiom_client``.

        ``aiohttp.ClientSession(trace_configs=[tracker.aiohttp_trace()])``: each
        request goes to ``api_response_times`` tagged by route (``routes``: the
        route templates, default the embedded exchange's), orders also to
        ``order_execution_times`` (``order_routes``: tags), with its connect, DNS and
        time-to-first-byte phases and its errors. See
        :mod:`pytest_axiomperf.instruments.aiohttp`.
        """
        from pytest_axiomperf.instruments.aiohttp import trace_config

        options: dict[str, Iterable[str]] = {}
        if routes is not None:
            options["routes"] = routes
        if order_routes is not None:
            options["order_routes"] = order_routes
        return trace_config(self, **options)

    def aiohttp_middleware(
        self, *, routes: Iterable[str] | None = None, order_routes: Iterable[str] | None = None
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        """An aiohttp client middleware (3.12+) recording a session's requests here.

        ``aiohttp.ClientSession(middlewares=[tracker.aiohttp_middleware()])``: what
        :meth:`aiohttp_trace` records except the connect and DNS phases, without
        the cost of aiohttp's tracing (``benchmarks/RESULTS.md``).
        """
        from pytest_axiomperf.instruments.aiohttp import middleware

        options: dict[str, Iterable[str]] = {}
        if routes is not None:
            options["routes"] = routes
        if order_routes is not None:
            options["order_routes"] = order_routes
        return middleware(self, **options)

    def httpx_transport(
        self,
        transport: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None,
        *,
        sync: bool = False,
        routes: Iterable[str] | None = None,
        order_routes: Iterable[str] | None = None,
    ) -> AsyncTimedTransport | TimedTransport:
        """An httpx transport recording each request here, as ``axiom_client`` does.

        ``httpx.AsyncClient(transport=tracker.httpx_transport())``; around the bot's
        own transport: ``tracker.httpx_transport(httpx.AsyncHTTPTransport(retries=2))``;
        for a ``httpx.Client``: ``tracker.httpx_transport(sync=True)`` (or a sync
        transport). See :mod:`pytest_axiomperf.instruments.httpx`.
        """
        from pytest_axiomperf.instruments.httpx import transport as timed

        options: dict[str, Iterable[str]] = {}
        if routes is not None:
            options["routes"] = routes
        if order_routes is not None:
            options["order_routes"] = order_routes
        return timed(self, transport, sync=sync, **options)

    def websockets_connect(
        self, timestamp: str | Timestamp | None = "timestamp"
    ) -> InstrumentedConnect:
        """A drop-in for ``websockets.asyncio.client.connect`` measuring the bot's feed here.

        ``async with connect(url) as ws`` / ``async for raw in ws`` stay as they are;
        delivery latency (``websocket_latency`` tag ``"delivery"``) is timed from
        each message's ``timestamp`` field (a field name, or a function of the raw
        message returning epoch seconds or None; None: no delivery latency), with
        ping round trips, message rate, reconnect gaps and invalid frames. See
        :mod:`pytest_axiomperf.instruments.websockets`.
        """
        from pytest_axiomperf.instruments.websockets import InstrumentedConnect

        return InstrumentedConnect(self, timestamp=timestamp)

    # -- reading ---------------------------------------------------------------

    @property
    def runtime(self) -> float:
        """Seconds since the tracker was created (or the stored runtime of a rebuilt one)."""
        if self._runtime is not None:
            return self._runtime
        return (time.perf_counter_ns() - self._started_ns) / 1e9

    @property
    def errors(self) -> dict[str, int]:
        """Error counts by exception type name."""
        with self._lock:
            return dict(self._errors)

    def metrics(self) -> list[str]:
        """Names of the recorded metrics, sorted."""
        return sorted({m for m, _ in list(self._series)})

    def tags(self, metric: str) -> list[str]:
        """Tags recorded for ``metric`` (untagged samples are not listed), sorted."""
        return sorted({t for m, t in list(self._series) if m == metric and t is not None})

    def live_series(self, metric: str, tag: str | None = None) -> Histogram:
        """The histogram ``record(metric, ..., tag)`` writes to, created if needed.

        For hot paths that record the same series many times: ``series.record(v)``
        skips the tracker's two lookups. It stays this tracker's series for the
        tracker's life (`merge` adds into it, nothing replaces it).
        """
        found = self._series.get((metric, tag))
        return found if found is not None else self._new_series(metric, tag)

    def histogram(self, metric: str, tag: str | None = None) -> Histogram:
        """A copy of the histogram of ``metric`` (all tags merged when ``tag`` is None)."""
        if tag is not None:
            found = self._series.get((metric, tag))
            return found.copy() if found is not None else Histogram()
        merged = Histogram()
        for (m, _), hist in list(self._series.items()):
            if m == metric:
                merged.merge(hist)
        return merged

    def stats(self, metric: str, tag: str | None = None) -> MetricStats:
        """Statistics of ``metric`` (or of one tag of it); ``count == 0`` when never recorded."""
        return MetricStats.from_histogram(
            metric, tag, self.unit(metric), self.histogram(metric, tag)
        )

    def get_statistics(self) -> dict[str, Any]:
        """Every metric's statistics (and per tag), the error counts and the runtime."""
        out: dict[str, Any] = {}
        for metric in self.metrics():
            entry = self.stats(metric).to_dict()
            entry["tags"] = {t: self.stats(metric, t).to_dict() for t in self.tags(metric)}
            out[metric] = entry
        return {"runtime_seconds": self.runtime, "metrics": out, "errors": self.errors}

    def generate_performance_report(self) -> str:
        """The guide's text report for this tracker."""
        return render_guide_report(self)

    # -- combining and (de)serializing ------------------------------------------

    def merge(self, other: PerformanceTracker) -> None:
        """Add every metric, tag and error count of ``other`` to this tracker.

        Timelines are not merged: they describe one tracker's run on its own clock.
        """
        for (metric, tag), hist in list(other._series.items()):
            mine = self._series.get((metric, tag)) or self._new_series(metric, tag)
            mine.merge(hist)
        for metric, unit in other._units.items():
            self._units.setdefault(metric, unit)
        with self._lock:
            self._errors.update(other.errors)
        self.flags |= other.flags
        self.tables.extend(other.tables)

    def series(self) -> Iterator[tuple[str, str | None, Histogram]]:
        """``(metric, tag, histogram)`` for every recorded series (live objects)."""
        for (metric, tag), hist in sorted(
            self._series.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
        ):
            yield metric, tag, hist

    def to_dict(self) -> dict[str, Any]:
        """Lossless JSON-able form (histograms serialized), for xdist and result files."""
        return {
            "name": self.name,
            "runtime_seconds": self.runtime,
            "units": {m: self.unit(m) for m in self.metrics()},
            "series": [
                {"metric": m, "tag": t, "histogram": h.to_dict()} for m, t, h in self.series()
            ],
            "errors": self.errors,
            "flags": sorted(self.flags),
            "tables": list(self.tables),
            "timeline": self.timeline.to_dict(lambda m: self.unit(m) == SECONDS),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceTracker:
        """Rebuild a tracker from :meth:`to_dict`; ``ValueError`` when malformed."""
        tracker = cls(data.get("name"))
        try:
            for metric, unit in dict(data.get("units", {})).items():
                tracker.set_unit(str(metric), str(unit))
            for entry in data["series"]:
                hist = Histogram.from_dict(entry["histogram"])
                key = (str(entry["metric"]), entry["tag"])
                if key[1] is not None and not isinstance(key[1], str):
                    raise TypeError(f"tag {key[1]!r} is not a string")
                tracker._series[key] = hist
                tracker._buffers.setdefault(key[0], {})[key[1]] = hist._buf
            tracker._errors.update({str(k): int(v) for k, v in dict(data["errors"]).items()})
            tracker.flags = {str(f) for f in data.get("flags", [])}
            for table in data.get("tables", []):  # checked as add_table checks its arguments
                tracker.add_table(table["title"], table["columns"], table["rows"])
            tracker._runtime = float(data.get("runtime_seconds", 0.0))
            if data.get("timeline") is not None:  # absent from files of earlier versions
                tracker.timeline = Timeline.from_dict(data["timeline"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed tracker data: {exc!r}") from None
        return tracker

    def __repr__(self) -> str:
        return f"PerformanceTracker(name={self.name!r}, metrics={self.metrics()!r})"
