"""OptimizedClient: the guide's pooled aiohttp client, measured and made safe.

One `aiohttp.ClientSession` over one tuned `TCPConnector`, created lazily in the
running event loop on first use (so a sync pytest fixture can hand it out under
any pytest-asyncio mode and loop scope) and closed in that same loop. Every
request is recorded in a `PerformanceTracker`:

- ``api_response_times``: the whole request as the caller saw it (retries and
  backoff included), tagged ``"METHOD /route/{param}"``; ``POST /orders`` also
  in ``order_execution_times``;
- ``http_connect_times``, ``http_dns_times``, ``http_ttfb_times``: per attempt,
  the time to get a connection (pool wait, DNS, TCP/TLS handshake; 0 for one
  taken straight from the pool), the DNS part of it (0 when cached or an IP
  address), and the time to the response headers;
- ``network_throughput``: bytes sent and received per second of the request;
- errors by exception type, ``"HTTP 4xx"``/``"HTTP 5xx"``, and one ``"retry"``
  per retried attempt.

The bearer token is sent as a default header of the session and appears in no
repr, log line, error message, response header or result; a ``user:password@``
in the base URL becomes a Basic ``Authorization`` header of the session. Both
header values are `pytest_axiomperf.redact.Secret` objects, which aiohttp keeps
as they are: a traceback showing aiohttp's arguments (``--tb=long``) or locals
(``-l``) shows ``'<redacted>'``.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import functools
import inspect
import json as jsonlib
import logging
import math
import random
import re
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest, ConnectionKey
from aiohttp.resolver import DefaultResolver
from aiohttp.tracing import Trace
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from pytest_axiomperf.errors import AxiomPerfError, HttpStatusError
from pytest_axiomperf.redact import (
    RedactedUrl,
    bearer,
    redact_text,
    remember_url,
    safe_url,
    split_credentials,
)
from pytest_axiomperf.routes import (
    EXCHANGE_ROUTES,
    MAX_TARGETS,
    ORDER_ROUTES,
    RouteSeries,
    RouteTemplates,
)
from pytest_axiomperf.tracker import (
    API_RESPONSE_TIMES,
    HTTP_CONNECT_TIMES,
    HTTP_DNS_TIMES,
    HTTP_TTFB_TIMES,
    ORDER_EXECUTION_TIMES,
    PerformanceTracker,
)

__all__ = [
    "EXCHANGE_ROUTES",
    "HTTP_CONNECT_TIMES",
    "HTTP_DNS_TIMES",
    "HTTP_TTFB_TIMES",
    "ApiResponse",
    "OptimizedClient",
    "RetryPolicy",
    "RouteTemplates",
    "WarmupReport",
]

T = TypeVar("T")

_log = logging.getLogger(__name__)

#: Methods RFC 9110 defines as idempotent: safe to send again after a failure.
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

#: Response headers that may carry credentials; `ApiResponse.headers` leaves them out.
SECRET_HEADERS: frozenset[str] = frozenset(
    {"authorization", "proxy-authorization", "set-cookie", "cookie", "x-api-key"}
)
_SECRET_HEADER_WORDS = ("token", "secret", "password", "api-key", "apikey")

_CHARSET = re.compile(r"charset=([^;\s]+)", re.IGNORECASE)
_now = time.perf_counter_ns
_current_task = asyncio.current_task
_get_running_loop = asyncio.get_running_loop


@functools.lru_cache(maxsize=1024)
def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADERS or any(w in lowered for w in _SECRET_HEADER_WORDS)


def _public_headers(headers: CIMultiDictProxy[str]) -> CIMultiDictProxy[str]:
    """``headers`` without credentials (the same object when it carries none)."""
    if not any(map(_is_secret_header, headers.keys())):
        return headers
    return CIMultiDictProxy(
        CIMultiDict((k, v) for k, v in headers.items() if not _is_secret_header(k))
    )


@dataclass(frozen=True)
class RetryPolicy:
    """When and how an idempotent request is sent again.

    A request is retried on a connection error or timeout, or on one of
    ``statuses``, at most ``attempts - 1`` times, waiting an exponential backoff
    (``backoff * 2**(n-1)``, capped at ``max_backoff``, with jitter drawn in its
    upper half) or the server's ``Retry-After`` if longer, and never past
    ``deadline`` seconds after the request started. Only idempotent methods are
    retried, unless a request says ``idempotent=True``.
    """

    attempts: int = 3
    backoff: float = 0.05
    max_backoff: float = 2.0
    deadline: float = 10.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def __post_init__(self) -> None:
        """Reject bounds that would retry forever or never wait."""
        if self.attempts < 1:
            raise AxiomPerfError(f"RetryPolicy: attempts must be >= 1, got {self.attempts!r}")
        for name in ("backoff", "max_backoff", "deadline"):
            value = getattr(self, name)
            if not value >= 0:
                raise AxiomPerfError(f"RetryPolicy: {name} must be >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """The backoff before attempt ``attempt + 1`` (jittered)."""
        full = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return full / 2 + random.uniform(0.0, full / 2)


#: No retries at all.
NO_RETRY = RetryPolicy(attempts=1)


@dataclass(eq=False, slots=True)
class ApiResponse:
    """One answered request: status, headers (credentials removed), body, timings."""

    method: str
    route: str  #: the tag, e.g. ``"GET /balance/{address}"``
    url: str
    status: int
    reason: str
    #: as received; read `headers`, which leaves out the credentials
    _raw_headers: CIMultiDictProxy[str] = field(repr=False)
    body: bytes
    response_time: float  #: seconds, all attempts and backoff included
    attempts: int
    bytes_sent: int
    bytes_received: int

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The response headers, without the ones that can carry credentials."""
        return _public_headers(self._raw_headers)

    @property
    def ok(self) -> bool:
        """Whether the status is below 400."""
        return self.status < 400

    @property
    def bytes_transferred(self) -> int:
        """Request plus response body bytes."""
        return self.bytes_sent + self.bytes_received

    def text(self, encoding: str | None = None) -> str:
        """The body decoded with ``encoding``, else the response's charset, else UTF-8."""
        return self.body.decode(encoding or self.charset or "utf-8", errors="replace")

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the Content-Type header, if any."""
        match = _CHARSET.search(self.headers.get("Content-Type", ""))
        return match.group(1).strip("\"'") if match else None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)

    def raise_for_status(self) -> ApiResponse:
        """Return self, or raise `HttpStatusError` for a status of 400 or more."""
        if self.status >= 400:
            raise HttpStatusError(self.status, f"{self.route} answered {self.status} {self.reason}")
        return self

    def __repr__(self) -> str:
        return (
            f"<ApiResponse {self.route} {self.status} {len(self.body)} bytes "
            f"in {self.response_time * 1e3:.2f}ms>"
        )


@dataclass
class WarmupReport:
    """What `OptimizedClient.warmup` did: connections opened and the failures, by text."""

    requested: int
    opened: int = 0
    succeeded: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every warm-up request succeeded."""
        return not self.failures


