"""A ``connect`` measuring a bot's own ``websockets`` feed, without changing how it reads.

``connect = tracker.websockets_connect(timestamp="timestamp")`` is a drop-in
for ``websockets.asyncio.client.connect``: ``async with connect(url) as ws``,
``ws = await connect(url)`` and ``async for ws in connect(url)`` (reconnecting)
give the bot an ordinary ``ClientConnection`` (a subclass) that notes each
message as it arrives, before it joins the queue ``recv()`` reads; the bot's
reads themselves are untouched:

- ``websocket_latency`` tag ``"delivery"``: the message's arrival time (that
  of the read from the socket that brought it, taken before websockets parses
  it) minus the time it carries, read from the first ``"timestamp"`` in its
  raw text when a JSON number follows it (epoch seconds; milliseconds,
  microseconds and nanoseconds told apart by magnitude; quoted or not), or
  returned by a function given as ``timestamp`` for the message as ``recv()``
  would give it (epoch seconds, or None). The field is found by a regular
  expression over the raw bytes, not a second JSON parse, so a field of that
  name in a nested object counts too: give a function when that matters. Both
  clocks must agree (same host, or NTP). A fragmented message is counted, not
  timed;
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
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
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
# The frames that end a message: a whole one, or the last fragment of one.
_MESSAGE_ENDS = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})
_TEXT = Opcode.TEXT
_CONT = Opcode.CONT
_SEPARATOR = b"\x00"
#: Messages searched per join.
_JOINED = 256
# A JSON number, whole: every text it matches is one float() reads.
_NUMBER = rb"(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
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


def _field_pattern(name: str, possessive: bool = sys.version_info >= (3, 11)) -> bytes:
    """Per message, what follows the first ``"<name>":`` when it looks like a number
    (quoted or not, up to a quote, a space, a comma or a closing bracket), else an
    empty group.

    The group holds JSON number characters only (``float()`` refuses the rare
    ones that do not make a number, such as ``1-2``). After the first occurrence
    the rest of the message is consumed up to the separator the messages are
    joined with, so a message gives one time at most. The separator is NUL,
    which a JSON text cannot hold outside a string escape; in a binary or
    non-JSON message that holds one, a later occurrence after it can give a
    second time. Possessive quantifiers (Python 3.11+) match the same texts
    (what ends the number is none of its characters) without backtracking.
    """
    key = re.escape(('"' + name + '"').encode())
    # q after a quantifier: "+" makes it possessive.
    q = "+" if possessive else ""
    rest = rf'(?:\s*{q}:\s*{q}"?{q}([-+.eE0-9]+{q})(?=["\s,}}\]]))?{q}[^\x00]*{q}'
    return key + rest.encode()


def _numbers(found: list[bytes]) -> list[float]:
    """The numbers among ``found``, the others (empty, ``1-2``) left out."""
    numbers = []
    for text in found:
        try:
            numbers.append(float(text))
        except ValueError:
            continue
    return numbers


def _times(found: list[bytes]) -> tuple[float, list[float], float, float]:
    """The times in ``found`` (a read's numbers) as ``base`` plus each of ``values``:
    ``(base, values, max(values), min(values))``.

    ``float()`` parses up to 15 significant digits on a fast path and takes a slow,
    exact one past them, which an epoch time in seconds with microseconds (16-17
    digits) always needs (~2,000 of the ~8,900 instructions a message cost). So the
    leading digits every time of the read shares (those above the last 8 integer
    digits; for an integer, above the last 15) are taken off the text and added
    back as ``base``, whose value comes from their place in the first time. The
    rest parses on the fast path, correctly rounded (for seconds, to within
    7.5e-9 s), so ``(wall - base) - value`` is as close to the true difference as
    ``wall - float(text)`` or closer (that is up to 1.2e-7 s off). A read whose
    first time has an exponent, whose times do not all start with those digits,
    or whose rests do not all sit below the digits' place within a tenth of it of
    each other (a time with its point elsewhere), is parsed whole. (A read mixing
    times ten times apart whose digits after the shared ones start with 0 can
    pass that check; no clock writes such a feed.)
    """
    first = found[0]
    dot = first.find(b".")
    cut = dot - 8 if dot > 0 else len(first) - 15
    if cut > 0 and first[:cut].isdigit() and b"e" not in first and b"E" not in first:
        head = _SEPARATOR + first[:cut]
        parts = (_SEPARATOR + _SEPARATOR.join(found)).split(head)
        if len(parts) == len(found) + 1:  # every time starts with the head's digits
            del parts[0]
            try:
                values = list(map(float, parts))
            except ValueError:  # number characters that make no number
                values = []
            if values:
                place = 10.0 ** ((dot if dot > 0 else len(first)) - cut)
                high, low = max(values), min(values)
                if high < place and high - low < place / 10:
                    return float(first[:cut]) * place, values, high, low
    try:
        values = list(map(float, found))
    except ValueError:  # a name followed by no number (b""), or by no valid one
        values = _numbers(found)
        if not values:
            return 0.0, values, 0.0, 0.0
    return 0.0, values, max(values), min(values)


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

    `frames` runs once per read from the socket, with the events websockets
    parsed from it; a fast feed delivers hundreds of messages per read, so the
    per-message work is kept in C where it can be: the messages' data are
    joined and searched by one regular expression, the times parsed by
    ``map(float)`` (on its fast path, see `_times`), the latencies appended to
    the delivery histogram's buffer in one ``extend``. Every message of a read
    arrived at the same moment: the read's time, taken before websockets parses
    it.
    """

    def __init__(self, tracker: PerformanceTracker, timestamp: str | Timestamp | None) -> None:
        self.tracker = tracker
        self.stats = FeedStats()
        if isinstance(timestamp, str):
            self._pattern: re.Pattern[bytes] | None = re.compile(_field_pattern(timestamp))
            self._function = None
        else:
            self._pattern, self._function = None, timestamp
        delivery = tracker.live_series(WEBSOCKET_LATENCY, DELIVERY_TAG)
        self._buffer, self._fold = delivery.raw_buffer()
        tracker.set_unit(MESSAGE_RATE, "msg/s")
        # Receive times on perf_counter (monotonic), turned into wall time by one offset.
        self._wall_offset = time.time() - _perf()
        #: perf_counter time of the latest read from a socket (set before it is parsed)
        self.arrived = _perf()
        self._window_start = self.arrived
        self._window_end = self._window_start + 1.0
        self._window_messages = 0
        self._lost_at: float | None = None

    def frames(self, events: list[Any]) -> None:
        """Note the messages among ``events``, all parsed from the read at ``arrived``."""
        now = self.arrived
        try:  # the common read: whole text messages, nothing else
            datas = [event.data for event in events if event.opcode is _TEXT and event.fin]
            whole = len(datas) == len(events)
        except AttributeError:  # an event that is no frame (the handshake's response)
            whole = False
        if not whole:
            # One entry per complete message; the last frame of a fragmented one counts
            # it but gives nothing to search (the field may lie in an earlier fragment).
            datas = [
                event.data if event.opcode is not _CONT else b""
                for event in events
                if type(event) is Frame and event.fin and event.opcode in _MESSAGE_ENDS
            ]
        if not datas:
            return
        self._window_messages += len(datas)
        if now >= self._window_end:
            self._flush(now)
        pattern = self._pattern
        if pattern is None:
            if self._function is not None:
                self._call(now, events)
            return
        if len(datas) == 1:
            match = pattern.search(datas[0])
            found = match[1] if match is not None else None
            if found:  # b"": a name followed by no number
                try:
                    value = float(found)
                except ValueError:  # number characters that make no number ("1-2")
                    return
                self._add_one(now, value)
            return
        # Joined a slice at a time: one join of a whole fast read (~260 KB) is a fresh
        # mapping of memory each time, which cost more than searching it.
        found = pattern.findall(_SEPARATOR.join(datas[:_JOINED]))
        for start in range(_JOINED, len(datas), _JOINED):
            found += pattern.findall(_SEPARATOR.join(datas[start : start + _JOINED]))
        if not found:
            return
        base, sent, high, low = _times(found)
        if not sent:
            return
        if high + base > 1e11:  # milliseconds, microseconds or nanoseconds
            sent = [_seconds(base + value) for value in sent]
            base = 0.0
            high, low = max(sent), min(sent)
        # Each time is base + value: a latency is (wall - base) - value.
        wall = now + self._wall_offset - base
        latencies = [wall - value for value in sent]
        # A sender's clock ahead of ours gives a negative figure: not a latency (nor is
        # an absurd one). float() of number characters gives finite numbers or
        # infinities, never NaN, so the extremes decide for the whole read.
        if wall - high < 0.0 or wall - low >= 1e9:
            latencies = [value for value in latencies if 0.0 <= value < 1e9]
        self.stats.timed += len(latencies)
        buffer = self._buffer
        buffer.extend(latencies)
        if len(buffer) >= BUFFER_SIZE:
            self._fold()

    def _add_one(self, now: float, sent: float) -> None:
        latency = now + self._wall_offset - (_seconds(sent) if sent > 1e11 else sent)
        if 0.0 <= latency < 1e9:  # also refuses NaN
            self.stats.timed += 1
            buffer = self._buffer
            buffer.append(latency)
            if len(buffer) >= BUFFER_SIZE:
                self._fold()

    def _call(self, now: float, events: list[Any]) -> None:
        """The bot's own function on each message of a read, as recv() would give it."""
        function = self._function
        assert function is not None
        for event in events:
            if type(event) is not Frame or not event.fin or event.opcode not in _DATA_OPCODES:
                continue
            data = event.data
            try:
                found_at = function(
                    str(data, "utf-8", "replace") if event.opcode is _TEXT else bytes(data)
                )
                if found_at is None:
                    continue
                sent = float(found_at)
            except Exception as exc:  # the bot's own function: counted, never raised into it
                self.tracker.record_error(exc)
                continue
            self._add_one(now, sent)

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

    def __init__(self, protocol: ClientProtocol, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, *args, **kwargs)
        # The events websockets parses from each read, seen once per read (not through a
        # method call per message) before they join the queue recv() reads: no layer is
        # added to the bot's own reads. ``events_received`` is the Sans-I/O protocol's
        # public method, called by the connection after each read and at EOF.
        parsed = protocol.events_received
        frames = self._axiom_feed.frames

        def events_received() -> list[Any]:
            events = parsed()
            if events:
                frames(events)
            return events

        protocol.events_received = events_received  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        self._axiom_feed.arrived = _perf()
        super().data_received(data)

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        await super().handshake(*args, **kwargs)
        self._axiom_feed.opened()

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
