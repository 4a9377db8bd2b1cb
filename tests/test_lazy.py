"""Installed but off: a plain pytest run pays nothing for the plugin and sees no trace of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: What a plain run must not import: the third-party libraries and our modules that need them.
HEAVY = (
    "aiohttp",
    "websockets",
    "psutil",
    "pytest_axiomperf.client",
    "pytest_axiomperf.websocket",
    "pytest_axiomperf.exchange.simulator",
    "pytest_axiomperf.memory",
    "pytest_axiomperf.load",
    "pytest_axiomperf.sampler",
    "pytest_axiomperf.baseline",
    "pytest_axiomperf.report.terminal",
)

SHOW_MODULES = f"""
import sys

HEAVY = {HEAVY!r}

def loaded():
    return sorted(m for m in HEAVY if m in sys.modules)

def pytest_sessionfinish(session):
    print("AT-END", loaded(), "pytest_axiomperf.plugin" in sys.modules)
"""

PLAIN = """
import sys
from conftest import loaded

def test_plain():
    print("IN-TEST", loaded())
"""


def test_a_plain_run_imports_no_client_exchange_or_psutil(user_project: pytest.Pytester) -> None:
    user_project.makeconftest(SHOW_MODULES)
    user_project.makepyfile(PLAIN)
    result = user_project.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    # The plugin is loaded (through its entry point), and loaded nothing heavy.
    out = result.stdout.str()
    assert "IN-TEST []" in out and "AT-END [] True" in out, out


def test_a_fixture_imports_what_it_needs_when_requested(user_project: pytest.Pytester) -> None:
    user_project.makeconftest(SHOW_MODULES)
    user_project.makepyfile(
        """
        from conftest import loaded

        def test_memory(axiom_memory):
            print("IN-TEST", loaded())
        """
    )
    result = user_project.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "IN-TEST ['psutil', 'pytest_axiomperf.memory']" in result.stdout.str()


def test_performance_mode_imports_its_runtime_and_still_reports(
    user_project: pytest.Pytester,
) -> None:
    user_project.makeconftest(SHOW_MODULES)
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.latency_budget(p99="1ms")
        def test_slow(axiom_tracker):
            axiom_tracker.record("api_response_times", 0.005)
        """
    )
    result = user_project.runpytest_subprocess(
        "--axiom-perf",
        "-s",
        "-v",
        "-p",
        "no:cacheprovider",  # -v: the guide's report too
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*api_response_times p99 = 5.00ms > 1.00ms*",
            "*= axiom-perf report =*",
            "=== AxiomTrade Performance Report ===",
            "Memory Usage (n=*):",
        ]
    )
    assert "'psutil'" in result.stdout.str()  # the sampler's, imported for the run


def test_no_trace_of_the_plugin_around_a_plain_test(user_project: pytest.Pytester) -> None:
    user_project.makepyfile("def test_plain():\n    assert True\n")
    shown = user_project.runpytest_subprocess(
        "--setup-show", "-W", "error", "-p", "no:cacheprovider", "--junitxml=junit.xml"
    )
    shown.assert_outcomes(passed=1)
    out = shown.stdout.str()
    setup_lines = [line for line in out.splitlines() if "SETUP" in line or "TEARDOWN" in line]
    assert not [line for line in setup_lines if "axiom" in line], setup_lines
    assert "axiomperf:" not in out  # no header line
    assert "warnings summary" not in out
    assert "axiom" not in (user_project.path / "junit.xml").read_text()
    per_test = user_project.runpytest_subprocess("--fixtures-per-test", "-p", "no:cacheprovider")
    assert per_test.ret == 0
    # pytest's own "plugins:" header line names every installed plugin; nothing else may.
    lines = [line for line in per_test.stdout.lines if not line.startswith("plugins:")]
    assert not [line for line in lines if "axiom" in line], lines


def test_a_profile_set_on_an_exchange_got_at_run_time_ends_with_the_test(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        """
        def test_configures(request):
            exchange = request.getfixturevalue("axiom_exchange")
            exchange.configure(latency=0.2)
            assert exchange.configured is not None

        def test_sees_the_default(axiom_exchange):
            assert axiom_exchange.configured is None
        """
    )
    user_project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_importing_the_package_is_cheap_and_its_names_resolve(tmp_path: Path) -> None:
    code = (
        "import sys, pytest_axiomperf as p\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), 'pytest' in sys.modules)\n"
        "missing = [n for n in p.__all__ if getattr(p, n, None) is None]\n"
        "print(missing, set(p.__all__) <= set(dir(p)), p.OptimizedClient.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,  # the package as installed (or on PYTHONPATH), not the current directory
    ).stdout.splitlines()
    assert out == ["[] False", "[] True pytest_axiomperf.client"]
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        import pytest_axiomperf

        _ = pytest_axiomperf.Nope  # type: ignore[attr-defined]
