"""Baselines: save a run's results, load them back, and compare two runs.

The gate. For every test present in both runs and every latency metric (unit
seconds) it recorded, the metric *regresses* only when all three hold:

1. its p95 is worse than the baseline's by more than ``threshold`` percent;
2. and by more than ``noise_floor`` milliseconds (so a 0.2 ms -> 0.3 ms p95 on a
   shared runner never fails a build);
3. and the shift is statistically significant: a one-sided Mann-Whitney U test
   (the current samples tend to be larger) at level :data:`ALPHA`.

The samples are stored as histograms, not raw values, so the U test is computed
from bucket counts: two samples in one bucket are a tie (buckets are at most
0.78 % wide, so ties only hide differences smaller than that), ranks use the
tie-averaged ranks of each bucket, and the p-value uses the normal approximation
with the tie-corrected variance and a continuity correction. That is exactly what
``scipy.stats.mannwhitneyu(new, old, alternative="greater", method="asymptotic")``
returns for the bucketed values (checked in the tests), computed in
O(buckets) with the standard library only.

An improvement is the mirror image (better by more than both bounds, significant
the other way). A metric with fewer than :data:`MIN_SAMPLES` samples on either side
is "insufficient data": shown, never failed.

Routes too: when a metric's samples are split over tags (``"GET /balance/{address}"``,
``"POST /orders"``), each tag recorded in both runs with enough samples on both
sides is compared on its own, by the same rule, as ``metric[tag]``: a slower
endpoint fails the gate even when a busier, unchanged one dominates the
metric's overall p95. The k routes of a metric are each tested at
``ALPHA / k`` (Bonferroni), so together they add at most :data:`ALPHA` of
false alarms; the request phases (``http_connect_times``, ``http_dns_times``,
``http_ttfb_times``: parts of a route's latency) are compared whole only. The
A/A false alarms and the power are measured in ``benchmarks/bench_gating.py``.
A route with enough samples on one side only is listed as a new or vanished
route (status :data:`NEW` / :data:`VANISHED` with its ``tag``), like a new or
vanished test: shown, never failed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pytest_axiomperf.errors import BaselineError
from pytest_axiomperf.exchange.models import ExchangeProfile
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.results import SessionResults, write_json_atomic
from pytest_axiomperf.tracker import PHASE_METRICS, SECONDS, PerformanceTracker

_DEFAULT_PROFILE = ExchangeProfile().to_dict()

#: One-sided significance level of the U test. A/A false alarms stay below it
#: (the percent and noise-floor conditions only remove alarms).
ALPHA = 0.005
#: Fewer samples than this on either side: "insufficient data".
MIN_SAMPLES = 20

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
INSUFFICIENT = "insufficient data"
NEW = "new"
VANISHED = "vanished"
#: Measured under different conditions (tracemalloc, cProfile): never compared.
INCOMPARABLE = "not comparable"

#: Environment keys whose difference makes two runs' timings incomparable.
FINGERPRINT_KEYS = (
    "python",
    "implementation",
    "platform",
    "machine",
    "cpu_model",
    "cpu_count",
    "plugin_version",
)


# -- files -------------------------------------------------------------------------


def save_results(path: Path, results: SessionResults) -> None:
    """Write ``results`` to ``path`` as a baseline (plain JSON, atomically)."""
    write_json_atomic(Path(path), results.to_dict())


def load_results(path: Path, role: str = "baseline") -> SessionResults:
    """Read a results / baseline file; ``BaselineError`` naming the file when it is unusable.

    ``role`` names the file in messages (``"baseline"``, ``"results"``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{role} {path}: no such file") from None
    except IsADirectoryError:
        raise BaselineError(f"{role} {path}: is a directory, not a results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BaselineError(f"{role} {path}: cannot be read ({reason})") from None
    if not text.strip():
        raise BaselineError(f"{role} {path}: the file is empty, not a results file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # Where the parser stopped; at the very end, the file was cut short.
        where = (
            "it ends early: truncated?"
            if exc.pos >= len(text.rstrip())
            else (f"line {exc.lineno}, column {exc.colno}: {exc.msg}")
        )
        raise BaselineError(f"{role} {path}: corrupt, not valid JSON ({where})") from None
    if not isinstance(data, Mapping):
        raise BaselineError(f"{role} {path}: not a pytest-axiomperf results file")
    try:
        results = SessionResults.from_dict(data)
        if results.comparison is not None:
            Comparison.from_dict(results.comparison)  # validated here, read by `show`
        return results
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        detail = exc.args[0] if isinstance(exc, ValueError) and exc.args else repr(exc)
        raise BaselineError(f"{role} {path}: incompatible or corrupt ({detail})") from None


# -- the significance test -----------------------------------------------------------


@dataclass(frozen=True)
class UTest:
    """A Mann-Whitney U test of ``new`` against ``old``, from bucket counts."""

    u: float  # U statistic of the new sample
    z: float  # standardized U (without continuity correction); 0 when all values tie
    p_greater: float  # one-sided p-value: new tends to be larger
    p_less: float  # one-sided p-value: new tends to be smaller


def _bucket_counts(hist: Histogram) -> dict[int, int]:
    return {int(k): int(c) for k, c in hist.to_dict()["buckets"]}


def mann_whitney_u(old: Histogram, new: Histogram) -> UTest:
    """One-sided Mann-Whitney U p-values of ``new`` vs ``old`` (normal approximation).

    Tie-corrected variance, continuity correction of 0.5, as scipy's asymptotic method.
    """
    a, b = _bucket_counts(old), _bucket_counts(new)
    n1, n2 = sum(a.values()), sum(b.values())
    if not n1 or not n2:
        raise ValueError("both samples need at least one value")
    n = n1 + n2
    below = 0
    rank_sum_new = 0.0
    ties = 0.0
    for key in sorted(a.keys() | b.keys()):
        t = a.get(key, 0) + b.get(key, 0)
        rank_sum_new += b.get(key, 0) * (below + (t + 1) / 2)
        ties += t**3 - t
        below += t
    u = rank_sum_new - n2 * (n2 + 1) / 2
    mu = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        # Every value ties: no evidence of a shift either way.
        return UTest(u=u, z=0.0, p_greater=1.0, p_less=1.0)
    sd = math.sqrt(var)
    p_greater = 0.5 * math.erfc((u - mu - 0.5) / sd / math.sqrt(2))
    p_less = 0.5 * math.erfc(-(u - mu + 0.5) / sd / math.sqrt(2))
    return UTest(u=u, z=(u - mu) / sd, p_greater=min(1.0, p_greater), p_less=min(1.0, p_less))


# -- comparing two runs ----------------------------------------------------------------


@dataclass(frozen=True)
class MetricComparison:
    """One test's latency metric, baseline against current."""

    nodeid: str
    metric: str
    #: REGRESSION, IMPROVEMENT, UNCHANGED, INSUFFICIENT, INCOMPARABLE, or NEW / VANISHED
    #: (a metric, or with ``tag`` a route, recorded in one run only).
    status: str
    old_n: int
    new_n: int
    old_p95: float | None
    new_p95: float | None
    change_pct: float | None
    p_value: float | None  # of the one-sided test in the direction of the change
    reason: str
    #: The route (tag) compared on its own; None for the whole metric.
    tag: str | None = None

    @property
    def label(self) -> str:
        """``metric`` or ``metric[tag]``."""
        return self.metric if self.tag is None else f"{self.metric}[{self.tag}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (with ``label``, for readers keying by metric and route)."""
        return {**asdict(self), "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricComparison:
        """Rebuild from :meth:`to_dict` (keys it does not know, such as ``label``, ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Comparison:
    """A whole run against its baseline."""

    baseline: str
    threshold: float
    noise_floor: float
    metrics: list[MetricComparison] = field(default_factory=list)
    new_tests: list[str] = field(default_factory=list)
    vanished_tests: list[str] = field(default_factory=list)
    #: Environment or exchange-profile differences.
    mismatches: list[str] = field(default_factory=list)
    #: True when a mismatch stopped the comparison (``mismatch="refuse"``).
    refused: bool = False

    def with_status(self, status: str) -> list[MetricComparison]:
        """The metric comparisons of one status."""
        return [m for m in self.metrics if m.status == status]

    @property
    def regressions(self) -> list[MetricComparison]:
        """Significant regressions beyond the threshold and the noise floor."""
        return self.with_status(REGRESSION)

    def metric_verdicts(self) -> dict[tuple[str, str], str]:
        """One status per (test, metric), its whole and its routes taken together.

        A metric regressed when its whole or any of its routes did; else improved
        when any of them did; else its whole's status. New and vanished routes are
        informational and never decide it. What the summary counts: one slow
        endpoint is one regression, however many of its comparisons show it.
        """
        verdicts = {(m.nodeid, m.metric): m.status for m in self.metrics if m.tag is None}
        for m in self.metrics:
            key = (m.nodeid, m.metric)
            if m.status in (REGRESSION, IMPROVEMENT) and verdicts.get(key) != REGRESSION:
                verdicts[key] = m.status
        return verdicts

    @property
    def failed(self) -> bool:
        """True when the run must fail: a regression, or a refused comparison."""
        return self.refused or bool(self.regressions)

    def for_test(self, nodeid: str) -> list[MetricComparison]:
        """The comparisons of one test."""
        return [m for m in self.metrics if m.nodeid == nodeid]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "baseline": self.baseline,
            "threshold": self.threshold,
            "noise_floor_ms": self.noise_floor,
            "alpha": ALPHA,
            "min_samples": MIN_SAMPLES,
            "refused": self.refused,
            "mismatches": list(self.mismatches),
            "metrics": [m.to_dict() for m in self.metrics],
            "new_tests": list(self.new_tests),
            "vanished_tests": list(self.vanished_tests),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Rebuild from :meth:`to_dict` (as stored in a results file)."""
        return cls(
            baseline=str(data["baseline"]),
            threshold=float(data["threshold"]),
            noise_floor=float(data["noise_floor_ms"]),
            metrics=[MetricComparison.from_dict(m) for m in data.get("metrics", [])],
            new_tests=[str(t) for t in data.get("new_tests", [])],
            vanished_tests=[str(t) for t in data.get("vanished_tests", [])],
            mismatches=[str(m) for m in data.get("mismatches", [])],
            refused=bool(data.get("refused", False)),
        )


def environment_mismatches(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Differences of two environment fingerprints (see :data:`FINGERPRINT_KEYS`)."""
    return [
        f"environment {key}: baseline {old.get(key)!r}, now {new.get(key)!r}"
        for key in FINGERPRINT_KEYS
        if old.get(key) != new.get(key)
    ]


def fingerprint_mismatches(old: SessionResults, new: SessionResults) -> list[str]:
    """Differences of environment fingerprint and exchange latency profiles, human-readable.

    The exchange profile is compared for the session and for every test in both runs
    (each test's result stores the profile it was measured under, ``extra["exchange_profile"]``).
    """
    out = environment_mismatches(old.environment, new.environment)
    if _with_defaults(old.exchange_profile or None) != _with_defaults(new.exchange_profile or None):
        out.append(
            f"exchange latency profile: baseline {old.exchange_profile!r}, "
            f"now {new.exchange_profile!r}"
        )
    for nodeid in sorted(old.tests.keys() & new.tests.keys()):
        was = old.tests[nodeid].extra.get("exchange_profile")
        now = new.tests[nodeid].extra.get("exchange_profile")
        if _with_defaults(was) != _with_defaults(now):
            out.append(f"{nodeid}: exchange latency profile: {_profile_diff(was, now)}")
    return out


def _with_defaults(profile: object) -> object:
    """A stored profile (a mapping) with the knobs it lacks at their defaults.

    Knobs are added with a default that keeps the exchange's earlier behaviour
    (``connect_latency=0``), so a baseline saved before a knob existed was
    measured under that default and still compares equal.
    """
    return _filled(profile) if isinstance(profile, Mapping) else profile


def _filled(profile: Mapping[str, Any]) -> dict[str, Any]:
    return {**_DEFAULT_PROFILE, **profile}


def _profile_diff(was: object, now: object) -> str:
    """Only the knobs that differ, when both profiles are mappings."""
    if isinstance(was, Mapping) and isinstance(now, Mapping):
        was, now = _filled(was), _filled(now)
        keys = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
        return ", ".join(f"{k} baseline {was.get(k)!r}, now {now.get(k)!r}" for k in keys)
    return f"baseline {was!r}, now {now!r}"


def compare_metric(
    nodeid: str,
    metric: str,
    old: Histogram,
    new: Histogram,
    threshold: float,
    noise_floor: float,
    tag: str | None = None,
    alpha: float = ALPHA,
) -> MetricComparison:
    """Compare one latency metric, or one tag of it (see the module docstring for the rule).

    ``alpha`` is the significance level (lower for each of several routes).
    """
    old_n, new_n = old.count, new.count
    old_p95 = old.percentile(95) if old_n else None
    new_p95 = new.percentile(95) if new_n else None
    change = None
    if old_p95 is not None and new_p95 is not None and old_p95 > 0:
        change = (new_p95 - old_p95) / old_p95 * 100.0

    def result(status: str, p_value: float | None, reason: str) -> MetricComparison:
        return MetricComparison(
            nodeid, metric, status, old_n, new_n, old_p95, new_p95, change, p_value, reason, tag
        )

    if old_n < MIN_SAMPLES or new_n < MIN_SAMPLES:
        return result(
            INSUFFICIENT,
            None,
            f"needs >= {MIN_SAMPLES} samples on each side (baseline {old_n}, now {new_n})",
        )
    assert old_p95 is not None and new_p95 is not None
    test = mann_whitney_u(old, new)
    diff_ms = (new_p95 - old_p95) * 1e3
    worse = new_p95 >= old_p95
    p_value = test.p_greater if worse else test.p_less
    beyond_pct = change is None or abs(change) > threshold
    beyond_floor = abs(diff_ms) > noise_floor
    significant = p_value < alpha
    if beyond_pct and beyond_floor and significant:
        return result(
            REGRESSION if worse else IMPROVEMENT,
            p_value,
            f"p95 {'+' if worse else '-'}{abs(diff_ms):.3g}ms, significant (p={p_value:.2g})",
        )
    if not beyond_pct:
        why = f"p95 change within the {threshold:g}% threshold"
    elif not beyond_floor:
        why = f"p95 change {abs(diff_ms):.3g}ms within the {noise_floor:g}ms noise floor"
    else:
        why = f"shift not significant (p={p_value:.2g} >= {alpha:.2g})"
    return result(UNCHANGED, p_value, why)


def compare(
    old: SessionResults,
    new: SessionResults,
    *,
    threshold: float = 10.0,
    noise_floor: float = 1.0,
    mismatch: str = "warn",
    baseline: str = "baseline",
) -> Comparison:
    """Compare every test's latency metrics of ``new`` with ``old``.

    ``threshold`` is in percent, ``noise_floor`` in milliseconds; ``mismatch="refuse"``
    makes a differing environment or exchange profile stop the comparison.
    """
    comparison = Comparison(baseline=baseline, threshold=threshold, noise_floor=noise_floor)
    comparison.mismatches = fingerprint_mismatches(old, new)
    if comparison.mismatches and mismatch == "refuse":
        comparison.refused = True
        return comparison
    comparison.new_tests = sorted(new.tests.keys() - old.tests.keys())
    comparison.vanished_tests = sorted(old.tests.keys() - new.tests.keys())
    for nodeid in sorted(old.tests.keys() & new.tests.keys()):
        was, now = old.tests[nodeid].tracker, new.tests[nodeid].tracker
        latency = {m for m in was.metrics() if was.unit(m) == SECONDS} | {
            m for m in now.metrics() if now.unit(m) == SECONDS
        }
        if was.flags != now.flags:
            # tracemalloc or cProfile inflate latency severalfold: comparing a traced run
            # with an untraced one would report a "regression" the code did not cause.
            reason = (
                f"measured under {', '.join(sorted(now.flags)) or 'nothing'} now, under "
                f"{', '.join(sorted(was.flags)) or 'nothing'} in the baseline"
            )
            comparison.metrics.extend(
                MetricComparison(
                    nodeid,
                    metric,
                    INCOMPARABLE,
                    was.histogram(metric).count,
                    now.histogram(metric).count,
                    None,
                    None,
                    None,
                    None,
                    reason,
                )
                for metric in sorted(latency)
            )
            continue
        for metric in sorted(latency):
            old_hist, new_hist = was.histogram(metric), now.histogram(metric)
            if not old_hist.count or not new_hist.count:
                status = NEW if not old_hist.count else VANISHED
                comparison.metrics.append(
                    _one_sided(
                        nodeid, metric, status, old_hist, new_hist, f"metric {status} in this run"
                    )
                )
                continue
            comparison.metrics.append(
                compare_metric(nodeid, metric, old_hist, new_hist, threshold, noise_floor)
            )
            comparison.metrics.extend(
                _compare_tags(nodeid, metric, was, now, old_hist, new_hist, threshold, noise_floor)
            )
    return comparison


def _compare_tags(
    nodeid: str,
    metric: str,
    was: PerformanceTracker,
    now: PerformanceTracker,
    old_whole: Histogram,
    new_whole: Histogram,
    threshold: float,
    noise_floor: float,
) -> list[MetricComparison]:
    """Each tag of ``metric`` in both runs, compared alone: the routes behind a whole.

    Each of the k routes compared is tested at ``ALPHA / k`` (Bonferroni), so
    a metric's routes together add at most ``ALPHA`` of false alarms. A tag with
    at least :data:`MIN_SAMPLES` on one side only is a new or vanished route
    (see `_one_sided_route`). Skipped: the request phases (`PHASE_METRICS`: parts
    of a route's latency, which is compared itself), a tag holding all of the
    metric's samples on both sides (its comparison is the whole's), and one with
    too few samples on both sides (noise on either).
    """
    if metric in PHASE_METRICS:
        return []
    pairs = []
    one_sided = []
    for tag in sorted(set(was.tags(metric)) | set(now.tags(metric))):
        old_hist, new_hist = was.histogram(metric, tag), now.histogram(metric, tag)
        old_enough, new_enough = old_hist.count >= MIN_SAMPLES, new_hist.count >= MIN_SAMPLES
        if old_enough and new_enough:
            if old_hist.count != old_whole.count or new_hist.count != new_whole.count:
                pairs.append((tag, old_hist, new_hist))
        elif old_enough or new_enough:
            one_sided.append(_one_sided_route(nodeid, metric, tag, old_hist, new_hist))
    alpha = ALPHA / max(1, len(pairs))
    return [
        compare_metric(nodeid, metric, old, new, threshold, noise_floor, tag, alpha)
        for tag, old, new in pairs
    ] + one_sided


def _one_sided_route(
    nodeid: str, metric: str, tag: str, old: Histogram, new: Histogram
) -> MetricComparison:
    """A route with enough samples on one side only: new or vanished, never failed.

    The other side's few samples (a retry, a warm-up call) are noise, not a route
    the gate could compare, so it counts as absent there; the reason gives them.
    """
    status = NEW if new.count >= MIN_SAMPLES else VANISHED
    few = old.count if status == NEW else new.count
    reason = f"route {status} in this run"
    if few:
        side = "the baseline" if status == NEW else "now"
        reason += f" (only {few} sample(s) {side}, < {MIN_SAMPLES})"
    return _one_sided(nodeid, metric, status, old, new, reason, tag)


def _one_sided(
    nodeid: str,
    metric: str,
    status: str,
    old: Histogram,
    new: Histogram,
    reason: str,
    tag: str | None = None,
) -> MetricComparison:
    """A new or vanished metric or route: counts and p95s as far as each side has them."""
    return MetricComparison(
        nodeid,
        metric,
        status,
        old.count,
        new.count,
        old.percentile(95) if old.count else None,
        new.percentile(95) if new.count else None,
        None,
        None,
        reason,
        tag,
    )


def attach(comparison: Comparison, results: SessionResults) -> None:
    """Record the comparison in ``results``: per test (``extra["comparison"]``) and whole."""
    for nodeid, result in results.tests.items():
        mine = comparison.for_test(nodeid)
        if mine:
            result.extra["comparison"] = [m.to_dict() for m in mine]
    results.comparison = comparison.to_dict()
