"""pytest-xdist: one merged report and JSON, equal count for count to a run without xdist."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("xdist")

MANY = """
import pytest

@pytest.mark.parametrize("i", range(8))
@pytest.mark.latency_budget(p99="1s")
def test_calls(axiom_tracker, i):
    for k in range(50 + i):
        axiom_tracker.record("api_response_times", 0.001 * (1 + (k * 7 + i) % 13), tag=f"t{i % 3}")
    axiom_tracker.record_error("HTTP 5xx", n=i)

def test_plain():
    pass
"""


def _counts(data: dict[str, Any]) -> dict[str, Any]:
    """Per test: outcome, per metric count and p95, error counts; then the session's counts."""
    tests = {
        nodeid: (
            t["outcome"],
            {m: (v["count"], v["p95"]) for m, v in t["metrics"].items()},
            t["errors"],
        )
        for nodeid, t in data["tests"].items()
    }
    session = {
        m: v["count"]
        for m, v in data["session"]["metrics"].items()
        if m not in ("memory_usage", "cpu_usage")
    }
    return {"tests": tests, "session": session, "errors": data["session"]["errors"]}


def test_two_workers_merge_to_the_same_results(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(MANY)
    serial = user_project.runpytest_subprocess(
        "--axiom-perf", "--axiom-perf-json=serial.json", "-p", "no:xdist"
    )
    serial.assert_outcomes(passed=9)
    result = user_project.runpytest_subprocess(
        "-n",
        "2",
        "--axiom-perf",
        "--axiom-perf-json=xdist.json",
        "--axiom-perf-save=base.json",
        "-v",
    )
    result.assert_outcomes(passed=9)
    out = result.stdout.str()
    assert out.count("= axiom-perf report =") == 1  # the controller's, once
    result.stdout.fnmatch_lines(
        [
            "PASS: 0 over budget, 0 regressions, 0 not comparable (8 tests, 8 with budgets)",
            "API Response Times (n=428):",
        ]
    )
    merged = json.loads((user_project.path / "xdist.json").read_text())
    alone = json.loads((user_project.path / "serial.json").read_text())
    assert _counts(merged) == _counts(alone)
    assert len(merged["tests"]) == 8
    # Each test's time series came from its worker on the test's report.
    for test in merged["tests"].values():
        assert test["tracker"]["timeline"]["series"], test["nodeid"]
    # Both workers' resource samples reached the controller (>= 2 samples each).
    assert merged["session"]["metrics"]["memory_usage"]["count"] >= 4
    assert json.loads((user_project.path / "base.json").read_text())["tests"] == merged["tests"]


def test_a_crashed_workers_finished_tests_are_kept(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        test_crash="""
        import os

        def test_a_first(axiom_tracker):
            for _ in range(30):
                axiom_tracker.record("api_response_times", 0.002)

        def test_b_crashes():
            os._exit(3)
        """
    )
    result = user_project.runpytest_subprocess(
        "-n", "2", "--dist", "loadfile", "--axiom-perf", "--axiom-perf-json=out.json"
    )
    result.stdout.fnmatch_lines(["*test_b_crashes*"])
    assert result.ret != 0
    data = json.loads((user_project.path / "out.json").read_text())
    kept = data["tests"]["test_crash.py::test_a_first"]["metrics"]["api_response_times"]
    assert kept["count"] == 30


def test_quiet_without_perf_tests(user_project: pytest.Pytester) -> None:
    user_project.makepyfile("def test_plain():\n    assert True\n")
    result = user_project.runpytest_subprocess("-n", "2", "--axiom-perf", "-W", "error")
    result.assert_outcomes(passed=1)
    assert "warnings summary" not in result.stdout.str()
    assert "Warning" not in result.stderr.str()
    assert result.ret == 0


BUSY = """
import threading

import pytest

@pytest.mark.parametrize("i", range(2))
def test_holds_memory(i):
    ballast = bytearray(60 * 2**20)  # touched: resident in this worker's process
    for k in range(0, len(ballast), 4096):
        ballast[k] = 1
    threading.Event().wait(1.5)  # both workers hold it while several samples are taken
    assert ballast[0] == 1
"""


def test_resources_are_the_runs_totals_over_workers(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(BUSY)
    common = ("--axiom-perf", "--axiom-perf-sample-interval=0.1", "-v")  # -v: the guide's report
    alone = user_project.runpytest_subprocess(*common, "--axiom-perf-json=serial.json", "-n", "0")
    alone.assert_outcomes(passed=2)
    result = user_project.runpytest_subprocess(*common, "--axiom-perf-json=xdist.json", "-n", "2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "Memory Usage (n=*, total of 2 xdist workers):",
            "CPU Usage (n=*, total of 2 xdist workers):",
        ]
    )
    serial = json.loads((user_project.path / "serial.json").read_text())
    xdist = json.loads((user_project.path / "xdist.json").read_text())
    assert (serial["workers"], xdist["workers"]) == (0, 2)
    # One process holding 60 MB of ballast at a time, against two at once: the run's
    # total peak is far above any single process's (one worker's would be about equal).
    one = serial["session"]["metrics"]["memory_usage"]["max"]
    both = xdist["session"]["metrics"]["memory_usage"]["max"]
    assert both > 1.5 * one, (one, both)
    assert "total of" not in alone.stdout.str()


def test_run_totals_add_up_the_workers_running_at_each_moment() -> None:
    from pytest_axiomperf.sampler import record_run_totals
    from pytest_axiomperf.tracker import PerformanceTracker

    tracker = PerformanceTracker("session")
    record_run_totals(
        tracker,
        {
            "gw0": [[10.0, 100.0, None], [11.0, 110.0, 50.0], [12.0, 120.0, 60.0]],
            "gw1": [[10.5, 200.0, None], [11.5, 210.0, 90.0]],
        },
    )
    memory = tracker.stats("memory_usage")
    cpu = tracker.stats("cpu_usage")
    # Moments 10 (gw0 alone), 10.5, 11, 11.5 (both), 12 (gw0 alone, gw1 has finished).
    assert memory.count == 5
    assert memory.max == pytest.approx(120.0 + 210.0, rel=0.01)
    assert memory.min == pytest.approx(100.0, rel=0.01)
    assert cpu.max == pytest.approx(60.0 + 90.0, rel=0.01)
