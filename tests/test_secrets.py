"""No credential reaches any output, whatever pytest is asked to show.

Each run is a user's project whose requests fail as they do in real life: a
refused port, a server that accepts the connection and never answers (REST and
WebSocket), a full handshake with the embedded exchange, then a failed
assertion with the clients in scope. The token is distinctive, so a single
occurrence anywhere (terminal, JUnit XML, log file, every report) is a leak.
"""

from __future__ import annotations

import logging

import pytest

from pytest_axiomperf import AxiomPerfError, WebSocketClient, WebSocketError
from pytest_axiomperf.client import OptimizedClient
from pytest_axiomperf.redact import REDACTED, RedactingFilter, Secret, remember, safe_url
from pytest_axiomperf.respx_api import ExchangeRouter

TOKEN = "SECRET123XYZ"
PASSWORD = "pw-SECRET456"
API_KEY = "key-SECRET789"

CONFTEST = """
import socket

import pytest


@pytest.fixture(scope="session")
def silent_port():
    # Listening but never accepting: the kernel completes the TCP handshake and
    # nothing ever answers, so every request or handshake times out.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()
"""

USER_TESTS = """
import os

import pytest

from pytest_axiomperf import ExchangeSimulator, OptimizedClient, WebSocketClient

TOKEN = os.environ["AXIOM_AUTH_TOKEN"]


@pytest.mark.asyncio
async def test_refused_rest(axiom_client):
    await axiom_client.get("/health")


@pytest.mark.asyncio
async def test_refused_ws(axiom_ws):
    await axiom_ws.ping()


@pytest.mark.asyncio
async def test_rest_times_out(silent_port, axiom_tracker):
    client = OptimizedClient(
        f"http://127.0.0.1:{silent_port}", token=TOKEN, timeout=0.3, tracker=axiom_tracker
    )
    async with client:
        await client.get("/health")


@pytest.mark.asyncio
async def test_rest_request_timeout(silent_port, axiom_tracker):
    async with OptimizedClient(f"http://127.0.0.1:{silent_port}", token=TOKEN) as client:
        await client.get("/health", timeout=0.3)


@pytest.mark.asyncio
async def test_ws_handshake_times_out(silent_port):
    async with WebSocketClient(
        f"ws://127.0.0.1:{silent_port}/ws", token=TOKEN, open_timeout=0.3
    ) as ws:
        await ws.ping()


@pytest.mark.asyncio
async def test_own_header_and_print(silent_port):
    # The test's own code shows the token: its frame's locals, the request's arguments.
    print("the bot's token:", TOKEN)
    header = "Bearer " + TOKEN
    async with OptimizedClient(f"http://127.0.0.1:{silent_port}") as client:
        await client.get("/health", headers={"Authorization": header}, timeout=0.3)


def test_exchange_does_not_start():
    # The launching frame's locals (-l) once held the child's environment.
    ExchangeSimulator(TOKEN, startup_timeout=0.001).start()


@pytest.mark.asyncio
async def test_full_handshake_then_failure(axiom_exchange, axiom_tracker):
    assert axiom_exchange.token == TOKEN
    async with OptimizedClient(axiom_exchange.base_url, token=TOKEN) as client:
        rotated = await client.post(
            "/refresh-access-token", headers={"Cookie": "auth-refresh-token=" + TOKEN}
        )
        with open("issued.txt", "w") as issued:  # the new token, set as a cookie too
            issued.write(rotated.json()["accessToken"])
        async with WebSocketClient(axiom_exchange.ws_url, token=TOKEN) as ws:
            await ws.ping()
            print(client, ws, rotated, rotated.headers, axiom_exchange)
            assert not ws.connected, (client, ws, rotated.headers)
"""

MODES = [
    pytest.param(
        [
            "--tb=long",
            "-l",
            "-vv",
            "-rA",
            "--log-level=DEBUG",
            "--log-cli-level=DEBUG",
            "--log-file=log.txt",
            "--log-file-level=DEBUG",
        ],
        id="long-locals-debug",
    ),
    pytest.param(["--tb=short", "-rA", "--log-level=DEBUG"], id="short"),
    pytest.param(["--tb=native", "-l", "--log-level=DEBUG"], id="native"),
]


