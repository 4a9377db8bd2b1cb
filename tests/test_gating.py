"""The regression gate: the U test against scipy, the rule, and the plugin's pytester runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pytest_axiomperf.baseline import (
    IMPROVEMENT,
    INCOMPARABLE,
    INSUFFICIENT,
    NEW,
    REGRESSION,
    UNCHANGED,
    VANISHED,
    Comparison,
    compare,
    compare_metric,
    load_results,
    mann_whitney_u,
)
from pytest_axiomperf.errors import BaselineError
from pytest_axiomperf.histogram import Histogram, _key_upper
from pytest_axiomperf.report.comparison import summary_line
from pytest_axiomperf.results import SessionResults
from pytest_axiomperf.results import TestResult as PerfResult
from pytest_axiomperf.tracker import PerformanceTracker


def _hist(values: list[float]) -> Histogram:
    h = Histogram()
    for v in values:
        h.record(v)
    return h


def _bucketed(h: Histogram) -> list[float]:
    """The histogram's samples as the values the U test ranks: one per bucket key."""
    return [_key_upper(k) for k, c in h.to_dict()["buckets"] for _ in range(c)]


@pytest.mark.parametrize(
    ("seed", "n_old", "n_new", "scale", "sigma"),
    [
        (1, 200, 200, 1.0, 0.3),
        (2, 200, 200, 1.1, 0.3),
        (3, 50, 300, 0.9, 0.5),
        (4, 40, 40, 1.5, 0.05),  # narrow: many samples share buckets (heavy ties)
        (5, 500, 120, 1.02, 1.0),
    ],
)
def test_u_test_matches_scipy(
    seed: int, n_old: int, n_new: int, scale: float, sigma: float
) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(seed)
    old = _hist([rng.lognormvariate(-4.0, sigma) for _ in range(n_old)])
    new = _hist([rng.lognormvariate(-4.0, sigma) * scale for _ in range(n_new)])
    ours = mann_whitney_u(old, new)
    x, y = _bucketed(new), _bucketed(old)
    greater = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")
    less = stats.mannwhitneyu(x, y, alternative="less", method="asymptotic")
    assert ours.u == pytest.approx(greater.statistic, rel=1e-12)
    assert ours.p_greater == pytest.approx(greater.pvalue, rel=1e-9, abs=1e-300)
    assert ours.p_less == pytest.approx(less.pvalue, rel=1e-9, abs=1e-300)


def test_u_test_all_tied_is_not_significant() -> None:
    test = mann_whitney_u(_hist([0.01] * 30), _hist([0.01] * 30))
    assert test.p_greater == 1.0 and test.p_less == 1.0


def _lognormal(seed: int, n: int, scale: float = 1.0, sigma: float = 0.25) -> Histogram:
    rng = random.Random(seed)
    return _hist([rng.lognormvariate(-3.9, sigma) * scale for _ in range(n)])


def test_rule_regression_improvement_and_guards() -> None:
    base = _lognormal(1, 200)
    slower = compare_metric("t", "m", base, _lognormal(2, 200, 1.5), 10.0, 1.0)
    assert slower.status == REGRESSION and slower.change_pct is not None
    assert slower.change_pct > 10 and slower.p_value is not None and slower.p_value < 0.005
    faster = compare_metric("t", "m", base, _lognormal(3, 200, 0.6), 10.0, 1.0)
    assert faster.status == IMPROVEMENT
    # The same shift below a large threshold, or below a large noise floor: unchanged.
    assert compare_metric("t", "m", base, _lognormal(2, 200, 1.5), 80.0, 1.0).status == UNCHANGED
    floor = compare_metric("t", "m", base, _lognormal(2, 200, 1.5), 10.0, 500.0)
    assert floor.status == UNCHANGED and "noise floor" in floor.reason
    few = compare_metric("t", "m", _lognormal(1, 10), _lognormal(2, 10, 4.0), 10.0, 1.0)
    assert few.status == INSUFFICIENT and "needs >= 20 samples" in few.reason


