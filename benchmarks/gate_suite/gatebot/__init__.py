"""A small trading bot's own code, for bench_gate_runs.py: parse an update, run an
indicator, decide. ``SLOWDOWN`` is the knob a change turns (1.3: 30 % more work)."""

from __future__ import annotations

import json

SLOWDOWN = 1.0

UPDATE = json.dumps(
    {
        "type": "token_update",
        "token": "So1gatebot",
        "prices": [100.0 + (i % 7) * 0.5 for i in range(12)],
        "volume": 1234.5,
    }
)


def indicator(prices: list[float], passes: int) -> float:
    """An exponential moving average over the prices, ``passes`` times."""
    ema = prices[0]
    for _ in range(passes):
        for price in prices:
            ema = ema * 0.9 + price * 0.1
    return ema


def decide(raw: str, passes: int = 20) -> str:
    """The decision path: about 50 us at SLOWDOWN 1 on a current core. All of its work
    (parsing and the indicator) scales with SLOWDOWN, so 1.3 is 30 % more work."""
    update = {}
    for _ in range(round(10 * SLOWDOWN)):  # the bot re-reads its snapshots
        update = json.loads(raw)
    ema = indicator(update["prices"], round(passes * SLOWDOWN))
    return "buy" if ema < update["prices"][-1] else "hold"
