"""Baselines: save a run's results, load them back, and compare two runs.

The gate. For every test present in both runs and every latency metric (unit
seconds) it recorded, the evidence decides which rule applies.

**Rounds on both sides** (``--axiom-perf-rounds=N`` at save and compare time, or
``axiomperf ab``, which measures base and head alternately). The unit of evidence
is the round: each round's p95 and median of the metric are one observation each
(see :mod:`pytest_axiomperf.roundstats` for why). Each statistic is read as the
*typical round* (the median pair ratio, or the ratio of the sides' round medians,
tested by an exact rank test: Wilcoxon signed-rank on pairs, Mann-Whitney U on
unpaired rounds) and, for paired rounds, also as the *faster half* of each side's
rounds (tested by a permutation test over swaps within pairs). The metric
*regresses* when, for any of its readings (p95 and median, each read one or two
ways),

1. it got worse by more than ``threshold`` percent and, for unpaired rounds (a
   committed baseline), by more than the baseline's own round-to-round spread (two
   standard deviations of its rounds' logarithms, its slowest round left out, compared
   on a log scale: :func:`roundstats.spread_pct`);
2. and its test is significant at :data:`ROUND_ALPHA` divided by the number of
   readings (Bonferroni: together they stay at :data:`ROUND_ALPHA`): 0.05/4 for
   paired rounds, 0.05/2 for unpaired ones.

Why the spread, for a committed baseline only: its rounds and this run's come from two
sessions, and rounds of one session share that session's state. A rank test across two
sessions' rounds sees a small shift between the sessions as significant however alike
the code: measured on real runs, an unchanged bot read +12 to +13 % on one path against
rounds saved minutes earlier (every round alike, p <= 0.016) while that baseline's own
rounds spread by 16 %. Paired rounds cancel the sessions' states out; unpaired ones can
only refuse to see a change smaller than the spread one session shows.

The tail and the body both count: a microsecond path's round p95 is set by how
often a neighbour preempts it, its median by the code; a change that slows only
rare calls moves the p95 alone. The typical round follows a machine that drifts
(rounds measured together alike); the faster half leaves out rounds a neighbour's
burst slowed as a whole (such noise is one-sided: no round runs faster than its
code). On real runs, the two together caught a 30 % slower bot on each path far
more often than the typical round alone (``benchmarks/RESULTS.md``).

No absolute noise floor: a 45 us decision path made 30 % slower fails like a
45 ms one (``noise_floor`` stays available, default 0). With too few rounds to
ever reach the level (fewer than 7 pairs, or 4 rounds a side), the verdict is
"insufficient data", never a guess.

**One run on a side** (one round, or an older file). Samples within a run share
that run's machine state, so no statistic on them can tell a 30 % code
regression from a 30 % slower machine; the verdict says so. To keep false alarms
down without blinding microsecond metrics, it asks more than the p95: the metric
regresses when its p95 *and* its median are worse by more than ``threshold``
percent (a code change moves the body of the distribution; contention mostly
moves its tail) and a one-sided Mann-Whitney U test on the two runs' samples is
significant at :data:`ALPHA`.

The samples are stored as histograms, not raw values, so that U test is computed
from bucket counts: two samples in one bucket are a tie (buckets are at most
0.78 % wide, so ties only hide differences smaller than that), ranks use the
tie-averaged ranks of each bucket, and the p-value uses the normal approximation
with the tie-corrected variance and a continuity correction. That is exactly what
``scipy.stats.mannwhitneyu(new, old, alternative="greater", method="asymptotic")``
returns for the bucketed values (checked in the tests), computed in
O(buckets) with the standard library only.

An improvement is the mirror image. A metric with fewer than :data:`MIN_SAMPLES`
samples on either side is "insufficient data": shown, never failed.

**Machine drift.** Each run times a short CPU calibration
(:mod:`pytest_axiomperf.calibration`) throughout the run. When a committed baseline's
calibration and this run's differ by more than ``threshold`` percent, at its fastest
repetition (another machine) or at its typical one (the machine running at another
speed while the tests ran), the machine, not the code, moved every number:
regressions and improvements are reported as "not comparable" and the comparison
names same-job A/B (``mismatch="refuse"``: the run stops, exit 4). The same holds
when the rest of the machine was busier or quieter by more than a quarter of its
CPUs (:mod:`pytest_axiomperf.neighbours`): the calibration measures the machine's
speed, not its load.

Routes too: when a metric's samples are split over tags (``"GET /balance/{address}"``,
``"POST /orders"``), each tag recorded in both runs with enough samples on both
sides is compared on its own, by the same rule, as ``metric[tag]``: a slower
endpoint fails the gate even when a busier, unchanged one dominates the
metric's overall p95. The k routes of a metric are each tested at
``alpha / k`` (Bonferroni), so together they add at most ``alpha`` of
false alarms; the request phases (``http_connect_times``, ``http_dns_times``,
``http_ttfb_times``: parts of a route's latency) are compared whole only.
A route with enough samples on one side only is listed as a new or vanished
route (status :data:`NEW` / :data:`VANISHED` with its ``tag``), like a new or
vanished test: shown, never failed.
"""

