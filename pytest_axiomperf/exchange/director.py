"""The scenario director: plays a `Scenario` on the exchange and keeps its reaction ledger.

One director per scenario, in the exchange's event loop. It emits each event
at its absolute time (never stretching the schedule: an event it emits late is
recorded with its lateness), to every session that listens:

- ``listing``: a new pair in the ``new_pairs`` room, which the scenario alone
  feeds while it is in force; the new token can be ordered (``POST /orders``
  with its mint) at once.
- ``price_spike``: a ``token_update`` to subscribers of the token (by symbol
  or mint), and a price push to sessions that joined its mint's room.
- a replayed message: to the sessions in its room (a room push, whose
  ``emitted_at`` becomes the replay's time), subscribed to its token (a
  ``token_update``, whose ``timestamp`` does), else to every session. A
  replayed new pair in ``new_pairs`` is a ``listing`` event like the others.

Orders arriving (``POST /orders``, ``POST /api/send-transaction``) are matched
against the events in `pytest_axiomperf.exchange.reactions`.
"""

from __future__ import annotations

import asyncio
import bisect
import random
from typing import Any

from pytest_axiomperf.exchange import axiom, clock
from pytest_axiomperf.exchange.axiom import listed_token
from pytest_axiomperf.exchange.core import ExchangeState, WsSession
from pytest_axiomperf.exchange.data import BY_MINT, TOKENS, Token
from pytest_axiomperf.exchange.reactions import ReactionLedger
from pytest_axiomperf.exchange.scenario import Event, Scenario

__all__ = ["ScenarioDirector"]

_NEW_PAIRS = "new_pairs"


