"""pytest hooks of pytest-axiomperf: they only wire the modules together.

Data flows one way: fixtures record into the test's tracker -> budgets are
checked when the test body ends -> the test's result travels on its report
(so pytest-xdist carries it to the controller) -> session results -> reports.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import shlex
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_axiomperf import calibration, rounds
from pytest_axiomperf.budgets import (
    MARKERS,
    Budgets,
    Verdict,
    check_latency,
    marker_help,
    warn_if_meant_as_ms,
)
from pytest_axiomperf.errors import BaselineError, BudgetExceeded, ConfigError, MarkerError
from pytest_axiomperf.report.text import printable
from pytest_axiomperf.roundstats import round_summary
from pytest_axiomperf.settings import Settings, add_options
from pytest_axiomperf.stash import (
    BUDGETS_KEY,
    EXCHANGE_KEY,
    EXTRA_KEY,
    PLUGIN_KEY,
    RESULT_KEY,
    TRACKER_KEY,
    budgets_for,
    extra_for,
    get_plugin,
    tracker_for,
)
from pytest_axiomperf.target import describe_settings
from pytest_axiomperf.tracker import PerformanceTracker

if TYPE_CHECKING:
    from pytest_axiomperf.baseline import Comparison
    from pytest_axiomperf.neighbours import NeighbourMeter
    from pytest_axiomperf.results import SessionResults, TestResult
    from pytest_axiomperf.sampler import ResourceSampler

# Only pytest and what options, markers and marker validation need are imported here:
# every pytest process of an environment with the plugin installed loads this module.
# The clients, the exchange, psutil, the baseline and the reports are imported where
# performance mode or a fixture first needs them.

__all__ = [
    "BUDGETS_KEY",
    "EXCHANGE_KEY",
    "EXTRA_KEY",
    "PLUGIN_KEY",
    "RESULT_KEY",
    "TRACKER_KEY",
    "AxiomPerfPlugin",
    "budgets_for",
    "extra_for",
    "get_plugin",
    "tracker_for",
]

#: Modules holding the plugin's fixtures (redact, reaction: hooks), registered as plugins of
#: their own.
FIXTURE_MODULES = (
    "pytest_axiomperf.fixtures",
    "pytest_axiomperf.exchange.fixture",
    "pytest_axiomperf.redact",
    "pytest_axiomperf.reaction",
)

#: Returns a context manager to wrap around a test's body, or None to leave it alone.
BodyGuard = Callable[[pytest.Item], "contextlib.AbstractContextManager[Any] | None"]

#: Name of the report attribute carrying a test's result (plain builtins).
REPORT_ATTR = "axiomperf"
#: Key of a pytest-xdist worker's resource samples in ``workeroutput``.
WORKER_RESOURCES = "axiomperf_resources"
#: Key of a pytest-xdist worker's calibration readings (taken before its rounds).
WORKER_CALIBRATIONS = "axiomperf_calibrations"
#: Percentiles of each latency metric recorded as JUnit XML properties.
JUNIT_PERCENTILES = ("p50", "p95", "p99")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the command-line options and ini keys."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Resolve the settings once and register the run's state object."""
    for name in MARKERS:
        config.addinivalue_line("markers", marker_help(name))
    try:
        settings = Settings.from_config(config)
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-axiomperf: {exc}") from None
    for name in FIXTURE_MODULES:
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(importlib.import_module(name), name)
    plugin = AxiomPerfPlugin(config, settings)
    if plugin.enabled:
        from pytest_axiomperf import watch

        watch.install(plugin)
    config.stash[PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, "axiomperf-runtime")
    if rounds.TURNS_ENV in os.environ:  # a process axiomperf ab started to take turns
        from pytest_axiomperf import turns

        turns.install(config)


def _revalidate_budgets(item: pytest.Item) -> str | None:
    """Read the budget marks again: a fixture (``request.node.add_marker``) or a hook
    may add one after collection. A bad one is returned as the test's failure message
    (naming the argument); the budgets read before it stay in force."""
    try:
        item.stash[BUDGETS_KEY] = Budgets.from_item(item)
    except MarkerError as exc:
        return f"pytest-axiomperf: {exc}"
    return None