from __future__ import annotations

import json
import math
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pytest_axiomperf import roundstats
from pytest_axiomperf.calibration import speed_change, typical_change
from pytest_axiomperf.errors import BaselineError
from pytest_axiomperf.exchange.models import ExchangeProfile
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.neighbours import BUSIER_SHARE, busier
from pytest_axiomperf.results import SessionResults, TestResult, results_json, write_text_atomic
from pytest_axiomperf.tracker import PHASE_METRICS, SECONDS

_DEFAULT_PROFILE = ExchangeProfile().to_dict()

#: One-sided significance level of the U test on one run's samples. A/A false alarms
#: stay below it (the percent conditions only remove alarms).
ALPHA = 0.005
#: One-sided significance level of the exact rank tests across rounds. Rounds are few,
#: so the level is the conventional one; the threshold condition removes most alarms.
ROUND_ALPHA = 0.05
#: Fewer samples than this on either side: "insufficient data".
MIN_SAMPLES = 20

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
INSUFFICIENT = "insufficient data"
NEW = "new"
VANISHED = "vanished"
#: Measured under different conditions (tracemalloc, cProfile, another machine speed):
#: never blamed on the code.
INCOMPARABLE = "not comparable"

#: What a comparison rests on (``MetricComparison.evidence``).
ONE_RUN = "one run a side"
ROUNDS = "rounds"
PAIRED = "paired rounds"

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


#: Largest results or baseline file read or written, in bytes. A heavily instrumented
#: test (4 latency metrics x 3 routes, wide distributions) takes about 1.2 MB, so this
#: holds a suite of 200 of them. Reading one takes 5-8 times its size in memory (a 49 MB
#: file: 314 MB peak RSS, 3 s).
MAX_FILE_BYTES = 256 * 2**20


def save_results(path: Path, results: SessionResults) -> None:
    """Write ``results`` to ``path`` as a baseline (plain JSON, atomically).

    The text is read back first, by the same checks as :func:`load_results`: a run
    never writes a file that the next run would refuse (``BaselineError`` instead).
    """
    path = Path(path)
    text = results_json(results.to_dict())
    parse_results(text, f"results {path}: not written, it would not read back:")
    write_text_atomic(path, text)


