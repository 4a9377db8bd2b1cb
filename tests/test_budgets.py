"""The latency_budget marker as a user meets it: pass, fail, validation, modes."""

from __future__ import annotations

import pytest

TWO_SPEEDS = """
import time
import pytest

@pytest.mark.latency_budget(p95="50ms")
def test_fast(axiom_tracker):
    for _ in range(20):
        axiom_tracker.record("api_response_times", 0.002, tag="GET /health")

@pytest.mark.latency_budget(p95=0.05)
def test_slow(axiom_tracker):
    for _ in range(5):
        with axiom_tracker.measure("api_response_times", tag="POST /orders"):
            time.sleep(0.2)
"""


def test_budget_passes_and_fails_with_a_clear_message(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(TWO_SPEEDS)
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_slow _*",
            "1 performance budget(s) exceeded:",
            "  latency budget: api_response_times p95 = 2??.??ms > 50.00ms (n=5; p50=2*ms p95=2*ms"
            " p99=2*ms max=2*ms)",
        ]
    )
    # No traceback of the plugin's internals in the failure.
    assert "pytest_axiomperf" not in result.stdout.str().split("axiom-perf report")[0]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_budgets_not_enforced_without_performance_mode(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(TWO_SPEEDS)
    result = user_project.runpytest()
    result.assert_outcomes(passed=2)
    assert "axiom-perf report" not in result.stdout.str()


def test_ini_turns_performance_mode_on(user_project: pytest.Pytester) -> None:
    user_project.makeini(
        """
        [pytest]
        asyncio_default_fixture_loop_scope = function
        axiom_perf = true
        """
    )
    user_project.makepyfile(TWO_SPEEDS)
    result = user_project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*axiom-perf report*"])


def test_budget_on_one_tag_and_one_metric(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.latency_budget(p99="10ms", tag="GET /health")
        @pytest.mark.latency_budget(max="300ms", metric="order_execution_times")
        def test_mixed(axiom_tracker):
            for _ in range(10):
                axiom_tracker.record("api_response_times", 0.002, tag="GET /health")
                axiom_tracker.record("api_response_times", 0.250, tag="POST /orders")
                axiom_tracker.record("order_execution_times", 0.250)

        @pytest.mark.latency_budget(p50="100ms", metric="order_execution_times")
        def test_other_metric_fails(axiom_tracker):
            axiom_tracker.record("order_execution_times", 0.25)
        """
    )
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*order_execution_times p50 = 250.00ms > 100.00ms (n=1;*",
            "*budgets: *api_response_times[[]GET /health[]] p99 2.??ms <= 10.00ms",
        ]
    )


def test_too_few_samples_fails_and_says_so(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.latency_budget(p95="1s", min_samples=59)
        def test_few(axiom_tracker):
            for _ in range(10):
                axiom_tracker.record("websocket_latency", 0.001)

        @pytest.mark.latency_budget(p95="1s")
        def test_nothing_recorded():
            pass

        @pytest.mark.latency_budget(p95="1s", metric="websocket_latancy")
        @pytest.mark.latency_budget(p95="1s", metric="websocket_latency", tag="pings")
        def test_misspelt(axiom_tracker):
            axiom_tracker.record("websocket_latency", 0.001, tag="ping")
            axiom_tracker.record("api_response_times", 0.001)
        """
    )
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*websocket_latency: 10 samples recorded; the budget needs at least 59 (min_samples)",
            "*the test recorded no samples of any latency metric; the budget needs at least 1*",
        ]
    )
    # A misspelt name is not mistaken for a silent bot: what was recorded is named.
    result.stdout.fnmatch_lines(
        [
            "*websocket_latancy: 0 samples recorded (latency metrics recorded: "
            "api_response_times, websocket_latency); the budget needs at least 1*",
            "*websocket_latency[[]pings[]]: 0 samples recorded (its tags: ping); the budget*",
        ],
        consecutive=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("p96=0.1", "unexpected keyword argument 'p96'"),
        ("0.1", "arguments are keywords"),
        ("p95=-0.1", "p95: -0.1 must be a positive duration"),
        ("p95=0", "p95: 0 must be a positive duration"),
        ("p95='fast'", "p95: 'fast' is not a duration"),
        ("p95='150'", "p95: '150' is not a duration"),
        ("p95='150 parsecs'", "is not a duration"),
        ("", "no bound given"),
        ("metric='api_response_times'", "no bound given"),
        ("p95='1s', min_samples=0", "min_samples=0 must be an integer >= 1"),
        ("p95=True", "True is not a duration"),
        ("p95=10**400", "p95: 1000* is too large"),
    ],
)
def test_bad_arguments_are_collection_errors(
    user_project: pytest.Pytester, args: str, message: str
) -> None:
    user_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.latency_budget({args})
        def test_budgeted(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.001)

        def test_innocent():
            pass
        """
    )
    result = user_project.runpytest()  # validated even without --axiom-perf
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting*",
            f"*test_bad_arguments_are_collection_errors.py::test_budgeted: "
            f"@pytest.mark.latency_budget: *{message}*",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_collection_error_prints_no_empty_report(user_project: pytest.Pytester) -> None:
    # A report of zero samples after "ERROR collecting" would bury the one line that matters.
    user_project.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.latency_budget(p59="150ms")
        def test_budgeted():
            pass
        """,
        test_fine="def test_fine():\n    pass\n",
    )
    good = '{"a good baseline": true}'
    (user_project.path / "base.json").write_text(good)
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-save=base.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*unexpected keyword argument 'p59'*",
            "*axiom-perf: no report (collection failed, no test ran)*",
            "axiom-perf saved no baseline: no test ran (base.json is untouched)",
        ]
    )
    assert "Performance Report" not in result.stdout.str()
    assert (user_project.path / "base.json").read_text() == good  # not replaced by nothing


