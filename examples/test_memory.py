"""Catch a bot that grows without bound: the guide's price history, two ways.

The guide's "Basic Bot" keeps every price it sees and grows from 45 MB to 320 MB in a
day; the optimized one keeps the last 1,000 in a deque. Under ``memory_budget`` (enforced
with --axiom-perf) the first fails, and is marked as the expected failure it is; the
second passes. test_guide_memory_table puts both side by side in the report, as the
guide's table does.
Run: pytest --axiom-perf examples/test_memory.py
"""

import json
from collections import deque

import pytest

MESSAGES = 20_000


def price_messages(n):
    """Stand-ins for the exchange's token_update pushes, as raw JSON."""
    for i in range(n):
        yield json.dumps(
            {
                "type": "token_update",
                "token": f"TOKEN{i % 50}",
                "price": 1.0 + (i % 997) / 1e4,
                "volume": i % 10_000,
                "timestamp": 1_700_000_000 + i,
            }
        )


class PriceHistory:
    """Keeps recent prices for indicators; ``maxlen=None`` keeps every one."""

    def __init__(self, maxlen=None):
        self.prices = deque(maxlen=maxlen) if maxlen else []

    def on_message(self, raw):
        update = json.loads(raw)
        self.prices.append((update["token"], update["price"], update["timestamp"]))


@pytest.mark.memory_budget(growth_mb=1, peak_mb=5)
def test_bounded_history_stays_small():
    history = PriceHistory(maxlen=1000)
    for raw in price_messages(MESSAGES):
        history.on_message(raw)
    assert len(history.prices) == 1000
    KEEP.append(history)  # the bot lives on after the test: what it holds is growth


@pytest.mark.xfail(
    "axiom_perf",  # budgets are enforced in performance mode only
    strict=True,
    reason="keeps every price: ~3.5 MB per 20,000 messages, so memory_budget fails "
    "(and the run fails if it ever stops failing)",
)
@pytest.mark.memory_budget(growth_mb=1)
def test_unbounded_history_grows():
    history = PriceHistory()
    for raw in price_messages(MESSAGES):
        history.on_message(raw)
    KEEP.append(history)


def test_handler_does_not_leak_per_message(axiom_memory):
    """The steady-state check: heap bytes kept per message, fitted over many snapshots."""
    history = PriceHistory(maxlen=1000)
    messages = iter(price_messages(10**9))

    def one_message():
        history.on_message(next(messages))

    per_message = axiom_memory.growth_per_iteration(one_message, iterations=2000, warmup=1200)
    assert per_message < 50, f"{per_message:.0f} bytes kept per message"


def test_guide_memory_table(axiom_memory, axiom_tracker):
    """The guide's memory table, live: both bots side by side in the report."""
    rows = []
    for label, maxlen in (("every price (list)", None), ("bounded deque(1000)", 1000)):
        start = axiom_memory.take(f"{label}: start")
        history = PriceHistory(maxlen=maxlen)
        for raw in price_messages(MESSAGES):
            history.on_message(raw)
        diff = axiom_memory.compare(start, axiom_memory.take(f"{label}: end"))
        rows.append(
            [
                label,
                MESSAGES,
                start.rss_bytes / 2**20,
                diff.growth_mb,
                diff.rss_growth_mb,
                diff.growth_mb * 2**20 / MESSAGES,
            ]
        )
        del history
    axiom_tracker.add_table(
        f"Price history over {MESSAGES:,} messages",
        ["bot", "messages", "RSS start MB", "heap growth MB", "RSS growth MB", "bytes/message"],
        rows,
    )
    assert rows[1][3] < rows[0][3] / 5  # the bounded bot keeps a fraction of the memory


#: Where the bots live after their test, as they would in a running process.
KEEP = []
