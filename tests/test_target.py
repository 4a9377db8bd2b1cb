"""``axiom_target``: the venue under test, for a bot's own clients."""

from __future__ import annotations

import pytest
from conftest import Standalone

from pytest_axiomperf.target import Target

BOT_TEST = """
import aiohttp
import pytest


@pytest.mark.asyncio
async def test_bot_reaches_the_venue(axiom_target, request):
    print("VENUE", axiom_target.base_url, axiom_target.ws_url, repr(axiom_target))
    async with aiohttp.ClientSession(
        axiom_target.base_url, headers=axiom_target.headers()
    ) as session:
        async with session.get("/balance/So1wallet") as response:
            assert response.status == 200
    async with aiohttp.ClientSession(
        axiom_target.base_url, cookies=axiom_target.cookies()
    ) as session:
        async with session.get("/health") as response:
            assert response.status == 200
    print("EXCHANGE STARTED", "axiom_exchange" in request.fixturenames)
"""


def test_default_is_the_embedded_exchange(user_project: pytest.Pytester) -> None:
    """Without options the bot's own session reaches the embedded exchange with its token."""
    user_project.makepyfile(
        test_bot=BOT_TEST
        + """

def test_same_as_exchange(axiom_target, axiom_exchange):
    assert axiom_target.base_url == axiom_exchange.base_url
    assert axiom_target.ws_url == axiom_exchange.ws_url
    assert axiom_target.token == axiom_exchange.token
    assert axiom_target.headers() == {"Authorization": f"Bearer {axiom_exchange.token}"}
    assert axiom_target.cookies() == {"auth-access-token": axiom_exchange.token}
    assert axiom_target.embedded
    assert axiom_exchange.token not in repr(axiom_target)
    assert axiom_exchange.token not in repr(axiom_target.headers())  # a traceback shows this
"""
    )
    result = user_project.runpytest("-s", "--axiom-perf")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "axiomperf: venue under test: the embedded exchange",
            "*VENUE http://127.0.0.1:* ws://127.0.0.1:*/ws Target(*token=<set>, embedded)",
        ]
    )


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_base_url_points_the_bot_at_another_venue(
    pytester: pytest.Pytester,
    standalone_exchange: Standalone,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """--axiom-base-url/--axiom-ws-url and AXIOM_AUTH_TOKEN reach the bot; no exchange starts."""
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", standalone_exchange.token)
    pytester.makepyfile(test_bot=BOT_TEST)
    result = pytester.runpytest(
        "-s",
        f"--axiom-base-url={standalone_exchange.base_url}",
        f"--axiom-ws-url={standalone_exchange.ws_url}",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"axiomperf: venue under test: REST {standalone_exchange.base_url}, "
            f"WS {standalone_exchange.ws_url}",
            f"*VENUE {standalone_exchange.base_url} {standalone_exchange.ws_url} *",
            "EXCHANGE STARTED False",
        ]
    )
    assert standalone_exchange.token not in result.stdout.str()


def test_credentials_are_never_shown(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the token nor a URL's password or token parameter reaches the output."""
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", "s3cr3t-token")
    user_project.makepyfile(
        """
        import os

        def test_shown(axiom_target):
            print("REPR", repr(axiom_target))
            assert axiom_target.token == os.environ["AXIOM_AUTH_TOKEN"]
            assert False, axiom_target
        """
    )
    result = user_project.runpytest(
        "-s",
        "--tb=long",
        "--axiom-base-url=https://bot:hunter2@api.example.com/v1?api_key=k3y&limit=5",
        "--axiom-ws-url=wss://ws.example.com/feed?token=t0k",
    )
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    for secret in ("s3cr3t-token", "hunter2", "k3y", "t0k"):
        assert secret not in out
    result.stdout.fnmatch_lines(
        [
            "axiomperf: venue under test: REST https://api.example.com/v1"
            ", WS wss://ws.example.com/feed",
            "*REPR Target(base_url='https://api.example.com/v1', "
            "ws_url='wss://ws.example.com/feed', token=<set>)",
        ]
    )


def test_one_url_only_names_the_missing_option(user_project: pytest.Pytester) -> None:
    """With --axiom-base-url alone, ws_url is refused with the option to add."""
    user_project.makepyfile(
        """
        import pytest
        from pytest_axiomperf import AxiomPerfError

        def test_ws(axiom_target):
            assert axiom_target.base_url == "http://127.0.0.1:9"
            assert axiom_target.headers() == {}
            with pytest.raises(AxiomPerfError, match="--axiom-ws-url is not"):
                axiom_target.ws_url
        """
    )
    result = user_project.runpytest("--axiom-base-url=http://127.0.0.1:9")
    result.assert_outcomes(passed=1)


def test_configure_warns_when_the_run_tests_another_venue(user_project: pytest.Pytester) -> None:
    """A latency profile that cannot apply is not silently ignored: the warning names the option."""
    user_project.makepyfile(
        """
        def test_shape(axiom_exchange):
            axiom_exchange.configure(latency=0.2)
        """
    )
    result = user_project.runpytest("--axiom-base-url=http://127.0.0.1:9")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*AxiomPerfWarning: axiom_exchange.configure() shapes the embedded exchange only, "
            "but this run tests --axiom-base-url=http://127.0.0.1:9: axiom_target, axiom_client*"
        ]
    )
    # Users filter it by its public name, on the command line or in their ini file.
    strict = user_project.runpytest(
        "--axiom-base-url=http://127.0.0.1:9", "-W", "error::pytest_axiomperf.AxiomPerfWarning"
    )
    strict.assert_outcomes(failed=1)
    user_project.makeini(
        """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        filterwarnings = ignore::pytest_axiomperf.AxiomPerfWarning
        """
    )
    quiet = user_project.runpytest("--axiom-base-url=http://127.0.0.1:9")
    quiet.assert_outcomes(passed=1)
    assert "AxiomPerfWarning" not in quiet.stdout.str()


def test_configure_on_the_embedded_exchange_does_not_warn(user_project: pytest.Pytester) -> None:
    """The ordinary case stays quiet."""
    user_project.makepyfile(
        """
        def test_shape(axiom_exchange):
            axiom_exchange.configure(latency=0.01)
        """
    )
    result = user_project.runpytest("-W", "error::pytest_axiomperf.errors.AxiomPerfWarning")
    result.assert_outcomes(passed=1)


def test_target_repr_without_token() -> None:
    """A venue without a token sends no header and no cookie."""
    target = Target("http://127.0.0.1:1/", None, None)
    assert (target.base_url, target.headers(), target.cookies()) == ("http://127.0.0.1:1", {}, {})
    assert repr(target) == "Target(base_url='http://127.0.0.1:1', ws_url=None, token=None)"


def test_axiom_target_after_the_exchange_died(user_project: pytest.Pytester) -> None:
    """A test asking for axiom_target alone gets a running exchange, even when the
    session's exchange died in an earlier test."""
    user_project.makepyfile(
        """
        import os
        import signal
        import time
        import urllib.request


        def test_kill(axiom_exchange):
            os.kill(axiom_exchange.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while axiom_exchange.running and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not axiom_exchange.running


        def test_target_alone(axiom_target):
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            url = axiom_target.base_url + "/balance/So1wallet"
            request = urllib.request.Request(url, headers=axiom_target.headers())
            with opener.open(request, timeout=5) as answer:
                assert answer.status == 200
        """
    )
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.stdout.fnmatch_lines(["*::test_target_alone PASSED*"])
