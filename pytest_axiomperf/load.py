"""LoadGenerator: open-loop load at a fixed rate (no coordinated omission), or a closed loop.

Open model (``rate=``): call ``i`` has an absolute intended start time
``t0 + i / rate`` on a monotonic clock (``time.perf_counter_ns``; every wait is
recomputed from that deadline, so the ~1 ms rounding of asyncio timers never
accumulates). The scheduler releases each call at its intended time whatever
the previous calls are doing; when it falls behind, it releases every overdue
call at once. A released call starts at once if fewer than ``max_in_flight``
calls are running, otherwise it is *dropped* (never sent) and counted.

Latency is measured from the intended start (``load_latency``): a server stall
shows in full, including the calls that would have been sent during it. It is
also measured from the actual send (``load_service_time``). A call released
more than ``late_after`` after its intended time is counted *late*: that delay
is the generator's own (busy event loop, busy machine), and the generator's
health (CPU of its event-loop thread, lateness p99) decides the ``saturated``
verdict, so a slow client is not blamed on the server.

Closed model (``concurrency=``): ``N`` workers each call ``fn`` in a loop. Its
latency is measured from each send only, so it hides stalls (coordinated
omission); results are labelled ``model="closed"``.

Priority lanes (:meth:`LoadGenerator.run_lanes`): each lane (``high``,
``normal``, ``low``) has its own open-model arrival rate and a bounded queue;
``workers`` calls run at most, and a free worker always takes the oldest call
of the highest non-empty lane. Latency from the intended start includes the
queue wait, per lane.

Safety: every run is bounded in duration, call count and calls in flight, and
stops by itself (in-flight calls get ``drain`` seconds, then are cancelled).
Targets must be on this machine: a URL given as ``target=``, the ``base_url``
of a client whose bound method is the load function, or an ``http(s)://`` /
``ws(s)://`` argument of a ``functools.partial`` must point to a loopback host
(``localhost``, ``127.0.0.0/8``, ``::1``; names are not resolved) or to the
configured base URL (``--axiom-base-url``), else the run is refused with
:class:`~pytest_axiomperf.errors.LoadError` before anything is sent.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import inspect
import ipaddress
import math
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pytest_axiomperf.budgets import ThroughputBudget, Verdict
from pytest_axiomperf.errors import LoadError
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.redact import safe_url
from pytest_axiomperf.report.text import fmt, load_target
from pytest_axiomperf.stages import Stage, StageResult, arrivals, parse_stages, stage_edges
from pytest_axiomperf.tracker import MetricStats, PerformanceTracker, error_name

if TYPE_CHECKING:
    from pytest_axiomperf.capacity import CapacityResult

#: Latency from the intended start of each call (the open model's honest latency).
LOAD_LATENCY = "load_latency"
#: Latency from the actual send of each call.
LOAD_SERVICE_TIME = "load_service_time"
#: Lane names, highest priority first.
PRIORITIES = ("high", "normal", "low")

#: Error name of calls still running when the drain time ran out (they are cancelled).
UNFINISHED = "Unfinished"
#: Event-loop thread CPU at or above which the generator counts as saturated (percent).
CPU_SATURATED = 90.0

LoadFn = Callable[[], Awaitable[object]]
Progress = Callable[[str | None], None]

_NS = 1_000_000_000
_MAX_RATE = 100_000.0
_MAX_SLOTS = 10_000
_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")
#: ``next_ns`` of a lane whose schedule is exhausted: never due.
_NEVER = 1 << 62


@dataclass(frozen=True)
class Lane:
    """One priority lane of :meth:`LoadGenerator.run_lanes`: its call, rate and queue bound."""

    fn: LoadFn
    rate: float
    queue_size: int = 100


@dataclass(frozen=True)
class LaneResult:
    """What one priority lane did: counts and its latency from the intended start."""

    lane: str
    target_rate: float
    sent: int
    completed: int
    failed: int
    dropped: int
    latency: MetricStats

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins."""
        return {
            "lane": self.lane,
            "target_rate": self.target_rate,
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "dropped": self.dropped,
            "latency": self.latency.to_dict(),
        }


