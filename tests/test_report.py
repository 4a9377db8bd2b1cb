"""The session report and the JSON results, as printed and written for a user's run."""

from __future__ import annotations

import json

import pytest

from pytest_axiomperf.histogram import Histogram

RUN = """
import pytest

@pytest.mark.latency_budget(p95="100ms", p99="150ms")
def test_orders(axiom_tracker):
    for i in range(100):
        axiom_tracker.record("api_response_times", 0.010 + i * 0.0001, tag="POST /orders")
        axiom_tracker.record("order_execution_times", 0.020)
    axiom_tracker.record("websocket_latency", 0.003)
    axiom_tracker.record_error(TimeoutError())

@pytest.mark.latency_budget(mean="1ms")
def test_slow(axiom_tracker):
    axiom_tracker.record("api_response_times", 0.5, tag="GET /health")

def test_untracked():
    pass
"""


def test_report_sections(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(RUN)
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-sample-interval=0.05", "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*= axiom-perf report =*",
            # The verdict first, then one row per test, the failure first.
            "FAIL: 1 over budget, 0 regressions, 0 not comparable (2 tests, 2 with budgets)",
            "  FAIL  test_report_sections.py::test_slow",
            "          budgets: api_response_times mean 500.00ms > 1.00ms",
            "  PASS  test_report_sections.py::test_orders",
            "          budgets: api_response_times p95 19.??ms <= 100.00ms; "
            "api_response_times p99 *ms <= 150.00ms",
            # -v: the guide's run-wide report after it.
            "=== AxiomTrade Performance Report ===",
            "Runtime: * seconds",
            "API Response Times (n=101):",
            "  Mean: *ms",
            "  Median: *ms",
            "  P95: *ms",
            "  P99: *ms",
            "    GET /health   n=1 *",
            "    POST /orders  n=100 *",
            "WebSocket Latency (n=1):",
            "  Mean: 3.00ms",
            "  P95: 3.00ms",
            "  P99: 3.00ms",
            "Order Execution (n=100):",
            "  Mean: 20.00ms",
            "  P95: 20.??ms",
            "Memory Usage (n=*):",
            "  Mean: * MB",
            "  Peak: * MB",
            "CPU Usage (n=*):",
            "  Mean: *%",
            "  Peak: *%",
            "Error Rates (1 errors):",
            "  TimeoutError: 1",
            "(percentiles: nearest rank*)",
        ]
    )
    # Without -v the guide's run-wide aggregates are left out, and a line says how to get them.
    quiet = user_project.runpytest("--axiom-perf")
    quiet.stdout.fnmatch_lines(
        ["FAIL: 1 over budget, *", "(-v adds the guide-style run-wide report*)"]
    )
    assert "Performance Report" not in quiet.stdout.str()


