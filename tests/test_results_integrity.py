"""Nothing lost, nothing unreadable: what a run records and writes survives as written.

Each test here is a way results were once lost or written wrong: an int sample, an
infinite one, a run cut short saving a baseline, an output that could not be written
passing as green, a symlink replaced, a budget mark added after collection.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from pytest_axiomperf import PerformanceTracker
from pytest_axiomperf.baseline import load_results, save_results
from pytest_axiomperf.histogram import MAX_VALUE, Histogram
from pytest_axiomperf.profiling import profile_filename
from pytest_axiomperf.results import SessionResults, write_text_atomic
from pytest_axiomperf.results import TestResult as PerfResult

# -- recording: every statistic is a float, every sample one a file can hold --------------


def test_int_samples_count_as_floats() -> None:
    tracker = PerformanceTracker()
    tracker.record("api_response_times", 1)
    tracker.record("api_response_times", 0)
    stats = tracker.stats("api_response_times")
    assert stats.get("p95") == 1.0 and stats.get("min") == 0.0
    assert all(type(stats.get(s)) is float for s in ("p50", "p95", "max", "min", "mean"))
    with pytest.raises(KeyError):
        stats.get("count")  # not a statistic a budget can bound


INT_BUDGET = """
import pytest

@pytest.mark.latency_budget(p95=0.5)
def test_int_sample(axiom_tracker):
    axiom_tracker.record("api_response_times", 1)

@pytest.mark.latency_budget(p95=0.5)
def test_zero(axiom_tracker):
    axiom_tracker.record("api_response_times", 0)
"""


def test_an_int_sample_under_a_latency_budget_is_checked_and_kept(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(test_ints=INT_BUDGET)
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-json=out.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*api_response_times p95 = 1.00s > 500.00ms (n=1*"])
    assert "KeyError" not in result.stdout.str()
    tests = json.loads((user_project.path / "out.json").read_text())["tests"]
    assert set(tests) == {"test_ints.py::test_int_sample", "test_ints.py::test_zero"}


@pytest.mark.parametrize("bad", [math.inf, 1e308, 1e39, 10**400])
def test_values_no_histogram_can_hold_are_refused_at_record_time(bad: float) -> None:
    with pytest.raises(ValueError, match=r"finite and <= 3\.4e\+38"):
        PerformanceTracker().record("api_response_times", bad)
    with pytest.raises(ValueError, match="finite"):
        Histogram().record(bad)


def test_text_is_refused_as_not_a_number() -> None:
    with pytest.raises(TypeError, match="cannot record '12ms' for 'm': not a number"):
        PerformanceTracker().record("m", "12ms")  # type: ignore[arg-type]


def test_the_largest_values_keep_sums_finite_and_read_back(tmp_path: Path) -> None:
    tracker = PerformanceTracker("t.py::t")
    for _ in range(3):
        tracker.record("api_response_times", MAX_VALUE)
    results = SessionResults()
    results.add(PerfResult("t.py::t", tracker))
    save_results(tmp_path / "b.json", results)
    back = load_results(tmp_path / "b.json").tests["t.py::t"].tracker
    assert back.stats("api_response_times").p95 == MAX_VALUE
    assert math.isfinite(back.histogram("api_response_times").total)


def test_a_raw_buffer_value_beyond_the_range_is_clamped_not_poisoning_sums() -> None:
    hist = Histogram()
    buf, fold = hist.raw_buffer()
    buf.extend([1e300, 1e300, 0.5])
    fold()
    assert hist.max == MAX_VALUE and math.isfinite(hist.total) and math.isfinite(hist.std_dev)


def test_zeros_read_zero_not_the_smallest_bucket_edge() -> None:
    hist = Histogram()
    for value in (0.0, -0.0, 0.0, 0.25):
        hist.record(value)
    assert hist.percentiles([50, 75]) == {50: 0.0, 75: 0.0}
    assert hist.percentile(100) == 0.25
    assert math.copysign(1.0, hist.min) == 1.0  # -0.0 counts as 0.0
    assert hist.to_dict()["buckets"][0] == [0, 3]


ZEROS = """
def test_zeros(axiom_tracker):
    for _ in range(5):
        axiom_tracker.record("api_response_times", -0.0)
        axiom_tracker.record("api_response_times", 0.0)