class _Phases:
    """Phase durations of one attempt (ns), written by the connector and the resolver."""

    __slots__ = ("connect", "dns", "new_connection")

    def __init__(self) -> None:
        self.connect = 0
        self.dns = 0
        self.new_connection = False


class _PhaseLog:
    """Which tasks' requests are being timed, and what their slow paths cost.

    `OptimizedClient.request` registers its task for the length of an attempt
    (``timed[task] = None``, then ``timed.pop(task)``); the connector, on the
    slow ways to a connection only, finds the attempt by its task and makes its
    `_Phases` then (and hands them to the resolver, which aiohttp runs in a
    task of its own, through `_LOOKUP_FOR`). A connection taken straight from
    the pool costs an attempt two dict operations and no object. (aiohttp's TraceConfig
    gives the same phases, but its signals cost about 20 us of CPU per request,
    measured in benchmarks/bench_client.py: a quarter of the request.)
    """

    __slots__ = ("timed",)

    def __init__(self) -> None:
        self.timed: dict[asyncio.Task[Any], _Phases | None] = {}

    def current(self) -> _Phases | None:
        """The phases of the attempt running in this task, if it is being timed."""
        timed = self.timed
        if not timed:
            return None
        task = _current_task()
        if task not in timed:
            return None
        phases = timed[task]
        if phases is None:
            phases = timed[task] = _Phases()
        return phases


