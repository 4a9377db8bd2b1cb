"""Rounds: N measurements per test spread over the run, and the gate that compares them."""

from __future__ import annotations

import json
import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_axiomperf import roundstats
from pytest_axiomperf.baseline import (
    IMPROVEMENT,
    INCOMPARABLE,
    INSUFFICIENT,
    ONE_RUN,
    PAIRED,
    REGRESSION,
    ROUNDS,
    UNCHANGED,
    compare_metric,
)
from pytest_axiomperf.histogram import Histogram

# -- the exact tests against scipy --------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_signed_rank_matches_scipy_exact(seed: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(seed)
    diffs = [rng.gauss(0.1 * seed, 1.0) for _ in range(4 + seed)]
    greater, less = roundstats.wilcoxon_signed_rank(diffs)
    expect_g = stats.wilcoxon(diffs, alternative="greater", method="exact").pvalue
    expect_l = stats.wilcoxon(diffs, alternative="less", method="exact").pvalue
    assert greater == pytest.approx(expect_g, rel=1e-9)
    assert less == pytest.approx(expect_l, rel=1e-9)


@pytest.mark.parametrize(("n", "m", "seed"), [(3, 3, 1), (4, 6, 2), (6, 6, 3), (8, 5, 4)])
def test_rounds_mann_whitney_matches_scipy_exact(n: int, m: int, seed: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(seed)
    old = [rng.gauss(0, 1) for _ in range(m)]
    new = [rng.gauss(0.8, 1) for _ in range(n)]
    greater, less = roundstats.mann_whitney_rounds(old, new)
    assert greater == pytest.approx(
        stats.mannwhitneyu(new, old, alternative="greater", method="exact").pvalue, rel=1e-9
    )
    assert less == pytest.approx(
        stats.mannwhitneyu(new, old, alternative="less", method="exact").pvalue, rel=1e-9
    )




def _faster_half_difference(x: Any, y: Any, axis: int = -1) -> Any:
    import numpy as np

    xs, ys = np.sort(x, axis=axis), np.sort(y, axis=axis)
    x_half, y_half = (x.shape[axis] + 1) // 2, (y.shape[axis] + 1) // 2
    return xs[..., :x_half].mean(axis=axis) - ys[..., :y_half].mean(axis=axis)


@pytest.mark.parametrize(("n", "seed"), [(4, 0), (6, 1), (9, 3), (10, 4)])
def test_paired_permutation_matches_scipy_exact(n: int, seed: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(seed)
    old = [rng.lognormvariate(0, 0.3) for _ in range(n)]
    # A pair shares its moment: the new round is the old one times a change.
    new = [v * rng.lognormvariate(0.1 * seed, 0.3) for v in old]
    greater, less = roundstats.paired_permutation(old, new)
    logs = ([math.log(v) for v in new], [math.log(v) for v in old])
    for ours, alternative in ((greater, "greater"), (less, "less")):
        theirs = stats.permutation_test(
            logs, _faster_half_difference, vectorized=True, alternative=alternative,
            permutation_type="samples", n_resamples=math.inf,
        ).pvalue  # fmt: skip
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_smallest_p_values_and_drawn_permutations() -> None:
    assert roundstats.min_p_paired(6) == 1 / 64
    assert roundstats.paired_permutation([1.0] * 6, [2.0] * 6)[0] == 1 / 64
    assert roundstats.min_p_unpaired(4, 4) == 1 / 70
    assert roundstats.mann_whitney_rounds([1, 2, 3, 4], [5, 6, 7, 8])[0] == 1 / 70
    # Beyond EXACT_PERMUTATIONS the swaps are drawn with a fixed seed: same rounds, same p.
    rng = random.Random(5)
    old = [rng.lognormvariate(0, 0.3) for _ in range(16)]
    new = [v * 1.1 for v in old]
    first = roundstats.paired_permutation(old, new)
    assert first == roundstats.paired_permutation(old, new)
    assert 1 / (roundstats.EXACT_PERMUTATIONS + 1) <= first[0] < 0.01
    assert roundstats.min_p_paired(16) == 1 / (roundstats.EXACT_PERMUTATIONS + 1)


def test_faster_half_leaves_a_neighbours_bursts_out() -> None:
    # Measured on real runs: the code's 58 us -> 75 us in every clean pair, while a burst
    # slowed a whole base round in two pairs of ten, by more than the change (to ~100 us).
    # In a rank test those two pairs hold the two largest ranks against the change; here,
    # swapping them leaves both faster halves as they were: they tie, and weigh nothing.
    jitter = [0.0, 0.5, -0.5, 1.0, -1.0, 0.3, -0.3, 0.8]
    old = [58e-6 + j * 1e-6 for j in jitter] + [100e-6, 103e-6]
    new = [75e-6 + j * 1e-6 for j in jitter] + [75.5e-6, 74.5e-6]
    logs = [math.log(n / o) for o, n in zip(old, new, strict=True)]
    assert roundstats.wilcoxon_signed_rank(logs)[0] > 0.05 / 4
    assert roundstats.paired_permutation(old, new)[0] == 4 / 1024
    assert roundstats.faster_half_change(old, new) == pytest.approx(29.2, abs=0.3)
    assert roundstats.faster_half_value([1.0, 2.0, 9.0]) == pytest.approx(math.sqrt(2.0))
    # Through the gate (p95 and median both read so, four readings at 0.05 / 4):
    m = compare_metric(
        "t", "decision", _hist(), _hist(), 10.0, old_rounds=_rounds(old),
        new_rounds=_rounds(new), old_medians=_rounds(old), new_medians=_rounds(new),
        paired=True,
    )  # fmt: skip
    assert m.status == REGRESSION
    assert "faster-half round p95 +29" in m.reason and "typical round" not in m.reason


# -- the round rule -----------------------------------------------------------------------


def _hist(n: int = 100) -> Histogram:
    h = Histogram()
    for i in range(n):
        h.record(0.001 * (1 + i / n))
    return h


def _rounds(values: list[float]) -> dict[int, float]:
    return {i + 1: v for i, v in enumerate(values)}


def test_paired_rounds_catch_a_microsecond_regression() -> None:
    # 45 us -> 58 us in every pair, while the machine drifts 2x between pairs: each pair
    # shares its moment, so the ratio is what the code did. No absolute floor hides it.
    drift = [1.0, 1.9, 1.2, 0.8, 1.5, 1.1]
    old = _rounds([45e-6 * d for d in drift])
    new = _rounds([58e-6 * d for d in drift])
    m = compare_metric("t", "decision", _hist(), _hist(), 10.0, old_rounds=old, new_rounds=new,
                       paired=True)  # fmt: skip
    assert m.status == REGRESSION and m.evidence == PAIRED
    assert m.change_pct == pytest.approx(28.9, abs=0.1)
    assert m.p_value == 1 / 64 and "across 6 pairs" in m.reason
    assert m.old_rounds == tuple(old.values())


def test_rounds_that_disagree_are_not_a_regression() -> None:
    # The faster half is 13 % slower, but the pairs point both ways (p = 0.31).
    old = _rounds([1.0, 1.2, 1.0, 1.2, 1.0, 1.2])
    new = _rounds([1.2, 1.0, 1.2, 1.25, 1.25, 1.25])
    m = compare_metric("t", "m", _hist(), _hist(), 10.0, old_rounds=old, new_rounds=new,
                       paired=True)  # fmt: skip
    assert m.status == UNCHANGED and "the rounds disagree" in m.reason


def test_unpaired_rounds_and_too_few_rounds() -> None:
    old = _rounds([1.0, 1.02, 0.98, 1.01])
    new = _rounds([1.3, 1.32, 1.28, 1.31])
    m = compare_metric("t", "m", _hist(), _hist(), 10.0, old_rounds=old, new_rounds=new)
    assert m.status == REGRESSION and m.evidence == ROUNDS and m.p_value == 1 / 70
    few = compare_metric(
        "t", "m", _hist(), _hist(), 10.0, old_rounds=_rounds([1.0, 1.0]),
        new_rounds=_rounds([2.0, 2.0]),
    )  # fmt: skip
    assert few.status == INSUFFICIENT and "measure at least 4 rounds a side" in few.reason
    pairs = compare_metric(
        "t", "m", _hist(), _hist(), 10.0, old_rounds=_rounds([1.0] * 4),
        new_rounds=_rounds([2.0] * 4), paired=True,
    )  # fmt: skip
    # The p95 read two ways (typical pair, faster half) shares the level: 0.05 / 2.
    assert pairs.status == INSUFFICIENT and "6 paired rounds" in pairs.reason
    # With medians too, four readings share it: 6 pairs cannot reach 0.05 / 4.
    six = compare_metric(
        "t", "m", _hist(), _hist(), 10.0, old_rounds=_rounds([1.0] * 6),
        new_rounds=_rounds([2.0] * 6), old_medians=_rounds([1.0] * 6),
        new_medians=_rounds([2.0] * 6), paired=True,
    )  # fmt: skip
    assert six.status == INSUFFICIENT and "7 paired rounds" in six.reason


def test_a_committed_baseline_does_not_see_a_shift_within_its_own_round_spread() -> None:
    # Measured on real runs (a feed handler's p95): an unchanged bot read +12 % against
    # rounds saved minutes earlier, every round alike, while the baseline's own five rounds
    # spread by 16 %. Two sessions' rounds differ by their sessions: not the code.
    old = [0.317, 0.301, 0.294, 0.267, 0.320]
    new = [0.343, 0.324, 0.374, 0.338, 0.317]
    assert roundstats.spread_pct(old) == pytest.approx(15.5, abs=0.1)

    def gate(olds: list[float], news: list[float], paired: bool = False) -> Any:
        return compare_metric("t", "m", _hist(), _hist(), 10.0, old_rounds=_rounds(olds),
                              new_rounds=_rounds(news), paired=paired)  # fmt: skip

    same = gate(old, new)
    assert same.change_pct == pytest.approx(12.3, abs=0.1)
    assert same.status == UNCHANGED
    assert same.reason == (
        "typical round p95 +12.3% but within the baseline's own round-to-round spread "
        "(15.5%) (threshold 10%, level p < 0.05) across 5 and 5 rounds"
    )
    # The same baseline against the 30 % slower bot (+35 %, as measured): a regression.
    assert gate(old, [0.433, 0.408, 0.416, 0.376, 0.408]).status == REGRESSION
    # Faster as far as +12.3 % is slower (a log scale): within it too; much faster is not.
    assert gate(old, [v / 1.123 for v in old]).status == UNCHANGED
    assert gate(old, [v * 0.7 for v in old]).status == IMPROVEMENT
    # A baseline whose rounds agree exactly: the threshold alone decides.
    assert roundstats.spread_pct([0.3] * 5) == 0.0
    assert gate([0.3] * 5, [0.3 * 1.12] * 5).status == REGRESSION
    # One round a burst slowed does not widen it: the slowest round is left out.
    burst = [58e-6, 59e-6, 57e-6, 58e-6, 100e-6]
    assert roundstats.spread_pct(burst) == pytest.approx(2.9, abs=0.1)
    slower = gate(burst, [v * 1.3 for v in burst])
    assert slower.status == REGRESSION, slower.reason  # within a 63 % spread, with the burst
    # Paired rounds (A/B) are not held to it: each pair shares its moment.
    assert gate(old * 2, [v * 1.12 for v in old * 2], paired=True).status == REGRESSION
    # It does not grow with the number of rounds (a range would): 40 rounds of the same
    # pattern spread as its 5 do.
    pattern = [1.0, 1.05, 0.95, 1.02, 0.98]
    assert roundstats.spread_pct(pattern * 8) == pytest.approx(
        roundstats.spread_pct(pattern), rel=0.3
    )
    assert roundstats.spread_pct([0.3, 0.4, 0.5]) == 0.0  # too few rounds to tell


def test_rounds_of_another_number_of_passes_are_a_mismatch() -> None:
    from pytest_axiomperf.baseline import fingerprint_mismatches
    from pytest_axiomperf.results import SessionResults

    ab_file, rounds = SessionResults(), SessionResults()
    ab_file.environment = {**rounds.environment, "round_passes": 2}
    assert fingerprint_mismatches(rounds, rounds) == []
    (message,) = fingerprint_mismatches(ab_file, rounds)
    assert message.startswith("rounds: each round is the best of 2 pass(es) in the baseline")


def test_best_pass_keeps_each_statistics_fastest_pass() -> None:
    def one(p50: float, p95: float) -> dict[str, Any]:
        stats = {"count": 10, "mean": p50, "p50": p50, "p95": p95, "p99": p95}
        return {"round": 1, "metrics": {"m": {**stats, "tags": {"GET /x": dict(stats)}}}}

    # The second pass was hit by a burst in its body, the first in its tail.
    best = roundstats.best_pass([one(1.0, 9.0), one(1.6, 2.0)], index=3)
    assert best["round"] == 3
    m = best["metrics"]["m"]
    assert (m["count"], m["p50"], m["p95"]) == (20, 1.0, 2.0)
    assert m["tags"]["GET /x"]["p95"] == 2.0 and m["tags"]["GET /x"]["count"] == 20
    # A pass with too few samples for a p95 (a route called twice) does not get to be best.
    short = one(0.1, 0.1)
    short["metrics"]["m"]["tags"]["GET /x"]["count"] = 2
    best = roundstats.best_pass([one(1.0, 9.0), short], index=1)
    assert best["metrics"]["m"]["p95"] == 0.1  # the whole metric had 10 samples there
    assert best["metrics"]["m"]["tags"]["GET /x"] == {
        "count": 10, "mean": 1.0, "p50": 1.0, "p95": 9.0, "p99": 9.0,
    }  # fmt: skip


def test_one_run_a_side_needs_the_body_to_move_and_says_it_cannot_tell() -> None:
    rng = random.Random(3)
    base = [rng.lognormvariate(math.log(45e-6), 0.1) for _ in range(300)]
    old, slower = Histogram(), Histogram()
    for v in base:
        old.record(v)
        slower.record(v * 1.3)
    m = compare_metric("t", "decision", old, slower, 10.0)
    # 13 us on a 45 us path: the old 1 ms floor hid this; now it is caught, with the caveat.
    assert m.status == REGRESSION and m.evidence == ONE_RUN
    assert "machine drift and code cannot be told apart" in m.reason


# -- rounds in a pytest run ---------------------------------------------------------------

MEASURED = """
import os, random, pytest

SCALE = float(os.environ.get("AXIOM_TEST_SCALE", "1"))

@pytest.mark.latency_budget(p95="1s", metric="api_response_times")
@pytest.mark.parametrize("kind", ["a", "b"])
def test_measured(axiom_tracker, kind):
    rng = random.Random()
    for _ in range(40):
        axiom_tracker.record("api_response_times", rng.uniform(0.010, 0.011) * SCALE, tag="GET /x")

def test_plain():
    pass
"""


@pytest.fixture
def measured(user_project: pytest.Pytester) -> pytest.Pytester:
    user_project.makepyfile(test_measured=MEASURED)
    return user_project


def _json(project: pytest.Pytester, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project.path / name).read_text())
    return data


def test_rounds_spread_over_the_run_and_merge_per_test(measured: pytest.Pytester) -> None:
    order = measured.runpytest("--axiom-perf", "--axiom-perf-rounds=3", "--collect-only", "-q")
    # Round 1 of every test before any round 2: the rounds of one test are not adjacent;
    # a plain test runs once.
    assert [line for line in order.stdout.lines if "::" in line] == [
        f"test_measured.py::{name}"
        for name in (
            "test_measured[a-round-1]", "test_measured[b-round-1]", "test_plain",
            "test_measured[a-round-2]", "test_measured[b-round-2]",
            "test_measured[a-round-3]", "test_measured[b-round-3]",
        )
    ]  # fmt: skip
    result = measured.runpytest("--axiom-perf-rounds=3", "--axiom-perf-json=out.json")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["axiomperf: performance mode on (3 rounds per test, *"])
    data = _json(measured, "out.json")
    test = data["tests"]["test_measured.py::test_measured[a]"]
    assert [r["round"] for r in test["rounds"]] == [1, 2, 3]
    assert test["metrics"]["api_response_times"]["count"] == 120  # merged, losslessly
    first = test["rounds"][0]["metrics"]["api_response_times"]
    assert first["count"] == 40 and 0.010 <= first["p95"] <= 0.0112
    assert first["tags"]["GET /x"]["count"] == 40
    assert "test_measured.py::test_measured[a-round-1]" not in data["tests"]


