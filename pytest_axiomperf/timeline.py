"""A tracker's metrics over time: bounded windows of latency, and CPU/RSS samples.

A percentile curve hides *when* things happened; a stall or a leak is seen over
time. Each series of a tracker also feeds a :class:`Timeline`: fixed-width windows
on the tracker's clock (seconds since it was created), each with its samples'
count, max and a coarse histogram, from which the window's p50 and p99 are read
(nearest rank, 16 buckets per power of two: at most 6.25 % above the exact value).

Bounded memory: when a new window would pass :data:`MAX_WINDOWS`, adjacent windows
are merged pairwise and the width doubles (1 s windows become 1024 s ones over a
24 h soak: 85 windows). Resource samples are bounded the same way (pairs
merged: mean CPU, highest RSS); the first, peak and last RSS stay exact.

Cost: nothing on the ``record`` hot path. Samples reach a window when the histogram
folds its raw buffer (every ``BUFFER_SIZE`` samples, on a read, and on
:meth:`PerformanceTracker.tick`, which the plugin's resource sampler calls every
sample interval while a test runs); a batch is filed at the middle of the span since
the previous fold, so a window is as fine as the folds are frequent.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from array import array
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pytest_axiomperf.histogram import COARSE_BITS, percentile_rank

#: Most windows kept per series before pairs are merged.
MAX_WINDOWS = 128
#: Most resource samples kept before pairs are merged.
MAX_SAMPLES = 256
#: Width of a window when the timeline starts, seconds (the plugin's sampler makes it
#: two sample intervals: 1 s by default).
START_WIDTH = 0.5
FORMAT = "axiomperf-timeline-1"

_f32 = struct.Struct("<f")
_u32 = struct.Struct("<I")


def _coarse_upper(key: int) -> float:
    """Upper edge of a coarse bucket (a bucket key with its low ``COARSE_BITS`` clear):
    the first float32 past its last fine bucket."""
    fine = (key + (1 << COARSE_BITS)) << 16
    return float(_f32.unpack(_u32.pack(fine & 0xFFFFFFFF))[0])


class Window(NamedTuple):
    """One window of a series: ``start``/``end`` in seconds on the tracker's clock."""

    start: float
    end: float
    n: int
    p50: float
    p99: float
    max: float


class ResourceSample(NamedTuple):
    """CPU (% of one core) and RSS (MB) at ``t`` seconds on the tracker's clock."""

    t: float
    cpu: float
    rss_mb: float


class _Bin:
    """A window: count, max, coarse bucket counts. The window being filled keeps a dict;
    a closed one packs it into two arrays (6 bytes a bucket instead of ~100)."""

    __slots__ = ("buckets", "count", "keys", "max", "tallies")

    def __init__(self) -> None:
        self.count = 0
        self.max = 0.0
        self.buckets: dict[int, int] | None = {}
        self.keys = array("H")
        self.tallies = array("I")

    def _open(self) -> dict[int, int]:
        if self.buckets is None:
            self.buckets = dict(zip(self.keys, self.tallies, strict=True))
            self.keys, self.tallies = array("H"), array("I")
        return self.buckets

    def pack(self) -> None:
        """Keep the counts in arrays: the window is closed."""
        if self.buckets is not None:
            ordered = sorted(self.buckets.items())
            self.keys = array("H", [k for k, _ in ordered])
            self.tallies = array("I", [c for _, c in ordered])
            self.buckets = None

    def items(self) -> list[tuple[int, int]]:
        if self.buckets is not None:
            return sorted(self.buckets.items())
        return list(zip(self.keys, self.tallies, strict=True))

    def add(self, counts: Mapping[int, int], n: int, top: float) -> None:
        self.count += n
        self.max = max(self.max, top)
        buckets = self._open()
        for key, c in counts.items():
            buckets[key] = buckets.get(key, 0) + c

    def merge(self, other: _Bin) -> None:
        self.add(dict(other.items()), other.count, other.max)

    def percentiles(self, *ps: float) -> list[float]:
        out = []
        ordered = self.items()
        for p in ps:
            rank, seen = percentile_rank(p, self.count), 0
            for key, c in ordered:
                seen += c
                if seen >= rank:
                    out.append(min(_coarse_upper(key), self.max))
                    break
        return out


