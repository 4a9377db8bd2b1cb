"""Python-heap snapshots (tracemalloc) and process RSS (psutil): diffs, budgets, leak slopes.

Frame depth: when this module starts tracemalloc it records ``TRACEMALLOC_FRAMES`` (8)
frames per allocation. One frame is the cheapest (PITFALLS.md: x4-x15 at depth 1, x28-x66
at depth 25) but names only the allocating line, which for a bot's leak is usually inside
``json`` or ``aiohttp``; eight frames reach back from there to the line of your code that
called them (the table shows ``your_bot.py:42 (via json/decoder.py:353)``) at about twice
the cost of one frame (``benchmarks/bench_memory.py`` measures the three depths here).
Pass ``MemorySnapshots(frames=N)`` to choose for your own snapshots. When tracemalloc is
already tracing (you, ``python -X tracemalloc``), it is used as it is, at its depth, and
never stopped by us.

Sizes are in MB of 2**20 bytes, like the ``memory_usage`` metric.
"""

from __future__ import annotations

import fnmatch
import functools
import gc
import importlib
import inspect
import itertools
import os
import statistics
import sysconfig
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from pytest_axiomperf.budgets import MemoryBudget, Verdict
from pytest_axiomperf.errors import AxiomPerfError, BudgetExceeded

#: Bytes in one MB as this plugin reports it.
MB = 2**20

#: Frames per allocation when this module starts tracemalloc (see the module docstring).
TRACEMALLOC_FRAMES = 8

#: What tracing at that depth costs, as benchmarks/bench_memory.py measured it (quoted in
#: the report next to the tests whose latency was measured under tracemalloc).
TRACEMALLOC_COST = "it slowed allocation-heavy code 10x-20x in the plugin's benchmarks"

#: Growing sites listed by :meth:`MemorySnapshots.compare` and budget failures.
TOP_SITES = 10

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

#: Allocations whose most recent frame is in one of these files are not the user's:
#: this plugin's bookkeeping, tracemalloc's own snapshot objects, the import machinery.
_EXCLUDED = (
    os.path.join(_PACKAGE_DIR, "*"),
    tracemalloc.__file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    os.path.join(os.path.dirname(os.path.abspath(importlib.__file__)), "*"),
    "<unknown>",
)


@functools.lru_cache(maxsize=4096)
def _excluded(filename: str) -> bool:
    # What tracemalloc.Filter(False, pattern) does, but once per file instead of once per
    # trace: Snapshot.filter_traces took 2.2 s on a 176,000-trace heap, this 0.6 s.
    return any(fnmatch.fnmatchcase(filename, pattern) for pattern in _EXCLUDED)


_LIBRARY_DIRS = tuple(
    sorted(
        {
            os.path.join(os.path.abspath(path), "")
            for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (path := sysconfig.get_paths().get(key))
        }
        | {os.path.join(_PACKAGE_DIR, "")},
        key=len,
        reverse=True,  # the longest first, so site-packages wins over the lib dir above it
    )
)


@functools.lru_cache(maxsize=4096)
def _is_library(filename: str) -> bool:
    return filename.startswith(_LIBRARY_DIRS) or filename.startswith("<frozen ")


#: (origin file, origin line, allocating file, allocating line)
_Key = tuple[str, int, str, int]


def _lines() -> dict[_Key, tuple[int, int]]:
    """Live (bytes, blocks) per origin and allocating line, filtered.

    The allocating line is the most recent frame; the origin is the most recent frame
    outside the standard library, site-packages and this plugin (the user's line that
    called ``json.loads``), when the traceback is deep enough to reach it.
    """
    snapshot = tracemalloc.take_snapshot()
    deep = snapshot.traceback_limit > 1
    lines: dict[_Key, tuple[int, int]] = {}
    for stat in snapshot.statistics("traceback" if deep else "lineno"):
        site = stat.traceback[-1]  # frames run from the oldest to the most recent
        if _excluded(site.filename):
            continue
        origin = site
        if deep:
            origin = next(
                (f for f in reversed(stat.traceback) if not _is_library(f.filename)), site
            )
        key = (origin.filename, origin.lineno, site.filename, site.lineno)
        size, count = lines.get(key, (0, 0))
        lines[key] = (size + stat.size, count + stat.count)
    return lines