def test_tail_noise_without_a_shift_is_not_significant() -> None:
    # Same distribution; the new run's p95 happens to be >10 % higher (a few slow
    # outliers): percent alone would fail the build, the U test does not.
    rng = random.Random(7)
    values = [rng.lognormvariate(-3.9, 0.25) for _ in range(200)]
    new_values = sorted(values)
    new_values[-15:] = [v * 1.6 for v in new_values[-15:]]
    result = compare_metric("t", "m", _hist(values), _hist(new_values), 10.0, 1.0)
    assert result.change_pct is not None and result.change_pct > 10
    assert result.status == UNCHANGED and "the tail moved, not the body" in result.reason


def _results(tests: dict[str, float], cpu: str = "cpu A") -> SessionResults:
    results = SessionResults()
    results.environment = dict(results.environment, cpu_model=cpu)
    for i, (nodeid, scale) in enumerate(sorted(tests.items())):
        tracker = PerformanceTracker(nodeid)
        rng = random.Random(i)
        for _ in range(100):
            tracker.record("api_response_times", rng.lognormvariate(-4, 0.2) * scale)
        tracker.record("memory_usage", 50.0)  # not a latency: never compared
        results.add(PerfResult(nodeid=nodeid, tracker=tracker))
    return results


def test_compare_lists_new_and_vanished_and_mismatch() -> None:
    old = _results({"a": 1.0, "gone": 1.0})
    new = _results({"a": 1.0, "fresh": 1.0}, cpu="cpu B")
    result = compare(old, new)
    assert result.new_tests == ["fresh"] and result.vanished_tests == ["gone"]
    assert [m.metric for m in result.metrics] == ["api_response_times"]
    assert result.mismatches == ["environment cpu_model: baseline 'cpu A', now 'cpu B'"]
    assert not result.failed
    refused = compare(old, new, mismatch="refuse")
    assert refused.refused and refused.failed and not refused.metrics


def _routes(order_scale: float, orders: int = 40) -> SessionResults:
    """One test: 2000 fast balance reads and a few orders, ``order_scale`` times as slow."""
    results = SessionResults(environment={"cpu_model": "cpu A"})
    tracker = PerformanceTracker()
    rng = random.Random(7)
    for _ in range(2000):
        tracker.record("api_response_times", rng.lognormvariate(-4.6, 0.2), "GET /balance")
    for _ in range(orders):
        tracker.record(
            "api_response_times", rng.lognormvariate(-3.9, 0.2) * order_scale, "POST /orders"
        )
    tracker.record("api_response_times", 0.01)  # untagged samples count in the whole only
    results.add(PerfResult(nodeid="t", tracker=tracker))
    return results


def test_a_slower_route_fails_even_when_the_whole_metric_does_not_move() -> None:
    result = compare(_routes(1.0), _routes(3.0))
    by_label = {m.label: m for m in result.metrics}
    assert sorted(by_label) == [
        "api_response_times",
        "api_response_times[GET /balance]",
        "api_response_times[POST /orders]",
    ]
    # The orders are 2 % of the samples: the whole's p95 does not see them triple.
    assert by_label["api_response_times"].status == UNCHANGED
    assert by_label["api_response_times[GET /balance]"].status == UNCHANGED
    orders = by_label["api_response_times[POST /orders]"]
    assert orders.status == REGRESSION and orders.tag == "POST /orders"
    assert result.failed
    # Too few samples of a route: its own comparison is left out, the whole stays.
    few = compare(_routes(1.0, orders=10), _routes(3.0, orders=10))
    assert [m.label for m in few.metrics] == [
        "api_response_times",
        "api_response_times[GET /balance]",
    ]
    # A route holding every sample is the whole: compared once.
    single = SessionResults(environment={"cpu_model": "cpu A"})
    tracker = PerformanceTracker()
    for i in range(100):
        tracker.record("api_response_times", 0.01 + i * 1e-5, "GET /balance")
    single.add(PerfResult(nodeid="t", tracker=tracker))
    assert [m.label for m in compare(single, single).metrics] == ["api_response_times"]


