"""A ``connect`` measuring a bot's own ``websockets`` feed, without changing how it reads.

``connect = tracker.websockets_connect(timestamp="timestamp")`` is a drop-in
for ``websockets.asyncio.client.connect``: ``async with connect(url) as ws``,
``ws = await connect(url)`` and ``async for ws in connect(url)`` (reconnecting)
give the bot an ordinary ``ClientConnection`` (a subclass) that notes each
message as it arrives, before it joins the queue ``recv()`` reads; the bot's
reads themselves are untouched:

- ``websocket_latency`` tag ``"delivery"``: the message's arrival time minus
  the time it carries (as ``axiom_ws`` times delivery: to the reader taking the
  message off the socket), read from the first ``"timestamp": <number>`` in
  its text (epoch seconds; milliseconds, microseconds and nanoseconds told
  apart by magnitude; quoted or not), or returned by a function given as
  ``timestamp`` for the message as ``recv()`` would give it (epoch seconds, or
  None). The field is found by a string search, not a second JSON parse, so a
  field of that name in a nested object counts too: give a function when that
  matters. Both clocks must agree (same host, or NTP). A fragmented message is
  not timed;
- ``websocket_latency`` tag ``"ping"``: each ping's round trip (the bot's own
  ``await ws.ping()`` and websockets' keepalive pings);
- ``websocket_message_rate`` (msg/s): one sample per second of messages
  (a silent stretch shows as one low sample when messages resume);
- ``websocket_reconnect_gap`` (s): from losing a connection (not one the bot
  closed itself) to the next one this ``connect`` opens, and the error
  ``"WebSocket disconnect"`` per loss;
- ``"WebSocket invalid frame"`` in the errors when websockets closed the
  connection over a frame it refused (protocol error, invalid UTF-8, too big).

``connect.stats`` (a snapshot) counts messages, timed messages, connections,
disconnects, invalid frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.typing import Data

from pytest_axiomperf.histogram import BUFFER_SIZE
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
_DATA_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY})
_TEXT = Opcode.TEXT
_perf = time.perf_counter

Timestamp = Callable[[Data], "float | None"]
"""Reads the time a message was sent (epoch seconds) from the message as recv() would
give it (str for a text message), or None."""


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


class _Feed:
    """The measuring state shared by every connection one ``connect`` opens.

    `message` runs for every message the bot receives: it is written as one
    frame of straight-line code (the field search inlined, the delivery
    histogram's buffer appended to directly), because each Python call it
    saves is a few percent of a bot's own per-message work.
    """

    def __init__(self, tracker: PerformanceTracker, timestamp: str | Timestamp | None) -> None:
        self.tracker = tracker
        self.stats = FeedStats()
        #: The field searched for, as bytes (None: a function of the bot's, or nothing).
        self._key = ('"' + timestamp + '"').encode() if isinstance(timestamp, str) else None
        self._function = None if isinstance(timestamp, str) else timestamp
        delivery = tracker.live_series(WEBSOCKET_LATENCY, DELIVERY_TAG)
        self._buffer, self._fold = delivery.raw_buffer()
        tracker.set_unit(MESSAGE_RATE, "msg/s")
        # Receive times on perf_counter (monotonic), turned into wall time by one offset.
        self._wall_offset = time.time() - _perf()
        self._window_start = _perf()
        self._window_end = self._window_start + 1.0
        self._window_messages = 0
        self._lost_at: float | None = None

    def message(self, data: bytes, text: bool) -> None:
        now = _perf()
        self._window_messages += 1
        if now >= self._window_end:
            self._flush(now)
        key = self._key
        if key is not None:
            found = data.find(key)
            if found < 0:
                return
            start = found + len(key)
            end = data.find(b",", start)
            if end < 0:
                end = data.find(b"}", start)
            try:
                # What follows the key up to the next comma: b': 1796540923.5' or b':"..."'.
                sent = float(data[start:end].strip(b' \t\r\n:"'))
            except ValueError:
                return
        elif self._function is not None:
            try:
                found_at = self._function(data.decode("utf-8", "replace") if text else data)
            except Exception as exc:  # the bot's own function: counted, never raised into it
                self.tracker.record_error(exc)
                return
            if found_at is None:
                return
            sent = found_at
        else:
            return
        if sent > 1e11:  # milliseconds, microseconds or nanoseconds
            sent = _seconds(sent)
        latency = now + self._wall_offset - sent
        # A sender's clock ahead of ours gives a negative figure: not a latency.
        if 0.0 <= latency < 1e9:
            self.stats.timed += 1
            buffer = self._buffer
            buffer.append(latency)
            if len(buffer) >= BUFFER_SIZE:
                self._fold()

    def _flush(self, now: float) -> None:
        elapsed = now - self._window_start
        self.tracker.record(MESSAGE_RATE, self._window_messages / elapsed)
        self.stats.messages += self._window_messages
        self._window_start = now
        self._window_end = now + 1.0
        self._window_messages = 0

    def opened(self) -> None:
        self.stats.connections += 1
        now = _perf()
        if self._lost_at is not None:
            self.tracker.record(RECONNECT_GAP, now - self._lost_at)
            self._lost_at = None
        self.stats.messages += self._window_messages
        self._window_start = now
        self._window_end = now + 1.0
        self._window_messages = 0

    def closed(self, connection: ClientConnection, closing_by_bot: bool) -> None:
        now = _perf()
        if now - self._window_start >= 0.1:  # a shorter last window would be noise
            self._flush(now)
        else:
            self.stats.messages += self._window_messages
            self._window_messages = 0
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

    def process_event(self, event: Any) -> None:
        # Each message as it arrives, before it joins the queue recv() reads: no layer
        # is added to the bot's own reads. A fragmented message is not timed.
        if type(event) is Frame and event.fin and event.opcode in _DATA_OPCODES:
            self._axiom_feed.message(bytes(event.data), event.opcode is _TEXT)
        super().process_event(event)

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
        if not (timestamp is None or isinstance(timestamp, str) or callable(timestamp)):
            kind = type(timestamp).__name__
            raise TypeError(f"timestamp must be a field name, a function or None, not {kind}")
        self._feed = _Feed(tracker, timestamp)
        self._classes: dict[type[ClientConnection], type[ClientConnection]] = {}

    @property
    def stats(self) -> FeedStats:
        """Counts over every connection opened through this ``connect`` (a snapshot)."""
        feed = self._feed
        return replace(feed.stats, messages=feed.stats.messages + feed._window_messages)

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