def _location(name: str, lineno: int) -> str:
    """``file:line``: relative to the working directory when under it, to its library
    directory for the standard library and site-packages (``json/decoder.py:353``)."""
    for directory in _LIBRARY_DIRS:
        if name.startswith(directory) and directory != os.path.join(_PACKAGE_DIR, ""):
            return f"{name[len(directory) :]}:{lineno}"
    try:
        relative = os.path.relpath(name)
    except ValueError:  # another drive on Windows
        relative = name
    if not relative.startswith(".."):
        name = relative
    return f"{name}:{lineno}"


@dataclass(frozen=True)
class AllocationSite:
    """One line of code's share of a heap diff (bytes and live blocks, after minus before).

    ``location`` is the line of your code the allocations come from; ``via`` the line
    that allocated the most of them, when that is elsewhere (inside ``json``, say).
    """

    location: str
    size_diff: int
    count_diff: int
    size: int
    count: int
    via: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for the JSON results."""
        return {
            "location": self.location,
            "size_diff": self.size_diff,
            "count_diff": self.count_diff,
            "size": self.size,
            "count": self.count,
            "via": self.via,
        }


@dataclass(frozen=True)
class MemorySnapshot:
    """The Python heap by source line (filtered) and the process RSS, after ``gc.collect()``."""

    label: str
    heap_bytes: int
    rss_bytes: int
    #: Live (bytes, blocks) per (origin file, origin line, allocating file, allocating line).
    lines: dict[tuple[str, int, str, int], tuple[int, int]] = field(repr=False)


def _fmt_size(nbytes: float) -> str:
    """Signed size in the largest fitting unit: ``+10.04 MB``, ``+1.5 KB``, ``+56 B``."""
    if abs(nbytes) >= MB:
        return f"{nbytes / MB:+.2f} MB"
    if abs(nbytes) >= 1024:
        return f"{nbytes / 1024:+.1f} KB"
    return f"{nbytes:+.0f} B"


@dataclass(frozen=True)
class MemoryDiff:
    """Heap and RSS growth between two snapshots; ``top`` lists the biggest growing sites."""

    growth_mb: float
    rss_growth_mb: float
    top: tuple[AllocationSite, ...]
    before: str = "a"
    after: str = "b"

    def table(self) -> str:
        """The growth and the top sites as an aligned text table."""
        lines = [
            f"Python heap {self.growth_mb:+.2f} MB, RSS {self.rss_growth_mb:+.2f} MB "
            f"from {self.before!r} to {self.after!r}"
        ]
        lines.extend(site_table(self.top))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def site_table(sites: tuple[AllocationSite, ...] | list[AllocationSite]) -> list[str]:
    """Lines of a ``size diff | blocks diff | file:line`` table (a note when empty)."""
    if not sites:
        return ["  (no growing allocation site)"]
    lines = [f"  {'size diff':>12}  {'blocks diff':>11}  allocation site"]
    lines.extend(
        f"  {_fmt_size(s.size_diff):>12}  {s.count_diff:>+11d}  {s.location}"
        + (f" (via {s.via})" if s.via else "")
        for s in sites
    )
    return lines


def theil_sen_slope(xs: list[float], ys: list[float]) -> float:
    """Median of the slopes of every pair of points: a line fit that ignores outliers."""
    slopes = [
        (y2 - y1) / (x2 - x1)
        for (x1, y1), (x2, y2) in itertools.combinations(zip(xs, ys, strict=True), 2)
        if x2 != x1
    ]
    if not slopes:
        raise ValueError("a slope needs two points with different x")
    return statistics.median(slopes)


class MemorySnapshots:
    """Python-heap snapshots after ``gc.collect()``: diff them, bound them, fit a leak slope.

    tracemalloc is started on first use when it is not tracing already (at ``frames``
    frames per allocation) and stopped by :meth:`close` only if this object started it.
    The ``axiom_memory`` fixture is one of these, closed at teardown. While it traces,
    Python code runs several times slower: keep latency measurements out of it.

    Async functions: ``await snapshots.agrowth_per_iteration(fn)``; the sync
    :meth:`growth_per_iteration` refuses a function returning an awaitable rather than
    measure coroutine objects that never ran.
    """

    def __init__(self, frames: int = TRACEMALLOC_FRAMES, top: int = TOP_SITES) -> None:
        if frames < 1:
            raise ValueError(f"frames={frames!r} must be >= 1")
        self.frames = frames
        self.top = top
        self._started = False
        self._process = psutil.Process()

    # -- tracing -------------------------------------------------------------------

    @property
    def owns_tracing(self) -> bool:
        """True when this object started tracemalloc (and will stop it on close)."""
        return self._started

    def start(self) -> None:
        """Start tracemalloc unless it is tracing already (then it is left as it is)."""
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
            self._started = True

    def close(self) -> None:
        """Stop tracemalloc if this object started it; someone else's tracing goes on."""
        if self._started:
            self._started = False
            if tracemalloc.is_tracing():
                tracemalloc.stop()

    def __enter__(self) -> MemorySnapshots:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- snapshots -------------------------------------------------------------------

    def take(self, label: str = "") -> MemorySnapshot:
        """``gc.collect()``, then a filtered heap snapshot and the process RSS."""
        self.start()
        gc.collect()
        lines = _lines()
        heap = sum(size for size, _ in lines.values())
        return MemorySnapshot(label, heap, self._process.memory_info().rss, lines)

    def compare(self, a: MemorySnapshot, b: MemorySnapshot) -> MemoryDiff:
        """Growth from ``a`` to ``b`` and the ``top`` sites that grew most (by file:line)."""
        # Per origin line: [size diff, count diff, size, count, largest via diff, via].
        origins: dict[tuple[str, int], list[Any]] = {}
        for key in b.lines.keys() | a.lines.keys():
            size, count = b.lines.get(key, (0, 0))
            old_size, old_count = a.lines.get(key, (0, 0))
            entry = origins.setdefault(key[:2], [0, 0, 0, 0, 0, None])
            entry[0] += size - old_size
            entry[1] += count - old_count
            entry[2] += size
            entry[3] += count
            if size - old_size > entry[4]:
                entry[4], entry[5] = size - old_size, key[2:]
        growing = sorted(
            ((e, origin) for origin, e in origins.items() if e[0] > 0), key=lambda x: -x[0][0]
        )
        top = tuple(
            AllocationSite(
                _location(*origin),
                e[0],
                e[1],
                e[2],
                e[3],
                _location(*e[5]) if e[5] is not None and e[5] != origin else "",
            )
            for e, origin in growing[: self.top]
        )
        return MemoryDiff(
            (b.heap_bytes - a.heap_bytes) / MB,
            (b.rss_bytes - a.rss_bytes) / MB,
            top,
            a.label,
            b.label,
        )

    def assert_growth_below(self, mb: float, a: MemorySnapshot, b: MemorySnapshot) -> MemoryDiff:
        """The diff from ``a`` to ``b``; ``BudgetExceeded`` (an AssertionError) with the
        table of top sites when the heap grew by ``mb`` MB or more."""
        diff = self.compare(a, b)
        if diff.growth_mb >= mb:
            raise BudgetExceeded(
                f"Python heap grew by {diff.growth_mb:.2f} MB, budget {mb:.2f} MB:\n{diff.table()}"
            )
        return diff

    def _heap_bytes(self) -> int:
        gc.collect()
        return sum(size for size, _ in _lines().values())

    # -- leak slope ------------------------------------------------------------------

    @staticmethod
    def _plan(iterations: int, warmup: int, points: int) -> list[int]:
        """Iteration counts after which the heap is measured (first is 0)."""
        if iterations < 2 or warmup < 0 or points < 2:
            raise ValueError(
                f"iterations={iterations!r} must be >= 2, warmup={warmup!r} >= 0, "
                f"points={points!r} >= 2"
            )
        points = min(points, iterations)
        return sorted({round(i * iterations / points) for i in range(points + 1)})

    def growth_per_iteration(
        self,
        fn: Callable[[], object],
        *,
        iterations: int = 1000,
        warmup: int = 100,
        points: int = 10,
    ) -> float:
        """Heap bytes kept per call of ``fn`` in steady state (~0 for leak-free code).

        ``fn`` runs ``warmup`` times unmeasured (caches fill, pools grow), then
        ``iterations`` times with the heap measured after ``gc.collect()`` at ``points``
        evenly spaced moments; the result is the Theil-Sen slope of heap size over
        iterations, which one allocator hiccup or one late cache cannot swing.
        Async ``fn``: use ``await agrowth_per_iteration(fn)``.
        """
        plan = self._plan(iterations, warmup, points)
        self.start()
        for _ in range(warmup):
            self._check_sync(fn())
        done, xs, ys = 0, [], []
        for target in plan:
            for _ in range(target - done):
                self._check_sync(fn())
            done = target
            xs.append(float(done))
            ys.append(float(self._heap_bytes()))
        return theil_sen_slope(xs, ys)

    async def agrowth_per_iteration(
        self,
        fn: Callable[[], Awaitable[object]],
        *,
        iterations: int = 1000,
        warmup: int = 100,
        points: int = 10,
    ) -> float:
        """:meth:`growth_per_iteration` for an async ``fn``, awaited in the running loop."""
        plan = self._plan(iterations, warmup, points)
        self.start()
        for _ in range(warmup):
            await fn()
        done, xs, ys = 0, [], []
        for target in plan:
            for _ in range(target - done):
                await fn()
            done = target
            xs.append(float(done))
            ys.append(float(self._heap_bytes()))
        return theil_sen_slope(xs, ys)

    @staticmethod
    def _check_sync(result: object) -> None:
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if callable(close):
                close()  # no "coroutine was never awaited" warning on top of our error
            raise AxiomPerfError(
                "growth_per_iteration(fn): fn returned an awaitable, so nothing ran; "
                "for an async fn use `await axiom_memory.agrowth_per_iteration(fn)`"
            )