# The attempt a new connection is being opened for, where the resolver finds it.
_LOOKUP_FOR: contextvars.ContextVar[_Phases | None] = contextvars.ContextVar(
    "axiomperf_lookup_for", default=None
)


class _TimedConnector(aiohttp.TCPConnector):
    """A TCPConnector timing the slow ways to a connection: a pool wait, a new connection.

    A connection taken straight from the pool is not timed (its connect time is
    0): timing `connect` itself cost every request an extra coroutine and two
    clock reads, for a figure of about a microsecond.
    """

    def __init__(self, phase_log: _PhaseLog, **options: Any) -> None:
        super().__init__(**options)
        self._phase_log = phase_log

    async def _wait_for_available_connection(self, key: ConnectionKey, traces: list[Trace]) -> None:
        phases = self._phase_log.current()
        if phases is None:
            return await super()._wait_for_available_connection(key, traces)
        start = _now()
        try:
            await super()._wait_for_available_connection(key, traces)
        finally:
            phases.connect += _now() - start

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        phases = self._phase_log.current()
        if phases is None:
            return await super()._create_connection(req, traces, timeout)
        start = _now()
        # aiohttp looks hosts up in a task of its own, which copies this context.
        token = _LOOKUP_FOR.set(phases)
        try:
            protocol = await super()._create_connection(req, traces, timeout)
        finally:
            phases.connect += _now() - start
            _LOOKUP_FOR.reset(token)
        phases.new_connection = True
        return protocol


class _TimedResolver(AbstractResolver):
    """Wraps a resolver to time the lookups aiohttp's DNS cache could not answer."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        phases = _LOOKUP_FOR.get()
        start = _now()
        try:
            return await self._inner.resolve(host, port, family)
        finally:
            if phases is not None:
                phases.dns += _now() - start

    async def close(self) -> None:
        await self._inner.close()


def _socket_factory(
    keepalive_idle: float | None, buffer_size: int | None
) -> Callable[[Any], socket.socket]:
    """A socket factory for aiohttp (``TCPConnector(socket_factory=...)``).

    The guide's options, where they matter for a client: SO_KEEPALIVE (with a
    shorter idle time, so a dead peer is noticed in minutes, not the kernel's 2 h)
    and TCP_NODELAY (aiohttp sets it too once connected). Buffer sizes only when
    asked: setting SO_RCVBUF turns Linux's buffer autotuning off. TCP_QUICKACK is
    left out (Linux resets it after each ACK, so setting it once does nothing) and
    so is SO_REUSEADDR (it matters for servers binding a port, not clients).
    """

    def factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=type_, proto=proto)
        options: list[tuple[int, int, int]] = [
            (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
            (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        ]
        if keepalive_idle is not None:
            idle = max(1, int(keepalive_idle))
            for option, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", max(1, idle // 3))):
                if hasattr(socket, option):
                    options.append((socket.IPPROTO_TCP, getattr(socket, option), value))
        if buffer_size is not None:
            options.append((socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_size))
            options.append((socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size))
        for level, name, value in options:
            try:
                sock.setsockopt(level, name, value)
            except OSError as exc:  # an option this platform lacks: keep the socket
                _log.debug("socket option %s not applied: %s", name, exc)
        return sock

    return factory


class _Deadlines:
    """The requests' total timeout on one timer per client, instead of aiohttp's per request.

    aiohttp arms a timer and enters a timeout context at every step of every
    request (connect, send, headers, each body read): the "bare, timeout=None"
    row of ``benchmarks/bench_client.py`` shows what that costs. Requests using
    the client's own ``timeout`` all get the same allowance, so their deadlines
    come in the order they start: the in-flight ones live in an
    insertion-ordered dict, and one timer waits for the oldest. When it fires,
    every request past its deadline has its task cancelled and its key marked,
    and `request` turns that cancellation into ``asyncio.TimeoutError``, as
    aiohttp does.
    """

    __slots__ = ("_expired", "_inflight", "_loop", "_next", "_slack", "_timeout", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        #: key -> (deadline, task, the task's ``cancelling()`` count when the request began).
        self._inflight: dict[int, tuple[float, asyncio.Task[Any], int]] = {}
        #: key -> that count, for the requests the deadline cancelled.
        self._expired: dict[int, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0
        # The loop runs a timer up to its clock's resolution early; without the slack
        # the timer would re-arm itself until the clock ticks past the deadline.
        self._slack = time.get_clock_info("monotonic").resolution

    def start(self, task: asyncio.Task[Any]) -> int:
        """Start the clock of a request running in ``task``; returns its key."""
        self._next = key = self._next + 1
        when = self._loop.time() + self._timeout
        cancelling = 0
        if sys.version_info >= (3, 11):
            cancelling = task.cancelling()
        self._inflight[key] = (when, task, cancelling)
        if self._timer is None:
            self._timer = self._loop.call_at(when, self._fire)
        return key

    def stop(self, key: int) -> bool:
        """Stop the clock; True when the deadline had passed and cancelled the task.

        From Python 3.11 the deadline's cancellation is withdrawn (``uncancel``),
        and it is True only when nobody else cancelled the task since the
        request began, whichever came first: a bot's own ``asyncio.timeout``
        or a ``task.cancel()`` due at the same moment is never taken for the
        client's timeout (and retried). Python 3.10 keeps no count of
        cancellations to tell them apart (neither does aiohttp there).
        """
        if self._inflight.pop(key, None) is not None:
            return False
        cancelling = self._expired.pop(key, None)
        if cancelling is None:
            return False
        if sys.version_info >= (3, 11):
            task = asyncio.current_task()
            if task is not None and task.uncancel() > cancelling:
                return False
        return True

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time() + self._slack
        inflight = self._inflight
        due: list[int] = []
        for key, (when, _task, _cancelling) in inflight.items():
            if when > now:
                self._timer = self._loop.call_at(when, self._fire)
                break
            due.append(key)
        for key in due:
            _, task, cancelling = inflight.pop(key)
            self._expired[key] = cancelling
            task.cancel()

    def close(self) -> None:
        """Drop the timer (the client is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP date)."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _retryable_exception(exc: BaseException) -> bool:
    # A certificate or fingerprint error will fail the same way every time.
    if isinstance(exc, (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch)):
        return False
    return isinstance(exc, (aiohttp.ClientConnectionError, asyncio.TimeoutError))


