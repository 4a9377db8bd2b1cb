"""The exchange's latency and fault profile, and the runtime model that applies it.

`ExchangeProfile` is the immutable description a test sets with
`axiom_exchange.configure(...)` and that results store (`to_dict()`), so a
baseline compare can refuse to compare runs made under different profiles.
`FaultModel` is the server-side state built from one profile: seeded random
generators, the rate-limit bucket and the stall clock.

Knobs (all times in seconds; a value of 0 turns a fault off):

- ``latency``: fixed delay added to every REST response and WebSocket push.
- ``connect_latency``: extra delay paid once per new TCP connection, by its
  first request (REST, or the WebSocket upgrade) before it is served; later
  requests on the same keep-alive connection do not pay it. It models the
  round trips of the handshakes a real network needs before a new connection
  carries an answer (TCP: 1 RTT; TLS 1.3: 1 more; TLS 1.2: 2 more), which
  loopback lacks: e.g. ``2 * rtt`` for TCP + TLS 1.3. A handshake due to end
  during a stall ends with the stall. Served by the embedded exchange only:
  the respx router has no connections and ignores it.
- ``jitter``: random extra delay. With ``distribution="normal"`` the delay is
  ``latency + N(0, jitter)`` clipped at 0 (``jitter`` is the standard
  deviation). With ``"lognormal"`` ``latency`` is the floor and the extra
  delay is lognormal with median ``jitter`` and sigma 1 (so its p99 is about
  10x ``jitter``): the long right tail of real networks.
- ``seed``: seeds the delay and fault draws, so the same requests in the same
  order get the same delays and faults. ``None``: fresh entropy.
- ``error_rate``: probability in [0, 1] that a REST request is answered 500.
- ``rate_limit``: requests per second allowed (token bucket holding
  ``rate_limit_burst`` requests, default ``ceil(rate_limit)``); the excess is
  answered 429 with a ``Retry-After`` header (whole seconds, at least 1).
- ``ws_disconnect_every``: the server closes a WebSocket (code 1001) after
  sending this many messages on it.
- ``stall``: the server freezes for this long: REST requests and WebSocket
  messages due in the window wait until it ends. The first stall starts
  ``stall_after`` seconds after the profile is applied; ``stall_every`` > 0
  repeats it with that period (0: one stall only).
- ``push_rate``: ``token_update`` messages per second per subscribed token, and
  pushes per second per joined room of the room protocol.
- ``access_token_ttl``: lifetime of the access tokens issued by
  ``POST /refresh-access-token`` (the exchange's own token never expires).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pytest_axiomperf.errors import ConfigError

Distribution = Literal["normal", "lognormal"]

_DISTRIBUTIONS: tuple[str, ...] = get_args(Distribution)
_MAX_DELAY = 60.0
_MAX_PUSH_RATE = 100_000.0
_MAX_TTL = 30 * 86400.0


def _number(name: str, value: object, *, low: float, high: float, low_open: bool = False) -> float:
    """Return `value` as a float, or raise ConfigError naming the knob."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"exchange profile: {name} must be a finite number, got {value!r}")
    bad_low = value <= low if low_open else value < low
    if bad_low or value > high:
        lower = f"> {low:g}" if low_open else f">= {low:g}"
        raise ConfigError(
            f"exchange profile: {name} must be {lower} and <= {high:g}, got {value!r}"
        )
    return float(value)


