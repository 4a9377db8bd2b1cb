"""Same-job A/B: ``axiomperf ab --base REF [--rounds N] [pytest args...]``.

Measures the performance tests of a git revision (the *base*, checked out in a
temporary worktree) and of the working tree (the *head*) alternately, round by
round in ABBA order (base, head, head, base, ...), each round in its own pytest
process with that tree's code first on the import path. Round i of base and
round i of head run next to each other in time, so whatever the machine was
doing then weighs on both: the gate compares the pairs (see ``baseline.py``),
and a runner that is slower than the one that saved a baseline cancels out.
No baseline file is needed.
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

from pytest_axiomperf import roundstats
from pytest_axiomperf.baseline import Comparison, attach, compare, load_results, save_results
from pytest_axiomperf.errors import AxiomPerfError, BaselineError
from pytest_axiomperf.results import SessionResults, write_text_atomic

#: Rounds a side by default. The gate reads the tail (p95) and the body (median) of each
#: metric across the pairs two ways, at 0.05 / 4 each (and a metric's k routes at
#: 0.05 / 4k): twelve pairs' smallest p-value, 1/4097 (drawn swaps), reaches that for up
#: to 48 routes of a metric. Chosen on real runs of a three-test suite: at 10 rounds, a
#: CPU hog left about one round in six disturbed even at its best pass, and the 30 %
#: slower bot was missed on a path in 4 of 20 runs (benchmarks/RESULTS.md).
DEFAULT_ROUNDS = 12
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
                for number, (index, name) in enumerate(abba_order(self.rounds), 1):
                    self._round(sides[name], index, number, relative, work)
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

    def _round(self, side: Side, index: int, number: int, relative: Path, work: Path) -> None:
        out = work / f"{side.name}-{index}.json"
        log = work / f"{side.name}-{index}.log"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *self.pytest_args,
            "--axiom-perf",
            f"--axiom-perf-rounds={self.passes}",
            f"--axiom-perf-json={out}",
            "-p",
            "no:cacheprovider",
        ]
        env = {**os.environ, "PYTHONPATH": side.python_path()}
        started = time.perf_counter()
        with open(log, "w", encoding="utf-8") as fh:
            code = subprocess.call(
                cmd, cwd=side.tree / relative, env=env, stdout=fh, stderr=subprocess.STDOUT
            )
        took = time.perf_counter() - started
        if code in _BROKEN or not out.is_file():
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            why = _BROKEN.get(code, f"exit code {code}, no results written")
            raise ABError(
                f"round {index} on {side.name} ({side.tree}): pytest stopped ({why}): "
                f"{shlex.join(cmd[1:])}\n" + "\n".join(f"    {line}" for line in tail)
            )
        if code != 0:
            side.failed_rounds.append(index)
        try:
            measured = load_results(out, role="results")
        except BaselineError as exc:
            raise ABError(str(exc)) from None
        for result in measured.tests.values():
            if result.rounds:
                result.rounds = [roundstats.best_pass(result.rounds, index)]
            side.results.add(result)
        side.results.environment = measured.environment
        # Each round is the best of its passes: a file of these rounds says so, so that
        # comparing it later with rounds of one pass warns (the best of two reads faster).
        side.results.environment["round_passes"] = self.passes
        failed = " (tests failed)" if code else ""
        self.say(
            f"  round {index}/{self.rounds}  {side.name:<4}  {len(measured.tests)} test(s)  "
            f"{took:.1f}s{failed}  [{number}/{2 * self.rounds}]"
        )


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