def test_collection_errors_under_continue_still_report(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        test_broken="import not_a_module_anywhere\n",
        test_fine="def test_fine(axiom_tracker):\n    axiom_tracker.record('x_times', 0.001)\n",
    )
    result = user_project.runpytest("--axiom-perf", "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*= axiom-perf report =*", "PASS: 0 over budget, *"])


def test_interrupted_run_says_its_report_is_partial(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import os
        import signal

        def test_done(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.002)

        def test_interrupted(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.5)
            # Python ignores SIGINT when started from a background job (as CI may do):
            # restore its Ctrl-C handler, then send what Ctrl-C sends.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.kill(os.getpid(), signal.SIGINT)
        """
    )
    result = user_project.runpytest_subprocess("--axiom-perf")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "PASS: 0 over budget, 0 regressions, 0 not comparable (1 test, 0 with budgets)",
            "  PASS  *::test_done",
            "*(interrupted: covers the tests that finished; the one that was running is left out)",
        ]
    )


def test_string_units(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.latency_budget(p50="800us", p95="0.0015s", max="2ms")
        def test_units(axiom_tracker):
            for _ in range(100):
                axiom_tracker.record("api_response_times", 0.0012)
        """
    )
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*api_response_times p50 = 1.2?ms > 800.00us*",
            "*budgets: api_response_times p50 1.2?ms > 800.00us; "
            "api_response_times p95 1.2?ms <= 1.50ms; api_response_times max 1.20ms <= 2.00ms",
        ]
    )


