"""Each option resolved from the command line, the ini file and the environment, in that order."""

from __future__ import annotations

import json

import pytest

SHOW = """
from pytest_axiomperf.plugin import get_plugin

def test_show(request):
    s = get_plugin(request.config).settings
    print("RESOLVED", s.perf, s.threshold, s.base_url, s.ws_url, s.sample_interval,
          s.source("threshold"), s.source("base_url"))
    print("REPR", repr(s))
"""


@pytest.fixture
def project(user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("AXIOM_BASE_URL", "AXIOM_WS_URL", "AXIOM_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    user_project.makepyfile(SHOW)
    return user_project


def test_defaults(project: pytest.Pytester) -> None:
    result = project.runpytest("-s")
    result.stdout.fnmatch_lines(["*RESOLVED False 10.0 None None 0.5 default default"])


def test_ini_values_are_read(project: pytest.Pytester) -> None:
    project.makeini(
        """
        [pytest]
        asyncio_default_fixture_loop_scope = function
        axiom_perf = yes
        axiom_perf_threshold = 25%
        axiom_base_url = http://127.0.0.1:9/
        axiom_perf_sample_interval = 0.25
        """
    )
    result = project.runpytest("-s")
    result.stdout.fnmatch_lines(["*RESOLVED True 25.0 http://127.0.0.1:9 None 0.25 ini ini"])


def test_pyproject_ini_options(project: pytest.Pytester) -> None:
    (project.path / "tox.ini").unlink()
    project.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        asyncio_default_fixture_loop_scope = "function"
        axiom_perf = "true"
        axiom_perf_threshold = "12.5"
        """
    )
    result = project.runpytest("-s")
    result.stdout.fnmatch_lines(["*RESOLVED True 12.5 None None 0.5 ini default"])


def test_environment_is_read(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXIOM_BASE_URL", "http://127.0.0.1:8001")
    monkeypatch.setenv("AXIOM_WS_URL", "ws://127.0.0.1:8001/ws")
    result = project.runpytest("-s")
    result.stdout.fnmatch_lines(
        [
            "*RESOLVED False 10.0 http://127.0.0.1:8001 ws://127.0.0.1:8001/ws 0.5 "
            "default environment"
        ]
    )


def test_command_line_beats_ini_beats_environment(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AXIOM_BASE_URL", "http://127.0.0.1:1")
    project.makeini(
        """
        [pytest]
        asyncio_default_fixture_loop_scope = function
        axiom_base_url = http://127.0.0.1:2
        axiom_perf_threshold = 30
        """
    )
    result = project.runpytest("-s")
    result.stdout.fnmatch_lines(["*RESOLVED False 30.0 http://127.0.0.1:2 None 0.5 ini ini"])
    result = project.runpytest(
        "-s", "--axiom-perf", "--axiom-perf-threshold=5", "--axiom-base-url=http://127.0.0.1:3"
    )
    result.stdout.fnmatch_lines(
        ["*RESOLVED True 5.0 http://127.0.0.1:3 None 0.5 command line command line"]
    )


def test_token_comes_from_the_environment_and_is_never_shown(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", "s3cr3t-token-value")
    result = project.runpytest("-s", "--axiom-perf")
    result.stdout.fnmatch_lines(["REPR Settings(*auth_token=<set>)"])
    assert "s3cr3t-token-value" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--axiom-perf-threshold=lots"], "", "--axiom-perf-threshold: could not convert*"),
        (["--axiom-perf-threshold=-5"], "", "--axiom-perf-threshold: expected a percentage >= 0*"),
        ([], "axiom_perf = maybe", "ini key axiom_perf (in *tox.ini): expected true or false*"),
        (["--axiom-base-url=localhost"], "", "--axiom-base-url: expected a URL such as*"),
        (
            ["--axiom-base-url=htp://x"],
            "",
            "--axiom-base-url: expected a URL starting with http:// or https://*",
        ),
        (
            ["--axiom-base-url=ws://127.0.0.1:1"],
            "",
            "--axiom-base-url: expected a URL starting with http://*",
        ),
        (
            ["--axiom-ws-url=http://127.0.0.1:1/ws"],
            "",
            "--axiom-ws-url: expected a URL starting with ws:// or wss://*",
        ),
        (["--axiom-perf-sample-interval=0"], "", "--axiom-perf-sample-interval: expected*> 0*"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_option(
    project: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    project.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{ini}\n")
    result = project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-axiomperf: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_help_lists_options_with_ini_and_env(project: pytest.Pytester) -> None:
    result = project.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*--axiom-perf *performance mode*",
            "*--axiom-base-url=URL*",
            "*ini: axiom_base_url; env: AXIOM_BASE_URL*",
        ]
    )


def test_output_options_on_the_command_line_turn_performance_mode_on(
    project: pytest.Pytester,
) -> None:
    # A CI job that lost --axiom-perf but asks for a comparison or a file must not
    # gate nothing and exit 0: asking for the output is asking for performance mode.
    project.makepyfile(
        test_one="""
        def test_one(axiom_tracker):
            for _ in range(5):
                axiom_tracker.record("api_response_times", 0.01)
        """
    )
    result = project.runpytest("--axiom-perf-json=out.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["axiomperf: performance mode on *", "*axiom-perf report*"])
    assert "test_one.py::test_one" in json.loads((project.path / "out.json").read_text())["tests"]
    missing = project.runpytest("--axiom-perf-compare=nothing.json")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*baseline nothing.json: no such file*"])


def test_output_ini_keys_without_performance_mode_warn(project: pytest.Pytester) -> None:
    # An ini key says where to write when performance mode is on; alone it is ignored,
    # and the header says so (the warning summary can be silenced, the header cannot).
    project.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\naxiom_perf_json = out.json\n"
    )
    result = project.runpytest("-p", "no:warnings")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["axiomperf: performance mode off: --axiom-perf-json ignored (add --axiom-perf)"]
    )
    assert not (project.path / "out.json").exists()
    warned = project.runpytest()
    warned.stdout.fnmatch_lines(["*--axiom-perf-json ignored without --axiom-perf*"])


def test_no_header_line_without_output_options(project: pytest.Pytester) -> None:
    result = project.runpytest()
    assert "axiomperf:" not in result.stdout.str()


def test_a_real_api_without_a_token_is_pointed_out(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = project.runpytest("--axiom-base-url=http://127.0.0.1:9")
    result.stdout.fnmatch_lines(
        [
            "axiomperf: AXIOM_AUTH_TOKEN is not set: requests to http://127.0.0.1:9 carry no "
            "bearer token"
        ]
    )
    monkeypatch.setenv("AXIOM_AUTH_TOKEN", "t0ken-value")
    result = project.runpytest("--axiom-base-url=http://127.0.0.1:9")
    assert "AXIOM_AUTH_TOKEN is not set" not in result.stdout.str()
    assert "t0ken-value" not in result.stdout.str()


def test_two_outputs_naming_one_file_are_refused(project: pytest.Pytester) -> None:
    baseline = project.path / "b.json"
    baseline.write_text("{}")
    result = project.runpytest("--axiom-perf-compare=b.json", "--axiom-perf-html=b.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-axiomperf: --axiom-perf-compare and --axiom-perf-html name the same "
            "file b.json: one would overwrite the other"
        ]
    )
    assert baseline.read_text() == "{}"
    again = project.runpytest("--axiom-perf-json=r.json", "--axiom-perf-markdown=./r.json")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