def load_results(path: Path, role: str = "baseline") -> SessionResults:
    """Read a results / baseline file; ``BaselineError`` naming the file when it is unusable.

    ``role`` names the file in messages (``"baseline"``, ``"results"``). A file that
    is not a regular file, or larger than :data:`MAX_FILE_BYTES`, is refused unread.
    """
    path = Path(path)
    try:
        kind = path.stat().st_mode
        if stat.S_ISDIR(kind):
            raise BaselineError(f"{role} {path}: is a directory, not a results file")
        if not stat.S_ISREG(kind):
            raise BaselineError(f"{role} {path}: not a regular file (a device, a pipe?)")
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise BaselineError(
                f"{role} {path}: larger than {MAX_FILE_BYTES // 2**20} MiB, the most "
                "pytest-axiomperf reads"
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{role} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BaselineError(f"{role} {path}: cannot be read ({reason})") from None
    return parse_results(text, f"{role} {path}:")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_results(text: str, where: str) -> SessionResults:
    """Results from the text of a results file; ``BaselineError`` starting with ``where``."""
    if not text.strip():
        raise BaselineError(f"{where} the file is empty, not a results file")
    if len(text) > MAX_FILE_BYTES:
        raise BaselineError(f"{where} larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        # Where the parser stopped; at the very end, the file was cut short.
        detail = (
            "it ends early: truncated?"
            if exc.pos >= len(text.rstrip())
            else (f"line {exc.lineno}, column {exc.colno}: {exc.msg}")
        )
        raise BaselineError(f"{where} corrupt, not valid JSON ({detail})") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of more than 4300 digits
        raise BaselineError(f"{where} corrupt, not valid JSON ({exc})") from None
    except RecursionError:
        raise BaselineError(f"{where} corrupt, JSON nested too deeply") from None
    if not isinstance(data, Mapping):
        raise BaselineError(f"{where} not a pytest-axiomperf results file")
    try:
        results = SessionResults.from_dict(data)
        if results.comparison is not None:
            Comparison.from_dict(results.comparison)  # validated here, read by `show`
        return results
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        detail = exc.args[0] if isinstance(exc, ValueError) and exc.args else repr(exc)
        raise BaselineError(f"{where} incompatible or corrupt ({detail})") from None


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
    #: What the verdict rests on: :data:`ONE_RUN`, :data:`ROUNDS` or :data:`PAIRED`.
    evidence: str = ONE_RUN
    #: Each round's p95 (seconds) of each side, in round order, when rounds were compared.
    old_rounds: tuple[float, ...] = ()
    new_rounds: tuple[float, ...] = ()

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
        values = {k: v for k, v in data.items() if k in known}
        for key in ("old_rounds", "new_rounds"):
            values[key] = tuple(float(v) for v in values.get(key) or ())
        return cls(**values)


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
    #: Base and head measured alternately in one job (``axiomperf ab``): rounds are paired.
    paired: bool = False
    #: How much slower (percent; negative: faster) this machine ran the calibration than
    #: the baseline's, at its fastest; None when either side has none.
    machine_drift_pct: float | None = None
    #: The same for the calibration's typical repetition over the run (its speed while the
    #: tests ran); None when either side has none.
    machine_typical_drift_pct: float | None = None

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
            "paired": self.paired,
            "round_alpha": ROUND_ALPHA,
            "machine_drift_pct": self.machine_drift_pct,
            "machine_typical_drift_pct": self.machine_typical_drift_pct,
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
            paired=bool(data.get("paired", False)),
            machine_drift_pct=_number(data.get("machine_drift_pct")),
            machine_typical_drift_pct=_number(data.get("machine_typical_drift_pct")),
        )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


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
    old_passes = old.environment.get("round_passes", 1)
    new_passes = new.environment.get("round_passes", 1)
    if old_passes != new_passes:
        out.append(
            f"rounds: each round is the best of {old_passes} pass(es) in the baseline, of "
            f"{new_passes} now (axiomperf ab --passes): the side with more passes reads faster"
        )
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
    noise_floor: float = 0.0,
    tag: str | None = None,
    alpha: float | None = None,
    *,
    old_rounds: Mapping[int, float] | None = None,
    new_rounds: Mapping[int, float] | None = None,
    old_medians: Mapping[int, float] | None = None,
    new_medians: Mapping[int, float] | None = None,
    paired: bool = False,
) -> MetricComparison:
    """Compare one latency metric, or one tag of it (see the module docstring for the rules).

    ``old``/``new`` hold each side's merged samples; ``old_rounds``/``new_rounds`` each
    round's p95 by round index (see :func:`roundstats.round_values`): with two or more on
    each side, the rounds decide. ``paired``: round i of each side was measured next to the
    other's (A/B). ``alpha`` is the significance level, lowered for each of several routes
    (default: :data:`ALPHA` for one run, :data:`ROUND_ALPHA` for rounds).
    """
    old_n, new_n = old.count, new.count
    if old_n < MIN_SAMPLES or new_n < MIN_SAMPLES:
        return MetricComparison(
            nodeid,
            metric,
            INSUFFICIENT,
            old_n,
            new_n,
            old.percentile(95) if old_n else None,
            new.percentile(95) if new_n else None,
            None,
            None,
            f"needs >= {MIN_SAMPLES} samples on each side (baseline {old_n}, now {new_n})",
            tag,
        )
    if old_rounds and new_rounds and len(old_rounds) >= 2 and len(new_rounds) >= 2:
        rounds = (old_rounds, new_rounds, old_medians or {}, new_medians or {})
        return _compare_rounds(
            nodeid, metric, tag, old_n, new_n, rounds, paired,
            threshold, noise_floor, ROUND_ALPHA if alpha is None else alpha,
        )  # fmt: skip
    return _compare_samples(
        nodeid, metric, tag, old, new, threshold, noise_floor, ALPHA if alpha is None else alpha
    )


