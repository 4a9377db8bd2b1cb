"""What the plugin keeps on pytest's config and on each test item (``stash`` keys).

The plugin's hooks, its fixtures and the body guards all reach the run's state
through here, so none of them imports another: plugin.py wires them, and this
module imports nothing heavier than the tracker and the budget markers (a plain
pytest run loads it; see README "What installing the plugin brings").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_axiomperf.budgets import Budgets
from pytest_axiomperf.tracker import PerformanceTracker

if TYPE_CHECKING:
    from pytest_axiomperf.exchange.simulator import ExchangeSimulator
    from pytest_axiomperf.plugin import AxiomPerfPlugin
    from pytest_axiomperf.results import TestResult

# Typed by annotation: the classes are imported only when performance mode or a
# fixture needs them.
PLUGIN_KEY: pytest.StashKey[AxiomPerfPlugin] = pytest.StashKey()
BUDGETS_KEY = pytest.StashKey[Budgets]()
TRACKER_KEY = pytest.StashKey[PerformanceTracker]()
RESULT_KEY: pytest.StashKey[TestResult] = pytest.StashKey()
EXTRA_KEY = pytest.StashKey[dict[str, Any]]()
#: The exchange a test used, so its profile can be stored with the test's results.
EXCHANGE_KEY: pytest.StashKey[ExchangeSimulator] = pytest.StashKey()
#: The session's exchange, once the ``axiom_exchange`` fixture has started it.
SESSION_EXCHANGE_KEY: pytest.StashKey[ExchangeSimulator] = pytest.StashKey()


def get_plugin(config: pytest.Config) -> AxiomPerfPlugin:
    """The run's state object."""
    return config.stash[PLUGIN_KEY]


def tracker_for(item: pytest.Item) -> PerformanceTracker:
    """The test's tracker, created on first use."""
    tracker = item.stash.get(TRACKER_KEY, None)
    if tracker is None:
        tracker = item.stash[TRACKER_KEY] = PerformanceTracker(item.nodeid)
    return tracker


def budgets_for(item: pytest.Item) -> Budgets:
    """The test's validated budgets (validated at collection for Python tests)."""
    budgets = item.stash.get(BUDGETS_KEY, None)
    if budgets is None:
        budgets = item.stash[BUDGETS_KEY] = Budgets.from_item(item)
    return budgets


def extra_for(item: pytest.Item) -> dict[str, Any]:
    """The test's extra facts (plain builtins), created on first use; they become
    ``TestResult.extra`` (e.g. ``"load"``: the ``to_dict()`` of each load run).
    ``extra["failure_details"][kind]``: lines added to the failure message when a verdict
    of that kind fails (top allocation sites, top profiled functions)."""
    extra = item.stash.get(EXTRA_KEY, None)
    if extra is None:
        extra = item.stash[EXTRA_KEY] = {}
    return extra
