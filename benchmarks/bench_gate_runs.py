"""The regression gate on real pytest runs: false alarms and power, with and without a CPU hog.

A small user suite (``benchmarks/gate_suite``: a ~50 us decision path, a REST order
path whose span the bot's own work dominates, a WebSocket feed handler) is copied into
a throwaway git repository. A *variant* is the working tree's ``SLOWDOWN``: 1.0 (A/A,
no change) or 1.3 (the bot's own code does 30 % more work). Every other run has a CPU
hog (a busy Python process) running beside it, started and stopped by this script.
Variants and hog states are interleaved run by run, so slow drift of the machine
weighs on all rows alike.

Modes, each a row per variant:

- ``ab``: ``axiomperf ab --base HEAD`` at its default rounds (one pytest process a side,
  taking turns; the base is the committed tree, SLOWDOWN 1.0);
- ``baseline``: ``pytest --axiom-perf-rounds=R --axiom-perf-compare=base.json`` against a
  baseline saved once, at the start, on the quiet machine with the same rounds;
- ``single``: the same with one round a side (the plugin's default before rounds);
- ``pytest-benchmark``: ``--benchmark-compare-fail=mean:10%`` on the decision path
  against a pytest-benchmark baseline saved at the start.

A run *fails* when its command exits non-zero. Run it with an interpreter that has
pytest-benchmark too (``pip install pytest-benchmark``)::

    python benchmarks/bench_gate_runs.py --runs 20

Prints a table and writes every run's verdicts to ``--out`` (JSON lines).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = Path(__file__).resolve().parent / "gate_suite"
PLUGIN_ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"A/A": 1.0, "+30%": 1.3}
TIMEOUT = 600
INCOMPARABLE = "not comparable"


@contextmanager
def cpu_hog(on: bool) -> Iterator[None]:
    """A busy neighbour for the duration (a tight Python loop in its own process)."""
    if not on:
        yield
        return
    hog = subprocess.Popen([sys.executable, "-c", "while True:\n    pass"])
    try:
        time.sleep(0.5)  # let it settle on a core
        yield
    finally:
        hog.kill()
        hog.wait(timeout=10)


def make_repo(where: Path) -> Path:
    repo = where / "repo"
    shutil.copytree(SUITE, repo)
    for args in (
        ["init", "-q"],
        ["config", "user.email", "bench@example.com"],
        ["config", "user.name", "bench"],
        ["add", "-A"],
        ["commit", "-qm", "base"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def set_slowdown(repo: Path, factor: float) -> None:
    path = repo / "gatebot" / "__init__.py"
    text = re.sub(r"^SLOWDOWN = .*$", f"SLOWDOWN = {factor}", path.read_text(), flags=re.M)
    path.write_text(text)


def env_for(repo: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{PLUGIN_ROOT}"}


def run(cmd: list[str], repo: Path) -> tuple[int, float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=repo, env=env_for(repo), capture_output=True, text=True, timeout=TIMEOUT
    )
    return done.returncode, time.perf_counter() - started, done.stdout + done.stderr


def machine(path: Path) -> dict[str, object]:
    """The run's machine guards as recorded: calibration (fastest and typical repetition,
    ms) and neighbours (cores)."""
    if not path.is_file():
        return {}
    env = json.loads(path.read_text()).get("environment", {})
    return {
        "calibration_ms": (env.get("calibration") or {}).get("ms"),
        "calibration_median_ms": (env.get("calibration") or {}).get("median_ms"),
        "neighbour_cores": (env.get("neighbours") or {}).get("cores"),
    }


def verdicts(path: Path) -> dict[str, str]:
    """``{test::metric: status}`` from a results file with a comparison."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for m in (data.get("comparison") or {}).get("metrics", []):
        if m.get("tag") is None:
            out[f"{m['nodeid'].split('::')[-1]}::{m['metric']}"] = m["status"]
    return out


def axiom(repo: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "tests/test_gate_suite.py", "-p", "no:cacheprovider",
            "-q", *args]  # fmt: skip


#: The paths whose detection the goal names: the microsecond and millisecond ones.
PATHS = {
    "decision (us)": "test_decision_path::decision_times",
    "order (ms)": "test_order_path::order_path",
    "feed (ms)": "test_feed_handler::feed_handler",
}