"""


def test_an_all_zero_metric_reads_zero_in_json_and_junit(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_z=ZEROS)
    result = user_project.runpytest(
        "--axiom-perf", "--axiom-perf-json=out.json", "--junitxml=junit.xml"
    )
    result.assert_outcomes(passed=1)
    tests = json.loads((user_project.path / "out.json").read_text())["tests"]
    stats = tests["test_z.py::test_zeros"]["metrics"]["api_response_times"]
    assert (stats["p50"], stats["p95"], stats["p99"], stats["max"]) == (0.0, 0.0, 0.0, 0.0)
    junit = (user_project.path / "junit.xml").read_text()
    assert 'name="axiomperf.api_response_times.p95" value="0.0"' in junit
    assert "e-41" not in junit


# -- writing: a file the next run cannot read is never written ------------------------------


def test_a_results_file_that_would_not_read_back_is_not_written(tmp_path: Path) -> None:
    results = SessionResults()
    tracker = PerformanceTracker("t.py::t")
    tracker.record("api_response_times", 0.1)
    results.add(PerfResult("t.py::t", tracker))
    results.exchange_profile = {"latency": math.inf}  # written as null: still readable
    save_results(tmp_path / "ok.json", results)
    tracker.tables.append({"title": "bad", "columns": ["a"], "rows": [[1, 2]]})
    target = tmp_path / "bad.json"
    with pytest.raises(Exception, match="not written, it would not read back"):
        save_results(target, results)
    assert not target.exists()


SUITE = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_orders(axiom_tracker, n):
    for _ in range(30):
        axiom_tracker.record("api_response_times", 0.001)
"""

INTERRUPTED = """
import pytest

def test_first(axiom_tracker):
    axiom_tracker.record("api_response_times", 0.001)

def test_ctrl_c():
    raise KeyboardInterrupt

def test_never_runs(axiom_tracker):
    axiom_tracker.record("api_response_times", 0.001)
"""


def test_an_interrupted_run_does_not_overwrite_the_baseline(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_suite=SUITE)
    assert user_project.runpytest("--axiom-perf", "--axiom-perf-save=base.json").ret == 0
    before = (user_project.path / "base.json").read_bytes()
    assert len(json.loads(before)["tests"]) == 4
    user_project.makepyfile(test_suite=INTERRUPTED)
    # In a process of its own: in-process, the KeyboardInterrupt would reach this test run.
    result = user_project.runpytest_subprocess(
        "--axiom-perf", "--axiom-perf-save=base.json", "--axiom-perf-json=cut.json"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["axiom-perf saved no baseline: the run was interrupted (base.json is untouched)"]
    )
    assert (user_project.path / "base.json").read_bytes() == before
    # The JSON written of it says so, for whoever reads it later.
    notes = json.loads((user_project.path / "cut.json").read_text())["notes"]
    assert any("the run was cut short" in note for note in notes)


