"""Scenarios: what the embedded exchange's market does, and when, reproducibly.

A `Scenario` is a plain, validated description (standard library only, so the
test process builds and checks it without aiohttp); the exchange turns it into
a schedule with `Scenario.schedule`, which is the same in every process for
the same seed. Times are seconds from the scenario's start.

- ``listings``: arrival-process stages generating new pairs in the ``new_pairs``
  room (each a new token the bot may snipe).
- ``pushes``: arrival-process stages pacing every price stream (``token_update``
  and the room protocol's price rooms) instead of the profile's ``push_rate``.
- ``events``: scheduled events: `listing` (a new pair at ``at``) and
  `price_spike` (the price of ``token`` moves by ``percent`` at ``at``).
- ``replay``: a recorded feed (`read_feed`: JSONL, one ``{"t": seconds,
  "message": {...}}`` per line, ``t`` never going back) played again.

Arrival processes (each one stage, laid end to end unless given a ``start``):
`constant` (evenly spaced), `poisson` (exponential gaps), `bursts` (``rate``
during ``on`` seconds, silence for ``off`` seconds, repeated), `ramp` (the rate
moves linearly from ``rate`` to ``end_rate``).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_axiomperf.errors import ConfigError

__all__ = [
    "EVENT_KINDS",
    "PROCESSES",
    "Event",
    "Scenario",
    "Stage",
    "bursts",
    "constant",
    "listing",
    "poisson",
    "price_spike",
    "ramp",
    "read_feed",
]

PROCESSES = ("constant", "poisson", "bursts", "ramp")
EVENT_KINDS = ("listing", "price_spike")
#: Upper bounds that keep a typo (``rate=1e9``) from building a schedule that eats the memory.
MAX_RATE = 100_000.0
MAX_DURATION = 3_600.0
MAX_EVENTS = 1_000_000
_STAGE_KEYS = ("process", "rate", "duration", "start", "end_rate", "on", "off")


def _number(where: str, name: str, value: object, *, high: float, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"scenario: {where}: {name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not zero) or value > high:
        low = ">= 0" if zero else "> 0"
        raise ConfigError(f"scenario: {where}: {name} must be {low} and <= {high:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Stage:
    """One arrival-process stage: `process` at `rate` per second for `duration` seconds."""

    process: str
    rate: float
    duration: float
    start: float | None = None
    end_rate: float | None = None
    on: float | None = None
    off: float | None = None

    def validate(self, where: str) -> None:
        """Raise ConfigError naming `where` and the bad argument."""
        if self.process not in PROCESSES:
            raise ConfigError(
                f"scenario: {where}: unknown process {self.process!r}; "
                f"known: {', '.join(PROCESSES)}"
            )
        _number(where, "rate", self.rate, high=MAX_RATE)
        _number(where, "duration", self.duration, high=MAX_DURATION)
        if self.start is not None:
            _number(where, "start", self.start, high=MAX_DURATION, zero=True)
        if self.process == "ramp":
            if self.end_rate is None:
                raise ConfigError(f"scenario: {where}: a ramp needs end_rate")
            _number(where, "end_rate", self.end_rate, high=MAX_RATE)
        elif self.end_rate is not None:
            raise ConfigError(f"scenario: {where}: end_rate is for a ramp, not {self.process!r}")
        if self.process == "bursts":
            if self.on is None or self.off is None:
                raise ConfigError(f"scenario: {where}: bursts need on= and off= (seconds)")
            _number(where, "on", self.on, high=MAX_DURATION)
            _number(where, "off", self.off, high=MAX_DURATION)
        elif self.on is not None or self.off is not None:
            raise ConfigError(f"scenario: {where}: on/off are for bursts, not {self.process!r}")

    def expected(self) -> float:
        """Expected number of arrivals (to refuse schedules too large before building them)."""
        if self.process == "ramp":
            assert self.end_rate is not None
            return (self.rate + self.end_rate) / 2 * self.duration
        if self.process == "bursts":
            assert self.on is not None and self.off is not None
            return self.rate * self.duration * self.on / (self.on + self.off)
        return self.rate * self.duration

    def times(self, begin: float, rng: random.Random) -> Iterator[float]:
        """Arrival times of this stage starting at `begin` (absolute scenario seconds)."""
        end = begin + self.duration
        if self.process == "constant":
            for i in range(math.ceil(self.rate * self.duration - 1e-9)):
                yield begin + i / self.rate
        elif self.process == "poisson":
            t = begin + rng.expovariate(self.rate)
            while t < end:
                yield t
                t += rng.expovariate(self.rate)
        elif self.process == "bursts":
            assert self.on is not None and self.off is not None
            window = begin
            while window < end:
                stop = min(window + self.on, end)
                t = window
                while t < stop - 1e-12:
                    yield t
                    t += 1.0 / self.rate
                window += self.on + self.off
        else:  # ramp: invert the cumulative rate, so arrival n is where it reaches n
            assert self.end_rate is not None
            slope = (self.end_rate - self.rate) / self.duration
            n = 0
            while True:
                if slope == 0:
                    x = n / self.rate
                else:
                    x = (-self.rate + math.sqrt(self.rate**2 + 2 * slope * n)) / slope
                if x >= self.duration:
                    return
                yield begin + x
                n += 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (no None values)."""
        return {k: getattr(self, k) for k in _STAGE_KEYS if getattr(self, k) is not None}