def test_budgets_check_the_merged_rounds(user_project: pytest.Pytester) -> None:
    # 15 samples a round under min_samples=40: round 3 (45 merged) passes.
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.latency_budget(p95="1s", min_samples=40)
        def test_few(axiom_tracker):
            for _ in range(15):
                axiom_tracker.record("api_response_times", 0.01)
        """
    )
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-rounds=3", "-rA")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*15 samples recorded; the budget needs at least 40 (min_samples)",
            "*30 samples recorded; the budget needs at least 40 (min_samples)",
            "PASSED *test_few[[]round-3[]]",
        ]
    )


@pytest.mark.skipif(pytest.importorskip("xdist") is None, reason="needs pytest-xdist")
def test_rounds_under_xdist_merge_on_the_controller(measured: pytest.Pytester) -> None:
    result = measured.runpytest_subprocess(
        "-n", "2", "--axiom-perf-rounds=4", "--axiom-perf-json=out.json"
    )
    result.assert_outcomes(passed=9)
    data = _json(measured, "out.json")
    for kind in "ab":
        test = data["tests"][f"test_measured.py::test_measured[{kind}]"]
        assert [r["round"] for r in test["rounds"]] == [1, 2, 3, 4]
        assert test["metrics"]["api_response_times"]["count"] == 160
    # The controller's readings (start, end) and at least one a round from the workers
    # (each worker reads before the first test of each later round it runs).
    calibration = data["environment"]["calibration"]
    assert calibration["readings"] >= 2 + 3
    assert calibration["median_ms"] >= calibration["ms"] > 0


ROUND_SCALED = """
import os, pytest