def test_budget_on_parametrized_and_class_tests(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.latency_budget(p95="10ms")
        class TestOrders:
            @pytest.mark.parametrize("delay", [0.001, 0.5])
            def test_delay(self, axiom_tracker, delay):
                axiom_tracker.record("order_execution_times", delay)

        @pytest.mark.parametrize("x", [pytest.param(1, marks=pytest.mark.latency_budget(p9="1s"))])
        def test_bad_param(x):
            pass
        """
    )
    result = user_project.runpytest("--axiom-perf")
    result.stdout.fnmatch_lines(["*test_bad_param?1?: @pytest.mark.latency_budget: *'p9'*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_budget_failure_in_an_async_test(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.latency_budget(p95="50ms")
        async def test_async(axiom_tracker):
            for _ in range(3):
                async with axiom_tracker.measure("api_response_times"):
                    await asyncio.sleep(0.2)
        """
    )
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*api_response_times p95 = 2??.??ms > 50.00ms (n=3;*"])


def test_xfail_strict_shows_a_caught_budget(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.xfail(strict=True, reason="the naive client is too slow")
        @pytest.mark.latency_budget(p95="50ms")
        def test_naive(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.3)

        @pytest.mark.xfail(strict=True, reason="wrongly expected to fail")
        @pytest.mark.latency_budget(p95="50ms")
        def test_fine(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.001)
        """
    )
    result = user_project.runpytest("--axiom-perf", "-rxX")
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "  XFAIL  test_xfail_strict_shows_a_caught_budget.py::test_naive",
            "           budgets: api_response_times p95 300.00ms > 50.00ms",
        ]
    )


def test_a_test_failing_on_its_own_is_not_blamed_on_the_budget(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.latency_budget(p95="50ms")
        def test_broken(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.001)
            assert 1 == 2
        """
    )
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*assert 1 == 2*",
            "FAIL: 0 over budget, 0 regressions, 0 not comparable, 1 failed otherwise (*)",
            "  FAIL  *::test_broken",
            "*budgets: api_response_times p95 1.00ms <= 50.00ms",
        ]
    )
    assert "performance budget(s) exceeded" not in result.stdout.str()


def test_markers_are_documented(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.latency_budget(p50=None, p90=None, p95=None, p99=None, mean=None, "
            "max=None, metric=None, tag=None, min_samples=1, max_missed=None): *",
            "@pytest.mark.memory_budget(growth_mb=None, peak_mb=None): *",
            "@pytest.mark.throughput_budget(min_rps=None, max_error_rate=None, "
            "max_dropped=None): *",
        ]
    )


def test_condition_strings_can_test_performance_mode(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.xfail("axiom_perf", strict=True, reason="the budget catches it")
        @pytest.mark.latency_budget(p95="50ms")
        def test_slow(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.2)
        """
    )
    user_project.runpytest("--axiom-perf").assert_outcomes(xfailed=1)
    user_project.runpytest().assert_outcomes(passed=1)


def test_a_large_bare_number_warns_it_is_seconds(user_project: pytest.Pytester) -> None:
    """``p95=50`` is 50 s here; k6 users read it as 50 ms. Warned, not refused."""
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.latency_budget(p95=50, p99="50ms")
        def test_meant_ms(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.001)

        @pytest.mark.latency_budget(p95=0.15, max=5)
        def test_seconds(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.001)
        """
    )
    result = user_project.runpytest("--axiom-perf", "-W", "always::pytest.PytestWarning")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*latency_budget(p95=50) on test_a_large_bare_number_warns_it_is_seconds.py::"
            'test_meant_ms: a bare number is seconds (50 s); write p95="50ms" for '
            'milliseconds, or p95="50s" to keep seconds without this warning'
        ]
    )
    # Without --axiom-perf no budget is checked: nothing to warn about.
    result = user_project.runpytest("-W", "always::pytest.PytestWarning")
    result.assert_outcomes(passed=2)


def test_the_seconds_warning_comes_once_per_mark_and_fails_no_run(
    user_project: pytest.Pytester,
) -> None:
    """A module's mark warns once, not per test; under filterwarnings=error it fails the
    first test that carries it, as any warning would, not pytest itself."""
    user_project.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.latency_budget(p95=20)

        def test_one(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.001)

        def test_two(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.001)
        """
    )
    result = user_project.runpytest("--axiom-perf", "-W", "always::pytest.PytestWarning")
    result.assert_outcomes(passed=2, warnings=1)
    result = user_project.runpytest("--axiom-perf", "-W", "error::pytest.PytestWarning")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*p95=20*a bare number is seconds*"])
    assert "INTERNALERROR" not in result.stdout.str()
