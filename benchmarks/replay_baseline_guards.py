"""Replay the committed-baseline compares kept by ``bench_gate_runs.py --keep DIR`` with
the gate's two newest rules for committed baselines switched off in turn.

``bench_gate_runs.py --keep DIR`` keeps the baseline it saved (``DIR/baseline-r.json``)
and each compare run's results (``DIR/runN-baseline-aa/cmp.json``, ``...-slow``). This
compares them again with :func:`pytest_axiomperf.baseline.compare`, as the run did, and:

- without the **typical-speed guard** (each side's ``median_ms`` removed from its
  calibration: only the fastest repetition is compared, as before the guard);
- without the **baseline's own spread** (``roundstats.spread_pct`` returning 0: any
  significant change beyond the threshold counts, as before);
- without either.

A run *fails* when any metric is a regression (the exit code the run had). Prints, per
variant (A/A, +30 %), how many runs each rule set fails, and how many the runs failed
as they ran (with the code they ran). The compare runs measured what
they measured; only the rule changes::

    python benchmarks/replay_baseline_guards.py --keep DIR --jsonl gate_runs.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_axiomperf import baseline, roundstats
from pytest_axiomperf.results import SessionResults

RULES = {
    "this code": (True, True),
    "no typical-speed guard": (False, True),
    "no spread floor": (True, False),
    "neither (the seventh pass's rule)": (False, False),
}


def _without_typical(results: SessionResults) -> SessionResults:
    out = copy.copy(results)
    out.environment = copy.deepcopy(results.environment)
    calibration = out.environment.get("calibration")
    if isinstance(calibration, dict):
        calibration.pop("median_ms", None)
    return out


def _failed(old: SessionResults, new: SessionResults, typical: bool, spread: bool) -> bool:
    if not typical:
        old, new = _without_typical(old), _without_typical(new)
    with mock.patch.object(
        roundstats, "spread_pct", roundstats.spread_pct if spread else (lambda values: 0.0)
    ):
        comparison = baseline.compare(old, new, threshold=10.0)
    return bool(comparison.regressions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, required=True)
    parser.add_argument("--jsonl", type=Path, required=True, help="the pass's --out file")
    args = parser.parse_args()
    old = baseline.load_results(args.keep / "baseline-r.json")
    records = [json.loads(line) for line in args.jsonl.read_text().splitlines()
               if line.startswith("{")]  # fmt: skip
    hog = {(r["run"], r["variant"]): r["hog"] for r in records if r["mode"] == "baseline"}
    counts: dict[tuple[str, str], list[int]] = {}
    for kept in sorted(args.keep.glob("run*-baseline-*/cmp.json")):
        name = kept.parent.name  # run7-baseline-aa
        run = int(name.split("-")[0][3:])
        variant = "A/A" if name.endswith("-aa") else "+30%"
        new = baseline.load_results(kept, role="results")
        for rule, (typical, spread) in RULES.items():
            row = counts.setdefault((rule, variant), [0, 0, 0])
            failed = _failed(old, new, typical, spread)
            row[0] += failed
            row[1] += failed and not hog[(run, variant)]
            row[2] += 1
    for record in records:  # what the runs themselves exited with, for reference
        if record["mode"] == "baseline":
            row = counts.setdefault(("as run (their exit codes)", record["variant"]), [0, 0, 0])
            row[0] += record["exit"] != 0
            row[1] += record["exit"] != 0 and not record["hog"]
            row[2] += 1
    print(f"{'rules':<36}{'variant':<8}{'failed runs':>12}{'quiet':>8}")
    for (rule, variant), (failed, quiet, runs) in counts.items():
        print(f"{rule:<36}{variant:<8}{f'{failed}/{runs}':>12}{quiet:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
