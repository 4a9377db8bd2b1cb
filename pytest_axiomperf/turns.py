"""Turns: one pytest process measures its rounds only when ``axiomperf ab`` says so;
both ends of the pipes (the process's plugin, :class:`Turns`, and ``axiomperf ab``'s
:class:`TurnTaker`).

``axiomperf ab`` runs each side (base and head) in one long-lived pytest process with
``--axiom-perf-rounds=R*P`` and has them take turns, round by round, in ABBA order.
A *turn* is ``P`` consecutive rounds (the passes of one paired round). Before the
first test of each turn the process writes ``ready G`` on its status pipe and waits
for ``go G`` on its control pipe; when a turn is over (at the next turn's first test,
or for the last one once the session has ended) it writes ``done G ok`` or
``done G failed`` (a test failed in it). Under pytest-xdist (``-n`` on the command
line, in ``addopts`` or in ``PYTEST_ADDOPTS``) the tests run in workers, which cannot
take turns: the process writes ``xdist`` and stops, and ``axiomperf ab`` runs a
process a round instead. The pipes' descriptors and ``P`` come in the environment
variable :data:`TURNS_ENV` (``"READ_FD,WRITE_FD,PASSES"``), which the process removes,
and the descriptors are made non-inheritable again, so that nothing the tests start
takes turns or keeps a pipe open.

The wait wraps every other plugin's ``pytest_runtest_protocol`` (a ``tryfirst``
wrapper), so a per-test timeout or a stall detector does not count the other side's
turn against the first test of this one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

import pytest

from pytest_axiomperf.rounds import TURNS_ENV, round_of, turn_of_round


class Turns:
    """The plugin a turn-taking process registers (see the module docstring)."""

    def __init__(self, control: IO[str], status: IO[str], passes: int) -> None:
        self._control = control
        self._status = status
        self._passes = passes
        self._turn = 0
        self._failed: set[int] = set()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        turn = turn_of_round(round_of(item), self._passes)
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
        return (yield)

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


def _distributed(config: pytest.Config) -> bool:
    """Whether pytest-xdist will run the tests in workers."""
    return bool(config.getoption("numprocesses", None) or config.getoption("tx", None))


def install(config: pytest.Config) -> None:
    """Register :class:`Turns` when this process was started to take turns."""
    value = os.environ.pop(TURNS_ENV, None)
    if value is None or hasattr(config, "workerinput"):
        return
    try:
        read_fd, write_fd, passes = (int(part) for part in value.split(","))
        for fd in (read_fd, write_fd):
            os.set_inheritable(fd, False)
        control = os.fdopen(read_fd, "r", encoding="ascii")
        status = os.fdopen(write_fd, "w", encoding="ascii")
    except (ValueError, OSError) as exc:
        raise pytest.UsageError(
            f"{TURNS_ENV}={value!r}: not this process's pipes ({exc})"
        ) from None
    if _distributed(config):
        with status, control:
            status.write("xdist\n")
        raise pytest.UsageError("axiomperf ab: under pytest-xdist each round runs on its own")
    config.pluginmanager.register(Turns(control, status, max(1, passes)), "axiomperf-turns")


class Launch(NamedTuple):
    """How to start one side's pytest process, and where its results and output go."""

    cmd: list[str]
    cwd: Path
    env: Mapping[str, str]
    out: Path
    log: Path


@dataclass
class TurnTaker:
    """``axiomperf ab``'s end of one side's pipes, and its pytest process."""

    launch: Launch
    process: subprocess.Popen[bytes]
    control: IO[str]  # what the driver writes: "go N"
    status: IO[str]  # what the process writes: "ready N", "done N ok|failed", "xdist"
    #: The turn the process waits for; None once it has ended (or broke).
    waiting: int | None = None
    #: The turns in which a test failed.
    failed: set[int] = field(default_factory=set)
    #: The process found pytest-xdist on and stopped.
    xdist: bool = False
    returncode: int | None = None

    def read(self) -> None:
        """Read up to the process's next wait for a turn, or to its end."""
        while True:
            words = self.status.readline().split()
            if len(words) == 3 and words[0] == "done" and words[1].isdigit():
                if words[2] == "failed":
                    self.failed.add(int(words[1]))
                continue
            if len(words) == 2 and words[0] == "ready" and words[1].isdigit():
                self.waiting = int(words[1])
                return
            self.xdist = words == ["xdist"]
            self.waiting = None  # the pipe closed: the process has ended (or broke)
            return

    def go(self, turn: int) -> None:
        """Let the process measure ``turn``; returns when it is done with it (for its last
        turn, when the process has ended: its session's end is part of the turn)."""
        try:
            self.control.write(f"go {turn}\n")
            self.control.flush()
        except OSError:  # the process died while it waited
            self.waiting = None
            return
        self.read()
        if self.waiting is None:
            self.process.wait()

    def finish(self) -> int:
        """The process's exit code, once it has ended (a process still waiting for a turn
        reads the end of its pipe and stops)."""
        with contextlib.suppress(OSError):
            self.control.close()
        self.returncode = self.process.wait()
        self.status.close()
        return self.returncode


def _start(launch: Launch, passes: int) -> TurnTaker:
    to_child, from_driver = os.pipe()
    to_driver, from_child = os.pipe()
    try:
        env = {**launch.env, TURNS_ENV: f"{to_child},{from_child},{passes}"}
        with open(launch.log, "w", encoding="utf-8") as fh:
            process = subprocess.Popen(
                launch.cmd,
                cwd=launch.cwd,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                pass_fds=(to_child, from_child),
            )
    except BaseException:
        for fd in (to_child, from_driver, to_driver, from_child):
            os.close(fd)
        raise
    os.close(to_child)
    os.close(from_child)
    return TurnTaker(
        launch,
        process,
        os.fdopen(from_driver, "w", encoding="ascii"),
        os.fdopen(to_driver, "r", encoding="ascii"),
    )


@contextlib.contextmanager
def turn_takers(launches: Mapping[str, Launch], passes: int) -> Iterator[dict[str, TurnTaker]]:
    """Start each side's pytest process and read its first word (it waits for turn 1,
    or has stopped); their starts and collections overlap, which nothing measures. The
    processes are stopped on the way out, whatever happens."""
    takers: dict[str, TurnTaker] = {}
    try:
        for name, launch in launches.items():
            takers[name] = _start(launch, passes)
        for taker in takers.values():
            taker.read()
        yield takers
    finally:
        for taker in takers.values():
            if taker.process.poll() is None:
                taker.process.kill()
            taker.process.wait()
            for pipe in (taker.control, taker.status):
                with contextlib.suppress(OSError):
                    pipe.close()