class Timeline:
    """Bounded time series of a tracker's series and its process's CPU/RSS; see the module."""

    def __init__(self, started_ns: int | None = None) -> None:
        self._t0 = time.perf_counter_ns() if started_ns is None else started_ns
        self._lock = threading.Lock()
        self.width = START_WIDTH
        self._live: dict[tuple[str, str | None], dict[int, _Bin]] = {}
        # Windows read back from a results file: (metric, tag) -> windows; tag None = all tags.
        self._stored: dict[tuple[str, str | None], list[Window]] = {}
        self._samples: list[ResourceSample] = []
        self._rss: dict[str, float] = {}  # first / peak / last RSS, exact
        self._ticked = 0.0  # when every series was last folded

    def _now(self) -> float:
        return (time.perf_counter_ns() - self._t0) / 1e9

    # -- feeding ---------------------------------------------------------------------

    def feeder(
        self, metric: str, tag: str | None
    ) -> Callable[[Mapping[int, int], int, float], None]:
        """The function a histogram calls on each fold: ``(bucket counts, n, batch max)``."""
        key = (metric, tag)
        last = [self._now()]

        def feed(counts: Mapping[int, int], n: int, top: float) -> None:
            # The batch came in since the series' previous fold (or the last tick, which
            # folded it, empty or not): file it at the middle of that span, not at its
            # end (a fold every tick would lag by one tick).
            now = self._now()
            when, last[0] = (max(last[0], self._ticked) + now) / 2, now
            with self._lock:
                index = int(when / self.width)
                while index >= MAX_WINDOWS:
                    self._halve()
                    index //= 2
                bins = self._live.setdefault(key, {})
                found = bins.get(index)
                if found is None:
                    for closed in bins.values():
                        closed.pack()
                    found = bins[index] = _Bin()
                found.add(counts, n, top)

        return feed

    def _halve(self) -> None:
        """Merge adjacent windows pairwise and double the width (lock held)."""
        self.width *= 2
        for key, bins in self._live.items():
            merged: dict[int, _Bin] = {}
            for index in sorted(bins):
                target = merged.get(index // 2)
                if target is None:
                    merged[index // 2] = bins[index]
                else:
                    target.merge(bins[index])
            last = max(merged, default=0)
            for index, found in merged.items():
                if index != last:
                    found.pack()
            self._live[key] = merged

    def ticked(self) -> None:
        """Every series was just folded (:meth:`PerformanceTracker.tick`)."""
        self._ticked = self._now()

    def offer_width(self, seconds: float) -> None:
        """Use windows of ``seconds`` (the rate the tracker is ticked at), while it has
        none yet: finer ticks, finer windows."""
        with self._lock:
            if not self._live and seconds > 0:
                self.width = seconds

    def sample_resources(self, cpu: float, rss_mb: float) -> None:
        """Add one CPU (%) / RSS (MB) sample at the current time."""
        sample = ResourceSample(self._now(), cpu, rss_mb)
        with self._lock:
            rss = self._rss
            rss.setdefault("first", rss_mb)
            rss.setdefault("first_t", sample.t)
            rss["peak"] = max(rss.get("peak", rss_mb), rss_mb)
            rss["last"], rss["last_t"] = rss_mb, sample.t
            self._samples.append(sample)
            if len(self._samples) >= MAX_SAMPLES:
                pairs = zip(self._samples[0::2], self._samples[1::2], strict=False)
                self._samples = [
                    ResourceSample(a.t, (a.cpu + b.cpu) / 2, max(a.rss_mb, b.rss_mb))
                    for a, b in pairs
                ]

    # -- reading ---------------------------------------------------------------------

    def keys(self) -> list[tuple[str, str | None]]:
        """``(metric, tag)`` of every series with windows (tag None: untagged samples)."""
        return sorted({*self._live, *self._stored}, key=lambda k: (k[0], k[1] or ""))

    def windows(self, metric: str, tag: str | None = None) -> list[Window]:
        """The windows of ``metric`` (all tags merged when ``tag`` is None), in time order."""
        if (metric, tag) in self._stored:
            return list(self._stored[(metric, tag)])
        with self._lock:
            width = self.width
            if tag is not None:
                sources = [self._live.get((metric, tag), {})]
            else:
                sources = [bins for (m, _), bins in self._live.items() if m == metric]
            merged: dict[int, _Bin] = {}
            for bins in sources:
                for index, found in bins.items():
                    merged.setdefault(index, _Bin()).merge(found)
        out = []
        for index in sorted(merged):
            found = merged[index]
            p50, p99 = found.percentiles(50.0, 99.0)
            out.append(Window(index * width, (index + 1) * width, found.count, p50, p99, found.max))
        return out

    def resources(self) -> list[ResourceSample]:
        """The CPU/RSS samples, in time order."""
        with self._lock:
            return list(self._samples)

    def rss_summary(self) -> dict[str, float] | None:
        """RSS at the first sample, its peak, growth (last - first, MB) and growth rate
        (MB per hour, over the sampled span; NaN when the span is 0); None without samples."""
        with self._lock:
            rss = dict(self._rss)
        if not rss:
            return None
        span = rss["last_t"] - rss["first_t"]
        growth = rss["last"] - rss["first"]
        return {
            "start_mb": rss["first"],
            "peak_mb": rss["peak"],
            "growth_mb": growth,
            "span_s": span,
            "mb_per_hour": growth / span * 3600 if span > 0 else math.nan,
        }

    # -- (de)serializing -----------------------------------------------------------------

    def to_dict(self, latency: Callable[[str], bool] = lambda _m: True) -> dict[str, Any]:
        """Plain builtins: per series (of metrics ``latency`` accepts) its windows as
        ``[start, count, p50, p99, max]``, per metric the merge of its tags (tag None)."""
        series = []
        metrics = sorted({m for m, _ in self.keys() if latency(m)})
        for metric in metrics:
            tags = [None, *sorted({t for m, t in self.keys() if m == metric and t is not None})]
            for tag in tags:
                rows = [
                    [round(w.start, 6), w.n, w.p50, w.p99, w.max] for w in self.windows(metric, tag)
                ]
                series.append({"metric": metric, "tag": tag, "windows": rows})
        return {
            "format": FORMAT,
            "width": self.width,
            "series": series,
            # Milliseconds, a tenth of a percent, a hundredth of a MB: what a plot shows.
            "resources": [
                [round(s.t, 3), round(s.cpu, 1), round(s.rss_mb, 2)] for s in self.resources()
            ],
            "rss": dict(self._rss),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timeline:
        """Rebuild (read-only windows) from :meth:`to_dict`; ``ValueError`` when malformed."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"not an axiomperf timeline (format {FORMAT!r})")
        timeline = cls()
        try:
            width = float(data["width"])
            timeline.width = width
            for entry in data["series"]:
                tag = entry["tag"]
                timeline._stored[(str(entry["metric"]), None if tag is None else str(tag))] = [
                    Window(float(s), float(s) + width, int(n), float(p50), float(p99), float(mx))
                    for s, n, p50, p99, mx in entry["windows"]
                ]
            timeline._samples = [
                ResourceSample(float(t), float(c), float(r)) for t, c, r in data["resources"]
            ]
            timeline._rss = {str(k): float(v) for k, v in dict(data["rss"]).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed timeline: {exc!r}") from None
        return timeline
