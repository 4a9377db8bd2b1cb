"""WebSocketClient: a low-latency streaming client that measures itself honestly.

Built on ``websockets.asyncio.client`` (never the legacy API). One reader task
takes every frame off the socket, parses it and files it; no handler's ``await``
can hold it up:

- messages of a kind with a registered handler run in one of ``max_handlers``
  handler slots, each a long-lived task. With a slot free, the reader starts the
  handler itself (:class:`pytest_axiomperf.eager.EagerStarter`): one that
  finishes without waiting costs no task wake-up, one that waits is continued
  by its slot's task (its code before that first wait runs in the reader's
  turn of the loop, as it would run in a task's: either way it holds up the
  frames behind it). With every slot busy, messages wait in a bounded queue,
  started in arrival order as slots free up; when the queue is full the oldest
  message is dropped and counted, a message that waited longer than
  ``late_after`` is counted late, and the queue depth is sampled: handlers that
  fall behind show up in the numbers, never as unbounded memory;
- other known kinds go to a bounded queue read by :meth:`WebSocketClient.receive`;
- pongs answer :meth:`WebSocketClient.ping`;
- invalid JSON and unknown kinds are counted in the tracker's errors, logged and skipped.

What is measured, all into the tracker given (see :mod:`pytest_axiomperf.tracker`):

- ``websocket_latency`` tag ``"delivery"``: for every pushed message carrying a
  ``timestamp`` (epoch seconds: the time the server *intended* to emit it),
  the time from that instant to the reader taking the message off the socket.
  Timing from the intended instant, not from when the server got round to
  sending, keeps a server stall in the numbers (no coordinated omission).
  The receive time is ``perf_counter()`` plus a wall-clock offset read once,
  so it is monotonic; both ends must share a clock (same host, or NTP).
- ``websocket_latency`` tag ``"ping"``: application ping round trips
  (``{"type": "ping", "timestamp": t}`` answered by a pong echoing ``t``);
  tag ``"keepalive"``: protocol-level ping round trips.
- ``websocket_message_rate`` (msg/s) and ``network_throughput`` tag
  ``"websocket"`` (B/s), one sample per ``rate_interval``: a reconnect gap
  shows as windows with few or no messages.
- ``websocket_reconnect_gap`` (s): from losing a connection to having it back.
- ``websocket_queue_depth`` (msgs): the handler queue depth, sampled with the rates.

A server that stops answering pings (protocol pings every ``ping_interval``,
and application pings every ``app_ping_interval`` when set) for
``ping_timeout`` seconds is declared dead: the connection is aborted at once
and, like any lost connection, reopened with exponential backoff and jitter,
then every subscription is sent again in one message. The backoff starts over
only once a connection has stayed up ``reconnect_reset_after`` seconds: a
server that accepts the handshake and closes at once is retried ever more
slowly, not in a tight loop, and after ``max_reconnect_attempts`` reconnects
without such a connection (10 by default) the client gives up and says why.

Message kinds: a message's kind is its ``"type"`` field (:meth:`WebSocketClient.message_kind`);
a protocol with another shape overrides that method and :meth:`WebSocketClient.subscribe_message`.

Rooms (AxiomTrade's own protocol, as the ``axiomtradeapi`` SDK speaks it):
:meth:`WebSocketClient.join` sends ``{"action": "join", "room": R}``; the room's
pushes ``{"room": R, "content": ..., "emitted_at": t}`` are of kind ``"room:R"``
(:func:`room_kind`), go to the room's handler or to :meth:`WebSocketClient.receive`,
and their delivery latency is timed from ``emitted_at`` (the intended emit time,
like ``timestamp`` above). Joined rooms are joined again after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from pytest_axiomperf.eager import EagerStart, EagerStarter
from pytest_axiomperf.errors import WebSocketError
from pytest_axiomperf.histogram import BUFFER_SIZE
from pytest_axiomperf.redact import bearer, redact_text, remember_url, safe_url
from pytest_axiomperf.tracker import NETWORK_THROUGHPUT, WEBSOCKET_LATENCY, PerformanceTracker

__all__ = [
    "DELIVERY_TAG",
    "KEEPALIVE_TAG",
    "MESSAGE_RATE",
    "PING_TAG",
    "QUEUE_DEPTH",
    "RECONNECT_GAP",
    "ROOM_KIND",
    "WEBSOCKET_TAG",
    "Handler",
    "WebSocketClient",
    "WebSocketStats",
    "room_kind",
]

_log = logging.getLogger(__name__)

#: Tags of ``websocket_latency``.
DELIVERY_TAG = "delivery"
PING_TAG = "ping"
KEEPALIVE_TAG = "keepalive"
#: Tag of the client's samples in ``network_throughput``.
WEBSOCKET_TAG = "websocket"
#: Metrics the client records besides ``websocket_latency`` and ``network_throughput``.
MESSAGE_RATE = "websocket_message_rate"
RECONNECT_GAP = "websocket_reconnect_gap"
QUEUE_DEPTH = "websocket_queue_depth"

#: Kinds delivered to :meth:`WebSocketClient.receive` without a registered handler.
DEFAULT_KINDS = frozenset({"token_update", "subscribed", "unsubscribed", "error"})

#: Error names counted in the tracker.
ERR_INVALID = "WebSocket invalid JSON"
ERR_UNKNOWN = "WebSocket unknown message type"
ERR_DROPPED = "WebSocket dropped message"
ERR_DISCONNECT = "WebSocket disconnect"
ERR_PING_TIMEOUT = "WebSocket ping timeout"
ERR_CONNECT_FAILED = "WebSocket connect failed"
ERR_RECONNECT_FAILED = "WebSocket reconnect failed"
ERR_GAVE_UP = "WebSocket gave up reconnecting"
ERR_SERVER = "WebSocket server error"

Handler = Callable[[dict[str, Any]], Coroutine[Any, Any, Any]]
"""A message handler: an async function taking the parsed message."""

#: Prefix of the kind of a room's pushes: ``"room:new_pairs"``.
ROOM_KIND = "room:"


def room_kind(room: str) -> str:
    """The message kind of the pushes of ``room`` (for ``receive(kind=...)``)."""
    return ROOM_KIND + room


_PREVIEW = 120  # characters of a bad message shown in the log


_KINDS_NAMED = 50  # unknown message kinds counted (and warned about) one by one


def _no_fold() -> None:
    """The reader's fold until its delivery series exists (never called)."""