def _verdict_reason(worse: bool, change: float, what: str, p_value: float) -> str:
    return f"{what} {'+' if worse else '-'}{abs(change):.3g}%, significant (p={p_value:.2g})"


def _compare_samples(
    nodeid: str,
    metric: str,
    tag: str | None,
    old: Histogram,
    new: Histogram,
    threshold: float,
    noise_floor: float,
    alpha: float,
) -> MetricComparison:
    """One run a side: p95 and median beyond the threshold, and a significant U test."""
    old_ps, new_ps = old.percentiles((50, 95)), new.percentiles((50, 95))
    old_p95, new_p95 = old_ps[95], new_ps[95]
    change = _pct(old_p95, new_p95)
    body = _pct(old_ps[50], new_ps[50])

    def result(status: str, p_value: float | None, reason: str) -> MetricComparison:
        return MetricComparison(
            nodeid, metric, status, old.count, new.count, old_p95, new_p95, change, p_value,
            reason, tag,
        )  # fmt: skip

    test = mann_whitney_u(old, new)
    worse = new_p95 >= old_p95
    p_value = test.p_greater if worse else test.p_less
    diff_ms = abs(new_p95 - old_p95) * 1e3
    beyond_pct = change is None or abs(change) > threshold
    # The body must move the same way: contention inflates a run's tail, code its whole.
    body_moved = body is None or (body > threshold if worse else body < -threshold)
    beyond_floor = diff_ms > noise_floor
    significant = p_value < alpha
    if beyond_pct and body_moved and beyond_floor and significant:
        shown = change if change is not None else 100.0
        return result(
            REGRESSION if worse else IMPROVEMENT,
            p_value,
            _verdict_reason(worse, shown, "p95", p_value)
            + f", median {body:+.3g}%" * (body is not None)
            + "; one run a side: machine drift and code cannot be told apart "
            "(measure rounds: --axiom-perf-rounds, or axiomperf ab)",
        )
    if not beyond_pct:
        why = f"p95 change within the {threshold:g}% threshold"
    elif not body_moved:
        why = (
            f"p95 {change:+.3g}% but median {body:+.3g}%: the tail moved, not the body "
            "(contention, not code, on one run a side)"
        )
    elif not beyond_floor:
        why = f"p95 change {diff_ms:.3g}ms within the {noise_floor:g}ms noise floor"
    else:
        why = f"shift not significant (p={p_value:.2g} >= {alpha:.2g})"
    return result(UNCHANGED, p_value, why)


