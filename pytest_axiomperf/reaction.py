"""Reaction times measured by the venue, brought into the test's tracker.

When a test played a scenario on the embedded exchange
(``axiom_exchange.scenario(...)``), the exchange knows when it emitted each
event and when each order answering it arrived. Right after the test body
(before budgets are checked) this module reads that summary from the
exchange, ends the scenario, and records:

- ``reaction_latency`` samples (seconds, the exchange's clock), tagged by
  event kind (``listing``, ``price_spike``);
- missed events (their ``answer_within`` window passed without an order) as
  error counts named ``reaction_missed[<kind>]``, which
  ``latency_budget(metric="reaction_latency", max_missed=N)`` bounds;
- a "Scenario" table in the report: events, answered, missed, pending, unheard,
  reaction p50/p99 and the exchange's own lateness.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import pytest

from pytest_axiomperf.errors import ExchangeError
from pytest_axiomperf.tracker import PerformanceTracker

__all__ = ["MISSED", "REACTION_LATENCY", "missed_events", "record_reactions"]

REACTION_LATENCY = "reaction_latency"
"""The metric: venue-measured time from a market event to the order answering it."""

MISSED = "reaction_missed"
"""Prefix of the error counts of missed events: ``reaction_missed[listing]``."""

#: The exchange's lateness (p99) past which a test is warned that it did not keep up.
LATE_WARNING = 0.025


def missed_key(kind: str) -> str:
    """The tracker's error name counting missed events of `kind`."""
    return f"{MISSED}[{kind}]"


def missed_events(tracker: PerformanceTracker, kind: str | None = None) -> int:
    """Missed events recorded in `tracker` (of one `kind`, or all)."""
    errors = tracker.errors
    if kind is not None:
        return errors.get(missed_key(kind), 0)
    return sum(n for name, n in errors.items() if name.startswith(MISSED + "["))


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def record_reactions(tracker: PerformanceTracker, summary: Mapping[str, Any]) -> None:
    """Record an exchange's reaction summary (``axiom_exchange.reactions()``) in `tracker`."""
    reactions: Mapping[str, list[float]] = summary.get("reactions", {})
    for kind, samples in reactions.items():
        for seconds in samples:
            tracker.record(REACTION_LATENCY, seconds, kind)
    for kind, count in summary.get("missed", {}).items():
        tracker.record_error(missed_key(kind), count)
    kinds = sorted(
        set(reactions)
        | set(summary.get("missed", {}))
        | set(summary.get("pending", {}))
        | set(summary.get("unheard", {}))
    )
    rows = []
    for kind in kinds or ["(none)"]:
        stats = tracker.stats(REACTION_LATENCY, kind) if kind in reactions else None
        rows.append(
            [
                kind,
                len(reactions.get(kind, [])),
                summary.get("missed", {}).get(kind, 0),
                summary.get("pending", {}).get(kind, 0),
                summary.get("unheard", {}).get(kind, 0),
                _ms(stats.p50) if stats else "-",
                _ms(stats.p99) if stats else "-",
            ]
        )
    lateness = summary.get("lateness", {})
    title = (
        f"Scenario reactions ({summary.get('emitted', 0)} of {summary.get('scheduled', 0)} "
        f"events emitted; exchange lateness p99 {_ms(lateness.get('p99', 0.0))}, "
        f"max {_ms(lateness.get('max', 0.0))})"
    )
    tracker.add_table(
        title,
        ["event", "answered", "missed", "pending", "unheard", "reaction p50", "reaction p99"],
        rows,
    )


def collect(item: pytest.Item) -> None:
    """Bring the scenario's reactions of `item` into its tracker and end the scenario."""
    from pytest_axiomperf.stash import EXCHANGE_KEY, extra_for, tracker_for

    exchange = item.stash.get(EXCHANGE_KEY, None)
    if exchange is None or exchange.active_scenario is None or not exchange.running:
        return
    try:
        summary = exchange.reactions(end=True)
    except ExchangeError as exc:
        item.warn(pytest.PytestWarning(f"reaction times of {item.nodeid} are lost: {exc}"))
        return
    if not summary:
        return
    record_reactions(tracker_for(item), summary)
    extra_for(item)["reaction"] = {k: v for k, v in summary.items() if k != "reactions"}
    late = summary.get("lateness", {}).get("p99", 0.0)
    if late > LATE_WARNING:
        item.warn(
            pytest.PytestWarning(
                f"{item.nodeid}: the exchange emitted scenario events late (p99 {_ms(late)}, "
                f"max {_ms(summary['lateness']['max'])}): it could not keep up with the "
                "scenario on this machine; reactions are timed from the actual emission"
            )
        )


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After the body, before budgets are checked: read the scenario's reactions."""
    try:
        return (yield)
    finally:
        collect(item)