@dataclass(frozen=True)
class Event:
    """A scheduled event: ``listing`` or ``price_spike`` (``token``, ``percent``) at `at`."""

    kind: str
    at: float
    token: str | None = None
    percent: float | None = None

    def validate(self, where: str) -> None:
        """Raise ConfigError naming `where` and the bad argument."""
        if self.kind not in EVENT_KINDS:
            raise ConfigError(
                f"scenario: {where}: unknown event kind {self.kind!r}; "
                f"known: {', '.join(EVENT_KINDS)}"
            )
        _number(where, "at", self.at, high=MAX_DURATION, zero=True)
        if self.kind == "price_spike":
            if not isinstance(self.token, str) or not 0 < len(self.token) <= 128:
                raise ConfigError(f"scenario: {where}: a price_spike needs token= (a token name)")
            if (
                isinstance(self.percent, bool)
                or not isinstance(self.percent, (int, float))
                or not math.isfinite(self.percent)
                or self.percent == 0
                or self.percent <= -100
                or self.percent > 10_000
            ):
                raise ConfigError(
                    f"scenario: {where}: percent must be a non-zero number > -100 and <= 10000, "
                    f"got {self.percent!r}"
                )
        elif self.token is not None or self.percent is not None:
            raise ConfigError(f"scenario: {where}: a listing takes no token or percent")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (no None values)."""
        data = {"kind": self.kind, "at": self.at, "token": self.token, "percent": self.percent}
        return {k: v for k, v in data.items() if v is not None}


def constant(rate: float, duration: float, *, start: float | None = None) -> Stage:
    """`rate` arrivals per second, evenly spaced, for `duration` seconds."""
    return Stage("constant", rate, duration, start)


def poisson(rate: float, duration: float, *, start: float | None = None) -> Stage:
    """A Poisson process of `rate` per second (exponential gaps) for `duration` seconds."""
    return Stage("poisson", rate, duration, start)


def bursts(
    rate: float, duration: float, *, on: float, off: float, start: float | None = None
) -> Stage:
    """`rate` per second during `on` seconds, then `off` seconds of silence, repeated."""
    return Stage("bursts", rate, duration, start, on=on, off=off)


def ramp(rate: float, end_rate: float, duration: float, *, start: float | None = None) -> Stage:
    """A rate moving linearly from `rate` to `end_rate` per second over `duration` seconds."""
    return Stage("ramp", rate, duration, start, end_rate=end_rate)


def listing(at: float) -> Event:
    """A new pair listed at `at` seconds (pushed to the ``new_pairs`` room)."""
    return Event("listing", at)


def price_spike(at: float, token: str, percent: float) -> Event:
    """The price of `token` (a catalog symbol such as ``"SOL"``, or a mint) moves by
    `percent` at `at` seconds (pushed to its subscribers)."""
    return Event("price_spike", at, token, percent)


def read_feed(path: str | Path) -> list[tuple[float, dict[str, Any]]]:
    """The messages of a recorded feed with their times (seconds from its start).

    Each line is ``{"t": seconds, "message": {...}}`` (``axiomperf record``
    writes them); blank lines are skipped. A file that is not JSONL, a line
    without a time, or a time going back is a ConfigError naming the line.
    """
    where = f"scenario: replay {str(path)!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read it: {exc}") from None
    feed: list[tuple[float, dict[str, Any]]] = []
    last = 0.0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{where}: line {number} is not JSON: {exc}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("message"), dict):
            raise ConfigError(
                f'{where}: line {number} must be {{"t": seconds, "message": {{...}}}}'
            )
        t = entry.get("t")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ConfigError(f'{where}: line {number} has no time ("t": seconds), got {t!r}')
        if t < last or t < 0:
            raise ConfigError(
                f"{where}: line {number} goes back in time (t={t!r} after t={last!r})"
            )
        if t > MAX_DURATION or len(feed) >= MAX_EVENTS:
            raise ConfigError(
                f"{where}: line {number}: at most {MAX_EVENTS} messages over {MAX_DURATION:g} s"
            )
        last = float(t)
        feed.append((last, entry["message"]))
    if not feed:
        raise ConfigError(f"{where}: no messages")
    return feed


def _stages(name: str, value: object) -> tuple[Stage, ...]:
    if value is None:
        return ()
    items: Sequence[Any] = value if isinstance(value, (list, tuple)) else [value]
    stages = []
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if isinstance(item, Mapping):
            unknown = sorted(set(item) - set(_STAGE_KEYS))
            if unknown or "process" not in item:
                raise ConfigError(
                    f"scenario: {where}: a stage needs process, rate, duration; unknown or "
                    f"missing keys in {dict(item)!r} (keys: {', '.join(_STAGE_KEYS)})"
                )
            try:
                item = Stage(**item)
            except TypeError as exc:
                raise ConfigError(f"scenario: {where}: {exc}") from None
        if not isinstance(item, Stage):
            raise ConfigError(f"scenario: {where}: expected a stage, got {item!r}")
        item.validate(where)
        stages.append(item)
    # Overlapping stages are a mistake to report, not to merge: name both.
    end = 0.0
    for i, stage in enumerate(stages):
        begin = end if stage.start is None else stage.start
        if begin < end - 1e-9:
            raise ConfigError(
                f"scenario: {name}[{i}] starts at {begin:g} s, before {name}[{i - 1}] ends "
                f"({end:g} s): stages must not overlap"
            )
        end = begin + stage.duration
    return tuple(stages)


def _events(value: object) -> tuple[Event, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"scenario: events must be a list of events, got {value!r}")
    events = []
    for i, item in enumerate(value):
        where = f"events[{i}]"
        if isinstance(item, Mapping):
            try:
                item = Event(**item)
            except TypeError as exc:
                raise ConfigError(f"scenario: {where}: {exc}") from None
        if not isinstance(item, Event):
            raise ConfigError(f"scenario: {where}: expected an event, got {item!r}")
        item.validate(where)
        events.append(item)
    return tuple(events)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario (see the module docstring); build it with `Scenario.build`."""

    listings: tuple[Stage, ...] = ()
    pushes: tuple[Stage, ...] = ()
    events: tuple[Event, ...] = ()
    seed: int = 0
    delay: float = 0.0
    answer_within: float = 1.0
    speed: float = 1.0
    replay: str | None = None

    @classmethod
    def build(
        cls,
        *,
        listings: object = None,
        pushes: object = None,
        events: object = None,
        seed: int = 0,
        delay: float = 0.0,
        answer_within: float = 1.0,
        speed: float = 1.0,
        replay: str | Path | None = None,
    ) -> Scenario:
        """Validate every argument; ConfigError names the first bad one."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"scenario: seed must be an integer, got {seed!r}")
        if replay is not None:
            if not isinstance(replay, (str, Path)):
                raise ConfigError(f"scenario: replay must be a file path, got {replay!r}")
            replay = str(Path(replay).resolve())
            read_feed(replay)
        built = cls(
            _stages("listings", listings),
            _stages("pushes", pushes),
            _events(events),
            seed,
            _number("options", "delay", delay, high=MAX_DURATION, zero=True),
            _number("options", "answer_within", answer_within, high=MAX_DURATION),
            _number("options", "speed", speed, high=1_000.0),
            replay,
        )
        if not (built.listings or built.pushes or built.events or built.replay):
            raise ConfigError("scenario: nothing to do: give listings, pushes, events or replay")
        total = sum(s.expected() for s in built.listings + built.pushes) + len(built.events)
        if total > MAX_EVENTS:
            raise ConfigError(
                f"scenario: about {total:.0f} arrivals expected; at most {MAX_EVENTS} per scenario"
            )
        return built

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Rebuild from `to_dict` (unknown keys are a ConfigError)."""
        known = {
            "listings",
            "pushes",
            "events",
            "seed",
            "delay",
            "answer_within",
            "speed",
            "replay",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"scenario: unknown option(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls.build(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "listings": [s.to_dict() for s in self.listings],
            "pushes": [s.to_dict() for s in self.pushes],
            "events": [e.to_dict() for e in self.events],
            "seed": self.seed,
            "delay": self.delay,
            "answer_within": self.answer_within,
            "speed": self.speed,
            "replay": self.replay,
        }

    @property
    def duration(self) -> float:
        """Seconds of scenario time from its start to its last stage's end or last event,
        divided by `speed` (wall-clock seconds); `delay` not included."""
        ends = [e.at for e in self.events]
        if self.replay is not None:
            ends.append(read_feed(self.replay)[-1][0])
        for stages in (self.listings, self.pushes):
            end = 0.0
            for stage in stages:
                end = (end if stage.start is None else stage.start) + stage.duration
            ends.append(end)
        return max(ends, default=0.0) / self.speed

    def _arrivals(self, name: str, stages: tuple[Stage, ...]) -> list[float]:
        rng = random.Random(f"{name}:{self.seed}")
        times: list[float] = []
        end = 0.0
        for stage in stages:
            begin = end if stage.start is None else stage.start
            times.extend(stage.times(begin, rng))
            end = begin + stage.duration
        return [t / self.speed for t in times]

    def schedule(self) -> list[tuple[float, Event]]:
        """Every event in time order: listings' arrivals and the scheduled events
        (wall-clock seconds from the start, after `speed`)."""
        timeline = [(t, Event("listing", t)) for t in self._arrivals("listings", self.listings)]
        timeline.extend((e.at / self.speed, e) for e in self.events)
        timeline.sort(key=lambda pair: pair[0])
        return timeline

    def replayed(self) -> list[tuple[float, dict[str, Any]]]:
        """The replayed feed's messages at their wall-clock times (after `speed`)."""
        if self.replay is None:
            return []
        return [(t / self.speed, message) for t, message in read_feed(self.replay)]

    def push_times(self) -> list[float]:
        """The price streams' push times (wall-clock seconds from the start); [] when the
        profile's ``push_rate`` paces them."""
        return self._arrivals("pushes", self.pushes)
