"""Replay the rounds kept by ``bench_gate_runs.py --keep DIR`` under candidate gate rules.

Each kept A/B run holds one results file per round and side (``base-3.json``,
``head-3.json``). This reads every gated metric's round p50 and p95 of every pair
and asks how often a rule would have failed a run (any metric a regression) and
called each path a regression, in two ways:

- ``--as-measured``: each run's own pairs, as they were measured;
- otherwise: simulated runs of ``--pairs`` pairs whose rounds keep the best of
  ``--passes`` kept rounds, drawn from the kept pairs of runs in the same hog
  state (``--draws`` simulated runs per kept run, seeded). Mixing pairs of runs
  made under different loads makes pairs less alike than in one real run, so
  this is pessimistic on false alarms; the passes of a simulated round come from
  different processes, while real passes share one, so it is optimistic on what
  passes gain. Each route is tested at the rule's level, not divided by the
  metric's route count as the gate does. The real runs decide, not this.

A rule is a list of readings ``STAT:KIND`` (``p50:rank``, ``p95:faster``...), each
tested at ``0.05 / len(rule)`` with the threshold of 10 %. Used to choose the
gate's readings and ``axiomperf ab``'s defaults before measuring them on real runs::

    python benchmarks/replay_gate_rounds.py --keep DIR --jsonl gate_runs.jsonl \\
        --pairs 10 --passes 2 --rule p50:rank,p95:rank,p50:faster,p95:faster
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_axiomperf import roundstats

PATHS = {
    "decision": "test_decision_path:decision_times",
    "order": "test_order_path:order_path",
    "feed": "test_feed_handler:feed_handler",
}
Pair = dict[str, tuple[float, float]]  # "test:metric[:tag]:stat" -> (base, head)


def _values(data: dict[str, Any]) -> dict[str, float]:
    out = {}
    for nodeid, test in data["tests"].items():
        name = nodeid.split("::")[-1]
        # A round's process may have measured several passes: the gate keeps the best.
        best = roundstats.best_pass(test["rounds"], 1)
        for metric, summary in best["metrics"].items():
            if metric.startswith("http_") or metric == "network_throughput":
                continue  # request phases are never gated; throughput is not a latency
            for stat in ("p50", "p95"):
                if stat in summary:
                    out[f"{name}:{metric}:{stat}"] = summary[stat]
                for tag, tagged in summary.get("tags", {}).items():
                    if stat in tagged:
                        out[f"{name}:{metric}[{tag}]:{stat}"] = tagged[stat]
    return out


def load(keep: Path, jsonl: Path) -> list[dict[str, Any]]:
    hog = {}
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        if record["mode"] == "ab":
            hog[(record["run"], record["variant"])] = record["hog"]
    runs = []
    for folder in sorted(keep.glob("run*-*")):
        index, kind = folder.name[3:].split("-")
        variant = "A/A" if kind == "aa" else "+30%"
        pairs: list[Pair] = []
        for base_file in sorted(folder.glob("base-*.json")):
            head_file = folder / base_file.name.replace("base-", "head-")
            base = _values(json.loads(base_file.read_text()))
            head = _values(json.loads(head_file.read_text()))
            pairs.append({k: (base[k], head[k]) for k in base.keys() & head.keys()})
        runs.append({"variant": variant, "hog": hog.get((int(index), variant)), "pairs": pairs})
    return runs


def reading(pairs: list[Pair], key: str, kind: str) -> tuple[float, float]:
    """(change in percent, one-sided p that head is slower) of one reading."""
    olds = [p[key][0] for p in pairs]
    news = [p[key][1] for p in pairs]
    if kind == "rank":
        logs = [math.log((n + 1e-9) / (o + 1e-9)) for o, n in zip(olds, news, strict=True)]
        change = (math.exp(roundstats.median(logs)) - 1) * 100
        return change, roundstats.wilcoxon_signed_rank(logs)[0]
    return roundstats.faster_half_change(olds, news), roundstats.paired_permutation(olds, news)[0]


def regressed(pairs: list[Pair], metric: str, rule: list[tuple[str, str]]) -> bool:
    for stat, kind in rule:
        change, p = reading(pairs, f"{metric}:{stat}", kind)
        if change > 10.0 and p < 0.05 / len(rule):
            return True
    return False


def simulated(runs: list[dict[str, Any]], run: dict[str, Any], pairs: int, passes: int,
              rng: random.Random) -> list[Pair]:  # fmt: skip
    pool = [p for r in runs if r["variant"] == run["variant"] and r["hog"] == run["hog"]
            for p in r["pairs"]]  # fmt: skip
    drawn = rng.sample(pool, pairs * passes)
    out = []
    for i in range(pairs):
        group = drawn[i * passes : (i + 1) * passes]
        keys = set.intersection(*(set(g) for g in group))
        out.append({k: (min(g[k][0] for g in group), min(g[k][1] for g in group)) for k in keys})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, required=True)
    parser.add_argument("--jsonl", type=Path, required=True)
    parser.add_argument("--rule", default="p50:rank,p95:rank,p50:faster,p95:faster")
    parser.add_argument("--as-measured", action="store_true")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rule = [tuple(part.split(":")) for part in args.rule.split(",")]
    runs = load(args.keep, args.jsonl)
    rng = random.Random(args.seed)
    shape = "as measured" if args.as_measured else f"{args.pairs} pairs x {args.passes} passes"
    print(f"rule {args.rule}; {shape}")
    for variant in ("A/A", "+30%"):
        mine = [r for r in runs if r["variant"] == variant]
        failed = total = 0
        hits = dict.fromkeys(PATHS, 0)
        for run in mine:
            for _ in range(1 if args.as_measured else args.draws):
                pairs = run["pairs"] if args.as_measured else simulated(
                    runs, run, args.pairs, args.passes, rng
                )  # fmt: skip
                common = set.intersection(*(set(p) for p in pairs))
                metrics = {key.rsplit(":", 1)[0] for key in common}
                metrics = {m for m in metrics if f"{m}:p50" in common and f"{m}:p95" in common}
                verdicts = {m: regressed(pairs, m, rule) for m in metrics}  # type: ignore[arg-type]
                total += 1
                failed += any(verdicts.values())
                for path, metric in PATHS.items():
                    hits[path] += verdicts.get(metric, False)
        per_path = "  ".join(f"{path} {n}/{total}" for path, n in hits.items())
        print(f"  {variant:<5} failed runs {failed}/{total}  {per_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
