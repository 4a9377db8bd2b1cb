"""What installing the plugin costs a pytest run that does not use it.

Run: python benchmarks/bench_startup.py [--rounds 9] [--suite-rounds 5] [--calls 30]
                                        [--tree PATH [--tree PATH2]]

``--tree``: a source tree whose ``pytest_axiomperf`` is measured (default: this
checkout); every child process gets it first on ``PYTHONPATH``. Given twice (e.g. an
older revision from ``git archive REV | tar -x -C /tmp/before``), the two trees' runs
are interleaved too, so before and after meet the same machine. The plugin's
``pytest11`` entry point must be installed in the running interpreter.

1. A one-test run (``python -m pytest -q test_one.py`` in a temporary project):
   installed and off, against ``-p no:axiomperf`` (the plugin never imported), and
   with ``--axiom-perf`` (what performance mode adds). The three are interleaved
   round by round, their order rotated each round. Goal: off / no:axiomperf <= 1.05.
2. A pytester-heavy suite: ``--calls`` tests, each ``runpytest_subprocess`` of a
   one-test file (how plugin suites test themselves). Installed, against
   ``PYTEST_ADDOPTS=-p no:axiomperf`` (inherited by the inner runs: no process of the
   run loads the plugin, as if it were not installed). Interleaved. Goal: <= 1.05.
3. ``python -X importtime -c "import pytest_axiomperf"``: the package's cumulative
   import time, and what the entry point's modules add to ``import pytest``.

The tree's bytecode is compiled first, as ``pip install`` does, and the child processes
may write bytecode caches (PYTHONDONTWRITEBYTECODE is removed from their environment),
as in a user's virtualenv; a warm-up run of each arm fills them. The machine may be
shared: every figure is a median with its spread (min-max), and each ratio is given
twice, of the medians and as the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import compileall
import functools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ONE_TEST = "def test_one():\n    assert 1 + 1 == 2\n"

SUITE = """
import os

import pytest

ONE = "def test_inner():\\n    assert True\\n"
# Pytester removes PYTEST_ADDOPTS from the inner runs' environment: pass ours on.
INNER = os.environ.get("BENCH_INNER_ARGS", "").split()

@pytest.mark.parametrize("i", range({calls}))
def test_runs_pytest(pytester, i):
    pytester.makepyfile(test_inner=ONE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *INNER)
    result.assert_outcomes(passed=1)
"""

INI = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"


def _env(tree: Path, addopts: str | None = None) -> dict[str, str]:
    """The children's environment; ``addopts`` reaches the inner pytester runs too."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTEST_ADDOPTS", None)
    # As a user's environment: bytecode, and pytest's assertion-rewritten bytecode of the
    # plugin's modules (pytest rewrites every module of a pytest11 plugin's distribution),
    # are cached after the first run. Under PYTHONDONTWRITEBYTECODE=1 every run would
    # parse, rewrite and compile each imported module of every plugin again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("BENCH_INNER_ARGS", None)
    if addopts is not None:
        env["PYTEST_ADDOPTS"] = env["BENCH_INNER_ARGS"] = addopts
    return env


def _timed(args: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the child and the descendants it waited
    for) of one run. CPU time moves far less than wall time on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


#: Per arm, every round's figure; per round, every arm's figure.
Runs = tuple[dict[str, list[float]], list[dict[str, float]]]


def _interleaved(
    arms: dict[str, Callable[[], tuple[float, float]]], rounds: int
) -> tuple[Runs, Runs]:
    """Each arm once per round, the order rotated each round: (wall, cpu) runs."""
    names = list(arms)
    runs: tuple[Runs, Runs] = (({n: [] for n in names}, []), ({n: [] for n in names}, []))
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        this = {name: arms[name]() for name in order}
        for which, (times, per_round) in enumerate(runs):
            per_round.append({name: pair[which] for name, pair in this.items()})
            for name, pair in this.items():
                times[name].append(pair[which])
    return runs


def _spread(values: list[float], unit: float = 1e3) -> str:
    return (
        f"{statistics.median(values) * unit:8.0f}  "
        f"({min(values) * unit:.0f}-{max(values) * unit:.0f})"
    )


def _ratio(runs: Runs, arm: str, ref: str) -> str:
    times, per_round = runs
    of_medians = statistics.median(times[arm]) / statistics.median(times[ref])
    paired = [r[arm] / r[ref] for r in per_round]
    return (
        f"{of_medians:.3f} (per-round median {statistics.median(paired):.3f}, "
        f"{min(paired):.2f}-{max(paired):.2f})"
    )


def _print_times(times: dict[str, list[float]], unit: float = 1e3) -> None:
    width = max(len(name) for name in times)
    for name, values in times.items():
        print(f"   {name:<{width}}  {_spread(values, unit)}")


def _report(runs: tuple[Runs, Runs], ratios: list[tuple[str, str, str]]) -> None:
    for kind, one in zip(("wall", "CPU"), runs, strict=True):
        print(f"   {kind} time, ms: median (min-max)")
        _print_times(one[0])
        width = max(len(what) for what, _, _ in ratios)
        for what, arm, ref in ratios:
            print(f"   {what:<{width}}  {_ratio(one, arm, ref)}")


