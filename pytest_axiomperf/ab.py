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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_axiomperf import roundstats
from pytest_axiomperf.baseline import Comparison, attach, compare, load_results, save_results
from pytest_axiomperf.errors import AxiomPerfError, BaselineError
from pytest_axiomperf.results import SessionResults, write_text_atomic
from pytest_axiomperf.rounds import AB_ENV, turn_of_round
from pytest_axiomperf.settings import MAX_COUNT
from pytest_axiomperf.turns import Launch, TurnTaker, turn_takers

#: Rounds a side by default. The gate reads the tail (p95) and the body (median) of each
#: metric across the pairs two ways, at 0.05 / 4 each (and a metric's k routes at
#: 0.05 / 4k). Chosen on real runs of a three-test suite (benchmarks/RESULTS.md): twelve
#: pairs missed a 30 % slower bot's millisecond path in 1 to 2 of 20 runs beside a CPU
#: hog; with the sides taking turns in two long-lived processes a round costs its tests
#: alone (no interpreter start, collection or exchange start), and twenty pairs of that
#: suite take about as long as twelve rounds of a process each did.
DEFAULT_ROUNDS = 20
#: Rounds a side by default when each round is its own pytest process (under
#: pytest-xdist, or off POSIX): the ~1.3 s a process costs a round is paid 24 times.
DEFAULT_PROCESS_ROUNDS = 12
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
    #: Whether a test failed, and in which rounds when that is known.
    tests_failed: bool = False
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
    rounds: int | None  # None: the default for how the rounds run
    pytest_args: list[str]
    threshold: float
    noise_floor: float
    cwd: Path = field(default_factory=Path.cwd)
    say: Callable[[str], None] = print
    workdir: Path | None = None
    passes: int = DEFAULT_PASSES
    #: The rounds a side measured: ``rounds``, or the default for how they ran.
    measured: int = 0

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
                turned = False
                if os.name == "posix":  # where pass_fds hands the pipes to the child
                    try:
                        self._take_turns(sides, relative, work)
                        turned = True
                    except NoTurns:
                        self.say("axiomperf ab: pytest-xdist is on: a pytest process a round")
                if not turned:
                    self.measured = self.rounds or DEFAULT_PROCESS_ROUNDS
                    for number, (index, name) in enumerate(abba_order(self.measured), 1):
                        self._round(sides[name], index, number, relative, work)
                elapsed = time.perf_counter() - started
            finally:
                _git(["worktree", "remove", "--force", str(base_tree)], root)
        passes = f" ({self.passes} passes each)" if self.passes > 1 else ""
        self.say(f"axiomperf ab: {self.measured} rounds a side{passes} in {elapsed:.0f}s")
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

    @staticmethod
    def _env(side: Side) -> dict[str, str]:
        """A side's pytest process: that tree's code first on the import path, and told
        that ab started it (see :func:`pytest_axiomperf.rounds.started_by_ab`)."""
        return {**os.environ, "PYTHONPATH": side.python_path(), AB_ENV: "1"}

    def _round(self, side: Side, index: int, number: int, relative: Path, work: Path) -> None:
        """One round in its own pytest process (under pytest-xdist, or off POSIX)."""
        out = work / f"{side.name}-{index}.json"
        log = work / f"{side.name}-{index}.log"
        cmd = self._command(self.passes, out)
        env = self._env(side)
        started = time.perf_counter()
        with open(log, "w", encoding="utf-8") as fh:
            code = subprocess.call(
                cmd, cwd=side.tree / relative, env=env, stdout=fh, stderr=subprocess.STDOUT
            )
        took = time.perf_counter() - started
        _check_exit(f"round {index} on {side.name} ({side.tree})", code, cmd, out, log)
        if code != 0:
            side.tests_failed = True
            side.failed_rounds.append(index)
        measured = _load(out)
        for result in measured.tests.values():
            if result.rounds:
                result.rounds = [roundstats.best_pass(result.rounds, index)]
            side.results.add(result)
        self._keep_environment(side, measured)
        failed = " (tests failed)" if code else ""
        self.say(
            f"  round {index}/{self.measured}  {side.name:<4}  {len(measured.tests)} test(s)  "
            f"{took:.1f}s{failed}  [{number}/{2 * self.measured}]"
        )

    def _keep_environment(self, side: Side, measured: SessionResults) -> None:
        side.results.environment = measured.environment
        # Each round is the best of its passes: a file of these rounds says so, so that
        # comparing it later with rounds of one pass warns (the best of two reads faster).
        side.results.environment["round_passes"] = self.passes

    def _take_turns(self, sides: dict[str, Side], relative: Path, work: Path) -> None:
        """Both sides in one pytest process each, taking turns round by round; ``NoTurns``
        when pytest-xdist is on (its workers cannot take turns)."""
        rounds = self.measured = self.rounds or DEFAULT_ROUNDS
        if rounds * self.passes > MAX_COUNT:
            raise ABError(
                f"--rounds {rounds} x --passes {self.passes} is more than the {MAX_COUNT} "
                "rounds a pytest run takes"
            )
        launches = {}
        for name, side in sides.items():
            out = work / f"{name}.json"
            launches[name] = Launch(
                self._command(rounds * self.passes, out),
                side.tree / relative,
                self._env(side),
                out,
                work / f"{name}.log",
            )
        with turn_takers(launches, self.passes) as takers:
            if any(taker.xdist for taker in takers.values()):
                raise NoTurns
            for name, taker in takers.items():
                self._expect(name, taker, 1, sides[name])
            for number, (index, name) in enumerate(abba_order(rounds), 1):
                taker = takers[name]
                started = time.perf_counter()
                taker.go(index)
                took = time.perf_counter() - started
                failed = " (tests failed)" if index in taker.failed else ""
                self.say(
                    f"  round {index}/{rounds}  {name:<4}  {took:.1f}s{failed}  "
                    f"[{number}/{2 * rounds}]"
                )
                self._expect(name, taker, index + 1 if index < rounds else None, sides[name])
        for name, taker in takers.items():
            side = sides[name]
            measured = _load(taker.launch.out)
            for result in measured.tests.values():
                result.rounds = _paired_rounds(result.rounds, self.passes)
                side.results.add(result)
            self._keep_environment(side, measured)
            # Each side's process ran while the other took its turns: its readings of the
            # machine (a calibration at its start, beside the other's start; the other
            # processes' CPU over its session) describe the A/B, not the machine.
            for reading in ("calibration", "neighbours"):
                side.results.environment.pop(reading, None)
            side.tests_failed = taker.returncode != 0
            side.failed_rounds = sorted(taker.failed)

    def _expect(self, name: str, taker: TurnTaker, turn: int | None, side: Side) -> None:
        """``ABError`` unless the side now waits for ``turn`` (None: it has ended well)."""
        if turn is not None and taker.waiting == turn:
            return
        code = taker.finish()
        what = f"the {name} side ({side.tree})"
        launch = taker.launch
        _check_exit(what, code, launch.cmd, launch.out, launch.log)
        if turn is None:
            return
        after = f"after round {turn - 1}" if turn > 1 else "before its first round"
        why = ": a test failed, and -x or --maxfail stops pytest there" if code == 1 else ""
        raise ABError(
            f"{what}: pytest ended {after} of {self.measured} (exit code {code}{why}); "
            "axiomperf ab needs every round of both sides, so the selection must hold a "
            f"performance test\n{_tail(launch.log)}"
        )


class NoTurns(Exception):
    """The sides cannot take turns (pytest-xdist is on): a process a round instead."""


def _paired_rounds(rounds: list[dict[str, Any]], passes: int) -> list[dict[str, Any]]:
    """A side's rounds of one pass each, grouped ``passes`` at a time into paired rounds
    (the best pass of each group, see :func:`roundstats.best_pass`)."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for one in sorted(rounds, key=lambda one: int(one.get("round", 1))):
        groups.setdefault(turn_of_round(int(one.get("round", 1)), passes), []).append(one)
    return [roundstats.best_pass(group, index) for index, group in sorted(groups.items())]


def _tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
    return "\n".join(f"    {line}" for line in lines)


def _check_exit(what: str, code: int, cmd: list[str], out: Path, log: Path) -> None:
    """``ABError`` with the end of the output when the pytest run broke."""
    if code in _BROKEN or not out.is_file():
        why = _BROKEN.get(code, f"exit code {code}, no results written")
        raise ABError(f"{what}: pytest stopped ({why}): {shlex.join(cmd[1:])}\n{_tail(log)}")


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