def _by_route(routes: dict[str, int], slow: str = "", scale: float = 3.0) -> SessionResults:
    """One test recording ``routes`` (tag -> samples); ``slow`` is ``scale`` times as slow."""
    results = SessionResults(environment={"cpu_model": "cpu A"})
    tracker = PerformanceTracker()
    rng = random.Random(7)
    for tag, n in routes.items():
        for _ in range(n):
            value = rng.lognormvariate(-4.6, 0.2) * (scale if tag == slow else 1.0)
            tracker.record("api_response_times", value, tag)
            tracker.record("http_ttfb_times", value / 2, tag)  # a phase: compared whole only
    results.add(PerfResult(nodeid="t", tracker=tracker))
    return results


def test_routes_in_one_run_only_are_listed_as_new_or_vanished_never_failed() -> None:
    old = _by_route({"GET /balance": 200, "GET /legacy": 30, "GET /thin": 25, "GET /retry": 1})
    new = _by_route({"GET /balance": 200, "POST /cancel": 30, "GET /thin": 3, "GET /health": 2})
    result = compare(old, new)
    one_sided = {m.label: m for m in result.metrics if m.status in (NEW, VANISHED)}
    # A route with fewer than MIN_SAMPLES on its side (one retry, two health checks) is
    # noise: not listed. Neither are the request phases' routes.
    assert sorted(one_sided) == [
        "api_response_times[GET /legacy]",
        "api_response_times[GET /thin]",
        "api_response_times[POST /cancel]",
    ]
    cancel = one_sided["api_response_times[POST /cancel]"]
    assert (cancel.status, cancel.tag, cancel.old_n, cancel.new_n) == (NEW, "POST /cancel", 0, 30)
    assert cancel.old_p95 is None and cancel.new_p95 is not None
    assert cancel.reason == "route new in this run"
    legacy = one_sided["api_response_times[GET /legacy]"]
    assert (legacy.status, legacy.old_n, legacy.new_n) == (VANISHED, 30, 0)
    # 25 -> 3 samples: the route the gate compared is gone; its 3 samples say so.
    thin = one_sided["api_response_times[GET /thin]"]
    assert (thin.status, thin.old_n, thin.new_n) == (VANISHED, 25, 3)
    assert thin.reason == "route vanished in this run (only 3 sample(s) now, < 20)"
    assert not result.failed and not result.regressions
    assert summary_line(result) == (
        "0 regression(s), 0 improved, 2 unchanged, 0 insufficient data, 0 not comparable, "
        "1 new route(s), 2 vanished route(s), 0 new test(s), 0 vanished test(s)"
    )
    # In the JSON, among the metrics; a comparison stored before routes were listed
    # (no tag, no label, no one-sided routes) still loads.
    stored = result.to_dict()
    again = Comparison.from_dict(json.loads(json.dumps(stored)))
    assert again.metrics == result.metrics
    stored["metrics"] = [
        {k: v for k, v in m.items() if k not in ("tag", "label")}
        for m in stored["metrics"]
        if m["tag"] is None
    ]
    older = Comparison.from_dict(stored)
    assert [m.label for m in older.metrics] == ["api_response_times", "http_ttfb_times"]


def test_a_metric_slower_whole_and_by_route_counts_as_one_regression() -> None:
    old = _by_route({"GET /balance": 200, "POST /orders": 100})
    result = compare(old, _by_route({"GET /balance": 200, "POST /orders": 100}, "GET /balance"))
    assert [(m.label, m.status) for m in result.regressions] == [
        ("api_response_times", REGRESSION),
        ("api_response_times[GET /balance]", REGRESSION),
    ]
    # The request phase moved with it: shown, not gated (its requests' latency is).
    (ttfb,) = [m for m in result.metrics if m.metric == "http_ttfb_times"]
    assert ttfb.status == UNCHANGED and ttfb.reason.startswith("request phase, not gated")
    assert result.metric_verdicts() == {
        ("t", "api_response_times"): REGRESSION,
        ("t", "http_ttfb_times"): UNCHANGED,
    }
    # One metric regressed, in two comparisons; the unchanged route of the regressed
    # metric is not also counted "unchanged".
    assert summary_line(result) == (
        "1 regression(s) (2 comparisons: 1 whole metric, 1 route), 0 improved, 1 unchanged, "
        "0 insufficient data, 0 not comparable, 0 new test(s), 0 vanished test(s)"
    )
    # One route slower, another faster, the whole unchanged: the metric is one
    # regression, not also an improvement (the improved route is still listed).
    routes = {"GET /balance": 2000, "POST /orders": 40, "GET /x": 40}
    mixed = compare(_by_route(routes, "GET /x"), _by_route(routes, "POST /orders"))
    assert {m.label: m.status for m in mixed.metrics} == {
        "api_response_times": UNCHANGED,
        "api_response_times[GET /balance]": UNCHANGED,
        "api_response_times[GET /x]": IMPROVEMENT,
        "api_response_times[POST /orders]": REGRESSION,
        "http_ttfb_times": UNCHANGED,
    }
    assert summary_line(mixed).startswith("1 regression(s), 0 improved, 1 unchanged, ")