def one_test_run(trees: dict[str, Path], rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text(INI)
        (project / "test_one.py").write_text(ONE_TEST)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"]
        arms: dict[str, Callable[[], tuple[float, float]]] = {}
        for label, tree in trees.items():
            env = _env(tree)
            arms[f"{label}: installed, off"] = functools.partial(_timed, base, project, env)
            arms[f"{label}: -p no:axiomperf"] = functools.partial(
                _timed, [*base, "-p", "no:axiomperf"], project, env
            )
            arms[f"{label}: --axiom-perf"] = functools.partial(
                _timed, [*base, "--axiom-perf"], project, env
            )
        for arm in arms.values():
            arm()  # warm-up (file cache), not counted
        runs = _interleaved(arms, rounds)
    print(f"1. One-test run, {rounds} interleaved rounds")
    ratios = []
    for label in trees:
        off, bare, perf = (
            f"{label}: {a}" for a in ("installed, off", "-p no:axiomperf", "--axiom-perf")
        )
        ratios += [
            (f"{label}: off / no:axiomperf", off, bare),
            (f"{label}: --axiom-perf / off", perf, off),
        ]
    _report(runs, ratios)


def pytester_suite(trees: dict[str, Path], rounds: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text(INI)
        (project / "test_suite.py").write_text(SUITE.format(calls=calls))
        args = [sys.executable, "-m", "pytest", "-q", "-p", "pytester", "-p", "no:cacheprovider"]
        arms: dict[str, Callable[[], tuple[float, float]]] = {}
        for label, tree in trees.items():
            installed, absent = _env(tree), _env(tree, addopts="-p no:axiomperf")
            arms[f"{label}: installed, off"] = functools.partial(_timed, args, project, installed)
            arms[f"{label}: not loaded"] = functools.partial(_timed, args, project, absent)
        runs = _interleaved(arms, rounds)
    print(f"2. Suite of {calls} runpytest_subprocess calls, {rounds} interleaved rounds")
    _report(
        runs,
        [
            (f"{label}: installed / not loaded", f"{label}: installed, off", f"{label}: not loaded")
            for label in trees
        ],
    )


def _import_us(code: str, tree: Path, top: str) -> tuple[float, float]:
    """Cumulative import time (us) of the top-level imports named ``top*`` in ``code``."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            cwd=tmp,
            env=_env(tree),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    total = 0.0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if name.startswith(" " + top):  # one space: a top-level import, not a nested one
            total += float(cumulative)
    return total, total


PACKAGE = "import pytest_axiomperf"
ENTRY = (
    "import pytest\n"
    "import pytest_axiomperf.plugin, pytest_axiomperf.fixtures, pytest_axiomperf.exchange.fixture"
)


def import_times(trees: dict[str, Path], rounds: int) -> None:
    arms: dict[str, Callable[[], tuple[float, float]]] = {}
    for label, tree in trees.items():
        arms[f"{label}: import pytest_axiomperf"] = functools.partial(
            _import_us, PACKAGE, tree, "pytest_axiomperf"
        )
        arms[f"{label}: entry point modules, after pytest"] = functools.partial(
            _import_us, ENTRY, tree, "pytest_axiomperf"
        )
    for arm in arms.values():
        arm()  # warm-up
    (times, _), _ = _interleaved(arms, rounds)
    print(f"3. Import time (python -X importtime, cumulative), {rounds} interleaved runs")
    print("   ms: median (min-max)")
    _print_times(times, unit=1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of part 1 and 3")
    parser.add_argument("--suite-rounds", type=int, default=5, help="rounds of part 2")
    parser.add_argument("--calls", type=int, default=30, help="runpytest_subprocess calls")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a source tree to measure (repeat to interleave trees); default: this checkout",
    )
    parser.add_argument("--skip-suite", action="store_true", help="parts 1 and 3 only")
    parser.add_argument("--suite-only", action="store_true", help="part 2 only")
    args = parser.parse_args()
    paths = [p.resolve() for p in args.tree or [Path(__file__).resolve().parent.parent]]
    trees = {path.name: path for path in paths}
    if len(trees) != len(paths):
        raise SystemExit("--tree: give trees with different directory names")
    for tree in trees.values():
        # pip compiles an installed package's bytecode; a source tree under
        # PYTHONDONTWRITEBYTECODE=1 would be compiled from source in every run instead.
        if not compileall.compile_dir(tree / "pytest_axiomperf", quiet=1):
            raise SystemExit(f"could not compile {tree / 'pytest_axiomperf'}")
        print(f"tree {tree.name}: {tree}")
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()}")
    if not args.suite_only:
        import_times(trees, args.rounds)
        one_test_run(trees, args.rounds)
    if not args.skip_suite:
        pytester_suite(trees, args.suite_rounds, args.calls)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