def _integer(name: str, value: object) -> int:
    """Return `value` as an int >= 0, or raise ConfigError naming the knob."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"exchange profile: {name} must be an integer >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class ExchangeProfile:
    """Latency and fault profile of the embedded exchange (see the module docstring)."""

    latency: float = 0.0
    jitter: float = 0.0
    distribution: Distribution = "normal"
    seed: int | None = None
    error_rate: float = 0.0
    rate_limit: float = 0.0
    rate_limit_burst: int = 0
    ws_disconnect_every: int = 0
    stall: float = 0.0
    stall_after: float = 0.0
    stall_every: float = 0.0
    push_rate: float = 10.0
    access_token_ttl: float = 3600.0
    # Last, so that positional construction keeps its meaning from before this knob.
    connect_latency: float = 0.0

    def __post_init__(self) -> None:
        """Validate every knob; raise ConfigError naming the first bad one."""
        _number("latency", self.latency, low=0.0, high=_MAX_DELAY)
        _number("connect_latency", self.connect_latency, low=0.0, high=_MAX_DELAY)
        _number("jitter", self.jitter, low=0.0, high=_MAX_DELAY)
        if self.distribution not in _DISTRIBUTIONS:
            raise ConfigError(
                f"exchange profile: distribution must be one of {', '.join(_DISTRIBUTIONS)}, "
                f"got {self.distribution!r}"
            )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ConfigError(
                f"exchange profile: seed must be an integer or None, got {self.seed!r}"
            )
        _number("error_rate", self.error_rate, low=0.0, high=1.0)
        _number("rate_limit", self.rate_limit, low=0.0, high=1e9)
        _integer("rate_limit_burst", self.rate_limit_burst)
        _integer("ws_disconnect_every", self.ws_disconnect_every)
        _number("stall", self.stall, low=0.0, high=3600.0)
        _number("stall_after", self.stall_after, low=0.0, high=86400.0)
        _number("stall_every", self.stall_every, low=0.0, high=86400.0)
        if self.stall_every and self.stall_every <= self.stall:
            raise ConfigError(
                f"exchange profile: stall_every ({self.stall_every!r}) must be longer than "
                f"stall ({self.stall!r}), or 0 for a single stall"
            )
        _number("push_rate", self.push_rate, low=0.0, high=_MAX_PUSH_RATE, low_open=True)
        _number("access_token_ttl", self.access_token_ttl, low=0.0, high=_MAX_TTL, low_open=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ExchangeProfile:
        """Build a profile from knob names; unknown names are a ConfigError."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"exchange profile: unknown knob(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-ready values (for results and the control route)."""
        return dataclasses.asdict(self)


class FaultModel:
    """Server-side state applying one `ExchangeProfile`, against a monotonic clock.

    Not thread-safe: it lives in the exchange's event loop. `now` arguments are
    that loop's `loop.time()`.
    """

    def __init__(self, profile: ExchangeProfile, now: float) -> None:
        """Start applying `profile` at time `now` (the stall clock starts here)."""
        self.profile = profile
        self._epoch = now
        # Separate streams so that turning on error_rate does not change the delays drawn.
        seed = profile.seed
        self._delay_rng = random.Random(None if seed is None else f"delay:{seed}")
        self._fault_rng = random.Random(None if seed is None else f"fault:{seed}")
        burst = profile.rate_limit_burst or max(1, math.ceil(profile.rate_limit))
        self._bucket_size = float(burst)
        self._bucket = float(burst)
        self._bucket_time = now

    def delay(self) -> float:
        """Draw the delay (seconds) to add to one response or push."""
        profile = self.profile
        if not profile.jitter:
            return profile.latency
        if profile.distribution == "lognormal":
            return profile.latency + profile.jitter * self._delay_rng.lognormvariate(0.0, 1.0)
        return max(0.0, self._delay_rng.gauss(profile.latency, profile.jitter))

    def connect_delay(self, now: float) -> float:
        """Seconds a connection new at `now` waits for its handshakes (0.0: none).

        ``connect_latency``, lengthened to the end of a stall in force when the
        handshakes would end (a frozen server completes none).
        """
        latency = self.profile.connect_latency
        if not latency:
            return 0.0
        return latency + self.stall_remaining(now + latency)

    def fails(self) -> bool:
        """Draw whether this REST request is answered with a 500."""
        rate = self.profile.error_rate
        return bool(rate) and self._fault_rng.random() < rate

    def retry_after(self, now: float) -> float:
        """Take one request from the rate-limit bucket.

        Returns 0.0 when the request may proceed, else the seconds until the
        bucket holds a request again (the request must be refused with 429).
        """
        rate = self.profile.rate_limit
        if not rate:
            return 0.0
        self._bucket = min(self._bucket_size, self._bucket + (now - self._bucket_time) * rate)
        self._bucket_time = now
        if self._bucket >= 1.0:
            self._bucket -= 1.0
            return 0.0
        return (1.0 - self._bucket) / rate

    def stall_remaining(self, now: float) -> float:
        """Seconds left in the stall window containing `now` (0.0 outside any stall)."""
        profile = self.profile
        if not profile.stall:
            return 0.0
        elapsed = now - self._epoch - profile.stall_after
        if elapsed < 0:
            return 0.0
        if profile.stall_every:
            elapsed %= profile.stall_every
        return max(0.0, profile.stall - elapsed)