def test_runs_measured_under_tracemalloc_are_not_compared_with_untraced_ones() -> None:
    old = _results({"a": 1.0})
    new = _results({"a": 4.0})  # four times slower: a regression if it were comparable
    new.tests["a"].tracker.flags.add("tracemalloc")
    result = compare(old, new)
    assert [(m.status, m.reason) for m in result.metrics] == [
        (INCOMPARABLE, "measured under tracemalloc now, under nothing in the baseline")
    ]
    assert not result.failed
    new.tests["a"].tracker.flags.clear()
    assert compare(old, new).failed  # the same data, comparable: the regression is caught


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "corrupt, not valid JSON \\(line 1, column 2"),
        ('{"tool": "pytest-axiomperf", "tests": {', "not valid JSON \\(it ends early: trunc"),
        (" \n", "the file is empty, not a results file"),
        ("[1, 2]", "not a pytest-axiomperf results file"),
        ('{"tool": "other"}', "not a pytest-axiomperf results file"),
        ('{"tool": "pytest-axiomperf", "format_version": 99}', "format version 99"),
        ('{"tool": "pytest-axiomperf", "format_version": 1, "tests": 3}', "incompatible"),
    ],
)
def test_load_bad_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "base.json"
    path.write_text(content)
    with pytest.raises(BaselineError, match=message) as info:
        load_results(path)
    assert str(path) in str(info.value)


# -- the plugin ----------------------------------------------------------------------

GATED = """
import os, random, pytest

SCALE = float(os.environ.get("AXIOM_TEST_SCALE", "1"))

@pytest.mark.latency_budget(p95="1s")
def test_orders(axiom_tracker):
    rng = random.Random(42)  # the same samples every run: only SCALE moves them
    for _ in range(100):
        axiom_tracker.record("api_response_times", rng.lognormvariate(-4.6, 0.2) * SCALE)

def test_stream(axiom_tracker):
    rng = random.Random(43)
    for _ in range(100):
        axiom_tracker.record("websocket_latency", rng.lognormvariate(-6, 0.2))
"""


@pytest.fixture
def gated(user_project: pytest.Pytester) -> pytest.Pytester:
    user_project.makepyfile(test_gate=GATED)
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-save=baseline.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "axiom-perf wrote the baseline: baseline.json (compare later runs with "
            "--axiom-perf-compare=baseline.json)"
        ]
    )
    assert (user_project.path / "baseline.json").is_file()
    return user_project


def test_same_latency_passes(gated: pytest.Pytester) -> None:
    result = gated.runpytest(
        "--axiom-perf", "--axiom-perf-compare=baseline.json", "--axiom-perf-json=new.json"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["axiom-perf wrote the results (JSON): new.json"])
    result.stdout.fnmatch_lines(
        [
            "Baseline comparison with baseline.json (regression: one run a side: p95 and median*",
            "  unchanged * test_gate.py::test_orders  api_response_times p95 * -> * (+0.0%)*",
            "Result: 0 regression(s), 0 improved, 2 unchanged, 0 insufficient data, *",
        ]
    )
    data = json.loads((gated.path / "new.json").read_text())
    assert data["comparison"]["baseline"] == "baseline.json"
    per_test = data["tests"]["test_gate.py::test_orders"]["extra"]["comparison"]
    assert [m["status"] for m in per_test] == ["unchanged"]


