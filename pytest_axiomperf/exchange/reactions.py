"""The reaction ledger: market events the exchange emitted, and the orders that answered them.

Standard library only, on the exchange's monotonic clock (seconds). An event is
answered by the first order naming one of its keys (a token's symbol or mint)
that arrives after the event was emitted and within ``answer_within`` seconds;
that order answers every open event on the token. Its reaction time is the
order's arrival minus the event's emission: the venue's clock, which the bot's
own instrumentation cannot flatter.

At `summary` time an emitted event is *answered*, *missed* (its window passed
without an answer), or *pending* (its window is still open); an event the
exchange emitted to no subscriber is *unheard* (no bot could answer it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["ReactionLedger", "b58decode", "percentile"]

_B58 = {c: i for i, c in enumerate("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")}


def b58decode(text: str) -> bytes | None:
    """The bytes of a base58 string (a Solana address), or None when it is not base58."""
    number = 0
    for char in text:
        digit = _B58.get(char)
        if digit is None:
            return None
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q`-quantile (0..1) of `values` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class _Event:
    number: int
    kind: str
    keys: tuple[str, ...]
    intended: float
    emitted: float
    recipients: int
    answered: float | None = None


class ReactionLedger:
    """Events emitted during one scenario and the orders answering them (not thread-safe:
    it lives in the exchange's event loop)."""

    def __init__(self, answer_within: float) -> None:
        """An empty ledger; an answer must come within `answer_within` seconds."""
        self.answer_within = answer_within
        self._events: list[_Event] = []
        # Unanswered events by key, oldest first; an answered or expired one leaves.
        self._open: dict[str, list[_Event]] = {}
        # The byte forms of each open key searched for in a raw transaction.
        self._needles: dict[str, tuple[bytes, ...]] = {}
        # How late each message of the scenario left (events and replayed messages alike).
        self._lateness: list[float] = []
        self.orders = 0

    def sent(self, intended: float, emitted: float) -> None:
        """A message of the scenario due at `intended` left at `emitted` (its lateness)."""
        self._lateness.append(max(0.0, emitted - intended))

    def emitted(
        self, kind: str, keys: Iterable[str], intended: float, emitted: float, recipients: int
    ) -> None:
        """Record an event sent at `emitted` (scheduled for `intended`) to `recipients`."""
        event = _Event(len(self._events) + 1, kind, tuple(keys), intended, emitted, recipients)
        self._events.append(event)
        self.sent(intended, emitted)
        if not recipients:
            return
        for key in event.keys:
            self._open.setdefault(key, []).append(event)
            if key not in self._needles:
                raw = b58decode(key)
                # A 32-byte base58 key is a Solana address: a transaction holds its bytes.
                forms = (key.encode(),) + ((raw,) if raw is not None and len(raw) == 32 else ())
                self._needles[key] = forms

    def order(self, names: Iterable[str], arrived: float) -> int:
        """An order naming `names` arrived at `arrived`; returns the events it answered."""
        self.orders += 1
        answered = 0
        for name in names:
            answered += self._answer(name, arrived)
        return answered

    def transaction(self, raw: bytes, arrived: float) -> int:
        """A raw transaction arrived: it names every open key whose text or address
        bytes it contains; returns the events it answered."""
        names = [key for key, forms in self._needles.items() if any(f in raw for f in forms)]
        return self.order(names, arrived)

    def _answer(self, key: str, arrived: float) -> int:
        events = self._open.get(key)
        if not events:
            return 0
        answered, still_open = 0, []
        for event in events:
            if event.answered is not None:
                continue
            if event.emitted > arrived:
                still_open.append(event)
            elif arrived - event.emitted <= self.answer_within:
                event.answered = arrived
                answered += 1
            # else: its window passed: missed, and no later order can answer it.
        if still_open:
            self._open[key] = still_open
        else:
            del self._open[key]
            self._needles.pop(key, None)
        return answered

    def summary(self, now: float, scheduled: int) -> dict[str, Any]:
        """Plain JSON-ready counts and samples at time `now`; `scheduled` events were due
        by the scenario's end.

        ``reactions``: seconds per event kind; ``missed``/``pending``/``unheard``: counts
        per kind; ``lateness``: how late the exchange emitted the scenario's messages
        (p50/p99/max seconds, events and replayed messages), ``sent``: how many.
        """
        reactions: dict[str, list[float]] = {}
        missed: dict[str, int] = {}
        pending: dict[str, int] = {}
        unheard: dict[str, int] = {}
        lateness = self._lateness
        for event in self._events:
            if not event.recipients:
                unheard[event.kind] = unheard.get(event.kind, 0) + 1
            elif event.answered is not None:
                reactions.setdefault(event.kind, []).append(event.answered - event.emitted)
            elif now - event.emitted > self.answer_within:
                missed[event.kind] = missed.get(event.kind, 0) + 1
            else:
                pending[event.kind] = pending.get(event.kind, 0) + 1
        return {
            "scheduled": scheduled,
            "emitted": len(self._events),
            "sent": len(lateness),
            "orders": self.orders,
            "answer_within": self.answer_within,
            "reactions": reactions,
            "missed": missed,
            "pending": pending,
            "unheard": unheard,
            "lateness": {
                "p50": percentile(lateness, 0.5) if lateness else 0.0,
                "p99": percentile(lateness, 0.99) if lateness else 0.0,
                "max": max(lateness, default=0.0),
            },
        }
