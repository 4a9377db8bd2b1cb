"""Rounds in a pytest run: each performance test measured N times, spread over the run.

``--axiom-perf-rounds=N`` parametrizes every performance test (one that carries a
budget mark or uses one of the plugin's fixtures) with its round, ``test[round-2]``,
and orders the run round by round: every test's round 1, then every test's round 2,
and so on. A test's rounds are thus minutes apart rather than back to back, so they
sample the machine's states over the run instead of one moment of it. Under
pytest-xdist each worker collects the same order and takes items from it, so the
rounds spread over the workers too.

Results are keyed by the test's own node id (without the round), so baselines
saved with any number of rounds compare with each other; each round's summary is
kept beside the merged samples.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

#: The parameter carrying a test's round (1-based).
ROUND_PARAM = "_axiom_perf_round"
#: Marks that make a test a performance test.
BUDGET_MARKS = frozenset({"latency_budget", "memory_budget", "throughput_budget"})
#: The plugin's fixtures start with this.
FIXTURE_PREFIX = "axiom_"
#: The environment variable that makes a pytest process take turns with another one
#: (``axiomperf ab``; see :mod:`pytest_axiomperf.turns`, imported only then).
TURNS_ENV = "AXIOMPERF_AB_TURNS"
#: Set by ``axiomperf ab`` in every pytest process it starts (taking turns or a process
#: a round): its rounds are paired, so the machine's speed is not read between them.
AB_ENV = "AXIOMPERF_AB"


def started_by_ab() -> bool:
    """Whether ``axiomperf ab`` started this pytest process."""
    return AB_ENV in os.environ


def round_id(index: int) -> str:
    """The id a round adds to a test's node id: ``round-2``."""
    return f"round-{index}"


def is_performance_test(fixturenames: Iterable[str], mark_names: Iterable[str]) -> bool:
    """A test that carries a budget mark or uses one of the plugin's fixtures."""
    return bool(BUDGET_MARKS.intersection(mark_names)) or any(
        name.startswith(FIXTURE_PREFIX) for name in fixturenames
    )


def parametrize(metafunc: pytest.Metafunc, rounds: int) -> None:
    """Give a performance test one call per round (called last among generate hooks, so
    the round's id comes last: ``test[1-round-2]``)."""
    marks = {mark.name for mark in metafunc.definition.iter_markers()}
    if rounds < 2 or not is_performance_test(metafunc.fixturenames, marks):
        return
    metafunc.fixturenames.append(ROUND_PARAM)
    indexes = list(range(1, rounds + 1))
    metafunc.parametrize(ROUND_PARAM, indexes, ids=[round_id(i) for i in indexes])


def turn_of_round(index: int, passes: int) -> int:
    """The paired round (an ``axiomperf ab`` turn) a run's round ``index`` belongs to, when
    each paired round is ``passes`` consecutive rounds."""
    return (index - 1) // passes + 1


def round_of(item: pytest.Item) -> int:
    """The item's round (1 for a test measured once)."""
    callspec = getattr(item, "callspec", None)
    index = callspec.params.get(ROUND_PARAM, 1) if callspec is not None else 1
    return int(index)


def order_by_round(items: list[pytest.Item]) -> None:
    """Every test's round 1, then every test's round 2, ...; stable within a round."""
    if any(round_of(item) > 1 for item in items):
        items[:] = sorted(items, key=round_of)


def base_nodeid(item: pytest.Item) -> str:
    """The test's node id without its round: what results and baselines are keyed by."""
    nodeid = item.nodeid
    index = round_of(item)
    callspec = getattr(item, "callspec", None)
    if callspec is None or ROUND_PARAM not in callspec.params:
        return nodeid
    rid = round_id(index)
    if nodeid.endswith(f"[{rid}]"):
        return nodeid[: -len(rid) - 2]
    if nodeid.endswith(f"-{rid}]"):
        return nodeid[: -len(rid) - 2] + "]"
    return nodeid