SCALES = [float(x) for x in os.environ["ROUND_SCALES"].split(",")]
CALLS = []

@pytest.mark.latency_budget(p95="1s")
def test_feed(axiom_tracker):
    scale = SCALES[len(CALLS)]  # this round's speed
    CALLS.append(1)
    for i in range(40):
        axiom_tracker.record("feed_handler", 0.010 * scale * (1 + i / 4000))
"""


def test_a_shift_within_the_baselines_own_round_spread_does_not_fail_the_run(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The baseline's rounds spread (1.0, 1.06, 0.94, 1.1, 0.9); every round of this run
    # reads 13 % slower than its typical one: beyond the threshold, every round above the
    # baseline's (p = 0.004), but within the spread one session shows (~15 %).
    user_project.makepyfile(test_feed=ROUND_SCALED)
    monkeypatch.setenv("ROUND_SCALES", "1.0,1.06,0.94,1.1,0.9")
    saved = user_project.runpytest("--axiom-perf-rounds=5", "--axiom-perf-save=base.json")
    assert saved.ret == pytest.ExitCode.OK
    monkeypatch.setenv("ROUND_SCALES", ",".join(["1.13"] * 5))
    shifted = user_project.runpytest("--axiom-perf-rounds=5", "--axiom-perf-compare=base.json")
    assert shifted.ret == pytest.ExitCode.OK, shifted.stdout.str()
    shifted.stdout.fnmatch_lines(
        ["*feed_handler*typical round p95 +13% but within the baseline's own round-to-round "
         "spread (15.4%), typical round median +13.3% but within the baseline's own "
         "round-to-round spread (15.2%) (threshold 10%*",
         "Result: 0 regression(s), 0 improved, 1 unchanged, *"]
    )  # fmt: skip
    # Slower by more than the spread: the regression the gate is for.
    monkeypatch.setenv("ROUND_SCALES", ",".join(["1.35"] * 5))
    slower = user_project.runpytest("--axiom-perf-rounds=5", "--axiom-perf-compare=base.json")
    assert slower.ret == pytest.ExitCode.TESTS_FAILED
    slower.stdout.fnmatch_lines(["  REGRESSION * test_feed.py::test_feed  feed_handler p95 *"])


def test_a_slower_code_path_fails_on_rounds_and_shows_them(
    measured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert measured.runpytest("--axiom-perf-rounds=5", "--axiom-perf-save=base.json").ret == 0
    same = measured.runpytest("--axiom-perf-rounds=5", "--axiom-perf-compare=base.json")
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(
        [
            "*regression: typical round p95 or median worse by > 10% and by more than the "
            "baseline's round-to-round spread, rounds agree (Mann-Whitney U, p < 0.05 in all)*",
            "Result: 0 regression(s), 0 improved, 2 unchanged, *",
        ]
    )
    monkeypatch.setenv("AXIOM_TEST_SCALE", "1.3")
    slow = measured.runpytest(
        "--axiom-perf-rounds=5", "--axiom-perf-compare=base.json", "--axiom-perf-json=out.json"
    )
    assert slow.ret == pytest.ExitCode.TESTS_FAILED
    slow.stdout.fnmatch_lines(
        [
            "  REGRESSION * test_measured.py::test_measured[[]a[]]  api_response_times p95 *"
            "across 5 and 5 rounds",
            "    * round p95s: baseline * | now *",
        ]
    )
    entry = _json(measured, "out.json")["tests"]["test_measured.py::test_measured[a]"]
    verdict = entry["extra"]["comparison"][0]
    assert verdict["evidence"] == ROUNDS and len(verdict["new_rounds"]) == 5
    # The verdict table shows the spread the verdict rests on, in every format.
    slow.stdout.fnmatch_lines(["*rounds: api_response_times: baseline * | now *"])
    markdown = measured.runpytest(
        "--axiom-perf-rounds=5", "--axiom-perf-compare=base.json",
        "--axiom-perf-markdown=out.md", "--axiom-perf-html=out.html",
    )  # fmt: skip
    assert markdown.ret == pytest.ExitCode.TESTS_FAILED
    for name in ("out.md", "out.html"):
        text = (measured.path / name).read_text()
        assert "round p95s: baseline | now" in text, name
        assert text.count("api_response_times: baseline ") >= 2, name


def test_one_round_a_side_says_it_cannot_separate_machine_from_code(
    measured: pytest.Pytester,
) -> None:
    assert measured.runpytest("--axiom-perf-save=base.json").ret == 0
    result = measured.runpytest("--axiom-perf-compare=base.json")
    result.stdout.fnmatch_lines(
        ["  note: one run a side cannot tell a slower machine from slower code: *axiomperf ab*"]
    )


# -- the machine drift guard -----------------------------------------------------------------


def _set_calibration(path: Path, ms: float) -> None:
    data = json.loads(path.read_text())
    data["environment"]["calibration"]["ms"] = ms
    path.write_text(json.dumps(data))


def test_a_faster_baseline_machine_is_named_not_blamed_on_the_code(
    measured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert measured.runpytest("--axiom-perf-save=base.json").ret == 0
    saved = _json(measured, "base.json")["environment"]["calibration"]
    assert saved["ms"] > 0 and saved["repeats"] >= 5
    _set_calibration(measured.path / "base.json", 0.7)  # saved on a machine 30 % faster
    monkeypatch.setenv("AXIOM_TEST_SCALE", "1.5")
    result = measured.runpytest("--axiom-perf-compare=base.json", "--axiom-perf-json=out.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "  WARNING: machine speed: this machine ran the CPU calibration 43% slower than the "
            "baseline's (0.7 -> 1 ms)*axiomperf ab --base REF*",
            "  not comparable * test_measured.py::test_measured[[]a[]] *regression (*), but the "
            "machine ran the calibration +43% against the baseline's: not blamed on the code",
        ]
    )
    statuses = {
        m["status"] for m in _json(measured, "out.json")["comparison"]["metrics"]
    }  # fmt: skip
    assert statuses == {INCOMPARABLE}
    refused = measured.runpytest("--axiom-perf-compare=base.json", "--axiom-perf-mismatch=refuse")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR


def _counted_readings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each calibration reading's repetitions, in order; the n-th reading's fastest
    repetition is n ms and its median 2n ms (slower and slower)."""
    from pytest_axiomperf import calibration

    taken: list[int] = []

    def reading(repeats: int = calibration.REPEATS, items: int = calibration.ITEMS) -> dict:
        taken.append(repeats)
        ms = float(len(taken))
        return {"ms": ms, "median_ms": ms * 2, "repeats": repeats, "items": items}

    monkeypatch.setattr(calibration, "calibrate", reading)
    return taken


