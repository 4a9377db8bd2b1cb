"""The plugin's fixtures. Each is sync, so it works under any pytest-asyncio mode and
loop scope; async resources are created lazily in the test's running loop."""

from __future__ import annotations

import pytest

from pytest_axiomperf.tracker import PerformanceTracker


@pytest.fixture
def axiom_tracker(request: pytest.FixtureRequest) -> PerformanceTracker:
    """The test's PerformanceTracker: budgets, the report and the JSON results read it."""
    from pytest_axiomperf.plugin import tracker_for

    return tracker_for(request.node)
