"""A mergeable, bounded-memory histogram of non-negative values (latencies in seconds).

How it works: recorded values are appended to a raw buffer (the hot path is one
``list.append``); when the buffer fills, it is folded into log-linear buckets at
C speed. A bucket key is the top 16 bits of the value as an IEEE 754 float32:
sign, 8 exponent bits and the top 7 mantissa bits. So every power-of-two range
is split into 128 equal buckets, and a bucket is at most 1/128 (0.78 %) as wide
as the values it holds. (Rounding to float32 can move a value up into the next
bucket, never down: bucket edges are exact float32 values.) Memory is bounded
by the number of distinct buckets, a few thousand for any realistic range,
whatever the sample count. Count, min and max are exact; sum and mean are
exact up to float rounding; the variance is summed per batch and combined with
Chan's parallel update.

Percentile definition (nearest rank, conservative): the p-th percentile is the
smallest recorded value ``v`` such that at least ``p`` % of the samples are
``<= v`` (rank ``ceil(p / 100 * n)``). The histogram reports the upper edge of
the bucket that holds that sample, clamped to the exact maximum, so a reported
percentile is never below the exact one and at most 0.78 % above it (values
below 9.2e-41, float32's smallest bucket, read as 0).

Values must be finite, ``>= 0`` and at most :data:`MAX_VALUE` (the largest
float32); -0.0 counts as 0.0, and ints as floats.
"""

from __future__ import annotations

import math
import reprlib
import struct
import sys
import threading
from array import array
from collections import _count_elements  # type: ignore[attr-defined]
from collections.abc import Callable, Iterable, Mapping
from operator import mul
from typing import Any, SupportsFloat

#: Raw samples kept before a fold; bounds the buffer to ~260 KB.
BUFFER_SIZE = 8192
#: Largest relative error of a reported percentile (one bucket's width).
RELATIVE_ERROR = 1 / 128
#: Largest value a histogram takes: the largest float32, since buckets are keyed by
#: float32 bits. Sums and squares of such values stay finite for any realistic count.
MAX_VALUE = 3.4028234663852886e38

_f32 = struct.Struct("<f")
_u32 = struct.Struct("<I")
#: Index of the high 16-bit half of a float32 in an array("H") view of it.
_HIGH = 1 if sys.byteorder == "little" else 0
#: The key of -0.0 (the sign bit alone), which ``value >= 0`` lets through: counted as 0.0.
_NEGATIVE_ZERO = 0x8000
#: Bits of a bucket key a coarse key (for a timeline's windows) leaves out: 16 buckets
#: per power of two instead of 128.
COARSE_BITS = 3
_COARSE_KEY = 0xFFFF & ~((1 << COARSE_BITS) - 1)


def check_value(value: object, what: str = "") -> None:
    """``ValueError`` unless ``0 <= value <= MAX_VALUE`` (so not NaN, not infinite);
    ``TypeError`` for what is not a number."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (int, float, SupportsFloat)):
        raise TypeError(f"cannot record {reprlib.repr(value)}{what}: not a number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not 0.0 <= number <= MAX_VALUE:
        raise ValueError(
            f"cannot record {reprlib.repr(value)}{what}: "
            f"values must be >= 0, finite and <= {MAX_VALUE:.3g}"
        )


def _keys(values: list[float]) -> array[int]:
    """Bucket keys (top 16 bits of each value as a float32), computed at C speed.

    ``struct`` packs the float32s in ~60 % of the time ``array("f", values)`` takes
    (the same IEEE rounding; a value it would refuse, past the float32 range, never
    reaches here: the fold clamps it first).
    """
    return array("H", struct.pack(f"={len(values)}f", *values))[_HIGH::2]


def _key_upper(key: int) -> float:
    """Upper edge of a bucket: the first float32 of the next bucket (exclusive).

    Bucket 0 (0.0 and the tiniest float32 denormals, below 9.2e-41) reads 0.0: a
    metric of zeros has percentiles of 0, not 9.18e-41.
    """
    if not key:
        return 0.0
    return float(_f32.unpack(_u32.pack(((key + 1) << 16) & 0xFFFFFFFF))[0])


#: The key of MAX_VALUE: the last bucket of finite values.
_LAST_KEY = 0x7F7F


def _whole(value: object, name: str) -> int:
    """A stored integer: an int (not a bool, a float or text), >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} {value!r} is not a whole number >= 0")
    return value