class ScenarioDirector:
    """Plays one scenario on the exchange holding `state`, from `begin` plus its delay."""

    def __init__(self, state: ExchangeState, scenario: Scenario) -> None:
        """Build the schedule (times from the start); `begin` plays it."""
        self.state = state
        self.scenario = scenario
        self.start = 0.0
        self.timeline = scenario.schedule()
        self.pushes = scenario.push_times()
        self.feed = scenario.replayed()
        self.duration = scenario.duration
        # The rooms this scenario alone feeds: their own pacing stays silent meanwhile.
        self.rooms = {_NEW_PAIRS} | {
            m["room"] for _, m in self.feed if isinstance(m.get("room"), str)
        }
        self.ledger = ReactionLedger(scenario.answer_within)
        self._content = axiom.new_pairs_feed(f"scenario:{scenario.seed}")
        self._rng = random.Random(f"spike:{scenario.seed}")
        self._tasks: list[asyncio.Task[None]] = []

    def begin(self) -> None:
        """Start playing in the running loop, `delay` from now (the schedule is built
        already, so building it makes nothing late); the scenario's rooms become its own."""
        self.start = asyncio.get_running_loop().time() + self.scenario.delay
        self.timeline = [(self.start + t, event) for t, event in self.timeline]
        self.pushes = [self.start + t for t in self.pushes]
        self.feed = [(self.start + t, message) for t, message in self.feed]
        for session in list(self.state.sessions):
            for room in self.rooms:
                task = session.rooms.get(room)
                if task is not None:
                    task.cancel()
                    session.rooms[room] = None
        self._tasks = [asyncio.ensure_future(self._run())]
        if self.feed:
            self._tasks.append(asyncio.ensure_future(self._replay()))

    def stop(self) -> None:
        """Stop emitting (the ledger stays readable)."""
        for task in self._tasks:
            task.cancel()

    # -- the Director protocol (core.py) ---------------------------------------------

    def owns(self, room: str) -> bool:
        """The scenario alone feeds ``new_pairs`` and the rooms of its replayed feed."""
        return room in self.rooms

    def next_push(self, after: float) -> float | None:
        """The next scheduled push after `after`, or None past the schedule (or without one)."""
        if not self.pushes:
            return None
        index = bisect.bisect_right(self.pushes, after)
        return self.pushes[index] if index < len(self.pushes) else None

    def order(self, names: list[str], arrived: float) -> None:
        """An accepted order naming `names` (a symbol is also its mint, and back)."""
        keys = set(names)
        for name in names:
            token = TOKENS.get(name) or BY_MINT.get(name)
            if token is not None:
                keys.update((token.symbol, token.mint))
        self.ledger.order(sorted(keys), arrived)

    def transaction(self, raw: bytes, arrived: float) -> None:
        """A raw transaction: it names the tokens whose mint it holds."""
        self.ledger.transaction(raw, arrived)

    # -- playing ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The ledger's summary now, with the scenario's plan."""
        loop = asyncio.get_running_loop()
        replayed = sum(1 for _, m in self.feed if _listed_mint(m) is not None)
        data = self.ledger.summary(loop.time(), len(self.timeline) + replayed)
        data["scenario"] = self.scenario.to_dict()
        data["elapsed"] = loop.time() - self.start
        data["duration"] = self.duration
        # Whether its timers wake on time (clock.py), or up to 1 ms late (asyncio's own).
        data["precise_timers"] = clock.timer_wakes(loop) is not None
        return data

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for number, (at, event) in enumerate(self.timeline, 1):
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif number % 64 == 0:
                # Behind schedule: let orders in (their arrival times must stay true).
                await asyncio.sleep(0)
            if event.kind == "listing":
                await self._listing(number, at)
            else:
                await self._spike(number, at, event)

    async def _replay(self) -> None:
        loop = asyncio.get_running_loop()
        for number, (at, message) in enumerate(self.feed, 1):
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif number % 64 == 0:
                await asyncio.sleep(0)
            payload = dict(message)
            wall = at + self.state.wall_offset
            room = payload.get("room")
            sessions = [s for s in list(self.state.sessions) if not s.closed]
            if isinstance(room, str):
                if "emitted_at" in payload:
                    payload["emitted_at"] = wall
                sessions = [s for s in sessions if room in s.rooms]
            elif payload.get("type") == "token_update":
                payload["timestamp"] = wall
                sessions = [s for s in sessions if payload.get("token") in s.streams]
            mint = _listed_mint(payload)
            if mint is not None:
                self.state.orders.list_token(_replayed_token(payload["content"], mint))
            emitted = loop.time()
            await self._broadcast([(s, payload) for s in sessions])
            if mint is not None:
                self.ledger.emitted("listing", (mint,), at, emitted, len(sessions))
            else:
                self.ledger.sent(at, emitted)

    @staticmethod
    async def _broadcast(sessions: list[tuple[WsSession, dict[str, Any]]]) -> None:
        # Each session gets the push through its own wire (the profile's delay and stalls).
        for session, payload in sessions:
            await session.reply(payload)

    async def _listing(self, number: int, at: float) -> None:
        content = self._content(number, at + self.state.wall_offset)
        mint = content["token_address"]
        # Tradable from now on: a sniper's order for it is a valid order.
        self.state.orders.list_token(listed_token(content))
        push = {
            "room": _NEW_PAIRS,
            "content": content,
            "emitted_at": at + self.state.wall_offset,
            "seq": number,
            "event": "listing",
        }
        listeners = [
            (s, push) for s in list(self.state.sessions) if _NEW_PAIRS in s.rooms and not s.closed
        ]
        emitted = asyncio.get_running_loop().time()
        await self._broadcast(listeners)
        self.ledger.emitted("listing", (mint,), at, emitted, len(listeners))

    async def _spike(self, number: int, at: float, event: Event) -> None:
        assert event.token is not None and event.percent is not None
        token = TOKENS.get(event.token) or BY_MINT.get(event.token)
        keys = (token.symbol, token.mint) if token is not None else (event.token,)
        factor = 1.0 + event.percent / 100.0
        wall = at + self.state.wall_offset
        listeners: list[tuple[WsSession, dict[str, Any]]] = []
        for session in list(self.state.sessions):
            if session.closed:
                continue
            for key in keys:
                if key in session.streams:
                    price = (token.price if token is not None else 1.0) * factor
                    listeners.append((session, _token_update(key, price, wall, number, self._rng)))
            mint = keys[-1]
            if mint in session.rooms:
                content = axiom.price_content(mint, factor, wall)
                push = {
                    "room": mint,
                    "content": content,
                    "emitted_at": wall,
                    "seq": number,
                    "event": "price_spike",
                }
                listeners.append((session, push))
        emitted = asyncio.get_running_loop().time()
        await self._broadcast(listeners)
        self.ledger.emitted("price_spike", keys, at, emitted, len(listeners))


def _token_update(
    token: str, price: float, wall: float, number: int, rng: random.Random
) -> dict[str, Any]:
    return {
        "type": "token_update",
        "token": token,
        "price": round(price, 9),
        "volume": round(rng.uniform(0.0, 1_000.0), 3),
        "timestamp": wall,
        "seq": number,
        "event": "price_spike",
    }


def _listed_mint(message: dict[str, Any]) -> str | None:
    """The mint of a new pair pushed in ``new_pairs``, else None."""
    content = message.get("content")
    if message.get("room") != _NEW_PAIRS or not isinstance(content, dict):
        return None
    mint = content.get("token_address")
    return mint if isinstance(mint, str) and 0 < len(mint) <= 128 else None


def _replayed_token(content: dict[str, Any], mint: str) -> Token:
    """A recorded new pair as a tradable token (a plain one when its fields are unusual)."""
    try:
        return axiom.listed_token(content)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return Token(str(content.get("token_ticker") or "NEW")[:16], mint, 6, 1e-6)