@dataclass(frozen=True)
class _Shift:
    """One statistic's rounds compared: the change of the faster half and its test."""

    olds: tuple[float, ...]
    news: tuple[float, ...]
    change: float
    p_greater: float
    p_less: float
    smallest: float  # the smallest p-value these rounds can give
    old_value: float  # each side's value as this reading sees it (for the noise floor)
    new_value: float
    #: Unpaired rounds: the baseline's own round-to-round spread (percent), which a change
    #: must exceed too (see :func:`roundstats.spread_pct`); 0 for paired rounds.
    spread: float = 0.0

    @property
    def worse(self) -> bool:
        return self.change >= 0

    @property
    def within_spread(self) -> bool:
        """Whether the change is within the baseline's spread, on a log scale (a change of
        -s/(1+s) is as far below as +s is above)."""
        return abs(math.log1p(self.change / 100.0)) <= math.log1p(self.spread / 100.0)

    @property
    def p_value(self) -> float:
        return self.p_greater if self.worse else self.p_less


def _shifts(
    old: Mapping[int, float], new: Mapping[int, float], paired: bool, threshold: float
) -> list[tuple[str, _Shift]]:
    """One statistic's rounds, read as the typical round (rank test) and, for paired
    rounds, as their faster half (permutation test); see :mod:`pytest_axiomperf.roundstats`.
    The permutation test runs only when the faster half moved beyond ``threshold`` (else
    its p is not used)."""
    if paired:
        keys = sorted(old.keys() & new.keys())
        olds, news = tuple(old[k] for k in keys), tuple(new[k] for k in keys)
        eps = roundstats.EPSILON
        logs = [math.log((n + eps) / (o + eps)) for o, n in zip(olds, news, strict=True)]
        typical = (math.exp(roundstats.median(logs)) - 1) * 100.0 if logs else 0.0
        rank = roundstats.wilcoxon_signed_rank(logs)
        smallest = roundstats.min_p_paired(len(keys))
        spread = 0.0
    else:
        olds = tuple(old[k] for k in sorted(old))
        news = tuple(new[k] for k in sorted(new))
        eps = roundstats.EPSILON
        ratio = (roundstats.median(news) + eps) / (roundstats.median(olds) + eps)
        typical = (ratio - 1) * 100.0
        rank = roundstats.mann_whitney_rounds(olds, news)
        smallest = roundstats.min_p_unpaired(len(olds), len(news))
        spread = roundstats.spread_pct(olds)
    if not olds or not news:
        return [("typical", _Shift(olds, news, 0.0, 1.0, 1.0, smallest, 0.0, 0.0))]
    middle = (roundstats.median(olds), roundstats.median(news))
    readings = [("typical", _Shift(olds, news, typical, *rank, smallest, *middle, spread))]
    if paired:
        faster = roundstats.faster_half_change(olds, news)
        tested = (
            roundstats.paired_permutation(olds, news) if abs(faster) > threshold else (1.0, 1.0)
        )
        fast = (roundstats.faster_half_value(olds), roundstats.faster_half_value(news))
        readings.append(("faster-half", _Shift(olds, news, faster, *tested, smallest, *fast)))
    return readings


def _rounds_needed(paired: bool, level: float) -> str:
    """The fewest rounds whose smallest possible p-value is below ``level``."""
    n = 2
    while n < 64:
        smallest = roundstats.min_p_paired(n) if paired else roundstats.min_p_unpaired(n, n)
        if smallest < level:
            break
        n += 1
    return f"{n} paired rounds" if paired else f"{n} rounds a side"