def test_the_machine_is_read_before_each_round_and_its_typical_speed_kept(
    measured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_axiomperf import calibration

    taken = _counted_readings(monkeypatch)
    result = measured.runpytest("--axiom-perf-rounds=3", "--axiom-perf-json=out.json")
    result.assert_outcomes(passed=7)
    # The start, before rounds 2 and 3 (shorter readings), the end.
    assert taken == [calibration.REPEATS, calibration.ROUND_REPEATS, calibration.ROUND_REPEATS,
                     calibration.REPEATS]  # fmt: skip
    # The fastest of all; the median of the readings' medians (2, 4, 6, 8 ms).
    stored = _json(measured, "out.json")["environment"]["calibration"]
    assert stored == {
        "ms": 1.0, "median_ms": 5.0, "readings": 4, "repeats": calibration.REPEATS,
        "items": calibration.ITEMS,
    }  # fmt: skip


def test_a_process_axiomperf_ab_started_reads_the_machine_only_at_its_start_and_end(
    measured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_axiomperf import calibration, rounds

    taken = _counted_readings(monkeypatch)
    monkeypatch.setenv(rounds.AB_ENV, "1")
    measured.runpytest("--axiom-perf", "--axiom-perf-rounds=3").assert_outcomes(passed=7)
    assert taken == [calibration.REPEATS, calibration.REPEATS]


def test_a_machine_running_slower_while_the_tests_ran_is_named_not_blamed_on_the_code(
    measured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Saved while the machine ran its typical repetition in 1.0 ms; this run, at the same
    # fastest speed, the typical repetition took 1.6 ms (a host running its vCPUs slower
    # for seconds at a time), and the bot's timings moved with it.
    assert measured.runpytest("--axiom-perf-save=base.json").ret == 0
    from pytest_axiomperf import calibration

    slow = {"ms": 1.0, "median_ms": 1.6, "repeats": 30, "items": calibration.ITEMS}
    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: dict(slow))
    monkeypatch.setenv("AXIOM_TEST_SCALE", "1.5")
    result = measured.runpytest("--axiom-perf-compare=base.json", "--axiom-perf-json=out.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "  WARNING: machine speed during the run: the CPU calibration's typical repetition "
            "took 1 ms when the baseline was saved and 1.6 ms in this run (60.0% slower; its "
            "fastest 1.0 -> 1.0 ms)"
            "*axiomperf ab --base REF*",
            "  not comparable * test_measured.py::test_measured[[]a[]] *regression (*), but the "
            "machine ran the calibration's typical repetition +60.0% against the baseline's: not "
            "blamed on the code",
        ]
    )
    comparison = _json(measured, "out.json")["comparison"]
    assert comparison["machine_typical_drift_pct"] == pytest.approx(60.0)
    assert comparison["machine_drift_pct"] == pytest.approx(0.0)
    refused = measured.runpytest("--axiom-perf-compare=base.json", "--axiom-perf-mismatch=refuse")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    # Within the threshold (+5 %), the code is blamed.
    slow["median_ms"] = 1.05
    blamed = measured.runpytest("--axiom-perf-compare=base.json")
    assert blamed.ret == pytest.ExitCode.TESTS_FAILED


def test_a_baseline_without_a_typical_reading_is_compared_by_its_fastest() -> None:
    from pytest_axiomperf import calibration

    old = {"ms": 1.0, "repeats": 30, "items": calibration.ITEMS}  # saved by an older version
    new = {"ms": 1.02, "median_ms": 1.9, "repeats": 30, "items": calibration.ITEMS}
    assert calibration.typical_change(old, new) is None
    assert calibration.speed_change(old, new) == pytest.approx(2.0)
    assert calibration.combine([old, new]) == {
        "ms": 1.0, "repeats": 30, "items": calibration.ITEMS, "readings": 2
    }  # fmt: skip
    assert calibration.combine([None]) is None
    # Through the gate: no typical drift, no mismatch, the fastest compared.
    from pytest_axiomperf.baseline import compare
    from pytest_axiomperf.results import SessionResults

    was, now = SessionResults(), SessionResults()
    was.environment = {**was.environment, "calibration": old}
    now.environment = {**now.environment, "calibration": new}
    comparison = compare(was, now)
    assert comparison.machine_typical_drift_pct is None and comparison.mismatches == []
    assert comparison.machine_drift_pct == pytest.approx(2.0)


def test_a_busier_machine_is_named_not_blamed_on_the_code(
    measured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The baseline was saved while neighbours used 0.1 of 2 CPUs; this run, a CPU-bound
    # neighbour takes a whole core (the calibration, which keeps its fastest repetition,
    # reads the same speed: it is the load that differs).
    assert measured.runpytest("--axiom-perf-save=base.json").ret == 0
    path = measured.path / "base.json"
    data = json.loads(path.read_text())
    assert data["environment"]["neighbours"]["cpus"] >= 1
    data["environment"]["neighbours"] = {"cores": 0.1, "cpus": 2, "seconds": 3.0}
    path.write_text(json.dumps(data))
    from pytest_axiomperf import neighbours

    busy = {"cores": 1.1, "cpus": 2, "seconds": 3.0}
    monkeypatch.setattr(neighbours.NeighbourMeter, "stop", lambda self: dict(busy))
    monkeypatch.setenv("AXIOM_TEST_SCALE", "1.5")
    result = measured.runpytest("--axiom-perf-compare=base.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "  WARNING: machine load: other processes used 1.1 of 2 CPUs during this run, 0.1 "
            "of 2 when the baseline was saved*axiomperf ab --base REF*",
            "  not comparable * test_measured.py::test_measured[[]a[]] *regression (*), but other "
            "processes used 50% of the machine more than when the baseline was saved: not "
            "blamed on the code",
        ]
    )
    refused = measured.runpytest("--axiom-perf-compare=base.json", "--axiom-perf-mismatch=refuse")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    # A neighbour a tenth of the machine busier is within the guard: the code is blamed.
    busy["cores"] = 0.3
    blamed = measured.runpytest("--axiom-perf-compare=base.json")
    assert blamed.ret == pytest.ExitCode.TESTS_FAILED


def test_the_neighbour_meter_counts_our_children_as_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import subprocess
    import sys

    import psutil

    from pytest_axiomperf import neighbours

    monkeypatch.undo()  # the real meter, not the steady one of the other tests
    assert neighbours.busier({"cores": 0.2, "cpus": 2}, {"cores": 1.2, "cpus": 2}) == 0.5
    assert neighbours.busier({"cores": 1}, {"cores": 1, "cpus": 2}) is None
    assert neighbours.busier(None, {"cores": 1, "cpus": 2}) is None
    assert neighbours.NeighbourMeter().stop() is None  # under a second: too short to say
    # A child busy for a second of CPU (the exchange, an xdist worker) is this run's own
    # work: it is subtracted from the machine's, never counted as a neighbour's.
    me = psutil.Process(os.getpid())
    before_own, before_machine = neighbours._own_busy(me), neighbours._machine_busy()
    busy = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass"
    assert subprocess.run([sys.executable, "-c", busy], timeout=60).returncode == 0
    assert neighbours._own_busy(me) - before_own >= 1.0
    assert neighbours._machine_busy() - before_machine >= 1.0
    # A live child's reaped children are ours too (an xdist worker's exchange, stopped
    # before the controller measures): the child runs a busy grandchild, reaps it, waits.
    parent = (
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {busy!r}], check=True)\n"
        "print('reaped', flush=True)\n"
        "sys.stdin.read()\n"
    )
    before_own = neighbours._own_busy(me)
    child = subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "reaped"
        assert neighbours._own_busy(me) - before_own >= 1.0  # the child is still alive
    finally:
        child.communicate(timeout=30)


