"""A ``connect`` measuring a bot's own ``websockets`` feed, without changing how it reads.

``connect = tracker.websockets_connect(timestamp="timestamp")`` is a drop-in
for ``websockets.asyncio.client.connect``: ``async with connect(url) as ws``,
``ws = await connect(url)`` and ``async for ws in connect(url)`` (reconnecting)
give the bot an ordinary ``ClientConnection``, a subclass that notes each
message ``recv()`` (and so ``async for raw in ws``) hands to the bot:

- ``websocket_latency`` tag ``"delivery"``: the message's receive time (the
  moment the bot gets it) minus the time it carries: the first
  ``"timestamp": <number>`` found in the text (epoch seconds; milliseconds,
  microseconds and nanoseconds recognised by magnitude), or what a function
  given as ``timestamp`` returns for the raw message (epoch seconds, or None).
  Found by a string search rather than a second JSON parse, so a field of that
  name in a nested object counts too: give a function when that matters.
  Both clocks must agree (same host, or NTP);
- ``websocket_latency`` tag ``"ping"``: each ping's round trip (the bot's own
  ``await ws.ping()`` and websockets' keepalive pings);
- ``websocket_message_rate`` (msg/s): one sample per second of messages
  (a silent stretch shows as one low sample when messages resume);
- ``websocket_reconnect_gap`` (s): from losing a connection (not one the bot
  closed itself) to the next one this ``connect`` opens, and the error
  ``"WebSocket disconnect"`` per loss;
- ``"WebSocket invalid frame"`` in the errors when websockets closed the
  connection over a frame it refused (protocol error, invalid UTF-8, too big).

``connect.stats`` counts messages, timed messages, disconnects, invalid
frames. ``recv_streaming`` (fragments as they arrive) is not measured.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Data

from pytest_axiomperf.tracker import WEBSOCKET_LATENCY, PerformanceTracker

__all__ = ["FeedStats", "InstrumentedConnect"]

DELIVERY_TAG = "delivery"
PING_TAG = "ping"
MESSAGE_RATE = "websocket_message_rate"
RECONNECT_GAP = "websocket_reconnect_gap"
ERR_DISCONNECT = "WebSocket disconnect"
ERR_INVALID_FRAME = "WebSocket invalid frame"
# Close codes websockets sends when it refuses a frame: protocol error, invalid data, too big.
_INVALID_FRAME_CODES = frozenset({1002, 1007, 1009})

Timestamp = Callable[[Data], "float | None"]
"""Reads the time a message was sent (epoch seconds) from the raw message, or None."""


@dataclass
class FeedStats:
    """What a measured feed saw, over every connection opened through one ``connect``."""

    messages: int = 0
    #: messages whose send time could be read (their delivery latency is recorded)
    timed: int = 0
    connections: int = 0
    disconnects: int = 0
    invalid_frames: int = 0


def _seconds(value: float) -> float:
    """An epoch time in seconds from seconds, milliseconds, microseconds or nanoseconds."""
    if value > 1e17:
        return value / 1e9
    if value > 1e14:
        return value / 1e6
    if value > 1e11:
        return value / 1e3
    return value


def field_reader(name: str) -> Timestamp:
    """A `Timestamp` reading the first ``"name": <number>`` of a message's text.

    A string search and one ``float()``, not a JSON parse (the bot parses the
    message itself): the number may be quoted; anything else gives None.
    """
    key = '"' + name + '"'
    key_bytes = key.encode()
    size = len(key)

    def read(message: Data) -> float | None:
        if isinstance(message, str):
            at = message.find(key)
            if at < 0:
                return None
            at += size
            end = message.find(",", at)
            if end < 0:
                end = message.find("}", at)
            text: str | bytes = message[at:end].strip(' \t\r\n:"')
        else:
            raw = bytes(message)
            at = raw.find(key_bytes)
            if at < 0:
                return None
            at += size
            end = raw.find(b",", at)
            if end < 0:
                end = raw.find(b"}", at)
            text = raw[at:end].strip(b' \t\r\n:"')
        try:
            return float(text)
        except ValueError:
            return None

    return read


class _Feed:
    """The measuring state shared by every connection one ``connect`` opens."""

    def __init__(self, tracker: PerformanceTracker, timestamp: Timestamp | None) -> None:
        self.tracker = tracker
        self.stats = FeedStats()
        self._timestamp = timestamp
        self._delivery = tracker.live_series(WEBSOCKET_LATENCY, DELIVERY_TAG)
        tracker.set_unit(MESSAGE_RATE, "msg/s")
        # Receive times on perf_counter (monotonic), turned into wall time by one offset.
        self._wall_offset = time.time() - time.perf_counter()
        self._window_start = time.perf_counter()
        self._window_messages = 0
        self._lost_at: float | None = None

    def message(self, message: Data) -> None:
        now = time.perf_counter()
        stats = self.stats
        stats.messages += 1
        self._window_messages += 1
        if now - self._window_start >= 1.0:
            self._flush(now)
        read = self._timestamp
        if read is None:
            return
        try:
            sent = read(message)
        except Exception as exc:  # the bot's own function: counted, never raised into the bot
            self.tracker.record_error(exc)
            return
        if sent is not None:
            latency = now + self._wall_offset - _seconds(sent)
            # A sender's clock ahead of ours gives a negative figure: not a latency.
            if 0.0 <= latency < math.inf:
                stats.timed += 1
                self._delivery.record(latency)

    def _flush(self, now: float) -> None:
        elapsed = now - self._window_start
        self.tracker.record(MESSAGE_RATE, self._window_messages / elapsed)
        self._window_start = now
        self._window_messages = 0

    def opened(self) -> None:
        self.stats.connections += 1
        now = time.perf_counter()
        if self._lost_at is not None:
            self.tracker.record(RECONNECT_GAP, now - self._lost_at)
            self._lost_at = None
        self._window_start = now
        self._window_messages = 0

    def closed(self, connection: ClientConnection, closing_by_bot: bool) -> None:
        now = time.perf_counter()
        if now - self._window_start >= 0.1:  # a shorter last window would be noise
            self._flush(now)
        sent = connection.protocol.close_sent
        if sent is not None and sent.code in _INVALID_FRAME_CODES:
            self.stats.invalid_frames += 1
            self.tracker.record_error(ERR_INVALID_FRAME)
        # The bot closing its own connection (close(), or leaving ``async with``) is no
        # outage; anything else (the server, the network, a keepalive timeout) is.
        if closing_by_bot:
            return
        self.stats.disconnects += 1
        self.tracker.record_error(ERR_DISCONNECT)
        self._lost_at = now

    def pong(self, latency: float) -> None:
        self.tracker.record(WEBSOCKET_LATENCY, latency, PING_TAG)


class _MeasuredConnection(ClientConnection):
    """A ``ClientConnection`` noting what it hands the bot; its feed is set per ``connect``."""

    _axiom_feed: _Feed
    _axiom_closing = False

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        await super().handshake(*args, **kwargs)
        self._axiom_feed.opened()

    async def recv(self, decode: bool | None = None) -> Any:
        message = await super().recv(decode)
        self._axiom_feed.message(message)
        return message

    async def ping(self, data: Any = None) -> Any:
        waiter = await super().ping(data)
        feed = self._axiom_feed
        if not isinstance(waiter, asyncio.Future):  # a future in every websockets 13+
            return waiter

        def answered(future: Any) -> None:
            if not future.cancelled() and future.exception() is None:
                feed.pong(float(future.result()))

        waiter.add_done_callback(answered)
        return waiter

    async def close(self, *args: Any, **kwargs: Any) -> None:
        # websockets' own failures (protocol errors, keepalive timeouts) do not come here.
        self._axiom_closing = True
        await super().close(*args, **kwargs)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._axiom_feed.closed(self, self._axiom_closing)


class InstrumentedConnect:
    """``websockets.asyncio.client.connect`` measuring the connections it opens.

    Call it as ``connect``: ``connect(uri, **options)`` returns websockets' own
    ``connect`` object (``async with``, ``await``, ``async for``), opened with a
    measuring ``ClientConnection`` subclass (or a subclass of the
    ``create_connection`` class given). ``stats``: a `FeedStats`.
    """

    def __init__(
        self,
        tracker: PerformanceTracker,
        *,
        timestamp: str | Timestamp | None = "timestamp",
    ) -> None:
        """Record into ``tracker``; ``timestamp``: a field name, a function, or None."""
        self.tracker = tracker
        if isinstance(timestamp, str):
            reader: Timestamp | None = field_reader(timestamp)
        elif timestamp is None or callable(timestamp):
            reader = timestamp
        else:
            kind = type(timestamp).__name__
            raise TypeError(f"timestamp must be a field name, a function or None, not {kind}")
        self._feed = _Feed(tracker, reader)
        self._classes: dict[type[ClientConnection], type[ClientConnection]] = {}

    @property
    def stats(self) -> FeedStats:
        """Counts over every connection opened through this ``connect``."""
        return self._feed.stats

    def _measured(self, base: type[ClientConnection]) -> type[ClientConnection]:
        measured = self._classes.get(base)
        if measured is None:
            bases = (
                (_MeasuredConnection,) if base is ClientConnection else (_MeasuredConnection, base)
            )
            measured = type(f"Measured{base.__name__}", bases, {"_axiom_feed": self._feed})
            self._classes[base] = measured
        return measured

    def __call__(self, uri: str, **options: Any) -> connect:
        """``websockets.asyncio.client.connect(uri, **options)``, measured."""
        base = options.pop("create_connection", None) or ClientConnection
        return connect(uri, create_connection=self._measured(base), **options)

    def __repr__(self) -> str:
        return f"<InstrumentedConnect {self.stats}>"