def _moment(value: object, name: str) -> float:
    """A stored sum, mean, m2, min or max: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} {value!r} is not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not 0.0 <= number < math.inf:
        raise ValueError(f"{name} {value!r} must be finite and >= 0")
    return number


def percentile_rank(p: float, n: int) -> int:
    """1-based nearest rank of the ``p``-th percentile among ``n`` sorted samples."""
    return max(1, math.ceil(p / 100.0 * n - 1e-9))


class Histogram:
    """Bounded-memory, mergeable, thread-safe histogram; see the module docstring."""

    __slots__ = (
        "_buckets",
        "_buf",
        "_count",
        "_lock",
        "_m2",
        "_max",
        "_mean",
        "_min",
        "_on_fold",
        "_sum",
    )

    def __init__(self) -> None:
        self._buf: list[float] = []
        #: Called on each fold with (coarse bucket counts of the batch, its size, its max):
        #: how a tracker's timeline learns when samples came (see timeline.py).
        self._on_fold: Callable[[dict[int, int], int, float], None] | None = None
        self._buckets: dict[int, int] = {}
        self._lock = threading.Lock()
        self._count = 0
        self._sum = 0.0
        self._mean = 0.0
        self._m2 = 0.0
        self._min = math.inf
        self._max = -math.inf

    def record(self, value: float) -> None:
        """Record one value (``0 <= value <= MAX_VALUE``); ``ValueError`` for a negative,
        NaN or infinite one (see :func:`check_value`)."""
        try:
            if not 0.0 <= value <= 3.4028234663852886e38:  # MAX_VALUE, as a constant: faster
                check_value(value)
        except TypeError:  # not comparable with a float
            check_value(value)
        buf = self._buf
        buf.append(value)
        if len(buf) >= BUFFER_SIZE:
            self._fold()

    def raw_buffer(self) -> tuple[list[float], Callable[[], None]]:
        """For a hot loop that checks its own values: the list :meth:`record` appends
        to, and the function to call once it holds ``BUFFER_SIZE`` values or more.

        Append only values ``0 <= value <= MAX_VALUE`` (larger ones are clamped to
        ``MAX_VALUE``); the list stays this histogram's for
        its life. This skips a method call per value (~0.1 us on CPython 3.11).
        """
        return self._buf, self._fold

    def _fold(self) -> None:
        """Move the raw buffer into the buckets; safe against concurrent ``record``."""
        with self._lock:
            buf = self._buf
            n = len(buf)
            if not n:
                return
            # Take a prefix and delete it: appends racing with us land after it
            # and stay for the next fold (both operations are atomic on a list).
            batch = buf[:n]
            del buf[:n]
            # float(): an int (or numpy) sample counts as its float, so every statistic
            # is a float whatever was recorded.
            high = float(max(batch))
            if high > MAX_VALUE:  # only through raw_buffer(): keep keys and sums finite
                batch = [min(v, MAX_VALUE) for v in batch]
                high = MAX_VALUE
            buckets = self._buckets
            on_fold = self._on_fold
            if on_fold is None:
                _count_elements(buckets, _keys(batch))
                if _NEGATIVE_ZERO in buckets:
                    buckets[0] = buckets.get(0, 0) + buckets.pop(_NEGATIVE_ZERO)
            else:
                # Counted once at C speed; then one pass over the distinct keys (a few
                # hundred, not the batch's thousands) adds them to the buckets and to the
                # batch's coarse counts.
                counts: dict[int, int] = {}
                _count_elements(counts, _keys(batch))
                if _NEGATIVE_ZERO in counts:
                    counts[0] = counts.get(0, 0) + counts.pop(_NEGATIVE_ZERO)
                coarse: dict[int, int] = {}
                for key, c in counts.items():
                    buckets[key] = buckets.get(key, 0) + c
                    key &= _COARSE_KEY
                    coarse[key] = coarse.get(key, 0) + c
                on_fold(coarse, n, high + 0.0)
            total = float(sum(batch))
            mean_b = total / n
            m2_b = max(0.0, float(sum(map(mul, batch, batch))) - total * mean_b)
            count = self._count + n
            delta = mean_b - self._mean
            self._m2 += m2_b + delta * delta * self._count * n / count
            self._mean += delta * n / count
            self._count = count
            self._sum += total
            self._min = min(self._min, float(min(batch)) + 0.0)  # + 0.0: -0.0 reads 0.0
            self._max = max(self._max, high + 0.0)

    # -- reading -----------------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of recorded values."""
        self._fold()
        return self._count

    @property
    def total(self) -> float:
        """Sum of the recorded values."""
        self._fold()
        return self._sum

    @property
    def mean(self) -> float:
        """Exact arithmetic mean (``nan`` when empty)."""
        self._fold()
        return self._mean if self._count else math.nan

    @property
    def min(self) -> float:
        """Exact smallest value (``nan`` when empty)."""
        self._fold()
        return self._min if self._count else math.nan

    @property
    def max(self) -> float:
        """Exact largest value (``nan`` when empty)."""
        self._fold()
        return self._max if self._count else math.nan

    @property
    def std_dev(self) -> float:
        """Population standard deviation (``nan`` when empty)."""
        self._fold()
        return math.sqrt(self._m2 / self._count) if self._count else math.nan

    def percentiles(self, ps: Iterable[float]) -> dict[float, float]:
        """Several percentiles in one pass over the buckets (see module docstring)."""
        self._fold()
        wanted = sorted(set(ps))
        for p in wanted:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"percentile {p!r} is outside 0..100")
        out: dict[float, float] = {}
        n = self._count
        if not n:
            return dict.fromkeys(wanted, math.nan)
        ranks = [(p, percentile_rank(p, n)) for p in wanted]
        i = 0
        seen = 0
        for key in sorted(self._buckets):
            seen += self._buckets[key]
            while i < len(ranks) and ranks[i][1] <= seen:
                out[ranks[i][0]] = min(_key_upper(key), self._max)
                i += 1
            if i == len(ranks):
                break
        return out

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile (nearest rank, bucket upper edge, <= max)."""
        return self.percentiles([p])[p]

    def buckets(self) -> list[tuple[float, int]]:
        """``(upper edge, count)`` per non-empty bucket, ascending: for plots."""
        self._fold()
        return [(min(_key_upper(k), self._max), self._buckets[k]) for k in sorted(self._buckets)]

    # -- combining and (de)serializing --------------------------------------------

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s samples to this histogram, without loss."""
        other._fold()
        self._fold()
        with self._lock:
            n_a, n_b = self._count, other._count
            if not n_b:
                return
            count = n_a + n_b
            delta = other._mean - self._mean
            self._m2 += other._m2 + delta * delta * n_a * n_b / count
            self._mean += delta * n_b / count
            self._count = count
            self._sum += other._sum
            self._min = min(self._min, other._min)
            self._max = max(self._max, other._max)
            buckets = self._buckets
            for key, n in other._buckets.items():
                buckets[key] = buckets.get(key, 0) + n

    def copy(self) -> Histogram:
        """An independent copy."""
        new = Histogram()
        new.merge(self)
        return new

    def to_dict(self) -> dict[str, Any]:
        """Lossless JSON-able form (plain builtins: safe for xdist and baselines)."""
        self._fold()
        keys = sorted(self._buckets)
        return {
            "format": "axiomperf-f32-loglinear-1",
            "count": self._count,
            "sum": self._sum,
            "mean": self._mean if self._count else None,
            "m2": self._m2,
            "min": self._min if self._count else None,
            "max": self._max if self._count else None,
            "buckets": [[k, self._buckets[k]] for k in keys],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        """Rebuild a histogram from :meth:`to_dict`; ``ValueError`` when malformed.

        Every field is checked as :meth:`record` would have made it: bucket keys of
        finite float32 values >= 0, positive counts adding up to ``count``, and finite,
        non-negative moments with ``min <= max <= MAX_VALUE``.
        """
        if not isinstance(data, Mapping) or data.get("format") != "axiomperf-f32-loglinear-1":
            raise ValueError("not an axiomperf histogram (format 'axiomperf-f32-loglinear-1')")
        h = cls()
        try:
            pairs = [
                (_whole(k, "bucket key"), _whole(c, "bucket count")) for k, c in data["buckets"]
            ]
            count = _whole(data["count"], "count")
            if any(k > _LAST_KEY for k, _ in pairs):
                raise ValueError("a bucket key is out of range")
            if any(c <= 0 for _, c in pairs) or sum(c for _, c in pairs) != count:
                raise ValueError("bucket counts do not add up to the count")
            h._buckets = dict(pairs)
            h._count = count
            if count:
                h._sum, h._mean, h._m2, h._min, h._max = (
                    _moment(data[name], name) for name in ("sum", "mean", "m2", "min", "max")
                )
                if not h._min <= h._max <= MAX_VALUE:
                    raise ValueError(f"min {h._min!r} and max {h._max!r} are out of order or range")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed histogram: {exc!r}") from None
        return h

    def __repr__(self) -> str:
        return f"Histogram(count={self.count}, mean={self.mean:.6g}, max={self.max:.6g})"