# -- CI footguns ------------------------------------------------------------------------------


def test_a_regressed_run_keeps_the_baseline_and_fails_in_junit(
    measured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert measured.runpytest("--axiom-perf-save=base.json").ret == 0
    before = (measured.path / "base.json").read_bytes()
    monkeypatch.setenv("AXIOM_TEST_SCALE", "3")
    # No --axiom-perf: the output options ask for performance mode by themselves.
    result = measured.runpytest(
        "--axiom-perf-compare=base.json", "--axiom-perf-save=base.json", "--junitxml=junit.xml"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["axiom-perf saved no baseline: this run regressed against base.json, which is left*"]
    )
    assert (measured.path / "base.json").read_bytes() == before
    suite = ET.parse(measured.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    failed = [
        case for case in suite.iter("testcase") if case.find("failure") is not None
    ]  # fmt: skip
    names = sorted(case.get("name", "") for case in failed)
    assert names == ["test_measured[a]", "test_measured[b]"]
    message = failed[0].find("failure")
    assert message is not None and "performance regression against base.json" in (
        message.get("message", "") + (message.text or "")
    )
    assert int(suite.get("failures", "0")) == 2
    # A run that does not regress saves over it as asked.
    monkeypatch.setenv("AXIOM_TEST_SCALE", "1")
    again = measured.runpytest("--axiom-perf-compare=base.json", "--axiom-perf-save=base.json")
    assert again.ret == pytest.ExitCode.OK
    assert (measured.path / "base.json").read_bytes() != before


def test_a_request_phase_is_shown_but_never_gated() -> None:
    from pytest_axiomperf.baseline import compare
    from pytest_axiomperf.results import SessionResults
    from pytest_axiomperf.results import TestResult as PerfResult
    from pytest_axiomperf.tracker import PerformanceTracker

    def run(connect: float) -> SessionResults:
        tracker = PerformanceTracker("t")
        for i in range(40):
            tracker.record("http_connect_times", connect * (1 + i / 400))
            tracker.record("api_response_times", 0.010 * (1 + i / 400))
        results = SessionResults()
        results.add(PerfResult(nodeid="t.py::t", tracker=tracker))
        return results

    comparison = compare(run(0.001), run(0.003))
    (phase,) = [m for m in comparison.metrics if m.metric == "http_connect_times"]
    assert phase.status == UNCHANGED and phase.change_pct is not None and phase.change_pct > 150
    assert phase.reason.startswith("request phase, not gated: regression (")
    assert not comparison.failed