def _compare_rounds(
    nodeid: str,
    metric: str,
    tag: str | None,
    old_n: int,
    new_n: int,
    rounds: tuple[
        Mapping[int, float], Mapping[int, float], Mapping[int, float], Mapping[int, float]
    ],
    paired: bool,
    threshold: float,
    noise_floor: float,
    alpha: float,
) -> MetricComparison:
    """Rounds on both sides: the p95 and the median of the rounds, each read as the typical
    round and (paired) as the faster half, each reading tested at ``alpha`` / the number of
    readings (a regression of the tail or of the body, see the module docstring)."""
    old_p95s, new_p95s, old_p50s, new_p50s = rounds
    named = [
        (f"{how} round p95", shift) for how, shift in _shifts(old_p95s, new_p95s, paired, threshold)
    ]
    if old_p50s and new_p50s:
        named += [
            (f"{how} round median", shift)
            for how, shift in _shifts(old_p50s, new_p50s, paired, threshold)
        ]
    tail = named[0][1]
    level = alpha / len(named)
    evidence = PAIRED if paired else ROUNDS
    need = _rounds_needed(paired, level)
    count = f"{len(tail.olds)} pairs" if paired else f"{len(tail.olds)} and {len(tail.news)} rounds"
    old_p95 = roundstats.median(tail.olds) if tail.olds else None
    new_p95 = roundstats.median(tail.news) if tail.news else None

    def result(
        status: str, p: float | None, reason: str, change: float = tail.change
    ) -> MetricComparison:
        return MetricComparison(
            nodeid, metric, status, old_n, new_n, old_p95, new_p95, change, p, reason, tag,
            evidence, tail.olds, tail.news,
        )  # fmt: skip

    if tail.smallest >= level:
        return result(
            INSUFFICIENT,
            None,
            f"{count} cannot reach p < {level:.2g} (the smallest p they can give is "
            f"{tail.smallest:.2g}): measure at least {need}",
        )

    def short_of(shift: _Shift) -> list[str]:
        """What a reading beyond the threshold lacks to be a verdict (nothing: it is one)."""
        diff_ms = abs(shift.new_value - shift.old_value) * 1e3
        lacks = []
        if shift.within_spread:
            lacks.append(f"within the baseline's own round-to-round spread ({shift.spread:.3g}%)")
        if diff_ms <= noise_floor:
            lacks.append(f"{diff_ms:.3g}ms within the {noise_floor:g}ms noise floor")
        if shift.p_value >= level:
            lacks.append(f"the rounds disagree (p={shift.p_value:.2g})")
        return lacks

    def moved(shift: _Shift, worse: bool) -> bool:
        return shift.worse == worse and abs(shift.change) > threshold and not short_of(shift)

    for worse, status in ((True, REGRESSION), (False, IMPROVEMENT)):
        hits = [(what, shift) for what, shift in named if moved(shift, worse)]
        if hits:
            reason = "; ".join(
                _verdict_reason(worse, shift.change, what, shift.p_value) for what, shift in hits
            )
            first = hits[0][1]
            return result(status, first.p_value, f"{reason} across {count}", first.change)
    parts = []
    for what, shift in named:
        part = f"{what} {shift.change:+.3g}%"
        if abs(shift.change) > threshold:
            part += " but " + " and ".join(short_of(shift))
        parts.append(part)
    if all(abs(shift.change) <= threshold for _, shift in named):
        closing = f": within the {threshold:g}% threshold"
    else:
        closing = f" (threshold {threshold:g}%, level p < {level:.2g})"
    return result(UNCHANGED, tail.p_value, f"{', '.join(parts)}{closing} across {count}")


def _pct(old: float, new: float) -> float | None:
    """Change of ``new`` over ``old`` in percent; None when ``old`` is not positive."""
    return (new - old) / old * 100.0 if old > 0 else None