class OptimizedClient:
    """A pooled, measured, retrying aiohttp client for a trading API.

    ``async with OptimizedClient(base_url, token=...) as client:
    resp = await client.get("/balance/ADDR")``. The session and its connector are
    created in the running loop on first use and belong to that loop; `close`
    (or ``async with``) releases them. If the loop ends first (an
    `asyncio.Runner` or pytest-asyncio closing it), the client closes itself as
    the loop cancels its tasks, so no "Unclosed client session" warning appears.

    TLS certificates are verified unless ``verify_tls=False``; ``ssl_context``
    trusts a custom CA. ``socket_options`` applies the guide's TCP options
    (keep-alive probes after ``tcp_keepalive_idle`` s, TCP_NODELAY, and buffer
    sizes when ``socket_buffer_size`` is given) through aiohttp's socket factory.
    ``timeout`` bounds each attempt (seconds; enforced by the client on one timer,
    not by aiohttp per request: see `_Deadlines`; a timed-out attempt raises
    ``asyncio.TimeoutError``), ``connect_timeout`` opening a new
    connection (a wait for a pooled one is bounded by ``timeout``: a per-request
    connect timer would cost every request); ``read_timeout`` (each socket read)
    is off by default: it arms a timer per read, and ``timeout`` already ends a
    stalled read. The `session` property's session has ``timeout`` as its own
    total timeout, for code that uses it directly. ``tracker``
    receives the measurements (a new `PerformanceTracker` when omitted, as
    ``client.tracker``).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        tracker: PerformanceTracker | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int = 100,
        limit_per_host: int = 50,
        keepalive_timeout: float = 60.0,
        ttl_dns_cache: int = 300,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        read_timeout: float | None = None,
        verify_tls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        retry: RetryPolicy | None = None,
        routes: Iterable[str] = EXCHANGE_ROUTES,
        order_routes: Iterable[str] = ORDER_ROUTES,
        socket_options: bool = True,
        tcp_keepalive_idle: float | None = 60.0,
        socket_buffer_size: int | None = None,
        trace_phases: bool = True,
        trace_configs: Iterable[aiohttp.TraceConfig] = (),
        warmup_path: str = "/health",
    ) -> None:
        """Configure (not open) the client; see the class docstring."""
        if base_url is not None and not URL(base_url).is_absolute():
            raise AxiomPerfError(
                "OptimizedClient: base_url must be absolute (http://host:port), "
                f"got {redact_text(base_url)!r}"
            )
        if ssl_context is not None and not verify_tls:
            raise AxiomPerfError("OptimizedClient: give ssl_context or verify_tls=False, not both")
        for name, value in (("limit", limit), ("limit_per_host", limit_per_host)):
            if value < 0:
                raise AxiomPerfError(f"OptimizedClient: {name} must be >= 0, got {value!r}")
        self._authorization = bearer(token) if token else None
        if base_url:
            base_url, basic = split_credentials(base_url)
            if basic is not None and token:
                raise AxiomPerfError(
                    f"OptimizedClient: the base URL {safe_url(base_url)} carries a user and "
                    "password and a token is given: both would be the Authorization header; "
                    "give one"
                )
            self._authorization = basic or self._authorization
        self.base_url = base_url.rstrip("/") if base_url else None
        # A query in the base URL may be a key (?api_key=): request URLs then hide theirs.
        self._url_type: type[str] = RedactedUrl if "?" in (base_url or "") else str
        remember_url(base_url)
        self.tracker = tracker if tracker is not None else PerformanceTracker("OptimizedClient")
        self.retry = retry if retry is not None else RetryPolicy()
        self.routes = RouteTemplates(routes)
        self.order_routes = frozenset(order_routes)
        self.verify_tls = verify_tls
        self.warmup_path = warmup_path
        #: Requests sent again after a failed attempt, over the client's life.
        self.retries = 0
        self._token = token
        self._headers = {"User-Agent": "pytest-axiomperf", "Accept": "application/json"}
        self._headers.update(headers or {})
        self._ssl: bool | ssl.SSLContext = ssl_context or verify_tls
        self._connector_options: dict[str, Any] = {
            "limit": limit,
            "limit_per_host": limit_per_host,
            "keepalive_timeout": keepalive_timeout,
            "ttl_dns_cache": ttl_dns_cache,
            "use_dns_cache": True,
        }
        self._socket_factory = (
            _socket_factory(tcp_keepalive_idle, socket_buffer_size) if socket_options else None
        )
        #: The session's own timeouts, for code using `session` directly.
        self._timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        #: What the client's requests pass instead: `_Deadlines` enforces ``timeout``.
        self._untimed = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._deadlines: _Deadlines | None = None
        self._phase_log = _PhaseLog()  # shared with each session's connector
        self._trace_phases = trace_phases
        self._trace_configs = tuple(trace_configs)
        self._session: aiohttp.ClientSession | None = None
        self._targets: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._route_series: dict[str, RouteSeries] = {}
        self._series_tracker = self.tracker
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guardian: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    def __repr__(self) -> str:
        if "_closed" not in vars(self):  # __init__ refused its arguments (a traceback's -l)
            return "OptimizedClient(<not configured>)"
        token = "<set>" if self._token else None
        state = "closed" if self._closed else ("open" if self.is_open else "not opened")
        base_url = None if self.base_url is None else safe_url(self.base_url)
        return f"OptimizedClient(base_url={base_url!r}, token={token}, {state})"

    @property
    def is_open(self) -> bool:
        """Whether the session exists and is not closed."""
        return self._session is not None and not self._session.closed

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying session (opened on first access, inside the running loop)."""
        return self._ensure_session()

    @property
    def connector_ssl(self) -> bool | ssl.SSLContext:
        """What the connector verifies TLS with: True (system CAs), a context, or False."""
        return self._ssl

    async def __aenter__(self) -> OptimizedClient:
        """Open the session in the running loop."""
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the session."""
        await self.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is not None and not session.closed:
            if self._loop is not asyncio.get_running_loop():
                raise AxiomPerfError(
                    "OptimizedClient is open in another event loop; use one client per loop "
                    "(the axiom_client fixture gives each test its own)"
                )
            return session
        if self._closed:
            raise AxiomPerfError("OptimizedClient is closed")
        loop = asyncio.get_running_loop()
        connector = _TimedConnector(
            self._phase_log,
            ssl=self._ssl,
            socket_factory=self._socket_factory,
            resolver=_TimedResolver(DefaultResolver()),
            **self._connector_options,
        )
        headers = CIMultiDict(self._headers)
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        self._session = session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=headers,
            trace_configs=list(self._trace_configs) or None,
        )
        self._loop = loop
        total = self._timeout.total
        self._deadlines = _Deadlines(loop, total) if total else None
        self._guardian = loop.create_task(self._guard(session), name="OptimizedClient-guard")
        return session

    async def _guard(self, session: aiohttp.ClientSession) -> None:
        """Wait until cancelled (by `close`, or by the loop's runner shutting down), then close."""
        try:
            await asyncio.Future()
        finally:
            if not session.closed:
                await session.close()

    async def close(self) -> None:
        """Close the session and its connections; idempotent. Call it in the client's loop."""
        self._closed = True
        await self._release()

    async def _release(self) -> None:
        session, guardian = self._session, self._guardian
        self._session = self._guardian = None
        if self._deadlines is not None:
            self._deadlines.close()
            self._deadlines = None
        if session is not None and not session.closed:
            await session.close()
        if guardian is not None and not guardian.done():
            guardian.cancel()
            await asyncio.wait({guardian})

    def close_blocking(self) -> None:
        """Close from sync code, in the loop the client was opened in (fixture teardown).

        When that loop is already closed, its runner cancelled the client's guard
        task first, which closed the session.
        """
        self._closed = True
        loop = self._loop
        if loop is None or self._session is None or loop.is_closed():
            return
        if loop.is_running():
            # Teardown from inside the loop: the close runs as soon as it yields.
            loop.create_task(self._release())
            return
        loop.run_until_complete(self._release())

    # -- requests ----------------------------------------------------------------------

    def _target(self, method: str, path: str) -> tuple[str, str, str]:
        """``(url, tag, METHOD)`` of a request, cached for the paths a bot repeats."""
        upper = method.upper()
        url, route_path = self._url(path)
        target = (url, self.routes.tag(upper, route_path), upper)
        if len(self._targets) < MAX_TARGETS:
            self._targets[(method, path)] = target
        return target

    def _url(self, path: str) -> tuple[str, str]:
        """The request URL and the path to tag it by."""
        if "://" in path:
            return path, URL(path).path
        if self.base_url is None:
            raise AxiomPerfError(
                f"OptimizedClient has no base_url: pass an absolute URL, not {path!r}"
            )
        if not path.startswith("/"):
            path = "/" + path
        return self._url_type(self.base_url + path), path.split("?", 1)[0]

    def get(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, ApiResponse]:
        """``GET path``; keyword arguments as for `request`."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, ApiResponse]:
        """``POST path``; never retried unless ``idempotent=True``."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, ApiResponse]:
        """``PUT path``; keyword arguments as for `request`."""
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, ApiResponse]:
        """``DELETE path``; keyword arguments as for `request`."""
        return self.request("DELETE", path, **kwargs)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> ApiResponse:
        """Send a request (relative to ``base_url``) and read the whole response.

        A response with an error status is returned, not raised (see
        `ApiResponse.raise_for_status`); a connection error or timeout is raised
        once the retries allowed are spent. ``idempotent`` overrides the method's
        nature for retries (POST is never retried unless ``idempotent=True``).
        """
        session = self._session
        loop = _get_running_loop()
        if session is None or session.closed or self._loop is not loop:
            session = self._ensure_session()
        target = self._targets.get((method, path))
        if target is None:
            target = self._target(method, path)
        url, tag, method = target
        tracker = self.tracker
        if tracker is not self._series_tracker:  # somebody gave the client another tracker
            self._route_series.clear()
            self._series_tracker = tracker
        series = self._route_series.get(tag)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        policy = (retry or self.retry) if idempotent else NO_RETRY
        payload: bytes | None
        if json is not None:
            payload = jsonlib.dumps(json, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        else:
            payload = data.encode() if isinstance(data, str) else data
        attempt_timeout = None if timeout is None else aiohttp.ClientTimeout(total=timeout)
        trace = self._trace_phases
        timed = self._phase_log.timed
        deadlines = self._deadlines
        start = _now()
        attempt = 0
        counted = False  # whether the exception propagating was already counted
        # One attempt is inlined here rather than awaited as a coroutine of its own:
        # each coroutine layer costs every request about a microsecond of CPU.
        try:
            while True:
                attempt += 1
                counted = False
                wait: float | None = None
                phases: _Phases | None = None
                key = 0
                task = _current_task(loop)
                try:
                    if task is not None and deadlines is not None and attempt_timeout is None:
                        key = deadlines.start(task)
                        timeout_in_force = self._untimed
                    else:
                        # The session's timeout, or this attempt's (the rare paths: a
                        # per-request timeout, the time left before a retry deadline).
                        timeout_in_force = attempt_timeout or self._timeout
                    if trace and task is not None:
                        timed[task] = None  # where the connector looks for this attempt
                    sent = _now()
                    try:
                        async with session.request(
                            method,
                            url,
                            params=params,
                            data=payload,
                            headers=headers,
                            timeout=timeout_in_force,
                        ) as resp:
                            headers_at = _now()
                            # aiohttp collects the chunks of a body and joins them once:
                            # linear for any size, chunked or not.
                            body = await resp.read()
                    except asyncio.CancelledError as exc:
                        if key and deadlines is not None and deadlines.stop(key):
                            # Chained, as aiohttp does: its traceback shows where the
                            # request was stuck (pool, connect, headers, body).
                            raise asyncio.TimeoutError(
                                f"{tag}: no complete answer within {self._timeout.total:g} s"
                            ) from exc
                        raise
                    finally:
                        if key and deadlines is not None:
                            deadlines.stop(key)
                        if trace and task is not None:
                            phases = timed.pop(task, None)
                except Exception as exc:
                    if not _retryable_exception(exc):
                        raise
                    tracker.record_error(exc)
                    counted = True
                    wait = self._retry_wait(policy, attempt, start, None)
                    if wait is None:
                        raise
                    reason = type(exc).__name__
                else:
                    if series is None:
                        series = self._route_series[tag] = RouteSeries(tracker, tag)
                    if trace:
                        if phases is None:  # a connection straight from the pool, cached DNS
                            series.record_phases(0.0, 0.0, (headers_at - sent) / 1e9)
                        else:
                            series.record_phases(
                                phases.connect / 1e9, phases.dns / 1e9, (headers_at - sent) / 1e9
                            )
                    status = resp.status
                    if status >= 400:
                        tracker.record_error("HTTP 5xx" if status >= 500 else "HTTP 4xx")
                    if status in policy.statuses:
                        wait = self._retry_wait(policy, attempt, start, _retry_after(resp.headers))
                    if wait is None:
                        elapsed = (_now() - start) / 1e9
                        sent_bytes = 0 if payload is None else len(payload)
                        series.record_answer(
                            elapsed,
                            (sent_bytes + len(body)) / elapsed if elapsed > 0 else None,
                            tag in self.order_routes,
                        )
                        # Positional: keyword construction of the dataclass costs twice as much.
                        response = ApiResponse(
                            method,
                            tag,
                            url if params is None else str(resp.url),
                            status,
                            resp.reason or "",
                            resp.headers,
                            body,
                            elapsed,
                            attempt,
                            sent_bytes,
                            len(body),
                        )
                        break
                    reason = f"HTTP {status}"
                self.retries += 1
                tracker.record_error("retry")
                _log.info(
                    "retrying %s after %s (attempt %d of %d) in %.3f s",
                    tag,
                    reason,
                    attempt + 1,
                    policy.attempts,
                    wait,
                )
                await asyncio.sleep(wait)
                if timeout is None:
                    # No attempt may outlive the deadline.
                    deadline = start + int(policy.deadline * 1e9)
                    remaining = max(0.001, (deadline - _now()) / 1e9)
                    if remaining < (self._timeout.total or math.inf):
                        attempt_timeout = aiohttp.ClientTimeout(total=remaining)
        except Exception as exc:
            if not counted:
                tracker.record_error(exc)
            # A request that timed out kept the bot waiting: that wait is latency. One that
            # failed before any answer (refused, bad URL, TLS) measured no API at all, and
            # recording its few microseconds would let a budget pass on a dead server.
            if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
                elapsed = (_now() - start) / 1e9
                tracker.record(API_RESPONSE_TIMES, elapsed, tag)
                if tag in self.order_routes:
                    tracker.record(ORDER_EXECUTION_TIMES, elapsed, tag)
            raise
        return response

    def _retry_wait(
        self, policy: RetryPolicy, attempt: int, start: int, retry_after: float | None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when no attempt is left."""
        if attempt >= policy.attempts:
            return None
        wait = max(policy.delay(attempt), retry_after or 0.0)
        if _now() + int(wait * 1e9) >= start + int(policy.deadline * 1e9):
            return None
        return wait

    # -- helpers -------------------------------------------------------------------------

    async def warmup(self, n: int = 5, path: str | None = None) -> WarmupReport:
        """Open up to ``n`` pooled connections with ``n`` concurrent requests to ``path``.

        Warm-up latencies are not recorded (connection setup is what it keeps
        out of the measurements); failures are returned in the report, counted
        in the tracker's errors and logged, never hidden.
        """
        if n < 1:
            raise AxiomPerfError(f"OptimizedClient.warmup: n must be >= 1, got {n!r}")
        session = self._ensure_session()
        url, _ = self._url(path or self.warmup_path)
        report = WarmupReport(requested=n)

        timed = self._phase_log.timed

        async def one() -> None:
            task = _current_task()  # each runs in its own task (gather)
            assert task is not None
            timed[task] = None
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status >= 400:
                        report.failures.append(f"HTTP {resp.status} {resp.reason or ''}".strip())
                        self.tracker.record_error("HTTP 5xx" if resp.status >= 500 else "HTTP 4xx")
                    else:
                        report.succeeded += 1
            except Exception as exc:
                report.failures.append(f"{type(exc).__name__}: {exc}")
                self.tracker.record_error(exc)
            finally:
                phases = timed.pop(task, None)
            if phases is not None and phases.new_connection:
                report.opened += 1

        await asyncio.gather(*(one() for _ in range(n)))
        if report.failures:
            _log.warning(
                "warm-up: %d of %d requests failed: %s",
                len(report.failures),
                n,
                "; ".join(sorted(set(report.failures))),
            )
        return report

    async def gather(
        self,
        requests: Iterable[Awaitable[T] | Callable[[], Awaitable[T]]],
        *,
        limit: int | None = None,
    ) -> list[T | Exception]:
        """Run requests with at most ``limit`` in flight; results in input order.

        Each item is an awaitable (``client.get(...)``) or a zero-argument
        callable returning one (so a generator of thousands creates each only
        when its turn comes). A failed item gives its exception in its place;
        the others still run. ``limit`` defaults to the connection pool size.
        """
        if limit is None:
            limit = self._connector_options["limit"] or 100
        if limit < 1:
            raise AxiomPerfError(f"OptimizedClient.gather: limit must be >= 1, got {limit!r}")
        items = list(requests)
        results: list[T | Exception] = [None] * len(items)  # type: ignore[list-item]
        queue = iter(range(len(items)))

        async def worker() -> None:
            for index in queue:
                item = items[index]
                try:
                    awaitable = item() if callable(item) else item
                    results[index] = await awaitable
                except Exception as exc:
                    results[index] = exc

        workers = [asyncio.ensure_future(worker()) for _ in range(min(limit, len(items)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            # Coroutines never started must be closed, or Python warns they were never awaited.
            for item in items:
                if (
                    inspect.iscoroutine(item)
                    and inspect.getcoroutinestate(item) == inspect.CORO_CREATED
                ):
                    item.close()
        return results