def test_four_times_slower_fails_the_run_and_names_the_test(
    gated: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AXIOM_TEST_SCALE", "4")
    result = gated.runpytest(
        "--axiom-perf", "--axiom-perf-compare=baseline.json", "--axiom-perf-json=new.json"
    )
    result.assert_outcomes(passed=2)  # the tests themselves pass: the gate fails the run
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "  REGRESSION * test_gate.py::test_orders  api_response_times p95 * (+3??.?%)*",
            "*unchanged * test_gate.py::test_stream *",
            "Result: 1 regression(s), *",
            "*= axiom-perf: performance regression in test_gate.py::test_orders =*",
        ]
    )
    data = json.loads((gated.path / "new.json").read_text())
    orders = data["tests"]["test_gate.py::test_orders"]["extra"]["comparison"]
    assert orders[0]["status"] == "regression" and orders[0]["change_pct"] > 250
    stream = data["tests"]["test_gate.py::test_stream"]["extra"]["comparison"]
    assert stream[0]["status"] == "unchanged"


ROUTED = """
import os, random

ORDERS_SCALE = float(os.environ.get("AXIOM_ORDERS_SCALE", "1"))

def test_bot(axiom_tracker):
    rng = random.Random(42)
    for _ in range(1000):
        axiom_tracker.record("api_response_times", rng.lognormvariate(-4.6, 0.2), "GET /balance")
    for _ in range(30):
        axiom_tracker.record(
            "api_response_times", rng.lognormvariate(-4.0, 0.2) * ORDERS_SCALE, "POST /orders"
        )
"""


def save_then_compare(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> pytest.RunResult:
    """Save a baseline of the project's tests, change them through ``variable``, compare:
    the second run, which writes out.md, out.html and out.json."""
    assert project.runpytest("--axiom-perf", "--axiom-perf-save=base.json").ret == 0
    monkeypatch.setenv(variable, value)
    return project.runpytest(
        "--axiom-perf",
        "--axiom-perf-compare=base.json",
        "--axiom-perf-markdown=out.md",
        "--axiom-perf-html=out.html",
        "--axiom-perf-json=out.json",
    )


def test_a_slower_route_fails_the_run_by_name(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_project.makepyfile(test_routes=ROUTED)
    result = save_then_compare(user_project, monkeypatch, "AXIOM_ORDERS_SCALE", "3")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "  REGRESSION * test_routes.py::test_bot  api_response_times[[]POST /orders[]] p95 *",
            "*unchanged * test_routes.py::test_bot  api_response_times p95 *",
            "*unchanged * test_routes.py::test_bot  api_response_times[[]GET /balance[]] p95 *",
        ]
    )
    markdown = (user_project.path / "out.md").read_text()
    assert "| **regression** | `test_routes.py::test_bot` | api_response_times[POST /orders] |" in (
        markdown
    )
    # The test's plot of the whole metric names the route that moved beside it.
    html = (user_project.path / "out.html").read_text()
    assert "<br>regression: api_response_times[POST /orders] p95 " in html
    data = json.loads((user_project.path / "out.json").read_text())
    labels = {
        m["label"]: m["status"]
        for m in data["tests"]["test_routes.py::test_bot"]["extra"]["comparison"]
    }
    assert labels["api_response_times[POST /orders]"] == "regression"
    assert labels["api_response_times"] == "unchanged"


CHANGING_ROUTES = """
import os, random

# tag -> samples: the second run ports the bot from /legacy to /cancel; a retry and a
# health check are one-off calls, too few to be a route.
ROUTES = {"GET /balance": 200, "GET /legacy": 30, "GET /retry": 1}
if os.environ.get("AXIOM_ROUTES") == "v2":
    ROUTES = {"GET /balance": 200, "POST /cancel": 30, "GET /health": 1}
SLOW = float(os.environ.get("AXIOM_BALANCE_SCALE", "1"))

def test_bot(axiom_tracker):
    rng = random.Random(42)
    for tag, n in ROUTES.items():
        scale = SLOW if tag == "GET /balance" else 1.0
        for _ in range(n):
            axiom_tracker.record("api_response_times", rng.lognormvariate(-4.6, 0.2) * scale, tag)
"""