def compare(
    old: SessionResults,
    new: SessionResults,
    *,
    threshold: float = 10.0,
    noise_floor: float = 0.0,
    mismatch: str = "warn",
    baseline: str = "baseline",
    paired: bool = False,
) -> Comparison:
    """Compare every test's latency metrics of ``new`` with ``old``.

    ``threshold`` is in percent, ``noise_floor`` in milliseconds; ``mismatch="refuse"``
    makes a differing environment, exchange profile or machine speed stop the comparison.
    ``paired``: the two sides' rounds were measured alternately in one job (A/B); the
    machine is then the same by construction and its calibration is not compared.
    """
    comparison = Comparison(
        baseline=baseline, threshold=threshold, noise_floor=noise_floor, paired=paired
    )
    comparison.mismatches = fingerprint_mismatches(old, new)
    excuse = None
    if not paired:
        # Each side's reading as stored (JSON): the helpers below say when it is usable.
        was: Any = old.environment.get("calibration")
        now: Any = new.environment.get("calibration")
        drift = comparison.machine_drift_pct = speed_change(was, now)
        typical = comparison.machine_typical_drift_pct = typical_change(was, now)
        if drift is not None and abs(drift) > threshold:
            comparison.mismatches.append(_drift_message(drift, was, now))
            excuse = f"the machine ran the calibration {drift:+.0f}% against the baseline's"
        elif typical is not None and abs(typical) > threshold:
            comparison.mismatches.append(_typical_message(typical, was, now))
            excuse = (
                f"the machine ran the calibration's typical repetition {typical:+.1f}% "
                "against the baseline's"
            )
        busy_was: Any = old.environment.get("neighbours")
        busy_now: Any = new.environment.get("neighbours")
        load = busier(busy_was, busy_now)
        if load is not None and abs(load) > BUSIER_SHARE:
            comparison.mismatches.append(_load_message(busy_was, busy_now))
            excuse = excuse or (
                f"other processes used {abs(load) * 100:.0f}% of the machine "
                f"{'more' if load > 0 else 'less'} than when the baseline was saved"
            )
    if comparison.mismatches and mismatch == "refuse":
        comparison.refused = True
        return comparison
    comparison.new_tests = sorted(new.tests.keys() - old.tests.keys())
    comparison.vanished_tests = sorted(old.tests.keys() - new.tests.keys())
    for nodeid in sorted(old.tests.keys() & new.tests.keys()):
        comparison.metrics.extend(
            _compare_test(old.tests[nodeid], new.tests[nodeid], threshold, noise_floor, paired)
        )
    if excuse is not None:
        comparison.metrics = [_excuse_machine(m, excuse) for m in comparison.metrics]
    return comparison


#: How each machine mismatch ends: what to do instead.
_USE_AB = (
    "its timings cannot be compared with the baseline's; measure base and head in one job "
    "with `axiomperf ab --base REF`"
)


