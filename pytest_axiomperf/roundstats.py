"""Rounds: per-round summaries and the exact tests the gate applies to them.

Samples within one run share that run's machine state (CPU contention, clock
frequency, the exchange process's scheduling), so two runs' samples are not two
independent samples of the code's speed: a test on them answers "did these two
runs differ", which under drift is almost always yes. A *round* is one
measurement of a test (one pass over the suite); its summary (count, mean, p50,
p95, p99 per metric and route) is one observation. The gate compares rounds.

Each side's rounds are read two ways, because a machine disturbs rounds in two ways
(both measured on real runs, ``benchmarks/RESULTS.md``):

- **the typical round** (drift: the machine as a whole gets slower or faster over a
  run, so rounds measured together are alike). Paired rounds (``axiomperf ab``:
  base and head measured alternately, round i of each side close together in time):
  the median of the pairs' log ratios, tested by the Wilcoxon signed-rank test,
  exact (all 2^n sign assignments, counted by dynamic programming over the doubled
  ranks). Unpaired rounds (a committed baseline saved with ``--axiom-perf-rounds``):
  the ratio of the sides' round medians, tested by the Mann-Whitney U test, exact
  for small counts, normal approximation beyond :data:`EXACT_LIMIT` rounds.
- **the faster half** (bursts: a neighbour's burst slows one whole round at once; a
  58 us decision path measured 82-103 us in about one round in five, on a quiet
  and on a busy 2-core machine alike, and no round ran faster than its code).
  Noise of that kind is one-sided, so each side's statistic is the mean log value
  of its faster half of rounds: a change in the code moves every round, the faster
  half included; the bursts land in the slower half and are left out. A pair whose
  base round a burst slowed by more than the change counts against the change in
  a rank test of pair ratios, with one of the largest ranks; here, swapping it
  leaves both faster halves as they were, so it weighs neither way (a tie: k such
  pairs of n make the smallest p 2^k / 2^n). Its significance is a permutation
  test: under "no change" each pair's two values could have come from either
  side, so each of the 2^n swaps of pairs is as likely
  (:func:`paired_permutation`). The p-value is the share of swaps whose statistic
  is at least the observed one: exact up to :data:`EXACT_PERMUTATIONS` of them,
  else that many drawn with a fixed seed. **Paired rounds only**: the rounds of
  a committed baseline and of this run come from two processes at two times, and
  their faster halves differ with those two moments of the machine (a test on
  them answers "did these two runs differ" again); measured on real runs, it
  doubled the false alarms of committed baselines.

The tests are exact for the few observations rounds give, so their smallest possible
p-value is known in advance (:func:`min_p_paired`, :func:`min_p_unpaired`): with
too few rounds to ever reach the level, the comparison says so instead of
pretending to test.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.tracker import PerformanceTracker

#: A round with fewer samples of a metric than this gives no p95 worth comparing.
MIN_ROUND_SAMPLES = 5
#: Above this many rounds a side, the unpaired rank test uses the normal approximation.
EXACT_LIMIT = 25
#: Permutation tests enumerate at most this many swaps or splits; beyond, they draw this
#: many with a fixed seed.
EXACT_PERMUTATIONS = 4096
#: The seed of the drawn permutations: the same rounds always give the same p-value.
_SEED = 20261206
#: The statistics kept per round, per metric and route.
ROUND_STATS = ("count", "mean", "p50", "p95", "p99")


def _summary(hist: Histogram) -> dict[str, float]:
    if not hist.count:
        return {"count": 0}
    ps = hist.percentiles((50, 95, 99))
    return {"count": hist.count, "mean": hist.mean, "p50": ps[50], "p95": ps[95], "p99": ps[99]}


def round_summary(tracker: PerformanceTracker, index: int) -> dict[str, Any]:
    """One round of one test: ``{"round": i, "metrics": {metric: {count, mean, p50, p95, p99,
    "tags": {tag: {...}}}}}`` (plain builtins, for results files and pytest-xdist)."""
    metrics: dict[str, Any] = {}
    for metric in tracker.metrics():
        entry: dict[str, Any] = _summary(tracker.histogram(metric))
        entry["tags"] = {
            tag: _summary(tracker.histogram(metric, tag)) for tag in tracker.tags(metric)
        }
        metrics[metric] = entry
    return {"round": index, "metrics": metrics}


def best_pass(passes: Sequence[Mapping[str, Any]], index: int) -> dict[str, Any]:
    """Several passes of one round (one process) as one round: per metric and route, each
    statistic's smallest value over the passes with at least :data:`MIN_ROUND_SAMPLES`
    samples (a neighbour only slows a pass; the best one is the code's), and their counts
    added up."""
    merged: dict[str, Any] = {}

    def fold(into: dict[str, Any], summary: Mapping[str, Any]) -> None:
        for stat in ROUND_STATS:
            value = summary.get(stat)
            if not isinstance(value, (int, float)):
                continue
            if stat == "count":
                into["count"] = into.get("count", 0) + value
            else:
                into[stat] = min(into.get(stat, math.inf), value)

    def enough(summary: Mapping[str, Any]) -> bool:
        count = summary.get("count", 0)
        return isinstance(count, (int, float)) and count >= MIN_ROUND_SAMPLES

    for one in passes:
        for metric, summary in one["metrics"].items():
            into = merged.setdefault(metric, {"tags": {}})
            if enough(summary):  # a pass too short for a p95 does not get to be the best
                fold(into, summary)
            for tag, tagged in summary.get("tags", {}).items():
                if enough(tagged):
                    fold(into["tags"].setdefault(tag, {}), tagged)
    return {"round": index, "metrics": merged}


def validate_rounds(data: object) -> list[dict[str, Any]]:
    """Rounds as read from a results file; ``ValueError`` when malformed."""
    if not isinstance(data, list):
        raise ValueError("'rounds' is not a list")
    out = []
    for entry in data:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("metrics"), Mapping):
            raise ValueError("a round without 'metrics'")
        index = entry.get("round")
        if not isinstance(index, int) or isinstance(index, bool) or index < 1:
            raise ValueError(f"round index {index!r} is not a whole number >= 1")
        out.append(dict(entry))
    return out


def round_values(
    rounds: Iterable[Mapping[str, Any]], metric: str, tag: str | None = None, stat: str = "p95"
) -> dict[int, float]:
    """``{round index: stat}`` of one metric (or one route), for the rounds that recorded at
    least :data:`MIN_ROUND_SAMPLES` samples of it."""
    out: dict[int, float] = {}
    for entry in rounds:
        summary = entry["metrics"].get(metric)
        if summary is not None and tag is not None:
            summary = summary.get("tags", {}).get(tag)
        if not summary or summary.get("count", 0) < MIN_ROUND_SAMPLES:
            continue
        value = summary.get(stat)
        if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
            out[int(entry["round"])] = float(value)
    return out


def median(values: Sequence[float]) -> float:
    """The median (mean of the middle two for an even count)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        raise ValueError("median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties given their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def wilcoxon_signed_rank(diffs: Sequence[float]) -> tuple[float, float]:
    """Exact one-sided p-values ``(p_greater, p_less)`` that the differences are centred
    above (below) zero. Zero differences are dropped; tied magnitudes share their average
    rank, and the null distribution is that of those ranks (exact with ties)."""
    nonzero = [d for d in diffs if d != 0]
    n = len(nonzero)
    if not n:
        return 1.0, 1.0
    doubled = [round(2 * r) for r in _ranks([abs(d) for d in nonzero])]
    observed = sum(r for r, d in zip(doubled, nonzero, strict=True) if d > 0)
    # counts[s]: sign assignments whose positive ranks (doubled) sum to s.
    counts = [1] + [0] * sum(doubled)
    for r in doubled:
        for s in range(len(counts) - 1, r - 1, -1):
            counts[s] += counts[s - r]
    total = 2**n
    p_greater = sum(counts[observed:]) / total
    p_less = sum(counts[: observed + 1]) / total
    return p_greater, p_less


@lru_cache(maxsize=256)
def _u_counts(n: int, m: int) -> tuple[int, ...]:
    """Number of orderings of n and m values (no ties) for each value of U of the n."""
    if n == 0 or m == 0:
        return (1,)
    with_n_last = _u_counts(n - 1, m)  # the largest value belongs to the n side: +m to U
    with_m_last = _u_counts(n, m - 1)
    out = [0] * (n * m + 1)
    for u, c in enumerate(with_n_last):
        out[u + m] += c
    for u, c in enumerate(with_m_last):
        out[u] += c
    return tuple(out)


def mann_whitney_rounds(old: Sequence[float], new: Sequence[float]) -> tuple[float, float]:
    """One-sided p-values ``(p_greater, p_less)`` that ``new`` tends to be larger (smaller).

    Exact for up to :data:`EXACT_LIMIT` values a side (ties count one half, against the
    no-tie distribution), else the normal approximation with a continuity correction.
    """
    n, m = len(new), len(old)
    if not n or not m:
        return 1.0, 1.0
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in new for y in old)
    if n <= EXACT_LIMIT and m <= EXACT_LIMIT:
        counts = _u_counts(n, m)
        total = sum(counts)
        lo, hi = math.floor(u), math.ceil(u)
        return sum(counts[lo:]) / total, sum(counts[: hi + 1]) / total
    mu, sd = n * m / 2, math.sqrt(n * m * (n + m + 1) / 12)
    p_greater = 0.5 * math.erfc((u - mu - 0.5) / sd / math.sqrt(2))
    p_less = 0.5 * math.erfc(-(u - mu + 0.5) / sd / math.sqrt(2))
    return min(1.0, p_greater), min(1.0, p_less)


def spread_pct(values: Sequence[float]) -> float:
    """The round-to-round spread of one session's rounds, in percent: two standard
    deviations of the logarithms of its rounds, the slowest one left out, as a change
    (``exp(2 sd) - 1``); 0 with fewer than three rounds left.

    The slowest round is left out because a neighbour's burst slows a whole round and
    never speeds one up: one such round (58, 59, 57, 58 and 100 us) would otherwise make
    the spread 63 % and hide any change; without it, 2.9 %. A standard deviation, unlike
    the range, does not grow with the number of rounds.
    """
    logs = sorted(_logs(values))[:-1]
    if len(logs) < 3:
        return 0.0
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    return (math.exp(2.0 * sd) - 1.0) * 100.0


def faster_half(values: Sequence[float]) -> float:
    """Mean of the smaller half of ``values`` (the middle one included for an odd count)."""
    ordered = sorted(values)
    half = (len(ordered) + 1) // 2
    if not half:
        raise ValueError("faster half of nothing")
    return math.fsum(ordered[:half]) / half


def _logs(values: Sequence[float]) -> list[float]:
    return [math.log(v + EPSILON) for v in values]


#: Added before taking logs, so an all-zero metric (a phase that never happened)
#: compares as unchanged instead of failing on log(0).
EPSILON = 1e-9


def faster_half_value(values: Sequence[float]) -> float:
    """The typical value of the faster half of ``values`` (their geometric mean)."""
    return max(0.0, math.exp(faster_half(_logs(values))) - EPSILON)


def faster_half_change(old: Sequence[float], new: Sequence[float]) -> float:
    """How much slower (percent) the new side's faster half of rounds is than the old's."""
    return (math.exp(faster_half(_logs(new)) - faster_half(_logs(old))) - 1.0) * 100.0


def _tail_shares(observed: float, statistics: Iterable[float]) -> tuple[float, float]:
    """Shares of ``statistics`` at least (at most) ``observed``; float ties count as equal."""
    tolerance = 1e-12 * max(1.0, abs(observed))
    above = below = total = 0
    for value in statistics:
        total += 1
        above += value >= observed - tolerance
        below += value <= observed + tolerance
    return above / total, below / total


def paired_permutation(old: Sequence[float], new: Sequence[float]) -> tuple[float, float]:
    """One-sided p-values ``(p_greater, p_less)`` that the new side's faster half of rounds
    is slower (faster) than the old's, pair i of each side measured together: the share of
    the 2^n swaps of pairs giving a difference at least (at most) the observed one."""
    if len(old) != len(new):
        raise ValueError("paired rounds need as many rounds on each side")
    n = len(old)
    if not n:
        return 1.0, 1.0
    pairs = list(zip(_logs(old), _logs(new), strict=True))
    observed = faster_half([b for _, b in pairs]) - faster_half([a for a, _ in pairs])

    def statistic(mask: int) -> float:
        olds = [b if mask >> i & 1 else a for i, (a, b) in enumerate(pairs)]
        news = [a if mask >> i & 1 else b for i, (a, b) in enumerate(pairs)]
        return faster_half(news) - faster_half(olds)

    if 2**n <= EXACT_PERMUTATIONS:
        masks: Iterable[int] = range(2**n)
    else:  # the identity first, so the observed statistic is always among those counted
        draw = random.Random(_SEED)
        masks = itertools.chain([0], (draw.getrandbits(n) for _ in range(EXACT_PERMUTATIONS)))
    return _tail_shares(observed, (statistic(mask) for mask in masks))


def min_p_paired(n: int) -> float:
    """The smallest one-sided p-value n pairs can give (no swap matches the observed)."""
    return 1.0 / min(2**n, EXACT_PERMUTATIONS + 1) if n else 1.0


def min_p_unpaired(n: int, m: int) -> float:
    """The smallest one-sided p-value n and m unpaired rounds can give (the rank test)."""
    if not n or not m:
        return 1.0
    if n <= EXACT_LIMIT and m <= EXACT_LIMIT:
        return 1.0 / math.comb(n + m, n)
    return 0.0