def test_routes_in_one_run_only_are_shown_and_do_not_fail(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_project.makepyfile(test_routes=CHANGING_ROUTES)
    result = save_then_compare(user_project, monkeypatch, "AXIOM_ROUTES", "v2")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "  new route         test_routes.py::test_bot  api_response_times[[]POST /cancel[]] "
            "p95 - -> *  n=0->30; route new in this run",
            "  vanished route    test_routes.py::test_bot  api_response_times[[]GET /legacy[]] "
            "p95 * -> -  n=30->0; route vanished in this run",
            "Result: 0 regression(s), 0 improved, 1 unchanged, 0 insufficient data, "
            "0 not comparable, 1 new route(s), 1 vanished route(s), 0 new test(s), "
            "0 vanished test(s)",
        ]
    )
    section = result.stdout.str().split("Baseline comparison with")[1]
    assert "GET /retry" not in section and "GET /health" not in section  # 1 sample: noise
    markdown = (user_project.path / "out.md").read_text()
    assert "| **new route** | `test_routes.py::test_bot` | api_response_times[POST /cancel] |" in (
        markdown
    )
    assert (
        "| **vanished route** | `test_routes.py::test_bot` | api_response_times[GET /legacy] |"
        in markdown
    )
    html = (user_project.path / "out.html").read_text()
    assert "<br>new route: api_response_times[POST /cancel] p95 - -&gt; " in html
    assert "<br>vanished route: api_response_times[GET /legacy] p95 " in html
    data = json.loads((user_project.path / "out.json").read_text())
    one_sided = {
        m["label"]: (m["status"], m["tag"], m["old_n"], m["new_n"])
        for m in data["comparison"]["metrics"]
        if m["status"] in ("new", "vanished")
    }
    assert one_sided == {
        "api_response_times[POST /cancel]": ("new", "POST /cancel", 0, 30),
        "api_response_times[GET /legacy]": ("vanished", "GET /legacy", 30, 0),
    }
    per_test = data["tests"]["test_routes.py::test_bot"]["extra"]["comparison"]
    assert {m["label"] for m in per_test} >= set(one_sided)


def test_one_slow_route_that_moves_its_metric_is_one_regression(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_project.makepyfile(test_routes=CHANGING_ROUTES)
    result = save_then_compare(user_project, monkeypatch, "AXIOM_BALANCE_SCALE", "3")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "  REGRESSION * test_routes.py::test_bot  api_response_times p95 *",
            "  REGRESSION * test_routes.py::test_bot  api_response_times[[]GET /balance[]] p95 *",
            "Result: 1 regression(s) (2 comparisons: 1 whole metric, 1 route), 0 improved, "
            "0 unchanged, *",
            "*= axiom-perf: performance regression in test_routes.py::test_bot =*",
        ]
    )
    markdown = (user_project.path / "out.md").read_text()
    assert ": 1 regression(s) (2 comparisons: 1 whole metric, 1 route), 0 improved" in markdown
    # Where a reviewer looks first: one regression, its route named beside it; both
    # comparisons stay in the comparison table.
    assert markdown.startswith("## pytest-axiomperf: FAIL (0 over budget, 1 regression, ")
    row = "| **REGRESSED** | `test_routes.py::test_bot` | REGRESSION api_response_times p95 "
    assert row in markdown  # (no test has a budget: no budgets column)
    assert " (and 1 route) |" in markdown
    assert markdown.count("| **regression** | `test_routes.py::test_bot` | ") == 2