def _drift_message(drift: float, was: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """``was`` and ``now``: the baseline's calibration and this run's."""
    return (
        f"machine speed: this machine ran the CPU calibration {abs(drift):.0f}% "
        f"{'slower' if drift > 0 else 'faster'} than the baseline's "
        f"({was['ms']:g} -> {now['ms']:g} ms): {_USE_AB}"
    )


def _typical_message(typical: float, was: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """``was`` and ``now``: the baseline's calibration and this run's."""
    return (
        f"machine speed during the run: the CPU calibration's typical repetition took "
        f"{was['median_ms']:g} ms when the baseline was saved and {now['median_ms']:g} ms "
        f"in this run ({abs(typical):.1f}% {'slower' if typical > 0 else 'faster'}; its "
        f"fastest {was.get('ms', '?')} -> {now.get('ms', '?')} ms): the machine ran at "
        f"another speed while the tests ran (a busy host, another power state), so {_USE_AB}"
    )


def _load_message(was: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """``was`` and ``now``: the baseline's neighbours reading and this run's."""
    return (
        f"machine load: other processes used {now['cores']:.2g} of {now['cpus']} CPUs during "
        f"this run, {was['cores']:.2g} of {was['cpus']} when the baseline was saved: "
        f"{_USE_AB}"
    )


def _excuse_machine(m: MetricComparison, excuse: str) -> MetricComparison:
    """A regression or improvement measured on a machine of another speed or load: not
    the code's."""
    if m.status not in (REGRESSION, IMPROVEMENT):
        return m
    reason = f"{m.status} ({m.reason}), but {excuse}: not blamed on the code"
    return replace(m, status=INCOMPARABLE, reason=reason)


def _compare_test(
    was_result: TestResult,
    now_result: TestResult,
    threshold: float,
    noise_floor: float,
    paired: bool,
) -> list[MetricComparison]:
    """Every latency metric (and route) of one test present in both runs."""
    nodeid = now_result.nodeid
    was, now = was_result.tracker, now_result.tracker
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
        return [
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
        ]
    out: list[MetricComparison] = []
    sides = _Sides(was_result, now_result, threshold, noise_floor, paired)
    for metric in sorted(latency):
        old_hist, new_hist = was.histogram(metric), now.histogram(metric)
        if not old_hist.count or not new_hist.count:
            status = NEW if not old_hist.count else VANISHED
            out.append(
                _one_sided(
                    nodeid, metric, status, old_hist, new_hist, f"metric {status} in this run"
                )
            )
            continue
        whole = sides.compare(metric, None, old_hist, new_hist)
        out.append(_phase_not_gated(whole) if metric in PHASE_METRICS else whole)
        out.extend(_compare_tags(sides, metric, old_hist, new_hist))
    return out


@dataclass(frozen=True)
class _Sides:
    """One test's two results and the rule's settings: compares a metric or a route."""

    was: TestResult
    now: TestResult
    threshold: float
    noise_floor: float
    paired: bool

    def compare(
        self,
        metric: str,
        tag: str | None,
        old: Histogram,
        new: Histogram,
        alpha_divisor: int = 1,
    ) -> MetricComparison:
        old_rounds = roundstats.round_values(self.was.rounds, metric, tag)
        new_rounds = roundstats.round_values(self.now.rounds, metric, tag)
        rounds = len(old_rounds) >= 2 and len(new_rounds) >= 2
        alpha = (ROUND_ALPHA if rounds else ALPHA) / alpha_divisor
        return compare_metric(
            self.now.nodeid,
            metric,
            old,
            new,
            self.threshold,
            self.noise_floor,
            tag,
            alpha,
            old_rounds=old_rounds,
            new_rounds=new_rounds,
            old_medians=roundstats.round_values(self.was.rounds, metric, tag, "p50"),
            new_medians=roundstats.round_values(self.now.rounds, metric, tag, "p50"),
            paired=self.paired,
        )


def _phase_not_gated(m: MetricComparison) -> MetricComparison:
    """A request phase (connect, DNS, time to first byte) that moved explains its requests'
    latency, which is gated itself: shown with its change, never failed or credited. Phases
    are small and spiky (a pooled connection's connect time is ~0 but for a few new ones),
    so gating them too would multiply false alarms without catching anything new."""
    if m.status not in (REGRESSION, IMPROVEMENT):
        return m
    return replace(m, status=UNCHANGED, reason=f"request phase, not gated: {m.status} ({m.reason})")


def _compare_tags(
    sides: _Sides, metric: str, old_whole: Histogram, new_whole: Histogram
) -> list[MetricComparison]:
    """Each tag of ``metric`` in both runs, compared alone: the routes behind a whole.

    Each of the k routes compared is tested at ``alpha / k`` (Bonferroni), so
    a metric's routes together add at most ``alpha`` of false alarms. A tag with
    at least :data:`MIN_SAMPLES` on one side only is a new or vanished route
    (see `_one_sided_route`). Skipped: the request phases (`PHASE_METRICS`: parts
    of a route's latency, which is compared itself), a tag holding all of the
    metric's samples on both sides (its comparison is the whole's), and one with
    too few samples on both sides (noise on either).
    """
    if metric in PHASE_METRICS:
        return []
    was, now = sides.was.tracker, sides.now.tracker
    nodeid = sides.now.nodeid
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
    k = max(1, len(pairs))
    return [sides.compare(metric, tag, old, new, k) for tag, old, new in pairs] + one_sided


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