def test_json_results(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(RUN)
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-json=out/results.json")
    result.assert_outcomes(passed=2, failed=1)
    data = json.loads((user_project.path / "out" / "results.json").read_text())
    assert data["tool"] == "pytest-axiomperf" and data["format_version"] == 1
    assert {"python", "platform", "cpu_count", "cpu_model", "plugin_version"} <= set(
        data["environment"]
    )
    orders = data["tests"]["test_json_results.py::test_orders"]
    assert orders["outcome"] == "passed"
    api = orders["metrics"]["api_response_times"]
    assert api["count"] == 100
    assert set(api) >= {"mean", "p50", "p90", "p95", "p99", "max", "histogram", "tags"}
    assert api["tags"]["POST /orders"]["count"] == 100
    # The serialized histogram is lossless: it rebuilds to the same percentiles.
    hist = Histogram.from_dict(api["histogram"])
    assert hist.count == 100 and hist.percentile(95) == api["p95"]
    api_verdicts = [v for v in orders["budgets"] if v["metric"] == "api_response_times"]
    assert len(orders["budgets"]) == 6  # two bounds on each of the three latency metrics
    assert api_verdicts == [
        {
            "kind": "latency",
            "metric": "api_response_times",
            "tag": None,
            "statistic": "p95",
            "bound": 0.1,
            "observed": api["p95"],
            "n": 100,
            "passed": True,
            "unit": "s",
            "detail": api_verdicts[0]["detail"],
        },
        {
            "kind": "latency",
            "metric": "api_response_times",
            "tag": None,
            "statistic": "p99",
            "bound": 0.15,
            "observed": api["p99"],
            "n": 100,
            "passed": True,
            "unit": "s",
            "detail": api_verdicts[1]["detail"],
        },
    ]
    assert orders["errors"] == {"TimeoutError": 1}
    slow = data["tests"]["test_json_results.py::test_slow"]
    assert slow["outcome"] == "failed" and slow["budgets"][0]["passed"] is False
    assert "test_json_results.py::test_untracked" not in data["tests"]
    assert data["session"]["metrics"]["api_response_times"]["count"] == 101
    assert data["session"]["metrics"]["memory_usage"]["count"] >= 2
    # Written atomically: no temporary file left beside it.
    assert [p.name for p in (user_project.path / "out").iterdir()] == ["results.json"]


def test_json_path_that_cannot_be_written_is_reported_not_lost(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(RUN)
    (user_project.path / "blocker").write_text("a file, not a folder")
    result = user_project.runpytest(
        "--axiom-perf",
        "--axiom-perf-json=blocker/results.json",
        "--axiom-perf-markdown=report.md",
        "--axiom-perf-html=report.html",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["axiom-perf could not write blocker/results.json: *"])
    # The report is still printed in full, and says what it did write, only that.
    result.stdout.fnmatch_lines(["FAIL: 1 over budget, 0 regressions, *"])
    result.stdout.fnmatch_lines(
        ["axiom-perf wrote the Markdown report: report.md", "axiom-perf wrote the HTML report: *"]
    )
    assert "wrote the results" not in result.stdout.str()


def test_no_report_without_performance_mode(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(RUN)
    result = user_project.runpytest()
    result.assert_outcomes(passed=3)
    assert "Performance Report" not in result.stdout.str()


def test_report_header(user_project: pytest.Pytester) -> None:
    user_project.makepyfile("def test_x(): pass")
    result = user_project.runpytest("--axiom-perf")
    result.stdout.fnmatch_lines(["axiomperf: performance mode on (threshold 10%, sampling *"])


def test_exchange_profile_is_scoped_to_the_test_and_stored_with_it(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        """
        def test_configures(axiom_exchange, axiom_tracker):
            axiom_exchange.configure(latency=0.2, seed=3)
            axiom_tracker.record("api_response_times", 0.2)

        def test_sees_the_default(axiom_exchange, axiom_tracker):
            assert axiom_exchange.profile["latency"] == 0.0
            axiom_tracker.record("api_response_times", 0.001)
        """
    )
    result = user_project.runpytest_subprocess(
        "--axiom-perf", "--axiom-perf-json=r.json", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    tests = json.loads((user_project.path / "r.json").read_text())["tests"]
    first = tests[
        "test_exchange_profile_is_scoped_to_the_test_and_stored_with_it.py::test_configures"
    ]
    second = tests[
        "test_exchange_profile_is_scoped_to_the_test_and_stored_with_it.py::test_sees_the_default"
    ]
    assert first["extra"]["exchange_profile"]["latency"] == 0.2
    assert first["extra"]["exchange_profile"]["seed"] == 3
    assert second["extra"]["exchange_profile"]["latency"] == 0.0


def test_tables_attached_by_a_test_are_printed_in_the_report(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        """
        def test_compare(axiom_tracker):
            axiom_tracker.add_table(
                "API response times", ["client", "mean ms", "req/s"],
                [["basic", 45.234, 15], ["pooled", 12.5, 85]],
            )
        """
    )
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "Tables:",
            "  test_tables_attached_by_a_test_are_printed_in_the_report.py::test_compare",
            "    API response times",
            "    client  mean ms  req/s",
            "    basic     45.23     15",
            "    pooled    12.50     85",
        ]
    )


def test_a_malformed_table_is_refused() -> None:
    from pytest_axiomperf import PerformanceTracker

    with pytest.raises(ValueError, match="has 1 cells, expected 2"):
        PerformanceTracker().add_table("t", ["a", "b"], [["only one"]])


def test_expected_failures_are_left_out_of_the_session_totals(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        """
        import pytest

        def test_good(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.010)

        @pytest.mark.xfail("axiom_perf", strict=True, reason="the naive variant")
        @pytest.mark.latency_budget(p95="50ms")
        def test_naive(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.500)
        """
    )
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-json=r.json", "-v")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            # An expected failure fails nothing: the run passes, the row says XFAIL.
            "PASS: 0 over budget, 0 regressions, 0 not comparable (2 tests, 1 with budgets)",
            "  PASS   *::test_good",
            "  XFAIL  *::test_naive",
            "           budgets: api_response_times p95 500.00ms > 50.00ms",
            "API Response Times (n=1):",
            "  Mean: 10.00ms",
            "(totals leave out 1 expected failure(s); their numbers are in their own rows above)",
        ]
    )
    data = json.loads((user_project.path / "r.json").read_text())
    assert data["session"]["metrics"]["api_response_times"]["count"] == 1
    naive = data["tests"][
        "test_expected_failures_are_left_out_of_the_session_totals.py::test_naive"
    ]
    assert naive["outcome"] == "xfailed"
    assert naive["metrics"]["api_response_times"]["count"] == 1


def test_a_passing_non_strict_xfail_counts_as_passed(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.xfail(reason="expected to be slow, but it was not")
        def test_xpass(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.010)
        """
    )
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-json=r.json")
    result.assert_outcomes(xpassed=1)
    data = json.loads((user_project.path / "r.json").read_text())
    assert data["session"]["metrics"]["api_response_times"]["count"] == 1
    (test,) = data["tests"].values()
    assert test["outcome"] == "passed"


def test_result_files_are_readable_by_others(user_project: pytest.Pytester) -> None:
    import os
    import stat

    user_project.makepyfile("def test_x(axiom_tracker):\n    axiom_tracker.record('m', 0.1)\n")
    mask = os.umask(0o022)
    try:
        result = user_project.runpytest("--axiom-perf", "--axiom-perf-json=r.json")
    finally:
        os.umask(mask)
    assert result.ret == 0
    mode = stat.S_IMODE((user_project.path / "r.json").stat().st_mode)
    assert mode == 0o644, oct(mode)


def test_a_client_only_test_stores_the_exchange_profile(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_client_only(axiom_client):
            assert (await axiom_client.get("/health")).ok
        """
    )
    result = user_project.runpytest_subprocess("--axiom-perf", "--axiom-perf-json=r.json")
    result.assert_outcomes(passed=1)
    (test,) = json.loads((user_project.path / "r.json").read_text())["tests"].values()
    assert test["extra"]["exchange_profile"]["latency"] == 0.0
