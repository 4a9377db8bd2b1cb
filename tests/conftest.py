"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

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

    The machine-drift guard compares the CPU calibration and the neighbours' CPU use of a
    baseline with a run's; on a shared machine two runs' can differ by chance. Tests of the guard
    write the calibrations they need into the files. Subprocess runs are unpinned, and so
    are the workers of an in-process run with ``-n`` (their readings reach the controller).
    """
    from pytest_axiomperf import calibration, neighbours

    pinned = {"ms": 1.0, "median_ms": 1.0, "repeats": calibration.REPEATS}
    pinned["items"] = calibration.ITEMS
    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: dict(pinned))
    # The rest of the machine as busy in every run (the suite's own other tests vary it).
    quiet = {"cores": 0.0, "cpus": 2, "seconds": 1.0}
    monkeypatch.setattr(neighbours.NeighbourMeter, "stop", lambda self: dict(quiet))


@dataclass(frozen=True)
class Standalone:
    """A standalone exchange (``python -m pytest_axiomperf.exchange``): a venue of its own."""

    base_url: str
    ws_url: str
    token: str

    def env(self) -> dict[str, str]:
        """The environment a user's run against it gets (its token)."""
        return {"AXIOM_AUTH_TOKEN": self.token}


@pytest.fixture(scope="session")
def standalone_exchange() -> Iterator[Standalone]:
    """An exchange in its own process, started as a user starts one, for ``--axiom-base-url``."""
    token = "standalone-" + secrets.token_hex(8)
    # --exit-with-parent (it exits when its stdin closes): a test run that is killed does
    # not leave it behind.
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_axiomperf.exchange", "--port", "0", "--exit-with-parent"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "AXIOM_AUTH_TOKEN": token},
    )
    try:
        assert process.stdout is not None
        rest = process.stdout.readline().split()
        ws = process.stdout.readline().split()
        assert rest[:1] == ["REST"] and ws[:1] == ["WS"], (rest, ws)
        yield Standalone(rest[1], ws[1], token)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # its way out, as when the run ends any other way
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
