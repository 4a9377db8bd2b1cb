"""Same-job A/B: ``axiomperf ab --base REF [--rounds N] [pytest args...]``.

Measures the performance tests of a git revision (the *base*, checked out in a
temporary worktree) and of the working tree (the *head*) alternately, round by
round in ABBA order (base, head, head, base, ...), each side in one pytest
process with that tree's code first on the import path. The two processes take
turns (see ``turns.py``): one measures a round while the other waits, so the
interpreter's start, collection and the session's fixtures are paid once a side,
not once a round. (Under pytest-xdist, whose workers cannot take turns, each
round is its own pytest process instead, and so off POSIX systems, where the
pipes cannot be handed to a child.) Round i of base and round i of head
run next to each other in time, so whatever the machine was doing then weighs
on both: the gate compares the pairs (see ``baseline.py``), and a runner that is
slower than the one that saved a baseline cancels out. No baseline file is
needed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pytest_axiomperf import roundstats
from pytest_axiomperf.baseline import Comparison, attach, compare, load_results, save_results
from pytest_axiomperf.errors import AxiomPerfError, BaselineError
from pytest_axiomperf.results import SessionResults, write_text_atomic
from pytest_axiomperf.turns import TURNS_ENV

#: Rounds a side by default. The gate reads the tail (p95) and the body (median) of each
#: metric across the pairs two ways, at 0.05 / 4 each (and a metric's k routes at
#: 0.05 / 4k). Chosen on real runs of a three-test suite (benchmarks/RESULTS.md): twelve
#: pairs missed a 30 % slower bot's millisecond path in 1 to 2 of 20 runs beside a CPU
#: hog; with the sides taking turns in two long-lived processes a round costs its tests
#: alone (no interpreter start, collection or exchange start), and twenty pairs of that
#: suite take about as long as twelve rounds of a process each did.
DEFAULT_ROUNDS = 20
#: Passes of the suite in each round's process; each statistic keeps its best pass.
DEFAULT_PASSES = 2
#: pytest's exit codes that mean "the run itself broke" rather than "a test failed".
_BROKEN = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


class ABError(AxiomPerfError):
    """The A/B run could not be made (not a git repository, unknown revision, a round broke)."""


@dataclass
class Side:
    """One side of the comparison: a source tree and the rounds measured on it."""

    name: str  # "base" or "head"
    tree: Path
    results: SessionResults = field(default_factory=SessionResults)
    failed_rounds: list[int] = field(default_factory=list)

    def python_path(self) -> str:
        """The tree first on the import path (its ``src/`` too, for a src layout)."""
        paths = [self.tree / "src", self.tree] if (self.tree / "src").is_dir() else [self.tree]
        extra = os.environ.get("PYTHONPATH")
        return os.pathsep.join([*(str(p) for p in paths), *([extra] if extra else [])])


def _git(args: Sequence[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
        )
    except FileNotFoundError:
        raise ABError("git is not installed: axiomperf ab needs it") from None
    if done.returncode != 0:
        raise ABError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout.strip()


def abba_order(rounds: int) -> list[tuple[int, str]]:
    """``[(1, "base"), (1, "head"), (2, "head"), (2, "base"), ...]``: each pair's order
    alternates, so neither side always runs first (warm caches, a neighbour's rhythm)."""
    order = []
    for index in range(1, rounds + 1):
        first, second = ("base", "head") if index % 2 else ("head", "base")
        order += [(index, first), (index, second)]
    return order


@dataclass
class ABRun:
    """Everything one ``axiomperf ab`` needs; :meth:`run` measures and compares."""

    base_ref: str
    rounds: int
    pytest_args: list[str]
    threshold: float
    noise_floor: float
    cwd: Path = field(default_factory=Path.cwd)
    say: Callable[[str], None] = print
    workdir: Path | None = None
    passes: int = DEFAULT_PASSES

    def run(self) -> tuple[Comparison, Side, Side]:
        """Measure both sides round by round and compare them; ``ABError`` when it cannot."""
        try:
            root = Path(_git(["rev-parse", "--show-toplevel"], self.cwd))
        except ABError:
            raise ABError(
                f"{self.cwd} is not in a git repository: axiomperf ab needs one"
            ) from None
        try:
            sha = _git(["rev-parse", "--verify", "--quiet", f"{self.base_ref}^{{commit}}"], root)
        except ABError:
            raise ABError(
                f"--base {self.base_ref}: no such commit here (with actions/checkout, "
                "fetch the history: fetch-depth: 0)"
            ) from None
        relative = Path(os.path.relpath(self.cwd.resolve(), root.resolve()))
        with tempfile.TemporaryDirectory(prefix="axiomperf-ab-") as tmp:
            work = self.workdir or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            base_tree = Path(tmp) / "base"
            _git(["worktree", "add", "--detach", "--quiet", str(base_tree), sha], root)
            try:
                sides = {"base": Side("base", base_tree), "head": Side("head", root)}
                started = time.perf_counter()
                if uses_xdist(self.pytest_args) or os.name != "posix":  # no turns: see above
                    for number, (index, name) in enumerate(abba_order(self.rounds), 1):
                        self._round(sides[name], index, number, relative, work)
                else:
                    self._take_turns(sides, relative, work)
                elapsed = time.perf_counter() - started
            finally:
                _git(["worktree", "remove", "--force", str(base_tree)], root)
        passes = f" ({self.passes} passes each)" if self.passes > 1 else ""
        self.say(f"axiomperf ab: {self.rounds} rounds a side{passes} in {elapsed:.0f}s")
        base, head = sides["base"], sides["head"]
        comparison = compare(
            base.results,
            head.results,
            threshold=self.threshold,
            noise_floor=self.noise_floor,
            baseline=f"{self.base_ref} ({sha[:10]})",
            paired=True,
        )
        attach(comparison, head.results)
        return comparison, base, head

    def _command(self, rounds: int, out: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pytest",
            *self.pytest_args,
            "--axiom-perf",
            f"--axiom-perf-rounds={rounds}",
            f"--axiom-perf-json={out}",
            "-p",
            "no:cacheprovider",
        ]

    def _round(self, side: Side, index: int, number: int, relative: Path, work: Path) -> None:
        """One round in its own pytest process (under pytest-xdist)."""
        out = work / f"{side.name}-{index}.json"
        log = work / f"{side.name}-{index}.log"
        cmd = self._command(self.passes, out)
        env = {**os.environ, "PYTHONPATH": side.python_path()}
        started = time.perf_counter()
        with open(log, "w", encoding="utf-8") as fh:
            code = subprocess.call(
                cmd, cwd=side.tree / relative, env=env, stdout=fh, stderr=subprocess.STDOUT
            )
        took = time.perf_counter() - started
        _check_exit(f"round {index} on {side.name} ({side.tree})", code, cmd, out, log)
        if code != 0:
            side.failed_rounds.append(index)
        measured = _load(out)
        for result in measured.tests.values():
            if result.rounds:
                result.rounds = [roundstats.best_pass(result.rounds, index)]
            side.results.add(result)
        self._keep_environment(side, measured)
        failed = " (tests failed)" if code else ""
        self.say(
            f"  round {index}/{self.rounds}  {side.name:<4}  {len(measured.tests)} test(s)  "
            f"{took:.1f}s{failed}  [{number}/{2 * self.rounds}]"
        )

    def _keep_environment(self, side: Side, measured: SessionResults) -> None:
        side.results.environment = measured.environment
        # Each round is the best of its passes: a file of these rounds says so, so that
        # comparing it later with rounds of one pass warns (the best of two reads faster).
        side.results.environment["round_passes"] = self.passes

    def _take_turns(self, sides: dict[str, Side], relative: Path, work: Path) -> None:
        """Both sides in one pytest process each, taking turns round by round."""
        with _turn_takers(self, sides, relative, work) as takers:
            for number, (index, name) in enumerate(abba_order(self.rounds), 1):
                taker = takers[name]
                if taker.waiting != index:  # ended early, or nothing to measure this round
                    continue
                started = time.perf_counter()
                taker.go(index)
                took = time.perf_counter() - started
                failed = " (tests failed)" if index in taker.failed else ""
                self.say(
                    f"  round {index}/{self.rounds}  {name:<4}  {took:.1f}s{failed}  "
                    f"[{number}/{2 * self.rounds}]"
                )
            for name, taker in takers.items():
                code = taker.finish()
                side = sides[name]
                what = f"the {name} side ({side.tree})"
                _check_exit(what, code, taker.cmd, taker.out, taker.log)
                measured = _load(taker.out)
                for result in measured.tests.values():
                    result.rounds = _paired_rounds(result.rounds, self.passes)
                    side.results.add(result)
                self._keep_environment(side, measured)
                side.failed_rounds = sorted(taker.failed) if code else []


@dataclass
class _TurnTaker:
    """One side's pytest process and the pipes it takes turns over."""

    cmd: list[str]
    out: Path
    log: Path
    process: subprocess.Popen[bytes]
    control: IO[str]  # what this driver writes: "go N"
    status: IO[str]  # what the process writes: "ready N", "done N ok|failed"
    waiting: int | None = None  # the turn the process waits for; None once it ended
    failed: set[int] = field(default_factory=set)

    def _read(self) -> None:
        """Read up to the process's next wait for a turn (``waiting``), or to its end
        (``waiting`` None); note the turns it says a test failed in."""
        while True:
            words = self.status.readline().split()
            if len(words) == 3 and words[0] == "done" and words[1].isdigit():
                if words[2] == "failed":
                    self.failed.add(int(words[1]))
                continue
            if len(words) == 2 and words[0] == "ready" and words[1].isdigit():
                self.waiting = int(words[1])
                return
            self.waiting = None  # the pipe closed: the process has ended (or broke)
            return

    def go(self, turn: int) -> None:
        """Let the process measure ``turn``; returns when it is done with it (for its last
        turn, when the process has ended: its session's end is part of the turn)."""
        self.control.write(f"go {turn}\n")
        self.control.flush()
        self._read()
        if self.waiting is None:
            self.process.wait()

    def finish(self) -> int:
        """The process's exit code, once it has ended."""
        self.control.close()  # a process still waiting reads the end of the pipe and stops
        code = self.process.wait()
        self.status.close()
        return code


@contextmanager
def _turn_takers(
    run: ABRun, sides: dict[str, Side], relative: Path, work: Path
) -> Iterator[dict[str, _TurnTaker]]:
    """Start each side's pytest process; both wait for their first turn (their start and
    collection overlap, which nothing measures). Stopped, whatever happens."""
    takers: dict[str, _TurnTaker] = {}
    try:
        for name, side in sides.items():
            out, log = work / f"{name}.json", work / f"{name}.log"
            cmd = run._command(run.rounds * run.passes, out)
            to_child, from_driver = os.pipe()
            to_driver, from_child = os.pipe()
            env = {
                **os.environ,
                "PYTHONPATH": side.python_path(),
                TURNS_ENV: f"{to_child},{from_child},{run.passes}",
            }
            with open(log, "w", encoding="utf-8") as fh:
                process = subprocess.Popen(
                    cmd,
                    cwd=side.tree / relative,
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    pass_fds=(to_child, from_child),
                )
            os.close(to_child)
            os.close(from_child)
            takers[name] = _TurnTaker(
                cmd,
                out,
                log,
                process,
                os.fdopen(from_driver, "w", encoding="ascii"),
                os.fdopen(to_driver, "r", encoding="ascii"),
            )
        for taker in takers.values():
            taker._read()
        yield takers
    finally:
        for taker in takers.values():
            if taker.process.poll() is None:
                taker.process.kill()
                taker.process.wait()
            for pipe in (taker.control, taker.status):
                with suppress(OSError):  # the process is gone; its end of the pipe with it
                    pipe.close()


def uses_xdist(pytest_args: Sequence[str]) -> bool:
    """Whether the pytest arguments distribute the tests over pytest-xdist workers."""
    for arg in pytest_args:
        if arg in ("-n", "--numprocesses", "--dist", "--tx", "-d"):
            return True
        if arg.startswith(("--numprocesses=", "--dist=", "--tx=")) or (
            arg.startswith("-n") and not arg.startswith("--")
        ):
            return True
    return False


def _paired_rounds(rounds: list[dict[str, Any]], passes: int) -> list[dict[str, Any]]:
    """A side's rounds of one pass each, grouped ``passes`` at a time into paired rounds
    (the best pass of each group, see :func:`roundstats.best_pass`)."""
    ordered = sorted(rounds, key=lambda one: int(one.get("round", 0)))
    groups: dict[int, list[dict[str, Any]]] = {}
    for one in ordered:
        groups.setdefault((int(one.get("round", 1)) - 1) // passes + 1, []).append(one)
    return [roundstats.best_pass(group, index) for index, group in sorted(groups.items())]


def _check_exit(what: str, code: int, cmd: list[str], out: Path, log: Path) -> None:
    """``ABError`` with the end of the output when the pytest run broke."""
    if code in _BROKEN or not out.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        why = _BROKEN.get(code, f"exit code {code}, no results written")
        raise ABError(
            f"{what}: pytest stopped ({why}): {shlex.join(cmd[1:])}\n"
            + "\n".join(f"    {line}" for line in tail)
        )


def _load(out: Path) -> SessionResults:
    try:
        return load_results(out, role="results")
    except BaselineError as exc:
        raise ABError(str(exc)) from None


def write_outputs(
    comparison: Comparison,
    base: Side,
    head: Side,
    json_path: Path | None,
    markdown_path: Path | None,
    html_path: Path | None,
) -> list[str]:
    """The head's results with the comparison, as JSON/Markdown/HTML; what was written."""
    from pytest_axiomperf.report.html import render_html
    from pytest_axiomperf.report.markdown import render_markdown

    written = []
    if json_path is not None:
        save_results(json_path, head.results)  # read back first, as every results file
        written.append(f"results (JSON): {json_path}")
    if markdown_path is not None:
        write_text_atomic(markdown_path, render_markdown(head.results, comparison))
        written.append(f"Markdown report: {markdown_path}")
    if html_path is not None:
        write_text_atomic(html_path, render_html(head.results, comparison, base.results))
        written.append(f"HTML report: {html_path}")
    return written