# Why a connection could not be opened (on Python 3.10, asyncio.TimeoutError is
# not the builtin TimeoutError, and either can come out of the handshake).
_OPEN_ERRORS = (InvalidHandshake, InvalidURI, OSError, asyncio.TimeoutError, TimeoutError)


class _DropOldest:
    """A bounded FIFO for one event loop: the reader appends to ``items`` (dropping the
    oldest item when ``maxsize`` are there, never waiting) and calls ``wake``.

    Cheaper than ``asyncio.Queue`` on the reader's hot path (a deque append and,
    only when a consumer is idle, one future to wake it). Waits share one timer,
    armed for the earliest deadline and re-armed when it fires: a timer per wait
    (a ``TimerHandle`` made, pushed on the loop's heap, cancelled) cost ~2 us
    per message, more than the rest of ``receive()``.
    """

    __slots__ = ("closed", "items", "maxsize", "timer", "waiters")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        #: The hot paths use these two directly (a method call costs more than the work).
        self.items: deque[Any] = deque()
        #: Waiting ``get`` calls, oldest first: (future, deadline).
        self.waiters: deque[tuple[asyncio.Future[None], float]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self.items)

    def wake(self) -> None:
        """Wake the oldest waiter."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()[0]
            if not waiter.done():
                waiter.set_result(None)
                return

    def waiter(self, deadline: float) -> asyncio.Future[None]:
        """A future done when an item may have arrived (or the queue closed), failed
        with ``TimeoutError`` at ``deadline`` (``loop.time()``; ``math.inf``: never).

        A future rather than a coroutine: awaiting it costs no coroutine per wait.
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.waiters.append((waiter, deadline))
        timer = self.timer
        if deadline < math.inf and (timer is None or timer.when() > deadline):
            if timer is not None:
                timer.cancel()
            self.timer = loop.call_at(deadline, self._expire)
        return waiter

    def _expire(self) -> None:
        """Fail the waits whose deadline has passed; re-arm for the earliest other one."""
        self.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiters = self.waiters
        earliest = math.inf
        for _ in range(len(waiters)):  # one turn round the deque keeps the order
            waiter, deadline = waiters.popleft()
            if waiter.done():
                continue
            if deadline <= now:
                waiter.set_exception(TimeoutError())
                continue
            waiters.append((waiter, deadline))
            earliest = min(earliest, deadline)
        if earliest < math.inf:
            self.timer = loop.call_at(earliest, self._expire)

    def close(self) -> None:
        """Wake every waiter for good (the queue stays readable)."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for waiter, _ in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


class _Slot:
    """One handler slot: its task runs one handler call at a time (``WebSocketClient._work``).

    While idle, the task waits on ``waiter``; the reader hands it a handler it
    started and that suspended by setting ``started`` and resolving ``waiter``.
    """

    __slots__ = ("started", "task", "waiter")

    # Set before use: ``task`` as the slot is made, ``waiter`` before it goes idle.
    task: asyncio.Task[None]
    waiter: asyncio.Future[None]

    def __init__(self) -> None:
        self.started: tuple[EagerStart, dict[str, Any]] | None = None


@dataclass
class WebSocketStats:
    """Counters of one client since it was created (all connections together)."""

    messages: int = 0
    """Frames taken off the socket (every kind, valid or not)."""
    bytes: int = 0
    """Payload bytes of those frames."""
    delivered: int = 0
    """Messages whose delivery latency was recorded."""
    handled: int = 0
    """Messages a handler finished with (successfully or not)."""
    dropped: int = 0
    """Messages dropped because a bounded queue was full (the oldest goes)."""
    late: int = 0
    """Messages that waited longer than ``late_after`` for a handler."""
    max_queue_depth: int = 0
    """Largest depth the handler queue reached."""
    invalid: int = 0
    """Frames that were not a JSON object."""
    unknown: int = 0
    """Messages of a kind with neither a handler nor a place in ``kinds``."""
    handler_errors: int = 0
    """Handler calls that raised."""
    disconnects: int = 0
    """Connections lost (not counting :meth:`WebSocketClient.close`)."""
    reconnects: int = 0
    """Connections reopened after a loss."""
    ping_timeouts: int = 0
    """Pings (protocol or application) unanswered within ``ping_timeout``."""
    clock_skewed: int = 0
    """Messages stamped later than they arrived (clocks disagree), or with a stamp that gives
    no finite latency (NaN, infinite, an integer too large for a float): recorded as 0 s."""


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ws_url(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("ws", "wss") and bool(parts.hostname)


def _positive_or_none(name: str, value: float | None) -> float | None:
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be a number > 0 or None, got {value!r}")
    return value


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class WebSocketClient:
    """A streaming client for trading bots that records its own latency honestly.

    See the module docstring for what it measures and how it behaves when the
    server or the bot falls behind. Usable outside pytest::

        async with WebSocketClient(url, token=token) as ws:
            await ws.subscribe(["SOL", "BONK"])
            update = await ws.receive(timeout=5.0)
            print(ws.tracker.stats("websocket_latency", "delivery"))

    Every public coroutine connects first when needed, so a client may be built
    outside any event loop and connected lazily in the one that uses it; it must
    then keep being used (and be closed) in that loop.

    Args:
        url: ``ws://`` or ``wss://`` URL.
        token: bearer token sent in the handshake's ``Authorization`` header; never shown.
        tracker: where measurements go (default: a new :class:`PerformanceTracker`).
        compression: negotiate permessage-deflate (smaller frames, more CPU and latency).
        ping_interval: seconds between protocol pings (``None``: no keepalive).
        ping_timeout: seconds a ping may go unanswered before the server is declared
            dead (``None``: never).
        app_ping_interval: seconds between application pings (``None``: none), for
            servers whose application can hang while their socket still answers.
        max_size: largest incoming message in bytes (``None``: no limit); a larger one
            closes the connection (code 1009).
        write_limit: bytes buffered for sending before ``send`` waits.
        max_queue: frames websockets buffers before it stops reading the socket.
        open_timeout: seconds allowed for the opening handshake.
        close_timeout: seconds allowed for the closing handshake.
        reconnect: reopen a lost connection (with backoff and jitter).
        reconnect_delay: first backoff delay, in seconds; doubles per failed attempt.
        reconnect_max_delay: largest backoff delay, in seconds.
        reconnect_reset_after: seconds a connection must stay up for the backoff
            (and the count of reconnects) to start over.
        max_reconnect_attempts: reconnects, failed or soon lost again, since the last
            connection that stayed up ``reconnect_reset_after`` s, before giving up
            (``None``: keep trying until closed).
        max_handlers: handler calls in flight at most (1: in arrival order).
        handler_queue_size: messages waiting for a handler at most.
        receive_queue_size: messages waiting for :meth:`receive` at most.
        late_after: seconds a message may wait for its handler before it counts as late.
        rate_interval: seconds per message-rate and throughput sample.
        kinds: message kinds delivered to :meth:`receive` (handlers add theirs).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        tracker: PerformanceTracker | None = None,
        compression: bool = False,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 10.0,
        app_ping_interval: float | None = None,
        max_size: int | None = 2**20,
        write_limit: int = 2**15,
        max_queue: int = 64,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        reconnect: bool = True,
        reconnect_delay: float = 0.05,
        reconnect_max_delay: float = 5.0,
        reconnect_reset_after: float = 5.0,
        max_reconnect_attempts: int | None = 10,
        max_handlers: int = 8,
        handler_queue_size: int = 1024,
        receive_queue_size: int = 1024,
        late_after: float = 0.1,
        rate_interval: float = 1.0,
        kinds: Iterable[str] = DEFAULT_KINDS,
    ) -> None:
        if not _is_ws_url(url):
            shown = redact_text(url) if isinstance(url, str) else url
            raise ValueError(f"url must be a ws:// or wss:// URL with a host, got {shown!r}")
        self.url = url
        remember_url(url)  # websockets logs the request line (with its query) at DEBUG
        self._token = token
        self.tracker = tracker if tracker is not None else PerformanceTracker()
        self.compression = compression
        self.ping_interval = _positive_or_none("ping_interval", ping_interval)
        self.ping_timeout = _positive_or_none("ping_timeout", ping_timeout)
        self.app_ping_interval = _positive_or_none("app_ping_interval", app_ping_interval)
        self.max_size = max_size
        self.write_limit = write_limit
        self.max_queue = max_queue
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.reconnect_reset_after = reconnect_reset_after
        self.max_reconnect_attempts = max_reconnect_attempts
        self.max_handlers = _positive_int("max_handlers", max_handlers)
        self.handler_queue_size = _positive_int("handler_queue_size", handler_queue_size)
        self.receive_queue_size = _positive_int("receive_queue_size", receive_queue_size)
        self.late_after = late_after
        self.rate_interval = rate_interval
        self._kinds = set(kinds)
        self._handlers: dict[str, Handler] = {}
        self._subscriptions: dict[str, None] = {}  # ordered set
        self._rooms: dict[str, None] = {}  # ordered set
        self._stats = WebSocketStats()
        self._rng = random.Random()
        # Epoch seconds = perf_counter() + offset: monotonic, comparable with server stamps.
        self._wall_offset = time.time() - time.perf_counter()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: ClientConnection | None = None
        self._closing = False
        self._closed = False
        self._close_reason = ""
        # Reconnects since the last connection that stayed up: the backoff's exponent.
        self._reconnects_unstable = 0
        self._last_error = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        # Idle handler slots. A slot goes idle only when no message is waiting,
        # and a message waits only when no slot is idle: never both at once.
        self._idle: list[_Slot] = []
        self._connect_lock: asyncio.Lock | None = None
        self._connected: asyncio.Event | None = None
        self._receive_q = _DropOldest(self.receive_queue_size)
        # Messages waiting for a handler slot: (handler, message, receive time).
        self._handler_q: deque[tuple[Handler, dict[str, Any], float]] = deque()
        self._pings: dict[float, asyncio.Future[float]] = {}
        self._window_start = 0.0
        self._window_messages = 0
        self._window_bytes = 0
        self._warned: set[str] = set()
        # Messages skipped for a kind neither in `kinds` nor handled, by kind, and beyond
        # the first _KINDS_NAMED kinds together.
        self._unknown_kinds: dict[str | None, int] = {}
        self._unknown_others = 0

        self.tracker.set_unit(MESSAGE_RATE, "msg/s")
        self.tracker.set_unit(QUEUE_DEPTH, "msgs")

    def __repr__(self) -> str:
        """Where it connects and its state; never the token."""
        if self._closed:
            state = "closed"
        elif self._ws is not None:
            state = "connected"
        elif self._loop is not None:
            state = "reconnecting"
        else:
            state = "not connected"
        return f"<WebSocketClient {state} url={safe_url(self.url)!r}>"

    # -- state -------------------------------------------------------------------------

    @property
    def stats(self) -> WebSocketStats:
        """A snapshot of the counters."""
        return replace(self._stats)

    @property
    def connected(self) -> bool:
        """Whether a connection is open right now."""
        return self._ws is not None

    @property
    def closed(self) -> bool:
        """Whether the client is closed for good (by :meth:`close` or by giving up)."""
        return self._closed

    @property
    def connection(self) -> ClientConnection | None:
        """The open ``websockets`` connection, or ``None`` (between reconnects, or closed)."""
        return self._ws

    @property
    def kinds(self) -> set[str]:
        """The message kinds :meth:`receive` returns (besides those with a handler).

        The set itself, not a copy: add a venue's own kinds to it
        (``axiom_ws.kinds.add("trade")``); a message of a kind neither here nor
        handled is counted as unknown and skipped.
        """
        return self._kinds

    @property
    def queue_depth(self) -> int:
        """Messages waiting for a handler now."""
        return len(self._handler_q)

    @property
    def subscriptions(self) -> list[str]:
        """The tokens subscribed to, in order; sent again after every reconnect."""
        return list(self._subscriptions)

    @property
    def rooms(self) -> list[str]:
        """The rooms joined, in order; joined again after every reconnect."""
        return list(self._rooms)

    # -- extension points -----------------------------------------------------------------

    def message_kind(self, message: Mapping[str, Any]) -> str | None:
        """The kind ``message`` is dispatched on (``None``: unknown).

        Its ``"type"`` field, else ``room_kind(room)`` for a room push.
        """
        kind = message.get("type")
        if isinstance(kind, str):
            return kind
        room = message.get("room")
        return ROOM_KIND + room if isinstance(room, str) else None

    def subscribe_message(self, tokens: list[str]) -> dict[str, Any]:
        """The one message subscribing to ``tokens``."""
        return {"type": "subscribe", "tokens": tokens}

    # -- connecting and closing ------------------------------------------------------------

    async def __aenter__(self) -> WebSocketClient:
        """Connect."""
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close."""
        await self.close()

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise WebSocketError(
                f"{self!r} was connected in another event loop; a client must be used and "
                "closed in the loop that connected it (create one client per loop)"
            )
        return loop

    async def connect(self) -> None:
        """Open the connection (no-op when open); ``WebSocketError`` when it cannot."""
        if self._closed or self._closing:
            raise WebSocketError(f"{self!r} is closed; create a new client")
        loop = self._check_loop()
        if self._loop is None:
            self._loop = loop
            self._connect_lock = asyncio.Lock()
            self._connected = asyncio.Event()
        assert self._connect_lock is not None and self._connected is not None
        async with self._connect_lock:
            if self._tasks:  # connected before (maybe reconnecting now): nothing to open
                return
            try:
                ws = await self._open()
            except _OPEN_ERRORS as exc:
                # Counted, so the report does not say "no errors" for a refused handshake.
                self.tracker.record_error(ERR_CONNECT_FAILED)
                raise WebSocketError(self._describe_failure(exc)) from None
            if self._closing or self._closed:  # close() ran during the handshake
                await ws.close()
                raise WebSocketError(f"{self!r} was closed while connecting")
            self._ws = ws
            self._connected.set()
            self._window_start = time.perf_counter()
            self._tasks.append(loop.create_task(self._run(ws), name="axiomperf-ws-reader"))
            self._tasks.append(loop.create_task(self._meter(), name="axiomperf-ws-meter"))
            if self.ping_interval is not None:
                self._tasks.append(
                    loop.create_task(self._keepalive(), name="axiomperf-ws-keepalive")
                )
            if self.app_ping_interval is not None:
                self._tasks.append(
                    loop.create_task(self._heartbeat(), name="axiomperf-ws-heartbeat")
                )
            if self._handlers:
                self._start_workers()

    async def _open(self) -> ClientConnection:
        headers = {"Authorization": bearer(self._token)} if self._token else None
        return await connect(
            self.url,
            additional_headers=headers,
            compression="deflate" if self.compression else None,
            # Our own keepalive aborts a dead connection at once; websockets' waits
            # close_timeout more before its reader notices.
            ping_interval=None,
            ping_timeout=None,
            max_size=self.max_size,
            write_limit=self.write_limit,
            max_queue=self.max_queue,
            open_timeout=self.open_timeout,
            close_timeout=self.close_timeout,
            # Proxy variables from the environment must not reroute a local server.
            proxy=None if _is_loopback(self.url) else True,
        )

    def _describe_failure(self, exc: BaseException) -> str:
        where = safe_url(self.url)
        if isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            hint = " (missing or wrong bearer token?)" if status in (401, 403) else ""
            return f"{where} refused the WebSocket handshake with HTTP {status}{hint}"
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return f"{where} did not complete the handshake within {self.open_timeout:g} s"
        # Some errors quote the URL (InvalidURI): with its credentials.
        return f"cannot connect to {where}: {type(exc).__name__}: {redact_text(str(exc))}"

    def _must_connect(self) -> bool:
        """Whether a call must connect first; raises when the client cannot be used here."""
        self._check_loop()
        if self._closed or self._closing:
            raise WebSocketError(f"{self!r} is closed{self._close_reason}")
        return not self._tasks

    async def _ensure_connected(self) -> None:
        if self._must_connect():
            await self.connect()

    async def _current(self) -> ClientConnection:
        """The open connection, waiting up to ``open_timeout`` while reconnecting."""
        await self._ensure_connected()
        ws = self._ws
        if ws is not None:
            return ws
        assert self._connected is not None
        try:
            await asyncio.wait_for(self._connected.wait(), self.open_timeout)
        except asyncio.TimeoutError:
            raise WebSocketError(
                f"{self!r} is reconnecting and was not back within {self.open_timeout:g} s"
                f"{self._last_error_text()}"
            ) from None
        ws = self._ws
        if ws is None:
            raise WebSocketError(f"{self!r} is closed{self._close_reason}")
        return ws

    def _last_error_text(self) -> str:
        return f" (last error: {self._last_error})" if self._last_error else ""

    async def close(self) -> None:
        """Close the connection and stop every task of the client; idempotent."""
        if self._closed or self._closing:
            return
        if self._loop is None:
            self._closed = True
            return
        self._check_loop()
        self._closing = True
        tasks = self._tasks + self._workers
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        self._finish(" (closed by the client)")

    def _finish(self, reason: str) -> None:
        """Record the last rate window and wake every waiter: the client is done."""
        self._flush_window(final=True)
        self._closed = True
        self._close_reason = reason
        self._fail_pings(reason)
        self._receive_q.close()

    def close_from_sync(self) -> None:
        """Close from synchronous code (a fixture's teardown), in the loop that connected.

        When that loop is running (a call from inside it), the close is scheduled
        instead. When it is already closed, its shutdown cancelled the reader,
        which dropped the socket: nothing is left to close.
        """
        loop = self._loop
        if self._closed or loop is None:
            self._closed = True
            return
        if loop.is_closed():
            self._tasks.clear()
            self._ws = None
            self._closed = True
            return
        if loop.is_running():
            # Called from inside the loop: the close runs as soon as the caller yields.
            self._tasks.append(loop.create_task(self.close()))
            return
        loop.run_until_complete(self.close())

    # -- sending -------------------------------------------------------------------------------

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one JSON message (waits up to ``open_timeout`` while reconnecting).

        ``WebSocketError`` when the connection closes under the send (the client
        reconnects by itself; the message may be sent again)."""
        ws = await self._current()
        try:
            await ws.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise WebSocketError(f"{self!r}: connection lost while sending ({exc})") from None

    async def subscribe(self, tokens: Iterable[str]) -> None:
        """Subscribe to ``tokens`` in one message; they are subscribed again after a reconnect."""
        wanted = list(dict.fromkeys(tokens))
        if not wanted or not all(isinstance(t, str) and t for t in wanted):
            raise ValueError(f"tokens must be a non-empty list of non-empty str, got {wanted!r}")
        self._subscriptions.update(dict.fromkeys(wanted))
        await self.send(self.subscribe_message(wanted))

    async def unsubscribe(self, tokens: Iterable[str] | None = None) -> None:
        """Stop the stream of ``tokens`` (all when ``None``)."""
        dropped = list(self._subscriptions) if tokens is None else list(dict.fromkeys(tokens))
        for token in dropped:
            self._subscriptions.pop(token, None)
        await self.send({"type": "unsubscribe", "tokens": dropped})

    async def join(self, room: str, handler: Handler | None = None) -> None:
        """Join ``room`` (``{"action": "join", "room": room}``); joined again after a reconnect.

        Its pushes go to ``await handler(push)`` (the whole push: ``room``,
        ``content``, ``emitted_at``) when given, else to ``receive(kind=room_kind(room))``.
        """
        if not isinstance(room, str) or not room:
            raise ValueError(f"room must be a non-empty str, got {room!r}")
        if handler is not None:
            self.register_handler(room_kind(room), handler)
        else:
            self._kinds.add(room_kind(room))
        self._rooms[room] = None
        await self.send({"action": "join", "room": room})

    async def leave(self, room: str) -> None:
        """Leave ``room``. Pushes already on their way still reach its handler or ``receive``."""
        self._rooms.pop(room, None)
        await self.send({"action": "leave", "room": room})

    async def ping(self, timeout: float | None = None) -> float:
        """Round trip of one application ping, in seconds, recorded as ``websocket_latency``/ping.

        Sends ``{"type": "ping", "timestamp": t}`` and waits for the pong echoing
        ``t`` (default timeout: ``ping_timeout``, else 10 s). A timeout is
        counted in the errors and raises ``TimeoutError``.
        """
        ws = await self._current()
        wait = timeout if timeout is not None else (self.ping_timeout or 10.0)
        assert self._loop is not None
        sent = time.perf_counter()
        stamp = sent + self._wall_offset
        while stamp in self._pings:  # two pings in the same nanosecond
            stamp = math.nextafter(stamp, math.inf)
        answered: asyncio.Future[float] = self._loop.create_future()
        self._pings[stamp] = answered
        try:
            await ws.send(json.dumps({"type": "ping", "timestamp": stamp}))
            received = await asyncio.wait_for(answered, wait)
        except asyncio.TimeoutError:
            self._stats.ping_timeouts += 1
            self.tracker.record_error(ERR_PING_TIMEOUT)
            raise TimeoutError(f"no pong from {safe_url(self.url)} within {wait:g} s") from None
        except ConnectionClosed as exc:
            raise WebSocketError(f"{self!r}: connection lost during ping ({exc})") from None
        finally:
            self._pings.pop(stamp, None)
        rtt = received - sent
        self.tracker.record(WEBSOCKET_LATENCY, rtt, PING_TAG)
        return rtt

    def _fail_pings(self, reason: str) -> None:
        for answered in self._pings.values():
            if not answered.done():
                answered.set_exception(WebSocketError(f"{self!r}: no pong: {reason}"))
        self._pings.clear()

    # -- receiving -------------------------------------------------------------------------------

    async def receive(self, timeout: float = 5.0, kind: str | None = None) -> dict[str, Any]:
        """The next message (the parsed JSON object) of a kind without a handler; of
        ``kind`` only when given, the others before it dropped.

        Messages of a kind that is neither in ``kinds`` nor handled never come here:
        they are counted as unknown and skipped. Raises ``TimeoutError`` when none
        arrives within ``timeout`` seconds (naming the kinds skipped as unknown, if
        any), ``ValueError`` for a ``kind`` that has a handler (its messages go to
        the handler only), and ``WebSocketError`` once the client is closed and the
        queue is empty.
        """
        if kind is not None and kind in self._handlers:
            raise ValueError(
                f"{kind!r} messages go to the handler registered for them, never to "
                "receive(), which returns the kinds without a handler"
            )
        queue = self._receive_q
        items = queue.items
        # The hot path: a message is waiting and this is the client's loop. Otherwise:
        # what arrived before the end stays readable; connect when never connected
        # (a plain call, not _ensure_connected(): one coroutine less).
        fast = items and asyncio.get_running_loop() is self._loop
        if not fast and not (queue.closed and items) and self._must_connect():
            await self.connect()
        deadline = math.inf
        while True:
            if items:
                message: dict[str, Any] = items.popleft()
                if kind is None or self.message_kind(message) == kind:
                    return message
                continue
            if queue.closed:
                raise WebSocketError(f"{self!r} is closed{self._close_reason}")
            if deadline == math.inf:
                deadline = asyncio.get_running_loop().time() + timeout
            try:
                await queue.waiter(deadline)
            except TimeoutError:
                state = "" if self._ws is not None else f"; {self!r}{self._last_error_text()}"
                wanted = f"{kind!r} message" if kind else "message"
                raise TimeoutError(
                    f"no {wanted} from {safe_url(self.url)} within {timeout:g} s{state}"
                    f"{self._skipped_text()}"
                ) from None

    def _skipped_unknown(self, kind: str | None) -> None:
        """Count a message skipped for its unknown kind; warn once per kind.

        Kinds are counted one by one up to ``_KINDS_NAMED`` of them, the rest
        together: a server that puts an id in its type cannot grow this.
        """
        skipped = self._unknown_kinds
        if kind in skipped or len(skipped) < _KINDS_NAMED:
            skipped[kind] = skipped.get(kind, 0) + 1
            self._warn_once(
                f"unknown {kind!r}",
                "%r: skipped a message of unknown kind %r (not in kinds, no handler)",
                self,
                kind,
            )
        else:
            self._unknown_others += 1

    def _skipped_text(self) -> str:
        """Why messages that did arrive never reached receive(): kinds it does not know."""
        if not self._unknown_kinds:
            return ""
        counts = sorted(self._unknown_kinds.items(), key=lambda item: -item[1])
        shown = ", ".join(
            f"{'no type' if kind is None else repr(kind)} x{n}" for kind, n in counts[:5]
        )
        rest = sum(n for _, n in counts[5:]) + self._unknown_others
        more = f" and {rest} of other kinds" if rest else ""
        hints = []
        plain = [k for k, _ in counts if k is not None and not k.startswith(ROOM_KIND)]
        if plain:
            hints.append(
                f"to receive a kind, add it to the client's kinds: .kinds.add({plain[0]!r})"
            )
        if any(k is not None and k.startswith(ROOM_KIND) for k, _ in counts):
            hints.append("a room's pushes come to receive() once you join() it")
        if None in self._unknown_kinds:
            hints.append("a message's kind is its 'type' (override message_kind() otherwise)")
        return f"; skipped as of unknown kind: {shown}{more} ({'; '.join(hints)})"

    def register_handler(self, kind: str, handler: Handler) -> None:
        """Run ``await handler(message)`` for every message of ``kind``, off the reader.

        At most ``max_handlers`` calls run at once, each as if in a task of its
        own (its own copy of the context; ``asyncio.current_task()`` is its
        slot's task); they start in arrival order, and messages wait in a
        bounded queue meanwhile (oldest dropped and counted when full). A call
        that finishes without waiting runs to its end as soon as its message
        arrives. A handler that raises is counted in the errors (by exception
        type) and logged; the stream goes on.
        """
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty str, got {kind!r}")
        if kind == "pong":
            raise ValueError("'pong' messages answer ping(); they cannot have a handler")
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"the handler for {kind!r} must be an async function, got {handler!r}")
        self._handlers[kind] = handler
        if self._tasks and not self._workers and not self._closing:
            self._start_workers()

    def _start_workers(self) -> None:
        assert self._loop is not None
        self._workers = []
        for i in range(self.max_handlers):
            slot = _Slot()
            slot.task = self._loop.create_task(self._work(slot), name=f"axiomperf-ws-handler-{i}")
            self._workers.append(slot.task)

    def _count_drop(self) -> None:
        self._stats.dropped += 1
        self.tracker.record_error(ERR_DROPPED)

    def _handler_failed(self, exc: BaseException, message: dict[str, Any]) -> None:
        self._stats.handler_errors += 1
        self.tracker.record_error(exc)
        _log.error("%r: the handler for %r raised", self, self.message_kind(message), exc_info=exc)

    def _warn_once(self, problem: str, text: str, *args: Any) -> None:
        """Log a problem at warning level the first time, then at debug level."""
        level = logging.DEBUG if problem in self._warned else logging.WARNING
        self._warned.add(problem)
        _log.log(level, text, *args)

    # -- the tasks ------------------------------------------------------------------------------

    async def _run(self, ws: ClientConnection) -> None:
        """Read and reconnect until closed; cancelled without close(): drop the socket."""
        try:
            await self._serve_connections(ws)
        except asyncio.CancelledError:
            current = self._ws
            if not self._closing and current is not None:
                # The loop is shutting down (asyncio.run, a test's runner) and nobody
                # closed the client: do not leave an open socket behind.
                current.transport.abort()
                self._finish(" (its event loop shut down)")  # receive() then says so
            raise

    async def _serve_connections(self, ws: ClientConnection) -> None:
        """Read until the connection is lost; then reconnect, or finish the client."""
        while True:
            opened = time.perf_counter()
            code = await self._read(ws)
            if self._closing:
                return
            lost = time.perf_counter()
            if lost - opened >= self.reconnect_reset_after:
                self._reconnects_unstable = 0
            self._ws = None
            assert self._connected is not None
            self._connected.clear()
            self._stats.disconnects += 1
            self.tracker.record_error(ERR_DISCONNECT)
            self._last_error = f"connection lost ({code})"
            self._fail_pings(self._last_error)
            _log.info("%r: %s", self, self._last_error)
            reopened = await self._reopen() if self.reconnect else None
            if reopened is None:
                self._finish(f" ({self._last_error})")
                for task in self._tasks + self._workers:
                    if task is not asyncio.current_task():
                        task.cancel()
                return
            ws = reopened
            self.tracker.record(RECONNECT_GAP, time.perf_counter() - lost)
            self._stats.reconnects += 1
            self._ws = ws
            self._connected.set()
            # A loss during these sends shows in the next _read, which then returns.
            with contextlib.suppress(ConnectionClosed):
                if self._subscriptions:
                    await ws.send(json.dumps(self.subscribe_message(list(self._subscriptions))))
                for room in self._rooms:
                    await ws.send(json.dumps({"action": "join", "room": room}))

    async def _reopen(self) -> ClientConnection | None:
        """Reconnect with exponential backoff and jitter; ``None`` when giving up.

        The backoff carries on from the reconnects before (`_serve_connections`
        starts it over once a connection has stayed up): a handshake that succeeds
        is no proof the server is back.
        """
        while True:
            attempt = self._reconnects_unstable
            limit = self.max_reconnect_attempts
            if limit is not None and attempt >= limit:
                self._last_error += (
                    f"; gave up after {attempt} reconnects, none of which stayed up "
                    f"{self.reconnect_reset_after:g} s"
                )
                self.tracker.record_error(ERR_GAVE_UP)
                _log.warning("%r: %s", self, self._last_error)
                return None
            ceiling = min(self.reconnect_max_delay, self.reconnect_delay * 2**attempt)
            # Half fixed, half random: many bots dropped together do not return in lockstep.
            await asyncio.sleep(ceiling / 2 + self._rng.uniform(0.0, ceiling / 2))
            self._reconnects_unstable = attempt = attempt + 1
            try:
                return await self._open()
            except _OPEN_ERRORS as exc:
                self._last_error = self._describe_failure(exc)
                self.tracker.record_error(ERR_RECONNECT_FAILED)
                _log.info("%r: reconnect attempt %d failed: %s", self, attempt, self._last_error)
                if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                    return None

    async def _read(self, ws: ClientConnection) -> str:
        """The hot path: take frames off ``ws`` and file them; returns why it ended."""
        recv = ws.recv
        loads = json.loads
        raw_decode = json.JSONDecoder().raw_decode
        perf_counter = time.perf_counter
        inf = math.inf
        offset = self._wall_offset
        stats = self._stats
        # The delivery latencies go straight into their series' buffer, each checked
        # first as record() would (finite, >= 0).
        latencies: list[float] | None = None
        fold: Callable[[], None] = _no_fold
        handlers = self._handlers
        kinds = self._kinds
        kind_of = self.message_kind
        # Skip a method call per message unless a subclass changed how kinds are found.
        typed = type(self).message_kind is WebSocketClient.message_kind
        pending = self._handler_q
        idle = self._idle
        start = EagerStarter().start
        receive_q = self._receive_q
        received_items, receive_waiters = receive_q.items, receive_q.waiters
        receive_max = receive_q.maxsize
        pending_max, pending_half = self.handler_queue_size, self.handler_queue_size // 2
        receive_half = receive_q.maxsize // 2
        sleep = asyncio.sleep
        while True:
            try:
                data = await recv(decode=False)
            except ConnectionClosed as exc:
                frame = exc.rcvd or exc.sent
                if frame is None:
                    return "code 1006, no close frame"
                return f"code {frame.code}" + (f", {frame.reason}" if frame.reason else "")
            received = perf_counter()
            stats.messages += 1
            stats.bytes += len(data)
            try:
                # A text frame is UTF-8 (RFC 6455): decode it and read one JSON value at
                # 0 with the json module's documented raw_decode, which skips loads()'s
                # encoding detection and whitespace regexes (1.7 us instead of 3.1 us
                # for a 130-byte update).
                text = data.decode()
                message, end = raw_decode(text)
                if end != len(text):
                    message = loads(text)  # trailing whitespace is valid; anything else raises
            except ValueError:  # also leading whitespace, a BOM, a binary frame in UTF-16...
                try:
                    message = loads(data)  # ... which loads() reads, or rejects
                except (ValueError, RecursionError):
                    message = None
            except RecursionError:  # nested deeper than the parser goes
                message = None
            if message.__class__ is not dict:
                stats.invalid += 1
                self.tracker.record_error(ERR_INVALID)
                self._warn_once(
                    "invalid",
                    "%r: skipped a message that is not a JSON object: %r",
                    self,
                    bytes(data[:_PREVIEW]),
                )
                continue
            if typed:
                kind = message.get("type")
                if kind.__class__ is not str:
                    room = message.get("room")
                    kind = ROOM_KIND + room if room.__class__ is str else None
            else:
                kind = kind_of(message)
            if kind == "pong":
                echoed = message.get("timestamp")
                answered = self._pings.get(echoed) if echoed.__class__ is float else None
                if answered is not None and not answered.done():
                    answered.set_result(received)
                continue
            handler = handlers.get(kind) if kind is not None else None
            if handler is None and kind not in kinds:
                stats.unknown += 1
                self.tracker.record_error(ERR_UNKNOWN)
                self._skipped_unknown(kind)
                continue
            stamp = message.get("timestamp")
            if stamp is None:
                stamp = message.get("emitted_at")  # a room push's intended emit time
            if stamp.__class__ is float or stamp.__class__ is int:
                try:
                    latency = received + offset - stamp
                except OverflowError:  # an int stamp beyond any float: as bogus as NaN
                    latency = math.nan
                if not 0.0 <= latency < inf:  # stamped after it arrived, NaN or infinite
                    stats.clock_skewed += 1
                    latency = 0.0
                if latencies is None:  # the series exists once a stamped message came
                    latencies, fold = self.tracker.live_series(
                        WEBSOCKET_LATENCY, DELIVERY_TAG
                    ).raw_buffer()
                latencies.append(latency)
                if len(latencies) >= BUFFER_SIZE:
                    fold()
                stats.delivered += 1
            if kind == "error":
                self.tracker.record_error(ERR_SERVER)
            if handler is not None:
                if idle:
                    # A slot is free, so no message is waiting: start this one here and
                    # now; only a handler that suspends wakes its slot's task.
                    slot = idle[-1]
                    try:
                        started = start(handler(message), slot.task)
                    except (Exception, asyncio.CancelledError) as exc:
                        # A handler's own CancelledError must not end the reader.
                        self._handler_failed(exc, message)
                        started = None
                    if started is None:
                        stats.handled += 1
                    else:
                        idle.pop()
                        slot.started = (started, message)
                        if not slot.waiter.done():  # else being cancelled: _work copes
                            slot.waiter.set_result(None)
                    continue
                # When full, the oldest goes: stale market data is the least useful.
                if len(pending) >= pending_max:
                    pending.popleft()
                    self._count_drop()
                pending.append((handler, message, received))
                depth = len(pending)
                if depth > stats.max_queue_depth:
                    stats.max_queue_depth = depth
                if depth > pending_half:
                    # recv() returns buffered frames without yielding, so one burst could
                    # fill the queue before a handler runs: give them a turn first.
                    await sleep(0)
            else:
                if len(received_items) >= receive_max:
                    received_items.popleft()
                    self._count_drop()
                received_items.append(message)
                if receive_waiters:
                    receive_q.wake()
                if len(received_items) > receive_half:
                    await sleep(0)

    async def _work(self, slot: _Slot) -> None:
        """One handler slot: run the waiting messages' handlers, oldest first; when none
        is waiting, go idle until the reader starts a handler here and it suspends."""
        pending = self._handler_q
        idle = self._idle
        stats = self._stats
        perf_counter = time.perf_counter
        loop = asyncio.get_running_loop()
        start = EagerStarter().start
        while True:
            if self._closing or self._closed:
                return  # a handler here closed the client (close() cancels all tasks but its own)
            if pending:
                handler, message, received = pending.popleft()
                if perf_counter() - received > self.late_after:
                    stats.late += 1
                try:
                    # Started eagerly here too: each call gets its own context either way.
                    started = start(handler(message))
                except (Exception, asyncio.CancelledError) as exc:
                    # Raised before its first await: a CancelledError is the handler's own.
                    self._handler_failed(exc, message)
                    started = None
            else:
                waiter = slot.waiter = loop.create_future()
                idle.append(slot)
                try:
                    await waiter
                except asyncio.CancelledError as cancel:
                    if slot.started is None:
                        with contextlib.suppress(ValueError):
                            idle.remove(slot)
                        raise
                    # Cancelled just after the reader handed over a suspended handler: a
                    # task of the handler's own would have delivered this at its await.
                    slot.started[0].throw(cancel)
                assert slot.started is not None
                started, message = slot.started
                slot.started = None
            if started is not None:
                try:
                    await started
                except Exception as exc:
                    self._handler_failed(exc, message)
            stats.handled += 1

    async def _keepalive(self) -> None:
        """Protocol pings; a missing pong aborts the connection (the reader then reconnects)."""
        assert self.ping_interval is not None
        while True:
            await asyncio.sleep(self.ping_interval)
            ws = self._ws
            if ws is None:
                continue
            try:
                pong = await ws.ping()
                rtt = await asyncio.wait_for(pong, self.ping_timeout)
            except asyncio.TimeoutError:
                self._declare_dead(ws, "protocol")
                continue
            except ConnectionClosed:
                continue
            self.tracker.record(WEBSOCKET_LATENCY, rtt, KEEPALIVE_TAG)

    async def _heartbeat(self) -> None:
        """Application pings; a missing pong aborts the connection like a protocol one."""
        assert self.app_ping_interval is not None
        while True:
            await asyncio.sleep(self.app_ping_interval)
            ws = self._ws
            if ws is None:
                continue
            try:
                await self.ping(self.ping_timeout)
            except TimeoutError:
                self._declare_dead(ws, "application")
            except WebSocketError:
                continue

    def _declare_dead(self, ws: ClientConnection, which: str) -> None:
        if which == "protocol":  # ping() counts its own timeouts
            self._stats.ping_timeouts += 1
            self.tracker.record_error(ERR_PING_TIMEOUT)
        _log.warning(
            "%r: no %s pong within %g s: the server is declared dead",
            self,
            which,
            self.ping_timeout,
        )
        if ws is self._ws:
            ws.transport.abort()

    async def _meter(self) -> None:
        """One message-rate, throughput and queue-depth sample per ``rate_interval``."""
        while True:
            await asyncio.sleep(self.rate_interval)
            self._flush_window(final=False)

    def _flush_window(self, final: bool) -> None:
        now = time.perf_counter()
        elapsed = now - self._window_start
        # A final window much shorter than the interval would give a noisy rate.
        if elapsed <= 0.0 or (final and elapsed < self.rate_interval / 10):
            return
        stats = self._stats
        messages = stats.messages - self._window_messages
        size = stats.bytes - self._window_bytes
        self.tracker.record(MESSAGE_RATE, messages / elapsed)
        self.tracker.record(NETWORK_THROUGHPUT, size / elapsed, WEBSOCKET_TAG)
        self.tracker.record(QUEUE_DEPTH, float(self.queue_depth))
        self._window_start = now
        self._window_messages = stats.messages
        self._window_bytes = stats.bytes
