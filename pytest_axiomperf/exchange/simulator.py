"""`ExchangeSimulator`: the test process's handle to an exchange in its own subprocess.

The exchange runs in a child process so that it shares neither the test's event
loop nor its GIL. The handle talks to it with plain blocking HTTP (urllib,
proxies disabled) so `configure` and `reset` work from sync and async tests
alike. The child exits when its stdin pipe closes, which the kernel does when
this process ends in any way, so no exchange outlives its test run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from types import TracebackType
from typing import IO, Any

from pytest_axiomperf.errors import AxiomPerfWarning, ConfigError, ExchangeError
from pytest_axiomperf.exchange.models import ExchangeProfile
from pytest_axiomperf.exchange.scenario import Scenario

__all__ = ["ExchangeSimulator"]

# Kept in sync with pytest_axiomperf.exchange.__main__ / app, which this module must not
# import: that would load aiohttp into every test process for nothing.
_CONTROL_SECRET_ENV = "AXIOM_EXCHANGE_CONTROL_SECRET"
_CONTROL_HEADER = "X-Axiom-Control"
_CONTROL_TIMEOUT = 5.0
_STOP_TIMEOUT = 3.0
# The exchange refuses control bodies over 64 KiB (its MAX_BODY): say so before sending.
_MAX_SCENARIO_BYTES = 60_000


class _Environment(dict[str, str]):
    """An environment whose repr hides its values (it holds the exchange's secrets)."""

    def __repr__(self) -> str:
        return f"<environment of {len(self)} variables>"


class ExchangeSimulator:
    """Handle to the embedded exchange, served by a subprocess on 127.0.0.1.

    ``ExchangeSimulator(token)`` prepares it; `start` (or ``with``) launches it on
    a free port; `stop` ends it. `token` is the bearer token clients must send
    (default: a random one). Latency and faults are set with `configure`.
    """

    def __init__(self, token: str | None = None, *, startup_timeout: float = 10.0) -> None:
        """Prepare (not start) an exchange requiring `token` (random if None)."""
        if token is not None and not token.strip():
            raise ConfigError("ExchangeSimulator: token must not be empty")
        if startup_timeout <= 0:
            raise ConfigError(
                f"ExchangeSimulator: startup_timeout must be > 0, got {startup_timeout!r}"
            )
        self._token = token or secrets.token_urlsafe(32)
        self._startup_timeout = startup_timeout
        self._secret = secrets.token_urlsafe(32)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._base_url: str | None = None
        self._ws_url: str | None = None
        self._configured: dict[str, Any] | None = None
        #: When the run tests another venue (``--axiom-base-url``): what `configure` warns.
        self.elsewhere: str | None = None
        self._scenario: Scenario | None = None

    def __repr__(self) -> str:
        """Show where it serves; never the token."""
        state = "running" if self.running else "stopped"
        return f"<ExchangeSimulator {state} base_url={self._base_url!r}>"

    def __enter__(self) -> ExchangeSimulator:
        """Start the exchange."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the exchange."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the exchange process is alive."""
        return self._process is not None and self._process.poll() is None

    def died(self) -> str | None:
        """How the exchange process ended, when it ended without `stop` (else None).

        ``"killed by SIGKILL"`` or ``"exited with code 1"``, followed by the end of
        its stderr when it wrote any.
        """
        process = self._process
        code = None if process is None else process.poll()
        if code is None:
            return None
        if code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        return how + self._stderr_tail()

    def ensure_running(self) -> str | None:
        """Start a fresh exchange if the running one died; returns how it died, or None.

        The new one has the same token, a new port (`base_url`, `ws_url`) and the
        default profile.
        """
        why = self.died()
        if why is not None:
            self.stop()
            self.start()
        return why

    @property
    def pid(self) -> int | None:
        """Process id of the exchange, or None when not started."""
        return None if self._process is None else self._process.pid

    @property
    def token(self) -> str:
        """The bearer token clients must send (``Authorization: Bearer <token>``)."""
        return self._token

    @property
    def base_url(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:PORT``."""
        if self._base_url is None:
            raise ExchangeError("the embedded exchange is not started: call start() first")
        return self._base_url

    @property
    def ws_url(self) -> str:
        """WebSocket URL, e.g. ``ws://127.0.0.1:PORT/ws``."""
        if self._ws_url is None:
            raise ExchangeError("the embedded exchange is not started: call start() first")
        return self._ws_url

    def start(self) -> ExchangeSimulator:
        """Launch the exchange process and wait until it serves; returns self."""
        if self._process is not None:
            raise ExchangeError("the embedded exchange is already started")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives until stop())
        command = [sys.executable, "-m", "pytest_axiomperf.exchange", "--port", "0"]
        self._process = subprocess.Popen(
            [*command, "--exit-with-parent"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self._child_environment(),
        )
        atexit.register(self.stop)
        try:
            self._base_url, self._ws_url = self._read_urls(self._process)
        except ExchangeError as exc:
            tail = self._stderr_tail()
            self.stop()
            raise ExchangeError(f"{exc}{tail}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def _child_environment(self) -> dict[str, str]:
        """The child's environment, with the token and the control secret.

        Secrets go through the environment: argv is visible to every user (ps). Built
        here rather than in `start`, whose locals a failed start would show (``-l``).
        """
        env = _Environment(os.environ)
        env["AXIOM_AUTH_TOKEN"] = self._token
        env[_CONTROL_SECRET_ENV] = self._secret
        return env

    def _read_urls(self, process: subprocess.Popen[bytes]) -> tuple[str, str]:
        assert process.stdout is not None
        stdout = process.stdout
        lines: queue.Queue[bytes] = queue.Queue()

        def read_two_lines() -> None:
            for _ in range(2):
                lines.put(stdout.readline())

        # A thread, because a pipe cannot be read with a timeout portably.
        threading.Thread(target=read_two_lines, name="axiom-exchange-start", daemon=True).start()
        deadline = time.monotonic() + self._startup_timeout
        urls: dict[str, str] = {}
        while len(urls) < 2:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ExchangeError(
                    f"the embedded exchange did not start within {self._startup_timeout:g} s"
                ) from None
            kind, _, url = line.decode(errors="replace").strip().partition(" ")
            if kind not in ("REST", "WS") or not url:
                raise ExchangeError(
                    f"the embedded exchange did not start (exit code {process.wait(5)})"
                )
            urls[kind] = url
        # Nothing more is printed; closing our end keeps no pipe around.
        stdout.close()
        return urls["REST"], urls["WS"]

    def _stderr_tail(self) -> str:
        """The end of the child's stderr, to explain a failed start."""
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            text = self._stderr.read()[-2000:].decode(errors="replace").strip()
            if text:
                return f"; its stderr:\n{text}"
        return ""

    def stop(self) -> None:
        """Stop the exchange process (terminate, then kill if it lingers); idempotent."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(_STOP_TIMEOUT)
            if process.stdout is not None:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._base_url = self._ws_url = None
        self._scenario = None

    def configure(
        self,
        latency: float = 0.0,
        jitter: float = 0.0,
        error_rate: float = 0.0,
        seed: int | None = None,
        **knobs: Any,
    ) -> None:
        """Put a new latency/fault profile in force (knobs not given take their defaults).

        `latency` and `jitter` are seconds; `error_rate` a share of REST 500s;
        `seed` makes the draws repeatable. Other knobs (``connect_latency``: the
        extra delay of a new connection's first request, modelling its handshakes;
        ``distribution``, ``rate_limit``, ``rate_limit_burst``,
        ``ws_disconnect_every``, ``stall``, ``stall_after``, ``stall_every``,
        ``push_rate``, ``access_token_ttl``) are documented in
        `pytest_axiomperf.exchange.models`. A bad knob raises ConfigError.
        When the run tests another venue, it warns (`AxiomPerfWarning`): the
        profile shapes this exchange only.
        """
        if self.elsewhere is not None:
            warnings.warn(AxiomPerfWarning(self.elsewhere), stacklevel=2)
        profile = ExchangeProfile.from_dict(
            {"latency": latency, "jitter": jitter, "error_rate": error_rate, "seed": seed, **knobs}
        )
        self._control("POST", "profile", profile.to_dict())
        self._configured = profile.to_dict()

    def reset(self) -> None:
        """Restore the default profile (no latency, no faults), forget all orders.

        Also revokes the access tokens issued by ``/refresh-access-token`` (the
        exchange's own token stays valid).
        """
        self._control("POST", "reset", {})
        self._configured = None
        self._scenario = None

    def scenario(
        self,
        *,
        listings: object = None,
        pushes: object = None,
        events: object = None,
        seed: int = 0,
        delay: float = 0.0,
        answer_within: float = 1.0,
        speed: float = 1.0,
        replay: str | os.PathLike[str] | None = None,
    ) -> Scenario:
        """Play a scenario on the exchange, starting `delay` seconds from now; returns it.

        `listings` and `pushes` are arrival-process stages (one or a list:
        ``constant``, ``poisson``, ``bursts``, ``ramp`` from
        `pytest_axiomperf.exchange.scenario`), `events` scheduled events
        (``listing(at)``, ``price_spike(at, token, percent)``); `seed` makes it
        reproducible; `answer_within` is how long an event waits for the order
        answering it before it counts as missed; `speed` divides every time;
        `replay` plays a recorded feed again (JSONL of ``{"t", "message"}`` lines, as
        ``axiomperf record`` writes them).
        Everything is validated here, before the exchange does anything: a bad
        argument raises ConfigError naming it. A new scenario replaces the one in
        force; `reset` (after every test) ends it. Its reaction times are read with
        `reactions`; under pytest they reach the test's tracker by themselves.
        """
        plan = Scenario.build(
            listings=listings,
            pushes=pushes,
            events=events,
            seed=seed,
            delay=delay,
            answer_within=answer_within,
            speed=speed,
            replay=None if replay is None else os.fspath(replay),
        )
        body = plan.to_dict()
        if len(json.dumps(body)) > _MAX_SCENARIO_BYTES:
            raise ConfigError(
                f"scenario: {len(plan.events)} scheduled events are too many to send at once: "
                "use arrival processes (listings=...) or a replay file for long schedules"
            )
        self._control("POST", "scenario", body)
        self._scenario = plan
        return plan

    @property
    def active_scenario(self) -> Scenario | None:
        """The scenario last started through this handle and not yet ended; no I/O."""
        return self._scenario

    def reactions(self, *, end: bool = False) -> dict[str, Any]:
        """The scenario's reaction summary so far (``{}`` without a scenario); `end`
        also ends the scenario.

        Keys: ``reactions`` (seconds per event kind, the venue's clock), ``missed``,
        ``pending``, ``unheard`` (counts per kind), ``lateness`` (how late the exchange
        emitted the scenario's messages: p50/p99/max seconds), ``scheduled`` and
        ``emitted`` (events), ``sent`` (messages, replayed ones too), ``orders``,
        ``answer_within``, ``elapsed``, ``duration`` and ``scenario``.
        """
        summary = self._control("GET", "reactions?end=1" if end else "reactions", None)
        if end:
            self._scenario = None
        return summary

    @property
    def configured(self) -> dict[str, Any] | None:
        """The profile last put in force through this handle (None: the default); no I/O."""
        return self._configured

    @property
    def profile(self) -> dict[str, Any]:
        """The latency/fault profile in force, as stored in results."""
        return self._control("GET", "profile", None)

    def _control(self, method: str, route: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self.base_url}/_control/{route}"
        request = urllib.request.Request(
            url,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={_CONTROL_HEADER: self._secret, "Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=_CONTROL_TIMEOUT) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except urllib.error.HTTPError as exc:
            detail = ""
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.load(exc).get("error", "")
            if exc.code == 400:
                raise ConfigError(detail) from None
            raise ExchangeError(f"{method} {url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            why = self.died()
            state = f"the embedded exchange died: {why}" if why else "running"
            raise ExchangeError(f"{method} {url} failed ({state}): {exc}") from None