def check_load_runs(
    item: pytest.Item, budgets: Budgets, tracker: PerformanceTracker
) -> list[Verdict]:
    """``throughput_budget`` marks against the test's ``axiom_load`` runs."""
    if not budgets.throughput:
        return []
    from pytest_axiomperf.load import check_throughput

    runs = extra_for(item).get("load", [])

    return [v for budget in budgets.throughput for v in check_throughput(budget, runs)]


class AxiomPerfPlugin:
    """The run's state: settings, session results, the resource sampler; runtime hooks."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.sampler: ResourceSampler | None = None
        #: Budget checks beyond latency, added by other parts of the plugin.
        self.checks: list[Any] = [check_load_runs]
        #: The baseline given with --axiom-perf-compare, loaded at session start.
        self.baseline: SessionResults | None = None
        self.comparison: Comparison | None = None
        #: Context managers wrapped around each test body in performance mode, outermost
        #: first: ``guard(item)`` returns one, or None to leave the test alone.
        self.body_guards: list[BodyGuard] = []
        #: A module failed to import or a marker was bad: pytest stops before any test runs.
        self.collection_failed = False
        #: Ctrl-C: the test that was running never reports, so the report lacks it.
        self.interrupted = False
        # What _write_outputs wrote ("axiom-perf wrote the HTML report: PATH"), or did not,
        # said at the end of the report.
        self.written: list[str] = []
        # The outputs that could not be written: they fail the run (exit 4).
        self.unwritten: list[str] = []
        # Latency marks already warned about (a module's pytestmark applies to each test).
        self._warned_marks: set[int] = set()
        #: Each test's samples over the rounds this process ran: budgets check them merged.
        self._round_trackers: dict[str, PerformanceTracker] = {}
        # Machine speed, for the drift guard of committed baselines (see calibration.py).
        self._calibration = calibration.Readings(between_rounds=not rounds.started_by_ab())
        self._neighbours: NeighbourMeter | None = None
        # pytest-xdist controller: each finished worker's resource samples, by worker id.
        self._worker_samples: dict[str, list[Any]] = {}
        if self.enabled:
            self.results  # noqa: B018 (made now: its runtime starts with the run)

    @functools.cached_property
    def results(self) -> SessionResults:
        """The session's results, made on first use (never in a plain run)."""
        from pytest_axiomperf.results import SessionResults

        return SessionResults()

    @property
    def enabled(self) -> bool:
        """Performance mode: budgets enforced, resources sampled, report printed."""
        return self.settings.perf

    # -- collection: budget marks are validated before anything runs --------------

    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(
        self, collector: pytest.Collector, name: str, obj: object
    ) -> Generator[None, Any, Any]:
        result = yield
        if result is None:
            return None
        items = (
            list(result)
            if isinstance(result, (list, tuple)) or hasattr(result, "__next__")
            else [result]
        )
        for item in items:
            if isinstance(item, pytest.Item):
                try:
                    item.stash[BUDGETS_KEY] = Budgets.from_item(item)
                except MarkerError as exc:
                    raise collector.CollectError(str(exc)) from None
        return items if not isinstance(result, pytest.Item | pytest.Collector) else result

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_failed = True

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # Last, so that a round's id comes after the test's own parameters.
        if self.enabled:
            rounds.parametrize(metafunc, self.settings.rounds)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # Marks can also be added here by other plugins and conftests (trylast: after
        # theirs); validate them all now.
        for item in items:
            try:
                item.stash[BUDGETS_KEY] = Budgets.from_item(item)
            except MarkerError as exc:
                raise pytest.UsageError(f"pytest-axiomperf: {exc}") from None
        # Last, after any other reordering: rounds spread over the run, not back to back.
        rounds.order_by_round(items)

    # -- session -----------------------------------------------------------------

    def pytest_markeval_namespace(self) -> dict[str, Any]:
        # Lets condition strings test performance mode:
        # @pytest.mark.xfail("axiom_perf", strict=True, reason="the budget catches this").
        return {"axiom_perf": self.enabled}

    def pytest_report_header(self) -> list[str]:
        lines = []
        if not self.enabled:
            ignored = self._ignored_outputs()
            if ignored:
                # The warning alone lands at the end (or nowhere under -p no:warnings), and the
                # run exits 0: a CI job that lost --axiom-perf would gate nothing without a word.
                lines.append(
                    f"axiomperf: performance mode off: {', '.join(ignored)} ignored "
                    "(add --axiom-perf)"
                )
        else:
            measured = (
                f"{self.settings.rounds} rounds per test, " if self.settings.rounds > 1 else ""
            )
            lines.append(
                f"axiomperf: performance mode on ({measured}threshold "
                f"{self.settings.threshold:g}%, sampling every {self.settings.sample_interval:g}s)"
            )
        settings = self.settings
        if self.enabled or settings.base_url is not None or settings.ws_url is not None:
            venue = describe_settings(settings.base_url, settings.ws_url)
            lines.append(f"axiomperf: venue under test: {venue}")
        if self.settings.base_url is not None and not self.settings.auth_token:
            lines.append(
                "axiomperf: AXIOM_AUTH_TOKEN is not set: requests to "
                f"{self.settings.shown('base_url')} carry no bearer token"
            )
        return lines

    def _ignored_outputs(self) -> list[str]:
        """The output options given, which performance mode being off ignores."""
        return [
            flag
            for flag, value in (
                ("--axiom-perf-json", self.settings.json_path),
                ("--axiom-perf-save", self.settings.save_path),
                ("--axiom-perf-compare", self.settings.compare_path),
                ("--axiom-perf-markdown", self.settings.markdown_path),
                ("--axiom-perf-html", self.settings.html_path),
                ("--axiom-perf-profile", self.settings.profile_dir),
            )
            if value is not None
        ]

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self.enabled:
            ignored = self._ignored_outputs()
            if ignored and not self.is_worker:
                self.config.issue_config_time_warning(
                    pytest.PytestConfigWarning(
                        f"pytest-axiomperf: {', '.join(ignored)} ignored without --axiom-perf"
                    ),
                    stacklevel=2,
                )
            return
        if not self.is_worker and self.settings.compare_path is not None:
            self._load_baseline(self.settings.compare_path)
        if not self.is_worker:
            # Timed again before each round (where the tests run) and at the end of the run.
            self._calibration.take()
            # How busy the rest of the machine is, for the same guard (see neighbours.py).
            from pytest_axiomperf.neighbours import NeighbourMeter

            self._neighbours = NeighbourMeter()
        if self._runs_tests():
            from pytest_axiomperf.sampler import ResourceSampler

            self.sampler = ResourceSampler(self.results.resources, self.settings.sample_interval)
            self.sampler.start()

    def _load_baseline(self, path: Any) -> None:
        """Load the baseline before any test runs: a bad file is a usage error, not a traceback."""
        from pytest_axiomperf.baseline import environment_mismatches, load_results

        try:
            self.baseline = load_results(path)
        except BaselineError as exc:
            raise pytest.UsageError(f"pytest-axiomperf: {exc}") from None
        mismatches = environment_mismatches(self.baseline.environment, self.results.environment)
        if mismatches and self.settings.mismatch == "refuse":
            raise pytest.UsageError(
                f"pytest-axiomperf: baseline {path} was measured elsewhere "
                f"(--axiom-perf-mismatch=refuse): {'; '.join(mismatches)}"
            )

    def _runs_tests(self) -> bool:
        """False on a pytest-xdist controller, whose workers run the tests."""
        return self.is_worker or not self.config.pluginmanager.has_plugin("dsession")

    # -- per test ------------------------------------------------------------------

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Here, not at collection: each test runs once (on one xdist worker), and a
        # warning that filterwarnings turns into an error fails this test, not pytest.
        if self.enabled:
            warn_if_meant_as_ms(item, self._warned_marks)
            self._calibration.before_round(rounds.round_of(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        bad_mark = _revalidate_budgets(item)
        if bad_mark is not None:
            # What the fixtures recorded is kept: the test is in the report, failed.
            if self.enabled:
                self._finish_test(item, 0.0)
            pytest.fail(bad_mark, pytrace=False)
        guards = contextlib.ExitStack()
        if self.enabled:
            for guard in self.body_guards:
                entered = guard(item)
                if entered is not None:
                    guards.enter_context(entered)
        if self.sampler is not None:  # the test's CPU/RSS over time, once it has a tracker
            self.sampler.watch(lambda: item.stash.get(TRACKER_KEY, None))
        started = time.perf_counter()
        try:
            with guards:
                yield
        finally:
            if self.sampler is not None:
                self.sampler.watch(None)
            if self.enabled:
                bad_mark = _revalidate_budgets(item)  # marks the body added
                self._finish_test(item, time.perf_counter() - started)
        if bad_mark is not None:
            pytest.fail(bad_mark, pytrace=False)
        result = item.stash.get(RESULT_KEY, None)
        if result is not None and not result.passed_budgets:
            raise BudgetExceeded(self._failure_text(result))

    def _finish_test(self, item: pytest.Item, duration: float) -> None:
        budgets = budgets_for(item)
        tracker = item.stash.get(TRACKER_KEY, None)
        if tracker is None and not budgets:
            return
        tracker = tracker_for(item)
        nodeid, index = rounds.base_nodeid(item), rounds.round_of(item)
        checked = tracker
        if self.settings.rounds > 1:
            # Budgets check the merged samples of the test's rounds run so far here.
            checked = self._round_trackers.setdefault(nodeid, PerformanceTracker(nodeid))
            checked.merge(tracker)
        verdicts: list[Verdict] = []
        for budget in budgets.latency:
            verdicts.extend(check_latency(budget, checked))
        for check in self.checks:
            verdicts.extend(check(item, budgets, checked))
        extra = extra_for(item)
        exchange = item.stash.get(EXCHANGE_KEY, None)
        if exchange is not None:
            from pytest_axiomperf.exchange.models import ExchangeProfile

            # The latency profile the numbers were measured under; a baseline
            # comparison refuses to compare numbers taken under different ones.
            extra["exchange_profile"] = exchange.configured or ExchangeProfile().to_dict()
        from pytest_axiomperf.results import TestResult

        item.stash[RESULT_KEY] = TestResult(
            nodeid=nodeid,
            tracker=tracker,
            rounds=[round_summary(tracker, index)],
            verdicts=verdicts,
            budgets=[b.describe() for b in budgets.latency]
            + [b.describe() for b in budgets.throughput],
            duration=duration,
            extra=extra,
        )

    @staticmethod
    def _failure_text(result: TestResult) -> str:
        failed = [v for v in result.verdicts if not v.passed]
        lines = [f"{len(failed)} performance budget(s) exceeded:"]
        lines.extend(f"  {v.kind} budget: {v.message()}" for v in failed)
        details = result.extra.get("failure_details", {})
        for kind in dict.fromkeys(v.kind for v in failed):
            lines.extend(details.get(kind, ()))
        return printable("\n".join(lines))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when != "call":
            return report
        result = item.stash.get(RESULT_KEY, None)
        if result is None:
            return report
        if call.excinfo is not None and call.excinfo.errisinstance(BudgetExceeded):
            # The budget message is the whole story: no traceback of plugin internals.
            report.longrepr = str(call.excinfo.value)
        if result.verdicts:
            lines = [("PASS " if v.passed else "FAIL ") + v.message() for v in result.verdicts]
            report.sections.append(("axiom-perf budgets", printable("\n".join(lines))))
        result.outcome = (
            "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        )
        data = result.to_dict()
        setattr(report, REPORT_ATTR, data)
        # The statistics were computed for the result just above: reuse them.
        for metric, entry in data["metrics"].items():
            if entry["unit"] == "s":
                # A metric's name is the user's: no control character reaches the XML.
                name = printable(metric)
                props = [(f"axiomperf.{name}.{p}", entry[p]) for p in JUNIT_PERCENTILES]
                # On the item too, as record_property does: junitxml writes the
                # properties of the teardown report, which copies the item's.
                item.user_properties.extend(props)
                report.user_properties.extend(props)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        if data is not None and report.when == "call":
            from pytest_axiomperf.results import TestResult

            self.results.add(TestResult.from_dict(data))

    # -- end of session --------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist controller: keep a finished worker's resource samples and
        calibration readings; the run's totals are made from all of them at the end.

        Per-test results came earlier, on the reports, so a crashed worker loses none.
        """
        output = getattr(node, "workeroutput", {})
        if self.enabled:
            self._calibration.add(output.get(WORKER_CALIBRATIONS, []))
        samples = output.get(WORKER_RESOURCES)
        if self.enabled and samples is not None:
            worker = getattr(node, "workerinput", {}).get("workerid", len(self._worker_samples))
            self._worker_samples[str(worker)] = samples

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if not self.enabled:
            return
        if self.is_worker:
            workeroutput = getattr(self.config, "workeroutput", None)
            if workeroutput is not None:
                samples = self.sampler.samples if self.sampler is not None else []
                workeroutput[WORKER_RESOURCES] = [list(sample) for sample in samples]
                workeroutput[WORKER_CALIBRATIONS] = self._calibration.shipped()
            return
        self._calibration.take()
        self.results.environment["calibration"] = self._calibration.combined()
        if self._neighbours is not None:
            self.results.environment["neighbours"] = self._neighbours.stop()
        if self._worker_samples:
            self._add_worker_totals()
        if self.baseline is not None:
            from pytest_axiomperf.baseline import attach, compare

            self.comparison = compare(
                self.baseline,
                self.results,
                threshold=self.settings.threshold,
                noise_floor=self.settings.noise_floor,
                mismatch=self.settings.mismatch,
                baseline=str(self.settings.compare_path),
            )
            attach(self.comparison, self.results)
            if self.comparison.regressions:
                self._report_regressions_to_junit(self.comparison)
        if self.interrupted or session.shouldstop or session.shouldfail:
            # Readers of the JSON and reports see it too, not only the terminal.
            self.results.notes.append(
                "the run was cut short (Ctrl-C, -x or --maxfail): these results cover the "
                "tests that finished; the rest did not run"
            )
        self._write_outputs(session)
        if self.unwritten and session.exitstatus == 0:
            # A requested output that is missing must not pass as a green run.
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        if self.comparison is not None and self.comparison.failed and session.exitstatus == 0:
            # The gate: a regression fails the run (the report names the test).
            session.exitstatus = (
                pytest.ExitCode.USAGE_ERROR
                if self.comparison.refused
                else pytest.ExitCode.TESTS_FAILED
            )

    def _add_worker_totals(self) -> None:
        """The run's memory and CPU: the workers' samples added up, labelled as such."""
        from pytest_axiomperf.sampler import record_run_totals

        record_run_totals(self.results.resources, self._worker_samples)
        self.results.workers = len(self._worker_samples)

    def _write_outputs(self, session: pytest.Session) -> None:
        """JSON, baseline, Markdown and HTML files; a path that fails fails the run (exit 4)."""
        from pytest_axiomperf.baseline import save_results
        from pytest_axiomperf.report.html import render_html
        from pytest_axiomperf.report.markdown import render_markdown
        from pytest_axiomperf.results import write_text_atomic

        settings = self.settings
        nothing_ran = self._nothing_ran()
        # Interrupted (Ctrl-C, -x, --maxfail): the tests that did not run would vanish from it.
        cut_short = self.interrupted or bool(session.shouldstop or session.shouldfail)
        outputs: list[tuple[str, Any, Any]] = [
            (
                "results (JSON): {path}",
                settings.json_path,
                lambda p: save_results(p, self.results),
            ),
            (
                "baseline: {path} (compare later runs with --axiom-perf-compare={quoted})",
                None if nothing_ran or cut_short or self._keeps_baseline() else settings.save_path,
                lambda p: save_results(p, self.results),
            ),
            (
                "Markdown report: {path}",
                settings.markdown_path,
                lambda p: write_text_atomic(p, render_markdown(self.results, self.comparison)),
            ),
            (
                "HTML report: {path}",
                settings.html_path,
                lambda p: write_text_atomic(
                    p, render_html(self.results, self.comparison, self.baseline)
                ),
            ),
        ]
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if settings.markdown_path is not None and summary:
            outputs.append(("job summary: {path}", summary, self._append_step_summary))
        for what, path, write in outputs:
            if path is None:
                continue
            try:
                write(path)
            except (OSError, BaselineError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                self.unwritten.append(f"axiom-perf could not write {path}: {reason}")
            else:
                line = what.format(path=path, quoted=shlex.quote(str(path)))
                self.written.append(f"axiom-perf wrote the {line}")
        # cProfile files are written on the test's worker; their failures travel with results.
        self.unwritten.extend(
            f"axiom-perf {r.extra['profile']['error']}"
            for _, r in sorted(self.results.tests.items())
            if "path" in r.extra.get("profile", {}) and "error" in r.extra["profile"]
        )
        if settings.save_path is not None and (nothing_ran or cut_short):
            # An empty or partial run must not replace a good baseline.
            why = "no test ran" if nothing_ran else "the run was interrupted"
            self.written.append(
                f"axiom-perf saved no baseline: {why} ({settings.save_path} is untouched)"
            )
        elif settings.save_path is not None and self._keeps_baseline():
            self.written.append(
                f"axiom-perf saved no baseline: this run regressed against "
                f"{settings.save_path}, which is left as it was"
            )

    def _keeps_baseline(self) -> bool:
        """The run regressed against the very file it would save to: keep that file (saving
        would make the regression the new normal, and the next run would pass)."""
        save, against = self.settings.save_path, self.settings.compare_path
        if save is None or against is None or self.comparison is None:
            return False
        if not self.comparison.failed:
            return False
        try:
            return os.path.realpath(save) == os.path.realpath(against)
        except OSError:
            return True

    def _report_regressions_to_junit(self, comparison: Comparison) -> None:
        """One failing JUnit testcase per regressed test, so CI test views are not green.

        The tests' own testcases were written as they passed; the gate decides after them.
        The testcases go through pytest's junitxml plugin (when ``--junitxml`` is on) as a
        call and a teardown report, which is what it writes a testcase from.
        """
        xml = next(
            (p for p in self.config.pluginmanager.get_plugins() if type(p).__name__ == "LogXML"),
            None,
        )
        if xml is None:
            return
        by_test: dict[str, list[str]] = {}
        for m in comparison.regressions:
            by_test.setdefault(m.nodeid, []).append(f"{m.label}: {m.reason}")
        for nodeid, lines in sorted(by_test.items()):
            text = f"performance regression against {comparison.baseline}:\n" + "\n".join(lines)
            for when, outcome, longrepr in (("call", "failed", text), ("teardown", "passed", None)):
                report = pytest.TestReport(
                    nodeid=f"axiomperf-gate::{nodeid}",
                    location=("axiomperf-gate", None, nodeid),
                    keywords={},
                    outcome=outcome,  # type: ignore[arg-type]
                    longrepr=longrepr,
                    when=when,  # type: ignore[arg-type]
                )
                xml.pytest_runtest_logreport(report)

    def _append_step_summary(self, path: str) -> None:
        from pytest_axiomperf.report.markdown import render_markdown

        with open(path, "a", encoding="utf-8") as fh:
            fh.write(render_markdown(self.results, self.comparison) + "\n")

    def _nothing_ran(self) -> bool:
        """Collection failed and no test ran: there is nothing to report or save."""
        return self.collection_failed and not self.results.tests

    def _write_file_lines(self, terminalreporter: Any) -> None:
        """What was written, then (red) what could not be."""
        for line in self.written:
            terminalreporter.write_line(printable(line))
        for line in self.unwritten:
            terminalreporter.write_line(printable(line), red=True, bold=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.enabled or self.is_worker:
            return
        if self._nothing_ran():
            # A report of no samples would only push the collection error off the screen.
            terminalreporter.write_sep(
                "=", "axiom-perf: no report (collection failed, no test ran)"
            )
            self._write_file_lines(terminalreporter)
            return
        from pytest_axiomperf.report.terminal import render_terminal_report

        terminalreporter.write_sep("=", "axiom-perf report")
        verbose = self.config.get_verbosity() > 0
        for line in render_terminal_report(self.results, self.comparison, verbose).splitlines():
            terminalreporter.write_line(line)
        if self.interrupted:
            terminalreporter.write_line(
                "(interrupted: covers the tests that finished; the one that was running "
                "is left out)",
                yellow=True,
            )
        self._write_file_lines(terminalreporter)
        if self.comparison is not None and self.comparison.failed:
            blamed = sorted({m.nodeid for m in self.comparison.regressions})
            what = (
                "baseline comparison refused"
                if self.comparison.refused
                else f"performance regression in {', '.join(blamed)}"
            )
            terminalreporter.write_sep("=", printable(f"axiom-perf: {what}"), red=True, bold=True)
