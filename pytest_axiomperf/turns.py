"""Turns: one pytest process measures its rounds only when ``axiomperf ab`` says so.

``axiomperf ab`` runs each side (base and head) in one long-lived pytest process with
``--axiom-perf-rounds=R*P`` and has them take turns, round by round, in ABBA order.
A *turn* is ``P`` consecutive rounds (the passes of one paired round). Before the
first test of each turn the process writes ``ready G`` on its status pipe and waits
for ``go G`` on its control pipe; when a turn is over (at the next turn's first test,
or for the last one once the session has ended) it writes ``done G ok`` or
``done G failed`` (a test failed in it). The pipes' descriptors and ``P`` come in the
environment variable :data:`TURNS_ENV` (``"READ_FD,WRITE_FD,PASSES"``), which the
process removes so that a pytest it starts itself does not take turns too.

Compared with a process per round, the interpreter's start, collection and the
session's fixtures (the embedded exchange) are paid once a side instead of once a
round, so more rounds fit in the same wall time.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO

import pytest

from pytest_axiomperf.rounds import round_of

#: The environment variable that makes a pytest process take turns.
TURNS_ENV = "AXIOMPERF_AB_TURNS"


class Turns:
    """The plugin a turn-taking process registers (see the module docstring)."""

    def __init__(self, control: IO[str], status: IO[str], passes: int) -> None:
        self._control = control
        self._status = status
        self._passes = passes
        self._turn = 0
        self._failed: set[int] = set()

    def turn_of(self, item: pytest.Item) -> int:
        """The turn an item belongs to: its round's passes share one."""
        return (round_of(item) - 1) // self._passes + 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> None:
        turn = self.turn_of(item)
        if turn != self._turn:
            self._done()
            self._turn = turn
            self._say(f"ready {turn}")
            answer = self._control.readline()
            if answer.strip() != f"go {turn}":  # the driver stopped (or is not one)
                pytest.exit(
                    f"axiomperf ab: expected 'go {turn}' from the driver, got {answer!r}",
                    returncode=pytest.ExitCode.INTERRUPTED,
                )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._failed.add(self._turn)

    def pytest_unconfigure(self) -> None:
        with contextlib.suppress(OSError):  # the driver is gone: nobody to tell
            self._done()
        self._control.close()
        self._status.close()

    def _done(self) -> None:
        if self._turn:
            self._say(f"done {self._turn} {'failed' if self._turn in self._failed else 'ok'}")

    def _say(self, line: str) -> None:
        self._status.write(line + "\n")
        self._status.flush()


def install(config: pytest.Config) -> None:
    """Register :class:`Turns` when this process was started to take turns."""
    value = os.environ.pop(TURNS_ENV, None)
    if value is None or hasattr(config, "workerinput"):
        return
    try:
        read_fd, write_fd, passes = (int(part) for part in value.split(","))
        control = os.fdopen(read_fd, "r", encoding="ascii")
        status = os.fdopen(write_fd, "w", encoding="ascii")
    except (ValueError, OSError) as exc:
        raise pytest.UsageError(
            f"{TURNS_ENV}={value!r}: not this process's pipes ({exc})"
        ) from None
    config.pluginmanager.register(Turns(control, status, max(1, passes)), "axiomperf-turns")