@pytest.mark.parametrize("mode", MODES)
def test_the_token_reaches_no_output(
    user_project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    free_port: int,
    mode: list[str],
) -> None:
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", TOKEN)
    user_project.makeconftest(CONFTEST)
    user_project.makepyfile(test_user=USER_TESTS)
    reports = {
        "--junitxml": "junit.xml",
        "--axiom-perf-json": "results.json",
        "--axiom-perf-markdown": "summary.md",
        "--axiom-perf-html": "report.html",
    }
    result = user_project.runpytest_subprocess(
        "--axiom-perf",
        "-p",
        "no:cacheprovider",
        f"--axiom-base-url=http://127.0.0.1:{free_port}",
        f"--axiom-ws-url=ws://127.0.0.1:{free_port}/ws",
        *(f"{flag}={path}" for flag, path in reports.items()),
        *mode,
    )
    result.assert_outcomes(failed=8)
    issued = (user_project.path / "issued.txt").read_text()
    outputs = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    for path in [*reports.values(), *(["log.txt"] if "--log-file=log.txt" in mode else [])]:
        outputs[path] = (user_project.path / path).read_text()
    for name, text in outputs.items():
        assert TOKEN not in text, name
        assert issued not in text, name
    # The runs did reach the places a token could leak from.
    shown = outputs["stdout"]
    assert "ClientConnectorError" in shown and "TimeoutError" in shown
    assert "did not complete the handshake" in shown
    assert "did not start within" in shown
    assert "the bot's token: <redacted>" in shown or "-rA" not in mode
    if "-l" in mode and "--tb=long" in mode:
        assert f"'Authorization': '{REDACTED}'" in shown  # aiohttp's headers argument
        assert "> Authorization: <redacted>" in outputs["log.txt"]  # websockets at DEBUG


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "mode", [["--tb=long", "-vv"], ["--tb=long", "-l"]], ids=["long", "locals"]
)
def test_base_url_credentials_are_shown_nowhere(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, free_port: int, mode: list[str]
) -> None:
    monkeypatch.delenv("AXIOM_AUTH_TOKEN", raising=False)
    user_project.makepyfile(
        """
        import logging

        import pytest


        @pytest.mark.asyncio
        async def test_refused(axiom_client, axiom_load):
            logging.getLogger("bot").warning("client %r", axiom_client)
            print(axiom_client)
            await axiom_client.get("/health")
        """
    )
    url = f"http://trader:{PASSWORD}@127.0.0.1:{free_port}/v1?api_key={API_KEY}"
    result = user_project.runpytest_subprocess(
        "--axiom-perf",
        "-p",
        "no:cacheprovider",
        f"--axiom-base-url={url}",
        *mode,
        "-rA",
        "--log-level=DEBUG",
        "--junitxml=junit.xml",
        "--axiom-perf-json=results.json",
    )
    result.assert_outcomes(failed=1)
    outputs = [result.stdout.str(), result.stderr.str()]
    outputs += [(user_project.path / p).read_text() for p in ("junit.xml", "results.json")]
    for text in outputs:
        # aiohttp's own locals (-l) show the URL it builds, the key in its query too:
        # the report's safety net replaces it.
        assert PASSWORD not in text and API_KEY not in text
    # The header names the venue without its credentials.
    result.stdout.fnmatch_lines(
        [f"*AXIOM_AUTH_TOKEN is not set: requests to http://127.0.0.1:{free_port}/v1 carry*"]
    )
    assert f"OptimizedClient(base_url='http://127.0.0.1:{free_port}/v1'" in outputs[0]


