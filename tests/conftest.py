"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: pytest-asyncio in strict mode, its loop scope set (no warning)."""
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        """
    )
    return pytester


@pytest.fixture(autouse=True)
def steady_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs see one machine speed: the gate's rules are tested on their own.

    The machine-drift guard compares the CPU calibration of a baseline with a run's; on
    a shared machine two runs' calibrations can differ by chance. Tests of the guard
    write the calibrations they need into the files (and subprocess runs are unpinned).
    """
    from pytest_axiomperf import calibration

    pinned = {"ms": 1.0, "repeats": calibration.REPEATS, "items": calibration.ITEMS}
    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: dict(pinned))