@dataclass(frozen=True)
class GeneratorHealth:
    """The generator's own health during a run, and whether it was the bottleneck."""

    #: CPU time of the event-loop thread over the run's wall time, percent of one core.
    cpu_percent: float
    #: Lateness of released calls behind their intended start (open model; NaN when closed).
    lateness_p50: float
    lateness_p99: float
    lateness_max: float
    saturated: bool
    #: A sentence saying whether the generator kept up, and why not.
    note: str

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (NaN becomes None)."""
        return {
            "cpu_percent": self.cpu_percent,
            "lateness_p50": _none_if_nan(self.lateness_p50),
            "lateness_p99": _none_if_nan(self.lateness_p99),
            "lateness_max": _none_if_nan(self.lateness_max),
            "saturated": self.saturated,
            "note": self.note,
        }


@dataclass(frozen=True)
class LoadResult:
    """The outcome of one load run (see the module docstring for the definitions).

    ``achieved_rate`` is successful calls per second over the measurement window
    (from the end of the warmup to the end of the window, or to the last
    completion when it came later); ``send_rate`` counts every call sent.
    ``latency`` is measured from the intended start (open model) or from the
    send (closed model); ``service_time`` always from the send. Latencies are of
    successful calls; failures are counted by error type in ``errors``.
    """

    name: str
    model: Literal["open", "closed"]
    #: Calls per second asked for (None for the closed model).
    target_rate: float | None
    duration: float
    warmup: float
    #: ``max_in_flight`` (open), ``workers`` (lanes) or ``concurrency`` (closed).
    slots: int
    #: Length of the measurement window actually used for the rates, seconds.
    elapsed: float
    sent: int
    completed: int
    failed: int
    dropped: int
    late: int
    achieved_rate: float
    send_rate: float
    errors: dict[str, int]
    latency: MetricStats
    service_time: MetricStats
    generator: GeneratorHealth
    lanes: dict[str, LaneResult] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: Per stage of a staged run (``stages=``), in order; empty otherwise.
    stages: tuple[StageResult, ...] = ()

    @property
    def saturated(self) -> bool:
        """True when the generator itself was the bottleneck (see ``generator.note``)."""
        return self.generator.saturated

    @property
    def error_rate(self) -> float:
        """Failed calls over finished calls (0.0 when none finished)."""
        finished = self.completed + self.failed
        return self.failed / finished if finished else 0.0

    def summary(self) -> str:
        """One line: model, rates, counts, p50/p99 and the generator's verdict."""
        target = f"target {self.target_rate:g}/s, " if self.target_rate is not None else ""
        if self.stages:
            target = f"{len(self.stages)} stages (mean {self.target_rate:.4g}/s), "
        return (
            f"{self.name} [{self.model}, {self.slots} slots] {target}achieved "
            f"{self.achieved_rate:.1f}/s: {self.completed} ok, {self.failed} failed, "
            f"{self.dropped} dropped, {self.late} late; p50={fmt(self.latency.p50)} "
            f"p99={fmt(self.latency.p99)} ({_latency_origin(self.model)}); {self.generator.note}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins: stored per test in ``TestResult.extra["load"]``."""
        return {
            "name": self.name,
            "model": self.model,
            "target_rate": self.target_rate,
            "duration": self.duration,
            "warmup": self.warmup,
            "slots": self.slots,
            "elapsed": self.elapsed,
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "dropped": self.dropped,
            "late": self.late,
            "achieved_rate": self.achieved_rate,
            "send_rate": self.send_rate,
            "error_rate": self.error_rate,
            "errors": dict(self.errors),
            "latency": self.latency.to_dict(),
            "service_time": self.service_time.to_dict(),
            "generator": self.generator.to_dict(),
            "saturated": self.saturated,
            "lanes": {name: lane.to_dict() for name, lane in self.lanes.items()},
            "notes": list(self.notes),
            "stages": [stage.to_dict() for stage in self.stages],
        }


def _latency_origin(model: str) -> str:
    return "from intended start" if model == "open" else "closed loop, from send"


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


# -- targets: the run must stay on this machine ---------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
    return scheme.replace("ws", "http"), (parts.hostname or "").lower(), port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; other names are never resolved."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(url: str, allowed_base_url: str | None = None) -> None:
    """Refuse (``LoadError``) a target that is neither loopback nor the configured base URL."""
    if not isinstance(url, str):
        raise LoadError(f"target must be a URL string, not {url!r}")
    # scheme://host:port only: never a password, path or query (they may hold a token).
    shown = safe_url(url, path=False)
    try:
        scheme, host, port = _origin(url)
    except ValueError as exc:
        raise LoadError(f"target {shown!r} is not a valid URL: {exc}") from None
    if not host:
        raise LoadError(f"target {shown!r} has no host")
    if is_loopback(host):
        return
    if allowed_base_url and (scheme, host, port) == _origin(allowed_base_url):
        return
    allowed = (
        f" nor the configured base URL {safe_url(allowed_base_url, path=False)}"
        if allowed_base_url
        else ""
    )
    raise LoadError(
        f"load target {shown} is not on this machine (loopback){allowed}: load runs only "
        "against 127.0.0.1/localhost or the URL given with --axiom-base-url"
    )


def targets_of(fn: object) -> Iterator[str]:
    """URLs a load function visibly aims at: a bound client's ``base_url``, partial URL args."""
    seen = 0
    while seen < 10:  # partials of partials: bounded unwrapping
        seen += 1
        if isinstance(fn, functools.partial):
            for value in (*fn.args, *fn.keywords.values()):
                if isinstance(value, str) and value.lower().startswith(_URL_SCHEMES):
                    yield value
            fn = fn.func
            continue
        owner = getattr(fn, "__self__", None)
        base_url = getattr(owner, "base_url", None) if owner is not None else None
        if isinstance(base_url, str):
            yield base_url
        return


# -- progress --------------------------------------------------------------------------


def terminal_progress(stream: Any = None) -> Progress | None:
    """A live one-line progress writer for ``stream`` (stderr) when it is a TTY outside CI."""
    out = sys.stderr if stream is None else stream
    if os.environ.get("CI") or not getattr(out, "isatty", lambda: False)():
        return None

    def show(line: str | None) -> None:
        out.write("\r\x1b[K" + (line or ""))
        out.flush()

    return show


# -- the run's bookkeeping -------------------------------------------------------------


class _Lane:
    """Counters, histograms and the queue of one lane during a run."""

    def __init__(
        self,
        name: str,
        fn: LoadFn,
        rate: float,
        queue_size: int,
        tag: str,
        times: Iterator[int] | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self.rate = rate
        self.queue_size = queue_size
        self.tag = tag
        self.interval_ns = _NS / rate if rate else 0.0
        self.index = 0
        self.next_ns = 0
        self.queue: deque[tuple[int, bool]] = deque()
        self.sent = self.completed = self.failed = self.dropped = 0
        #: Measured calls handed to a task that has not started running yet.
        self.starting = 0
        self.latency = Histogram()
        self.service = Histogram()
        self.errors: Counter[str] = Counter()
        #: Intended offsets (ns from the run's start) when not evenly spaced (stages).
        self.times = times

    def first(self, t0: int) -> None:
        """Schedule the lane's first call on a run starting at `t0`."""
        self.next_ns = t0 if self.times is None else t0 + next(self.times, _NEVER)

    def advance(self, t0: int) -> None:
        """The call due at ``next_ns`` was released: schedule the next one."""
        self.index += 1
        if self.times is None:
            self.next_ns = t0 + round(self.index * self.interval_ns)
        else:
            self.next_ns = t0 + next(self.times, _NEVER)


class _Run:
    """State shared by the scheduler, the calls and the progress task of one run."""

    def __init__(
        self,
        lanes: list[_Lane],
        tracker: PerformanceTracker | None,
        slots: int,
        timeout: float | None,
    ) -> None:
        self.lanes = lanes
        self.tracker = tracker
        self.slots = slots
        self.timeout = timeout
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.lateness = Histogram()
        self.late = 0
        self.window_ns = 0
        self.last_done_ns = 0
        self.last_send_ns = 0
        self.fatal: BaseException | None = None
        self.stopped = False
        #: Report each lane separately (runs made with ``run_lanes``).
        self.per_lane = False
        #: Staged runs: the end of each stage (ns) and the calls completed during each.
        self.edges: list[int] = []
        self.done_by_stage: list[int] = []

    def enter(self, lane: _Lane, measured: bool) -> None:
        """Count a call as in flight before it starts (:meth:`call` counts it out)."""
        self.in_flight += 1
        lane.starting += measured

    def start(self, lane: _Lane, intended_ns: int, measured: bool) -> None:
        self.enter(lane, measured)
        task = asyncio.get_running_loop().create_task(self.call(lane, intended_ns, measured))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def call(self, lane: _Lane, intended_ns: int, measured: bool) -> None:
        """Await one call of the lane's function and account for it."""
        send_ns = time.perf_counter_ns()
        lane.starting -= measured
        error: BaseException | None = None
        try:
            awaitable = lane.fn()
            if not inspect.isawaitable(awaitable):
                self.fatal = LoadError(
                    f"load function {_name_of(lane.fn)!r} returned {type(awaitable).__name__}, "
                    "not an awaitable: give an async function (e.g. `async def call(): ...`)"
                )
                self.stopped = True
                measured = False
                return
            if self.timeout is None:
                await awaitable
            else:
                await asyncio.wait_for(awaitable, self.timeout)
        except Exception as exc:
            error = exc
        except BaseException as exc:  # cancelled at the end of the drain, or interrupted
            error = exc
            raise
        finally:
            done_ns = time.perf_counter_ns()
            self.in_flight -= 1
            if measured:
                self._account(lane, intended_ns, send_ns, done_ns, error)
            if not self.stopped:
                self._pull()

    def _account(
        self, lane: _Lane, intended_ns: int, send_ns: int, done_ns: int, error: BaseException | None
    ) -> None:
        lane.sent += 1
        self.last_send_ns = max(self.last_send_ns, send_ns)
        if error is not None and not isinstance(error, Exception):
            lane.failed += 1
            lane.errors[UNFINISHED] += 1
            return
        self.last_done_ns = max(self.last_done_ns, done_ns)
        if error is not None:
            lane.failed += 1
            lane.errors[error_name(error)] += 1
            if self.tracker is not None:
                self.tracker.record_error(error)
            return
        lane.completed += 1
        if self.edges:
            stage = min(bisect.bisect_right(self.edges, done_ns), len(self.edges) - 1)
            self.done_by_stage[stage] += 1
        latency = (done_ns - intended_ns) / _NS
        service = (done_ns - send_ns) / _NS
        lane.latency.record(latency)
        lane.service.record(service)
        if self.tracker is not None:
            self.tracker.record(LOAD_LATENCY, latency, lane.tag)
            self.tracker.record(LOAD_SERVICE_TIME, service, lane.tag)

    def _pull(self) -> None:
        """A slot is free: start the oldest queued call of the highest non-empty lane."""
        for lane in self.lanes:
            if lane.queue and self.in_flight < self.slots:
                intended_ns, measured = lane.queue.popleft()
                self.start(lane, intended_ns, measured)
                return

    def release(self, lane: _Lane, intended_ns: int, now_ns: int, late_ns: int) -> None:
        """Hand one call to a slot, the lane's queue, or drop it."""
        measured = intended_ns >= self.window_ns
        if measured:
            lateness = now_ns - intended_ns
            self.lateness.record(lateness / _NS)
            if lateness > late_ns:
                self.late += 1
        if self.in_flight < self.slots:
            self.start(lane, intended_ns, measured)
        elif len(lane.queue) < lane.queue_size:
            lane.queue.append((intended_ns, measured))
        elif measured:
            lane.dropped += 1

    def progress_line(self, name: str, elapsed: float, total: float) -> str:
        done = sum(lane.completed for lane in self.lanes)
        failed = sum(lane.failed for lane in self.lanes)
        dropped = sum(lane.dropped for lane in self.lanes)
        return (
            f"axiom-load {name}: {elapsed:5.1f}/{total:g}s ok={done} failed={failed} "
            f"dropped={dropped} in-flight={self.in_flight}"
        )


def _name_of(fn: object) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return str(getattr(fn, "__name__", None) or type(fn).__name__)


def _stats(hist: Histogram, metric: str, tag: str) -> MetricStats:
    return MetricStats.from_histogram(metric, tag, "s", hist)


def _number(name: str, value: object, *, low: float, high: float, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LoadError(f"{name}={value!r} must be a finite number")
    if value > high or value < low or (value == low and not zero_ok):
        bound = f">= {low:g}" if zero_ok else f"> {low:g}"
        raise LoadError(f"{name}={value!r} must be {bound} and <= {high:g}")
    return float(value)


def _count(name: str, value: object, *, high: int, zero_ok: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LoadError(f"{name}={value!r} must be an integer")
    if value > high or value < 0 or (value == 0 and not zero_ok):
        raise LoadError(f"{name}={value!r} must be {'>= 0' if zero_ok else '>= 1'} and <= {high}")
    return value


class LoadGenerator:
    """Runs load against an async callable and reports what really happened.

    ``tracker`` receives every successful call's latency as ``load_latency``
    (from the intended start) and ``load_service_time`` (from the send), tagged
    with the run's name (``name/lane`` for lanes), and every error by type. A
    call that goes through an instrumented client (``axiom_client``) is also
    recorded by that client as ``api_response_times``. ``allowed_base_url`` is
    the one non-loopback origin runs may target. ``progress`` receives a status
    line every second and ``None`` at the end (default: a live line on stderr
    when it is a TTY and ``$CI`` is unset). ``on_result`` is called with each
    run's result, ``on_capacity`` with each :meth:`find_capacity` result.
    ``max_duration`` (seconds, warmup included) and ``max_calls`` bound every run.
    """

    def __init__(
        self,
        tracker: PerformanceTracker | None = None,
        *,
        allowed_base_url: str | None = None,
        progress: Progress | Literal["auto"] | None = "auto",
        on_result: Callable[[LoadResult], None] | None = None,
        on_capacity: Callable[[CapacityResult], None] | None = None,
        max_duration: float = 600.0,
        max_calls: int = 1_000_000,
    ) -> None:
        self.tracker = tracker
        self.allowed_base_url = allowed_base_url
        self.progress: Progress | None = terminal_progress() if progress == "auto" else progress
        self.on_result = on_result
        self.on_capacity = on_capacity
        self.max_duration = _number("max_duration", max_duration, low=0.0, high=86_400.0)
        self.max_calls = _count("max_calls", max_calls, high=100_000_000)
        #: Every run's result, in order (the steps of a capacity search are not runs).
        self.results: list[LoadResult] = []
        #: Every capacity search's result, in order.
        self.capacities: list[CapacityResult] = []
        self._names: Counter[str] = Counter()

    # -- public entry points -----------------------------------------------------------

    async def run(
        self,
        fn: LoadFn,
        *,
        rate: float | None = None,
        concurrency: int | None = None,
        duration: float | None = None,
        stages: Sequence[tuple[float, float]] | None = None,
        max_in_flight: int = 1000,
        warmup: float = 0.0,
        timeout: float | None = None,
        drain: float = 10.0,
        late_after: float = 0.005,
        target: str | None = None,
        name: str | None = None,
    ) -> LoadResult:
        """Call ``fn()`` (an async callable, one bot operation) under load for ``duration`` s.

        Give ``rate`` (calls per second, open model: scheduled on absolute
        times, latency from the intended start, calls dropped beyond
        ``max_in_flight``) or ``concurrency`` (closed model: that many workers
        each calling in a loop). ``warmup`` seconds of the same load run first,
        unrecorded. ``timeout`` bounds each call (a timeout is a failure);
        ``drain`` bounds the wait for calls still running at the end (they are
        then cancelled and counted failed as ``Unfinished``). ``late_after``:
        a call released later than this behind its intended time counts as
        late. ``target``: the URL ``fn`` talks to, checked to be on this
        machine. ``name`` tags the metrics (default: the function's name).

        ``stages=[(seconds, rate), ...]`` instead of ``duration``: the open model
        with an arrival rate ramping linearly from the previous stage's rate (the
        first: from ``rate``, default 0) to each stage's; ``warmup`` then runs at
        that start rate. ``result.stages`` has each stage's results.
        """
        if stages is not None:
            if concurrency is not None or duration is not None:
                raise LoadError(
                    "stages= sets the open model's schedule and its length: give it without "
                    "concurrency= or duration= (rate= is the rate the first stage starts from)"
                )
        elif (rate is None) == (concurrency is None):
            raise LoadError(
                "give exactly one of rate= (open model) or concurrency= (closed model), or stages="
            )
        elif duration is None:
            raise LoadError("duration= (seconds) is required, or give stages=")
        self._check_fn(fn, "fn")
        self._check_targets([fn], target)
        if stages is not None:
            return await self._staged(
                fn, stages, rate, warmup, max_in_flight, timeout, drain, late_after, name
            )
        assert duration is not None
        duration, warmup = self._window(duration, warmup)
        timeout_s = None if timeout is None else _number("timeout", timeout, low=0.0, high=3600.0)
        drain = _number("drain", drain, low=0.0, high=3600.0, zero_ok=True)
        run_name = self._unique(name or _name_of(fn))
        if concurrency is not None:
            slots = _count("concurrency", concurrency, high=_MAX_SLOTS)
            lane = _Lane("closed", fn, 0.0, 0, run_name)
            return self._publish(
                await self._closed(run_name, lane, slots, duration, warmup, timeout_s, drain)
            )
        rate = _number("rate", rate, low=0.0, high=_MAX_RATE)
        self._check_count(rate, duration, warmup)
        slots = _count("max_in_flight", max_in_flight, high=_MAX_SLOTS)
        late = _number("late_after", late_after, low=0.0, high=60.0)
        lane = _Lane("normal", fn, rate, 0, run_name)
        return self._publish(
            await self._open(run_name, [lane], slots, duration, warmup, timeout_s, drain, late)
        )

    async def _staged(
        self,
        fn: LoadFn,
        stages: object,
        start_rate: float | None,
        warmup: float,
        max_in_flight: int,
        timeout: float | None,
        drain: float,
        late_after: float,
        name: str | None,
    ) -> LoadResult:
        """``run(stages=...)``: one lane per stage, each on its own ramp of intended times."""
        start = 0.0
        if start_rate is not None:
            start = _number("rate", start_rate, low=0.0, high=_MAX_RATE, zero_ok=True)
        plan = parse_stages(stages, start, max_rate=_MAX_RATE, max_duration=self.max_duration)
        duration, warmup = self._window(sum(stage.seconds for stage in plan), warmup)
        calls = sum(stage.calls for stage in plan) + start * warmup
        if calls > self.max_calls:
            raise LoadError(
                f"stages ask for {calls:.0f} calls, more than max_calls={self.max_calls}"
            )
        slots = _count("max_in_flight", max_in_flight, high=_MAX_SLOTS)
        timeout_s = None if timeout is None else _number("timeout", timeout, low=0.0, high=3600.0)
        drain = _number("drain", drain, low=0.0, high=3600.0, zero_ok=True)
        late = _number("late_after", late_after, low=0.0, high=60.0)
        run_name = self._unique(name or _name_of(fn))
        warm_ns = round(warmup * _NS)
        lanes = []
        if warm_ns and start > 0:
            count = math.ceil(warmup * start - 1e-9)
            ticks = (round(i * _NS / start) for i in range(count))
            lanes.append(_Lane("warmup", fn, start, 0, run_name, ticks))
        for index, stage in enumerate(plan):
            times = (warm_ns + t for t in arrivals(plan, index))
            lanes.append(
                _Lane(f"stage {index}", fn, stage.calls / stage.seconds, 0, run_name, times)
            )
        return self._publish(
            await self._open(
                run_name, lanes, slots, duration, warmup, timeout_s, drain, late, stages=plan
            )
        )

    async def run_lanes(
        self,
        lanes: Mapping[str, Lane | tuple[LoadFn, float]],
        *,
        duration: float,
        workers: int = 10,
        warmup: float = 0.0,
        timeout: float | None = None,
        drain: float = 10.0,
        late_after: float = 0.005,
        target: str | None = None,
        name: str = "lanes",
    ) -> LoadResult:
        """Open-model load in priority lanes: ``{"high": (fn, rate), "low": Lane(fn2, rate2)}``.

        Lane names are ``high``, ``normal`` and ``low``; each has its own rate
        and a bounded queue (``Lane.queue_size``, default 100; beyond it calls
        are dropped). At most ``workers`` calls run; a free worker takes the
        oldest queued call of the highest non-empty lane. Latency per lane is in
        ``result.lanes[lane].latency`` and tagged ``name/lane`` in the tracker.
        Other arguments as in :meth:`run`.
        """
        if not isinstance(lanes, Mapping) or not lanes:
            raise LoadError("lanes must be a non-empty mapping such as {'high': (fn, rate)}")
        unknown = sorted(set(lanes) - set(PRIORITIES))
        if unknown:
            raise LoadError(
                f"unknown lane(s) {', '.join(map(repr, unknown))}: "
                f"lanes are {', '.join(PRIORITIES)}"
            )
        duration, warmup = self._window(duration, warmup)
        run_name = self._unique(name)
        states = []
        total_rate = 0.0
        for lane_name in PRIORITIES:
            if lane_name not in lanes:
                continue
            spec = lanes[lane_name]
            if not isinstance(spec, Lane):
                if not isinstance(spec, tuple) or len(spec) != 2:
                    raise LoadError(f"lane {lane_name!r}: give (fn, rate) or Lane(fn, rate)")
                spec = Lane(*spec)
            self._check_fn(spec.fn, f"lane {lane_name!r}")
            rate = _number(f"lane {lane_name!r} rate", spec.rate, low=0.0, high=_MAX_RATE)
            queue = _count(f"lane {lane_name!r} queue_size", spec.queue_size, high=1_000_000)
            total_rate += rate
            states.append(_Lane(lane_name, spec.fn, rate, queue, f"{run_name}/{lane_name}"))
        self._check_targets([s.fn for s in states], target)
        self._check_count(total_rate, duration, warmup)
        slots = _count("workers", workers, high=_MAX_SLOTS)
        timeout_s = None if timeout is None else _number("timeout", timeout, low=0.0, high=3600.0)
        drain = _number("drain", drain, low=0.0, high=3600.0, zero_ok=True)
        late = _number("late_after", late_after, low=0.0, high=60.0)
        return self._publish(
            await self._open(
                run_name, states, slots, duration, warmup, timeout_s, drain, late, per_lane=True
            )
        )

    async def find_capacity(
        self,
        fn: LoadFn,
        *,
        start: float,
        max_rate: float,
        step: float | None = None,
        factor: float | None = None,
        hold: float = 2.0,
        p50: float | str | None = None,
        p95: float | str | None = None,
        p99: float | str | None = None,
        max_error_rate: float = 0.01,
        max_dropped: int = 0,
        min_achieved: float = 0.9,
        max_in_flight: int = 1000,
        max_steps: int = 20,
        time_limit: float = 120.0,
        refine: int = 0,
        timeout: float | None = None,
        drain: float | None = None,
        late_after: float = 0.005,
        target: str | None = None,
        name: str | None = None,
    ) -> CapacityResult:
        """Step the open-model rate from ``start`` (adding ``step`` or multiplying by
        ``factor``) up to ``max_rate``, ``hold`` seconds per step, until a step breaks
        the budget; return the highest rate that held and the whole curve.

        A step holds when its latency from the intended start meets ``p50``/``p95``/
        ``p99`` (seconds or text such as ``"100ms"``), its error rate is at most
        ``max_error_rate``, it dropped at most ``max_dropped`` calls (beyond
        ``max_in_flight``), and it achieved at least ``min_achieved`` of the rate.
        After a step breaks, ``refine`` more steps halve the gap between the last
        rate that held and the rate that broke (the curve is kept by rate).
        At most ``max_steps`` steps in all; no step starts that could end after
        ``time_limit`` seconds. Each step waits at most ``drain`` seconds (default:
        ``hold``) for its calls still running. Steps are not recorded in the
        tracker nor in ``results``: the curve is in the result (and the report).
        """
        from pytest_axiomperf.capacity import CapacityBudget, Completions, rates, search

        self._check_fn(fn, "fn")
        self._check_targets([fn], target)
        plan = rates(start, max_rate, step, factor)
        hold = _number("hold", hold, low=0.0, high=self.max_duration)
        self._check_count(plan[-1], hold, 0.0)
        steps = _count("max_steps", max_steps, high=1000)
        halvings = _count("refine", refine, high=50, zero_ok=True)
        limit = _number("time_limit", time_limit, low=0.0, high=86_400.0)
        if limit < hold:
            raise LoadError(f"time_limit={limit:g}s is shorter than one step (hold={hold:g}s)")
        budget = CapacityBudget.build(
            p50=p50,
            p95=p95,
            p99=p99,
            max_error_rate=max_error_rate,
            max_dropped=max_dropped,
            min_achieved=min_achieved,
        )
        slots = _count("max_in_flight", max_in_flight, high=_MAX_SLOTS)
        timeout_s = None if timeout is None else _number("timeout", timeout, low=0.0, high=3600.0)
        drain_s = (
            hold if drain is None else _number("drain", drain, low=0.0, high=3600.0, zero_ok=True)
        )
        late = _number("late_after", late_after, low=0.0, high=60.0)
        run_name = self._unique(name or _name_of(fn))

        async def run_step(
            rate: float, seconds: float, drain_for: float
        ) -> tuple[LoadResult, float]:
            done = Completions()
            lane = _Lane("normal", done.wrap(fn), rate, 0, f"{run_name}@{rate:g}/s")
            result = await self._open(
                lane.tag, [lane], slots, seconds, 0.0, timeout_s, drain_for, late, record=False
            )
            return result, done.rate(seconds)

        result = await search(
            run_name,
            plan,
            budget,
            hold=hold,
            drain=drain_s,
            max_steps=steps,
            time_limit=limit,
            run_step=run_step,
            refine=halvings,
        )
        self.capacities.append(result)
        if self.on_capacity is not None:
            self.on_capacity(result)
        return result

    # -- validation ----------------------------------------------------------------------

    @staticmethod
    def _check_fn(fn: object, what: str) -> None:
        if not callable(fn):
            raise LoadError(f"{what} must be an async callable taking no arguments, not {fn!r}")
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have no signature: call and see
            return
        try:
            signature.bind()
        except TypeError as exc:
            raise LoadError(
                f"{what} {_name_of(fn)!r} must take no arguments ({exc}); bind them first, "
                "e.g. functools.partial(fn, ...) or lambda: fn(...)"
            ) from None

    def _check_targets(self, fns: Sequence[object], target: str | None) -> None:
        urls = [] if target is None else [target]
        for fn in fns:
            urls.extend(targets_of(fn))
        for url in urls:
            check_target(url, self.allowed_base_url)

    def _window(self, duration: float, warmup: float) -> tuple[float, float]:
        duration = _number("duration", duration, low=0.0, high=self.max_duration)
        warmup = _number("warmup", warmup, low=0.0, high=self.max_duration, zero_ok=True)
        if duration + warmup > self.max_duration:
            raise LoadError(
                f"duration + warmup = {duration + warmup:g}s exceeds max_duration "
                f"{self.max_duration:g}s"
            )
        return duration, warmup

    def _check_count(self, rate: float, duration: float, warmup: float) -> None:
        calls = rate * (duration + warmup)
        if calls > self.max_calls:
            raise LoadError(
                f"{rate:g} calls/s for {duration + warmup:g}s is {calls:.0f} calls, more than "
                f"max_calls={self.max_calls}"
            )

    def _unique(self, name: str) -> str:
        self._names[name] += 1
        return name if self._names[name] == 1 else f"{name}#{self._names[name]}"

    # -- the two models ------------------------------------------------------------------

    async def _open(
        self,
        name: str,
        lanes: list[_Lane],
        slots: int,
        duration: float,
        warmup: float,
        timeout: float | None,
        drain: float,
        late_after: float,
        *,
        per_lane: bool = False,
        stages: tuple[Stage, ...] = (),
        record: bool = True,
    ) -> LoadResult:
        run = _Run(lanes, self.tracker if record else None, slots, timeout)
        run.per_lane = per_lane
        late_ns = int(late_after * _NS)
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        t0 = time.perf_counter_ns()
        run.window_ns = t0 + int(warmup * _NS)
        end_ns = run.window_ns + int(duration * _NS)
        if stages:
            run.edges = stage_edges(stages, run.window_ns)
            run.done_by_stage = [0] * len(stages)
        for lane in lanes:
            lane.first(t0)
        ticker = self._start_progress(run, name, duration + warmup)
        try:
            while not run.stopped:
                due = [lane for lane in lanes if lane.next_ns < end_ns]
                if not due:
                    break
                first = min(lane.next_ns for lane in due)
                now = time.perf_counter_ns()
                if first > now:
                    await asyncio.sleep((first - now) / _NS)
                    now = time.perf_counter_ns()
                # Release every call due by now, oldest first (ties: higher priority first).
                while True:
                    ready = [
                        lane for lane in lanes if lane.next_ns <= now and lane.next_ns < end_ns
                    ]
                    if not ready or run.stopped:
                        break
                    lane = min(ready, key=lambda la: la.next_ns)
                    intended = lane.next_ns
                    lane.advance(t0)
                    run.release(lane, intended, now, late_ns)
            await self._drain(run, drain)
        finally:
            await self._stop(run, ticker)
        if run.fatal is not None:
            raise run.fatal
        return self._finish(
            name, "open", run, duration, warmup, end_ns, cpu0, wall0, late_after, stages=stages
        )

    async def _closed(
        self,
        name: str,
        lane: _Lane,
        slots: int,
        duration: float,
        warmup: float,
        timeout: float | None,
        drain: float,
    ) -> LoadResult:
        run = _Run([lane], self.tracker, slots, timeout)
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        t0 = time.perf_counter_ns()
        run.window_ns = t0 + int(warmup * _NS)
        end_ns = run.window_ns + int(duration * _NS)
        budget = [self.max_calls]

        async def worker() -> None:
            while not run.stopped and budget[0] > 0:
                now = time.perf_counter_ns()
                if now >= end_ns:
                    return
                budget[0] -= 1
                measured = now >= run.window_ns
                run.enter(lane, measured)
                await run.call(lane, now, measured)

        ticker = self._start_progress(run, name, duration + warmup)
        loop = asyncio.get_running_loop()
        for _ in range(slots):
            task = loop.create_task(worker())
            run.tasks.add(task)
            task.add_done_callback(run.tasks.discard)
        try:
            await self._drain(run, drain, until_ns=end_ns)
        finally:
            await self._stop(run, ticker)
        if run.fatal is not None:
            raise run.fatal
        notes: tuple[str, ...] = ()
        if budget[0] <= 0:
            notes = (f"stopped early: reached max_calls={self.max_calls}",)
        return self._finish(name, "closed", run, duration, warmup, end_ns, cpu0, wall0, 0.0, notes)

    async def _drain(self, run: _Run, drain: float, until_ns: int | None = None) -> None:
        """Wait for running and queued calls (beyond ``until_ns``, at most ``drain`` seconds)."""
        start = time.perf_counter_ns() if until_ns is None else until_ns
        deadline = start + int(drain * _NS)
        while (run.tasks or any(lane.queue for lane in run.lanes)) and not run.stopped:
            remaining = (deadline - time.perf_counter_ns()) / _NS
            if remaining <= 0:
                break
            running = {task for task in run.tasks if not task.done()}
            if not running:
                break
            await asyncio.wait(running, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)

    async def _stop(self, run: _Run, ticker: asyncio.Task[None] | None) -> None:
        """Cancel what still runs (counted ``Unfinished``); queued calls are dropped."""
        run.stopped = True
        for lane in run.lanes:
            lane.dropped += sum(1 for _, measured in lane.queue if measured)
            lane.queue.clear()
        pending = [t for t in run.tasks if not t.done()]
        for task in pending:
            task.cancel()
        if ticker is not None:
            ticker.cancel()
            pending.append(ticker)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for lane in run.lanes:
            # A task cancelled before its first step never ran the call: it was not sent.
            lane.dropped += lane.starting
            lane.starting = 0
        if ticker is not None and self.progress is not None:
            self.progress(None)

    def _start_progress(self, run: _Run, name: str, total: float) -> asyncio.Task[None] | None:
        show = self.progress
        if show is None:
            return None
        started = time.perf_counter()

        async def tick() -> None:
            while True:
                await asyncio.sleep(1.0)
                show(run.progress_line(name, time.perf_counter() - started, total))

        return asyncio.get_running_loop().create_task(tick())

    # -- results -------------------------------------------------------------------------

    def _finish(
        self,
        name: str,
        model: Literal["open", "closed"],
        run: _Run,
        duration: float,
        warmup: float,
        end_ns: int,
        cpu0: float,
        wall0: float,
        late_after: float,
        notes: tuple[str, ...] = (),
        stages: tuple[Stage, ...] = (),
    ) -> LoadResult:
        wall = max(time.perf_counter() - wall0, 1e-9)
        cpu = 100.0 * (time.thread_time() - cpu0) / wall
        elapsed = max(duration, (max(run.last_done_ns, end_ns) - run.window_ns) / _NS)
        latency, service, errors = Histogram(), Histogram(), Counter[str]()
        lane_results = {}
        for lane in run.lanes:
            latency.merge(lane.latency)
            service.merge(lane.service)
            errors.update(lane.errors)
            if run.per_lane:
                lane_results[lane.name] = LaneResult(
                    lane.name,
                    lane.rate,
                    lane.sent,
                    lane.completed,
                    lane.failed,
                    lane.dropped,
                    _stats(lane.latency, LOAD_LATENCY, lane.tag),
                )
        sent = sum(lane.sent for lane in run.lanes)
        completed = sum(lane.completed for lane in run.lanes)
        target = sum(lane.rate for lane in run.lanes) if model == "open" else None
        if stages:
            target = sum(stage.calls for stage in stages) / duration
        health = _health(model, cpu, run.lateness, run.late, late_after)
        send_span = max(duration, (run.last_send_ns - run.window_ns) / _NS)
        result = LoadResult(
            name=name,
            model=model,
            target_rate=target,
            duration=duration,
            warmup=warmup,
            slots=run.slots,
            elapsed=elapsed,
            sent=sent,
            completed=completed,
            failed=sum(lane.failed for lane in run.lanes),
            dropped=sum(lane.dropped for lane in run.lanes),
            late=run.late,
            achieved_rate=completed / elapsed,
            send_rate=sent / send_span,
            errors=dict(errors),
            latency=_stats(latency, LOAD_LATENCY, name),
            service_time=_stats(service, LOAD_SERVICE_TIME, name),
            generator=health,
            lanes=lane_results,
            notes=notes,
            stages=_stage_results(run, stages),
        )
        return result

    def _publish(self, result: LoadResult) -> LoadResult:
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)
        return result


def _stage_results(run: _Run, stages: tuple[Stage, ...]) -> tuple[StageResult, ...]:
    """Each stage's counts from its lane (the last ``len(stages)`` lanes of the run)."""
    if not stages:
        return ()
    out = []
    start_ns = run.window_ns
    for index, (stage, lane) in enumerate(zip(stages, run.lanes[-len(stages) :], strict=True)):
        span = stage.seconds
        if index == len(stages) - 1:
            span = max(span, (run.last_done_ns - start_ns) / _NS)
        start_ns = run.edges[index]
        out.append(
            StageResult(
                index=index,
                seconds=stage.seconds,
                start_rate=stage.start_rate,
                rate=stage.rate,
                asked_rate=stage.calls / stage.seconds,
                achieved_rate=run.done_by_stage[index] / span,
                scheduled=lane.index,
                sent=lane.sent,
                completed=lane.completed,
                failed=lane.failed,
                dropped=lane.dropped,
                errors=dict(lane.errors),
                latency=_stats(lane.latency, LOAD_LATENCY, lane.tag),
            )
        )
    return tuple(out)


def _health(
    model: str, cpu: float, lateness: Histogram, late: int, late_after: float
) -> GeneratorHealth:
    pct = lateness.percentiles([50.0, 99.0])
    p50, p99, worst = pct[50.0], pct[99.0], lateness.max
    busy = cpu >= CPU_SATURATED
    # One hiccup (a GC pause, a busy neighbour) is not a bottleneck: more than 5 % of the
    # calls must have been released late.
    behind = model == "open" and lateness.count > 0 and lateness.percentile(95.0) > late_after
    if busy:
        note = (
            f"generator saturated: its event-loop thread was busy {cpu:.0f}% of the run"
            + (f" and released calls {fmt(p99)} late (p99)" if behind else "")
            + "; the rates and latencies describe this client, not the server under test"
        )
    elif behind:
        note = (
            f"generator saturated: {late / lateness.count:.0%} of the calls were released more "
            f"than {fmt(late_after)} behind schedule (p99 {fmt(p99)}) while its event-loop "
            f"thread used {cpu:.0f}% CPU (a busy machine, or code blocking the event loop); "
            "latencies include that delay"
        )
    elif model == "open":
        note = f"generator kept up: {cpu:.0f}% CPU, release lateness p99 {fmt(p99)}"
    else:
        note = f"generator kept up: {cpu:.0f}% CPU"
    return GeneratorHealth(cpu, p50, p99, worst, busy or behind, note)


# -- the throughput budget ---------------------------------------------------------------


def check_throughput(budget: ThroughputBudget, runs: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """Check one ``throughput_budget`` against each of a test's load runs (``to_dict`` form).

    Every run must meet every bound; a test without any load run fails.
    """
    if not runs:
        return [
            Verdict(
                "throughput",
                "load",
                None,
                "min_runs",
                1.0,
                0.0,
                0,
                False,
                "runs",
                "the test made no axiom_load run, so its throughput budget cannot be met",
            )
        ]
    verdicts = []
    for run in runs:
        name = str(run["name"])
        n = int(run["sent"])
        detail = (
            f"{run['model']} model, target {load_target(run)}"
            + f", completed {run['completed']}, failed {run['failed']}, "
            f"dropped {run['dropped']}"
        )
        if run["saturated"]:
            detail += f"; {run['generator']['note']}"
        checks: list[tuple[str, float, float, bool, str]] = []
        if budget.min_rps is not None:
            rps = float(run["achieved_rate"])
            checks.append(("min_rps", budget.min_rps, rps, rps >= budget.min_rps, "req/s"))
        if budget.max_error_rate is not None:
            rate = float(run["error_rate"])
            bound = budget.max_error_rate
            checks.append(("error_rate", bound * 100, rate * 100, rate <= bound, "%"))
        if budget.max_dropped is not None:
            dropped = int(run["dropped"])
            bound_d = budget.max_dropped
            checks.append(("dropped", float(bound_d), float(dropped), dropped <= bound_d, "calls"))
        for statistic, bound_v, observed, passed, unit in checks:
            verdicts.append(
                Verdict(
                    "throughput",
                    "load",
                    name,
                    statistic,
                    bound_v,
                    observed,
                    n,
                    passed,
                    unit,
                    detail,
                )
            )
    return verdicts