def summarize(records: list[dict[str, object]], walls: list[float]) -> None:
    """Failed runs per mode and variant (all, quiet, with hog), then per path how often
    the gate called it a regression."""
    modes = list(dict.fromkeys(str(r["mode"]) for r in records))
    print()
    print(f"{'mode':<18}{'variant':<8}{'failed runs':>12}{'quiet':>8}{'hog':>8}  " + "".join(
        f"{name:>15}" for name in PATHS
    ) + f"{'not comparable':>16}")  # fmt: skip
    for mode in modes:
        for variant in VARIANTS:
            mine = [r for r in records if r["mode"] == mode and r["variant"] == variant]
            if not mine:
                continue

            def failed(rs: list[dict[str, object]]) -> str:
                return f"{sum(r['exit'] != 0 for r in rs)}/{len(rs)}"

            quiet = [r for r in mine if not r["hog"]]
            hogged = [r for r in mine if r["hog"]]
            paths = ""
            for key in PATHS.values():
                seen = [r for r in mine if key in r["verdicts"]]  # type: ignore[operator]
                hits = sum(r["verdicts"][key] == "regression" for r in seen)  # type: ignore[index]
                paths += f"{f'{hits}/{len(seen)}' if seen else '-':>15}"
            # Runs in which a machine guard excused at least one path (committed baselines).
            excused = sum(
                any(r["verdicts"].get(key) == INCOMPARABLE for key in PATHS.values())  # type: ignore[attr-defined]
                for r in mine
            )
            print(
                f"{mode:<18}{variant:<8}{failed(mine):>12}{failed(quiet):>8}"
                f"{failed(hogged):>8}  {paths}{f'{excused}/{len(mine)}':>16}"
            )
    if walls:
        print(
            f"\naxiomperf ab wall time: median {statistics.median(walls):.0f}s, "
            f"max {max(walls):.0f}s over {len(walls)} runs"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per row (default 20)")
    parser.add_argument("--modes", default="ab,baseline,single,pytest-benchmark")
    parser.add_argument("--baseline-rounds", type=int, default=5)
    parser.add_argument("--ab-rounds", type=int, default=None, help="default: axiomperf's")
    parser.add_argument("--out", type=Path, default=Path("gate_runs.jsonl"))
    parser.add_argument(
        "--keep", type=Path,
        help="keep each A/B run's rounds, the committed baseline and each compare's results here",
    )
    parser.add_argument(
        "--summarize", type=Path, metavar="JSONL", help="only print the tables of a past run"
    )
    args = parser.parse_args()
    if args.summarize:
        lines = args.summarize.read_text().splitlines()
        past = [json.loads(line) for line in lines if line.startswith("{")]
        summarize(past, [float(r["seconds"]) for r in past if r["mode"] == "ab"])
        return 0
    modes = args.modes.split(",")
    records: list[dict[str, object]] = []
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp, open(args.out, "w") as log:
        repo = make_repo(Path(tmp))
        r = args.baseline_rounds
        code, took, out = run(
            axiom(repo, f"--axiom-perf-rounds={r}", "--axiom-perf-save=r.json"), repo
        )
        assert code == 0, out
        code, _, out = run(axiom(repo, "--axiom-perf-save=one.json"), repo)
        assert code == 0, out
        if "pytest-benchmark" in modes:
            code, _, out = run(
                [sys.executable, "-m", "pytest", "tests/test_pybenchmark.py", "-q",
                 "-p", "no:cacheprovider", "--benchmark-save=base",
                 f"--benchmark-storage={tmp}/pb"],
                repo,
            )  # fmt: skip
            assert code == 0, out
        print(f"baselines saved (rounds={r} took {took:.0f}s): {machine(repo / 'r.json')}",
              flush=True)  # fmt: skip
        if args.keep:  # for benchmarks/replay_baseline_guards.py
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(repo / "r.json", args.keep / "baseline-r.json")
        for i in range(args.runs):
            hog = i % 2 == 1
            for variant, factor in VARIANTS.items():
                set_slowdown(repo, factor)
                for mode in modes:
                    with cpu_hog(hog):
                        if mode == "ab":
                            rounds = [f"--rounds={args.ab_rounds}"] if args.ab_rounds else []
                            if args.keep:
                                keep = args.keep / f"run{i}-{'aa' if factor == 1.0 else 'slow'}"
                                rounds += ["--keep", str(keep)]
                            cmd = [sys.executable, "-m", "pytest_axiomperf.cli", "ab", "--base",
                                   "HEAD", *rounds, "--json", "ab.json", "--",
                                   "tests/test_gate_suite.py"]  # fmt: skip
                            code, took, out = run(cmd, repo)
                            walls.append(took)
                            found = verdicts(repo / "ab.json")
                            guards = {}
                        elif mode in ("baseline", "single"):
                            base = "r.json" if mode == "baseline" else "one.json"
                            rounds = r if mode == "baseline" else 1
                            code, took, out = run(
                                axiom(repo, f"--axiom-perf-rounds={rounds}",
                                      f"--axiom-perf-compare={base}",
                                      "--axiom-perf-json=cmp.json"),
                                repo,
                            )  # fmt: skip
                            found = verdicts(repo / "cmp.json")
                            guards = machine(repo / "cmp.json")
                            if args.keep and (repo / "cmp.json").is_file():
                                which = "aa" if factor == 1.0 else "slow"
                                kept = args.keep / f"run{i}-{mode}-{which}"
                                kept.mkdir(parents=True, exist_ok=True)
                                shutil.copy(repo / "cmp.json", kept / "cmp.json")
                        else:
                            code, took, out = run(
                                [sys.executable, "-m", "pytest", "tests/test_pybenchmark.py",
                                 "-q", "-p", "no:cacheprovider", f"--benchmark-storage={tmp}/pb",
                                 "--benchmark-compare=0001",
                                 "--benchmark-compare-fail=mean:10%"],
                                repo,
                            )  # fmt: skip
                            found = {}
                            guards = {}
                    if code not in (0, 1):
                        print(out[-3000:], file=sys.stderr)
                    record = {
                        "run": i,
                        "mode": mode,
                        "variant": variant,
                        "hog": hog,
                        "exit": code,
                        "seconds": round(took, 1),
                        "verdicts": found,
                        "load1": round(os.getloadavg()[0], 2),
                        **guards,
                    }
                    records.append(record)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    print(json.dumps(record), flush=True)
        set_slowdown(repo, 1.0)
    summarize(records, walls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