def test_new_and_vanished_tests_are_listed(gated: pytest.Pytester) -> None:
    gated.makepyfile(
        test_gate="""
        def test_orders(axiom_tracker):
            for _ in range(30):
                axiom_tracker.record("api_response_times", 0.01)

        def test_brand_new(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.01)
        """
    )
    result = gated.runpytest("--axiom-perf", "--axiom-perf-compare=baseline.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "  new test          test_gate.py::test_brand_new",
            "  vanished test     test_gate.py::test_stream",
            "Result: *, 1 new test(s), 1 vanished test(s)",
        ]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "baseline missing.json: no such file"),
        ("{truncated", "baseline missing.json: corrupt, not valid JSON (line 1*"),
        (
            '{"tool": "pytest-axiomperf", "format_version": 2, "tests": {}}',
            "baseline missing.json: incompatible or corrupt (format version 2, *",
        ),
    ],
)
def test_bad_baseline_is_a_usage_error(
    user_project: pytest.Pytester, content: str | None, message: str
) -> None:
    user_project.makepyfile(GATED)
    if content is not None:
        (user_project.path / "missing.json").write_text(content)
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-compare=missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-axiomperf: {message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert " passed" not in result.stdout.str()  # nothing ran


def test_environment_mismatch_warns_or_refuses(gated: pytest.Pytester) -> None:
    path = gated.path / "baseline.json"
    data = json.loads(path.read_text())
    data["environment"]["cpu_model"] = "Some Other CPU"
    path.write_text(json.dumps(data))
    warned = gated.runpytest("--axiom-perf", "--axiom-perf-compare=baseline.json")
    assert warned.ret == 0
    warned.stdout.fnmatch_lines(["  WARNING: environment cpu_model: baseline 'Some Other CPU', *"])
    refused = gated.runpytest(
        "--axiom-perf", "--axiom-perf-compare=baseline.json", "--axiom-perf-mismatch=refuse"
    )
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        ["ERROR: pytest-axiomperf: baseline baseline.json was measured elsewhere*cpu_model*"]
    )


def test_exchange_profile_mismatch_refused_at_the_end(gated: pytest.Pytester) -> None:
    path = gated.path / "baseline.json"
    data = json.loads(path.read_text())
    data["tests"]["test_gate.py::test_orders"]["extra"]["exchange_profile"] = {"latency": 0.05}
    path.write_text(json.dumps(data))
    result = gated.runpytest(
        "--axiom-perf", "--axiom-perf-compare=baseline.json", "--axiom-perf-mismatch=refuse"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        [
            "  REFUSED: test_gate.py::test_orders: exchange latency profile: "
            "baseline {'latency': 0.05}, now None",
            "  the comparison was not made (mismatch=refuse)*",
            "*= axiom-perf: baseline comparison refused =*",
        ]
    )


EXCHANGE = """
import os, time, urllib.request

LATENCY = float(os.environ.get("AXIOM_TEST_LATENCY", "0"))

def test_health(axiom_exchange, axiom_tracker):
    if LATENCY:
        axiom_exchange.configure(latency=LATENCY)
    request = urllib.request.Request(
        axiom_exchange.base_url + "/health",
        headers={"Authorization": "Bearer " + axiom_exchange.token},
    )
    for _ in range(25):
        with axiom_tracker.measure("api_response_times"):
            urllib.request.urlopen(request, timeout=5).read()
"""


def test_real_exchange_profile_change_warns_by_default(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_project.makepyfile(test_ex=EXCHANGE)
    saved = user_project.runpytest_subprocess("--axiom-perf", "--axiom-perf-save=base.json")
    assert saved.ret == 0
    # This test is about the profile warning: the machine guards (which two processes'
    # calibrations or neighbours on a busy machine could trip) are left out, as for a file
    # saved before them.
    path = user_project.path / "base.json"
    data = json.loads(path.read_text())
    del data["environment"]["calibration"]
    del data["environment"]["neighbours"]
    path.write_text(json.dumps(data))
    monkeypatch.setenv("AXIOM_TEST_LATENCY", "0.02")
    result = user_project.runpytest_subprocess("--axiom-perf", "--axiom-perf-compare=base.json")
    # A 20 ms server delay on ~1 ms requests is a regression, measured under another
    # exchange profile: the report says so next to it.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "  WARNING: test_ex.py::test_health: exchange latency profile: "
            "latency baseline 0.0, now 0.02",
            "  REGRESSION * test_ex.py::test_health  api_response_times p95 *",
        ]
    )