def test_a_bad_url_option_is_named_without_its_password(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--axiom-base-url=htp://trader:{PASSWORD}@example.com"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--axiom-base-url*htp://<redacted>@example.com*"])
    assert PASSWORD not in result.stdout.str() + result.stderr.str()


@pytest.mark.asyncio
async def test_url_credentials_become_a_basic_header_shown_as_redacted() -> None:
    client = OptimizedClient(f"http://trader:{PASSWORD}@127.0.0.1:1/v1?api_key={API_KEY}")
    assert client.base_url == f"http://127.0.0.1:1/v1?api_key={API_KEY}"
    assert PASSWORD not in repr(client) and API_KEY not in repr(client)
    async with client:
        headers = client.session.headers
    authorization = headers["Authorization"]
    assert isinstance(authorization, Secret) and authorization.startswith("Basic ")
    assert repr(authorization) == repr(REDACTED) and PASSWORD not in repr(headers)
    with pytest.raises(Exception, match="carries a user and password and a token"):
        OptimizedClient(f"http://trader:{PASSWORD}@127.0.0.1:1", token=TOKEN)


def test_safe_url_keeps_only_what_locates_the_venue() -> None:
    assert safe_url(f"wss://u:{PASSWORD}@[::1]:8443/ws?token={TOKEN}#x") == "wss://[::1]:8443/ws"
    assert safe_url(f"http://u:{PASSWORD}@h:99999/p", path=False) == "http://h"


def test_the_filter_redacts_library_records_without_dropping_them() -> None:
    remember(TOKEN)
    records = [
        logging.makeLogRecord({"msg": "> %s: %s", "args": ("Authorization", Secret("x y"))}),
        logging.makeLogRecord({"msg": "> Cookie: auth-access-token=abc.def; other=1"}),
        logging.makeLogRecord({"msg": "GET /x?api_key=K HTTP/1.1 with %s", "args": (TOKEN,)}),
        logging.makeLogRecord({"msg": "subscribed tokens %s", "args": (["SOL"],)}),
    ]
    shown = [r.getMessage() for r in records if RedactingFilter().filter(r)]
    assert shown == [
        "> Authorization: <redacted>",
        "> Cookie: <redacted>",
        "GET /x?api_key=<redacted> HTTP/1.1 with <redacted>",
        "subscribed tokens ['SOL']",
    ]


@pytest.mark.asyncio
async def test_reprs_and_errors_name_urls_without_credentials() -> None:
    url = f"http://trader:{PASSWORD}@127.0.0.1:1/api?api_key={API_KEY}"
    shown = [repr(ExchangeRouter(url)), repr(OptimizedClient(url))]
    for bad in (f"trader:{PASSWORD}@127.0.0.1", "http" + url[4:].replace("//", "/", 1)):
        with pytest.raises(AxiomPerfError) as error:
            OptimizedClient(bad)
        shown.append(str(error.value))
    for bad in (url, f"ws://trader:{PASSWORD}@127.0.0.1:port/ws?token={API_KEY}"):
        with pytest.raises(ValueError) as error:
            WebSocketClient(bad)
        shown.append(str(error.value))
    ws = WebSocketClient(f"ws://trader:{PASSWORD}@127.0.0.1:1/ws?token={API_KEY}")
    with pytest.raises(WebSocketError) as error:
        await ws.connect()
    shown += [str(error.value), repr(ws)]
    for text in shown:
        assert PASSWORD not in text and API_KEY not in text, text


def test_a_skip_reason_with_the_token_is_redacted_not_a_crash(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    # A skip's report carries (path, line, reason): the safety net keeps that shape.
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", TOKEN)
    user_project.makepyfile(
        """
        import os, pytest

        def test_skipped():
            pytest.skip(f"venue token {os.environ['AXIOM_AUTH_TOKEN']} not accepted")
        """
    )
    url = f"http://bob:{PASSWORD}%2F%40x@127.0.0.1:{free_port}/v1"
    result = user_project.runpytest_subprocess("-v", "-rs", f"--axiom-base-url={url}")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *venue token <redacted> not accepted*"])
    assert TOKEN not in result.stdout.str() + result.stderr.str()


def test_a_percent_encoded_url_password_is_redacted_as_written(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    monkeypatch.delenv("AXIOM_AUTH_TOKEN", raising=False)
    user_project.makepyfile(
        """
        import os

        def test_prints_the_url(axiom_target):
            print("target", os.environ["AXIOM_BASE_URL"])
            assert False
        """
    )
    url = f"http://bob:{PASSWORD}%2F%40x@127.0.0.1:{free_port}/v1"
    monkeypatch.setenv("AXIOM_BASE_URL", url)
    result = user_project.runpytest_subprocess("-rA", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    for text in (result.stdout.str(), (user_project.path / "junit.xml").read_text()):
        assert PASSWORD not in text
    result.stdout.fnmatch_lines(["target http://bob:<redacted>*"])