def test_a_run_stopped_by_maxfail_does_not_overwrite_the_baseline(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(test_suite=SUITE)
    assert user_project.runpytest("--axiom-perf", "--axiom-perf-save=base.json").ret == 0
    before = (user_project.path / "base.json").read_bytes()
    user_project.makepyfile(
        test_suite="def test_a():\n    assert False\n\ndef test_b(axiom_tracker):\n    pass\n"
    )
    result = user_project.runpytest("-x", "--axiom-perf", "--axiom-perf-save=base.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["axiom-perf saved no baseline: the run was interrupted *"])
    assert (user_project.path / "base.json").read_bytes() == before


@pytest.mark.parametrize(
    ("option", "blocker"),
    [
        ("--axiom-perf-json=out", "directory"),
        ("--axiom-perf-save=out", "directory"),
        ("--axiom-perf-markdown=out", "directory"),
        # A FIFO stands for a device node here: replacing /dev/null would harm the machine.
        ("--axiom-perf-html=fifo", "device, pipe or socket"),
    ],
)
def test_an_output_that_cannot_be_written_fails_a_green_run(
    user_project: pytest.Pytester, option: str, blocker: str
) -> None:
    user_project.makepyfile(test_suite=SUITE)
    (user_project.path / "out").mkdir()
    os.mkfifo(user_project.path / "fifo")
    result = user_project.runpytest("--axiom-perf", option)
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    path = option.split("=", 1)[1]
    result.stdout.fnmatch_lines([f"axiom-perf could not write {path}: *{blocker}*"])
    assert (user_project.path / "out").is_dir() and (user_project.path / "fifo").is_fifo()


def test_a_symlinked_baseline_is_written_through_to_its_target(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(test_suite=SUITE)
    (user_project.path / "shared").mkdir()
    target = user_project.path / "shared" / "baseline.json"
    target.write_text("old")
    os.symlink(target, user_project.path / "base.json")
    assert user_project.runpytest("--axiom-perf", "--axiom-perf-save=base.json").ret == 0
    assert (user_project.path / "base.json").is_symlink()
    assert len(json.loads(target.read_text())["tests"]) == 4


def test_atomic_writes_refuse_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="a device, pipe or socket: refusing to replace it"):
        write_text_atomic(tmp_path / "fifo", "x")
    assert (tmp_path / "fifo").is_fifo()
    # A dangling symlink is written through: its target is created.
    os.symlink(tmp_path / "made.txt", tmp_path / "link")
    write_text_atomic(tmp_path / "link", "x")
    assert (tmp_path / "made.txt").read_text() == "x" and (tmp_path / "link").is_symlink()


PROFILED = """
import pytest

@pytest.mark.latency_budget(p95="10s")
@pytest.mark.parametrize("route", ["a/b", "a_b"])
def test_route(axiom_tracker, route):
    axiom_tracker.record("api_response_times", 0.001)
"""


def test_profiles_of_look_alike_ids_do_not_overwrite_and_symlinks_are_not_followed(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(test_p=PROFILED)
    victim = user_project.path / "victim.txt"
    victim.write_text("keep me")
    prof = user_project.path / "prof"
    prof.mkdir()
    link = prof / profile_filename("test_p.py::test_route[a/b]")
    os.symlink(victim, link)
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-profile=prof")
    result.assert_outcomes(passed=2)
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.stat().st_size > 0
    assert len(list(prof.iterdir())) == 2


# -- budget marks added after collection -------------------------------------------------------

LATE_MARKS = """
import pytest

@pytest.fixture
def tight(request):
    request.node.add_marker(pytest.mark.latency_budget(p95="1ms"))

def test_fixture_mark(tight, axiom_tracker):
    axiom_tracker.record("api_response_times", 0.5)

def test_hook_mark(axiom_tracker):
    axiom_tracker.record("api_response_times", 0.5)

def test_bad_late_mark(request, axiom_tracker):
    axiom_tracker.record("api_response_times", 0.5)
"""

LATE_CONFTEST = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        if item.name == "test_hook_mark":
            item.add_marker(pytest.mark.latency_budget(p95="1ms"))

def pytest_runtest_setup(item):
    if item.name == "test_bad_late_mark":
        item.add_marker(pytest.mark.latency_budget(p95=-1))
"""


def test_budget_marks_added_after_collection_are_enforced(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_late=LATE_MARKS)
    user_project.makeconftest(LATE_CONFTEST)
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-json=out.json")
    result.assert_outcomes(failed=3)
    # A bad late mark fails its test, which stays in the results and the verdict.
    tests = json.loads((user_project.path / "out.json").read_text())["tests"]
    assert tests["test_late.py::test_bad_late_mark"]["outcome"] == "failed"
    assert "During handling of the above exception" not in result.stdout.str()
    result.stdout.fnmatch_lines(["FAIL: *(3 tests*"])
    result.stdout.fnmatch_lines(
        [
            "*_ test_fixture_mark _*",
            "  latency budget: api_response_times p95 = 500.00ms > 1.00ms (n=1*",
            "*_ test_hook_mark _*",
            "  latency budget: api_response_times p95 = 500.00ms > 1.00ms (n=1*",
            "*_ test_bad_late_mark _*",
            "pytest-axiomperf: test_late.py::test_bad_late_mark: @pytest.mark.latency_budget: "
            "p95: -1 must be a positive duration",
        ]
    )


def test_a_bad_mark_a_conftest_adds_at_collection_is_a_usage_error(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(test_late="def test_x():\n    pass\n")
    user_project.makeconftest(
        "import pytest\n\ndef pytest_collection_modifyitems(items):\n"
        "    for item in items:\n"
        "        item.add_marker(pytest.mark.latency_budget(p95='soon'))\n"
    )
    result = user_project.runpytest("--axiom-perf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_late.py::test_x: @pytest.mark.latency_budget: p95: 'soon'*"]
    )


def test_a_profile_that_cannot_be_written_fails_the_run(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_p=PROFILED)
    (user_project.path / "prof").write_text("a file, not a folder")
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-profile=prof")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["axiom-perf could not write prof/test_p.py__test_route_a_b-*"])
