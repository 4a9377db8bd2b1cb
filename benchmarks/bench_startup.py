"""What installing the plugin costs a pytest run that does not use it.

Run: python benchmarks/bench_startup.py [--rounds 9] [--suite-rounds 5] [--calls 30]
                                        [--tree PATH]

``--tree``: the source tree whose ``pytest_axiomperf`` is measured (default: this
checkout); every child process gets it first on ``PYTHONPATH``, so an older tree
(e.g. ``git archive REV | tar -x -C /tmp/old``) is measured the same way. The
plugin's ``pytest11`` entry point must be installed in the running interpreter.

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

The tree's bytecode is compiled first, as ``pip install`` does. The machine may be
shared: every figure is a median with its spread (min-max), and each ratio is given
twice, of the medians and as the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ONE_TEST = "def test_one():\n    assert 1 + 1 == 2\n"

SUITE = """
import pytest

ONE = "def test_inner():\\n    assert True\\n"

@pytest.mark.parametrize("i", range({calls}))
def test_runs_pytest(pytester, i):
    pytester.makepyfile(test_inner=ONE)
    pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)
"""

INI = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"


def _env(tree: Path, addopts: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTEST_ADDOPTS", None)
    if addopts is not None:
        env["PYTEST_ADDOPTS"] = addopts
    return env


def _timed(args: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return elapsed


def _interleaved(
    arms: dict[str, Callable[[], float]], rounds: int
) -> tuple[dict[str, list[float]], list[dict[str, float]]]:
    """Each arm once per round, the order rotated each round; per arm and per round."""
    names = list(arms)
    times: dict[str, list[float]] = {n: [] for n in names}
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        this = {name: arms[name]() for name in order}
        per_round.append(this)
        for name, seconds in this.items():
            times[name].append(seconds)
    return times, per_round


def _spread(values: list[float], unit: float = 1e3) -> str:
    return (
        f"{statistics.median(values) * unit:8.0f}  "
        f"({min(values) * unit:.0f}-{max(values) * unit:.0f})"
    )


def _ratio(
    times: dict[str, list[float]], per_round: list[dict[str, float]], arm: str, ref: str
) -> str:
    of_medians = statistics.median(times[arm]) / statistics.median(times[ref])
    paired = [r[arm] / r[ref] for r in per_round]
    return (
        f"{of_medians:.3f} (per-round median {statistics.median(paired):.3f}, "
        f"{min(paired):.2f}-{max(paired):.2f})"
    )


def one_test_run(tree: Path, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text(INI)
        (project / "test_one.py").write_text(ONE_TEST)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"]
        env = _env(tree)
        arms = {
            "installed, off": lambda: _timed(base, project, env),
            "-p no:axiomperf": lambda: _timed([*base, "-p", "no:axiomperf"], project, env),
            "--axiom-perf": lambda: _timed([*base, "--axiom-perf"], project, env),
        }
        for arm in arms.values():
            arm()  # warm-up (file cache, .pyc files), not counted
        times, per_round = _interleaved(arms, rounds)
    print(f"1. One-test run, {rounds} interleaved rounds: ms, median (min-max)")
    for name, values in times.items():
        print(f"   {name:<18} {_spread(values)}")
    off = _ratio(times, per_round, "installed, off", "-p no:axiomperf")
    print(f"   off / no:axiomperf      {off}")
    print(
        f"   --axiom-perf / off      {_ratio(times, per_round, '--axiom-perf', 'installed, off')}"
    )


def pytester_suite(tree: Path, rounds: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text(INI)
        (project / "test_suite.py").write_text(SUITE.format(calls=calls))
        args = [sys.executable, "-m", "pytest", "-q", "-p", "pytester", "-p", "no:cacheprovider"]
        installed, absent = _env(tree), _env(tree, addopts="-p no:axiomperf")
        arms = {
            "installed, off": lambda: _timed(args, project, installed),
            "not loaded": lambda: _timed(args, project, absent),
        }
        times, per_round = _interleaved(arms, rounds)
    print(
        f"2. Suite of {calls} runpytest_subprocess calls, {rounds} interleaved rounds: "
        "ms, median (min-max)"
    )
    for name, values in times.items():
        print(f"   {name:<18} {_spread(values)}")
    ratio = _ratio(times, per_round, "installed, off", "not loaded")
    print(f"   installed / not loaded  {ratio}")


def _import_us(code: str, tree: Path, top: str) -> float:
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
    return total


def import_times(tree: Path, rounds: int) -> None:
    _import_us("import pytest_axiomperf", tree, "pytest_axiomperf")  # warm-up
    package = [
        _import_us("import pytest_axiomperf", tree, "pytest_axiomperf") for _ in range(rounds)
    ]
    entry = [
        _import_us(
            "import pytest\nimport pytest_axiomperf.plugin, pytest_axiomperf.fixtures, "
            "pytest_axiomperf.exchange.fixture",
            tree,
            "pytest_axiomperf",
        )
        for _ in range(rounds)
    ]
    print(f"3. Import time (python -X importtime), {rounds} runs: ms, median (min-max)")
    print(f"   import pytest_axiomperf                    {_spread(package, 1e-3)}")
    print(f"   entry point + fixture modules after pytest {_spread(entry, 1e-3)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of part 1 and 3")
    parser.add_argument("--suite-rounds", type=int, default=5, help="rounds of part 2")
    parser.add_argument("--calls", type=int, default=30, help="runpytest_subprocess calls")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--skip-suite", action="store_true", help="parts 1 and 3 only")
    args = parser.parse_args()
    tree = args.tree.resolve()
    # pip compiles an installed package's bytecode; a source tree under
    # PYTHONDONTWRITEBYTECODE=1 would be compiled from source in every run instead.
    if not compileall.compile_dir(tree / "pytest_axiomperf", quiet=1):
        raise SystemExit(f"could not compile {tree / 'pytest_axiomperf'}")
    print(f"tree: {tree}  python: {sys.version.split()[0]}  load average: {os.getloadavg()}")
    import_times(tree, args.rounds)
    one_test_run(tree, args.rounds)
    if not args.skip_suite:
        pytester_suite(tree, args.suite_rounds, args.calls)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