# -- the test body under a memory budget ---------------------------------------------


@dataclass(frozen=True)
class BodyMemory:
    """What one test body did to the Python heap."""

    growth_mb: float
    peak_mb: float
    rss_growth_mb: float
    top: tuple[AllocationSite, ...]
    #: False when tracemalloc was tracing before the body (someone else's tracing).
    started_tracing: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins for ``TestResult.extra["memory"]``."""
        return {
            "growth_mb": self.growth_mb,
            "peak_mb": self.peak_mb,
            "rss_growth_mb": self.rss_growth_mb,
            "top": [s.to_dict() for s in self.top],
            "started_tracing": self.started_tracing,
        }


class BodyWatch:
    """Measures one test body: :meth:`start` just before it, :meth:`stop` just after.

    Growth is the filtered heap after ``gc.collect()`` minus the heap before; peak is
    tracemalloc's peak during the body (reset at the start) above the level at the start.
    """

    def __init__(self, frames: int = TRACEMALLOC_FRAMES) -> None:
        self._snapshots = MemorySnapshots(frames)
        self._before: MemorySnapshot | None = None
        self._base = 0

    def start(self) -> None:
        """Trace (unless already tracing), snapshot, reset the peak."""
        self._before = self._snapshots.take("body start")
        self._base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()

    def stop(self) -> BodyMemory | None:
        """Peak, snapshot, diff; stops tracemalloc if it started it. None when the body
        stopped tracemalloc itself (nothing to compare)."""
        try:
            if self._before is None or not tracemalloc.is_tracing():
                return None
            # Read the peak before our own snapshot can raise it.
            peak = tracemalloc.get_traced_memory()[1]
            after = self._snapshots.take("body end")
            diff = self._snapshots.compare(self._before, after)
            return BodyMemory(
                diff.growth_mb,
                max(0, peak - self._base) / MB,
                diff.rss_growth_mb,
                diff.top,
                self._snapshots.owns_tracing,
            )
        finally:
            self._before = None
            self._snapshots.close()


def _largest(body: BodyMemory) -> str:
    if not body.top:
        return "no growing allocation site"
    site = body.top[0]
    via = f" (via {site.via})" if site.via else ""
    return f"largest: {site.location}{via} {_fmt_size(site.size_diff)}"


def check_memory(budget: MemoryBudget, body: BodyMemory) -> list[Verdict]:
    """One verdict per bound of a ``memory_budget`` against a measured body."""
    verdicts = []
    for statistic, bound, observed in (
        ("growth", budget.growth_mb, body.growth_mb),
        ("peak", budget.peak_mb, body.peak_mb),
    ):
        if bound is None:
            continue
        verdicts.append(
            Verdict(
                "memory",
                "python_heap",
                None,
                statistic,
                bound,
                observed,
                1,
                observed <= bound,
                "MB",
                _largest(body) if statistic == "growth" and observed > bound else "",
            )
        )
    return verdicts
