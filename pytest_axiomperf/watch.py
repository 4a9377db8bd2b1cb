"""What runs around a test body in performance mode: tracemalloc for memory, cProfile.

- tracemalloc only for a test with a ``memory_budget`` or using ``axiom_memory``
  (it slows Python code severalfold); the test's tracker is flagged "tracemalloc" so
  the report marks its latency. Growth and peak go to ``TestResult.extra["memory"]``,
  ``memory_budget`` verdicts to the test's result.
- cProfile, with ``--axiom-perf-profile=DIR``, for a test with any budget: the profile
  is written to ``DIR/<test>-<hash>.prof`` and the top functions by cumulative time join a
  failed latency budget's message. The tracker is flagged "cProfile".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_axiomperf.budgets import Budgets, Verdict
from pytest_axiomperf.memory import (
    TRACEMALLOC_FRAMES,
    BodyMemory,
    BodyWatch,
    check_memory,
    site_table,
)
from pytest_axiomperf.profiling import BodyProfile, profile_filename
from pytest_axiomperf.stash import budgets_for, extra_for, tracker_for
from pytest_axiomperf.tracker import PerformanceTracker

if TYPE_CHECKING:
    from pytest_axiomperf.plugin import AxiomPerfPlugin

BODY_MEMORY_KEY = pytest.StashKey[BodyMemory]()

#: Tracker flags naming what the test body ran under.
TRACEMALLOC_FLAG = "tracemalloc"
PROFILE_FLAG = "cProfile"


def install(plugin: AxiomPerfPlugin) -> None:
    """Register the body guards and the memory budget check with the run's plugin."""
    plugin.body_guards.append(memory_guard)
    plugin.checks.append(check_memory_budgets)
    profile_dir = plugin.settings.profile_dir
    if profile_dir is not None:
        plugin.body_guards.append(lambda item: profile_guard(item, profile_dir))
        if plugin.enabled and not plugin.is_worker:
            plugin.results.notes.append(
                f"profiling was on (--axiom-perf-profile={profile_dir}): cProfile inflates "
                "the latency of the profiled tests"
            )


def needs_tracemalloc(item: pytest.Item) -> bool:
    """A test with a memory budget or using the ``axiom_memory`` fixture."""
    return bool(budgets_for(item).memory) or "axiom_memory" in getattr(item, "fixturenames", ())


def memory_guard(item: pytest.Item) -> AbstractContextManager[None] | None:
    """tracemalloc around the body of a test that needs it, else None."""
    return _watching_memory(item) if needs_tracemalloc(item) else None


@contextmanager
def _watching_memory(item: pytest.Item) -> Iterator[None]:
    tracker_for(item).flags.add(TRACEMALLOC_FLAG)
    watch = BodyWatch(TRACEMALLOC_FRAMES)
    watch.start()
    try:
        yield
    finally:
        body = watch.stop()
        if body is not None:
            item.stash[BODY_MEMORY_KEY] = body
            extra_for(item)["memory"] = body.to_dict()


def check_memory_budgets(
    item: pytest.Item, budgets: Budgets, tracker: PerformanceTracker
) -> list[Verdict]:
    """``memory_budget`` verdicts; on a failure, the top growing sites for the message."""
    if not budgets.memory:
        return []
    body = item.stash.get(BODY_MEMORY_KEY, None)
    if body is None:
        # Never a silent pass: the body stopped tracemalloc, nothing was measured.
        return [
            Verdict(
                "memory",
                "python_heap",
                None,
                "samples",
                1.0,
                0.0,
                0,
                False,
                "MB",
                "tracemalloc was stopped during the test body: no memory measurement",
            )
        ]
    verdicts = [v for budget in budgets.memory for v in check_memory(budget, body)]
    if not all(v.passed for v in verdicts):
        details: dict[str, Any] = extra_for(item).setdefault("failure_details", {})
        details["memory"] = [
            f"  top growing allocation sites (Python heap {body.growth_mb:+.2f} MB, "
            f"peak {body.peak_mb:.2f} MB):",
            *site_table(body.top),
        ]
    return verdicts


def profile_guard(item: pytest.Item, directory: Path) -> AbstractContextManager[None] | None:
    """cProfile around the body of a test with a budget, else None."""
    return _profiling(item, directory) if budgets_for(item) else None


@contextmanager
def _profiling(item: pytest.Item, directory: Path) -> Iterator[None]:
    profile = BodyProfile()
    if not profile.start():
        extra_for(item)["profile"] = {"error": profile.error}
        yield
        return
    try:
        yield
    finally:
        profile.stop()
        tracker_for(item).flags.add(PROFILE_FLAG)
        path = directory / profile_filename(item.nodeid)
        info: dict[str, Any] = {"path": str(path)}
        try:
            profile.dump(path)
        except OSError as exc:
            info["error"] = f"could not write {path}: {exc.strerror or exc}"
        top = profile.top_functions()
        info["top"] = top
        extra_for(item)["profile"] = info
        details: dict[str, Any] = extra_for(item).setdefault("failure_details", {})
        details["latency"] = [
            f"  top functions by cumulative time (cProfile, {info.get('error') or path}):",
            *top,
        ]
