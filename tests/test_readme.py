"""Every code block of README.md is exercised, so the documentation cannot rot.

Conventions of README.md:
- a ```python block is preceded by ``<!-- file: NAME.py -->``: it is written to
  NAME.py in one project; the test files run together under ``--axiom-perf``,
  the others run as scripts (``sdk-example`` blocks run in tests/test_sdk.py);
- each command of a ```bash block runs in that project (or is listed below as
  meant for this repository or for a real API);
- the ```yaml workflow's pytest options must be options the plugin has;
- ```text blocks are sample output.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_axiomperf.cli import build_parser
from pytest_axiomperf.settings import OPTIONS

README = Path(__file__).resolve().parent.parent / "README.md"

#: Commands that are about this repository (CI runs them) or need a real API.
NOT_RUN_HERE = {
    'pip install -e ".[test]" && pytest --axiom-perf examples/',  # .ci/run runs it
    "pytest -n 2 tests/",  # .ci/run runs it
    "pytest -n 2 tests/                  # the plugin's tests (pytester runs user projects)",
    "ruff check . && mypy                # lint and types (mypy --strict on the package)",
    "python benchmarks/bench_tracker.py  # each benchmarks/bench_*.py prints side-by-side tables",
    # Builds its own virtualenv from a package index; CI runs it.
    ".ci/oldest.sh                       # the tests again on the oldest declared dependencies",
    "export AXIOM_AUTH_TOKEN=...   # the bearer token: never on the command line, never printed",
    "pytest --axiom-perf --axiom-base-url=https://api.example.com --axiom-ws-url=wss://ws.example.com",
    'pip install -e ".[sdk]"     # in this repository; or: pip install axiomtradeapi==1.1.6',
    # Installs from a package index: the tests run with the plugin installed already.
    "pip install pytest-axiomperf                          # the plugin",
    'pip install pytest-xdist "pytest-axiomperf[respx]"    # only for -n N and axiom_respx',
    # Needs a git repository with history: tests/test_ab.py runs it on a throwaway one.
    "axiomperf ab --base origin/main -- test_tour.py",
}
#: The SDK section's run, with its proxy variables: tests/test_sdk.py runs it.
SDK_RUN = {
    "export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9",
    "export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY all_proxy=$ALL_PROXY",
    "export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost",
    "pytest --axiom-perf",
}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    marker: str | None
    line: int


def readme_blocks() -> list[Block]:
    blocks: list[Block] = []
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    marker = None
    while i < len(lines):
        line = lines[i]
        comment = re.fullmatch(r"<!--\s*(.*?)\s*-->", line.strip())
        if comment:
            marker = comment.group(1)
        elif line.startswith("```"):
            lang, start = line[3:].strip(), i + 1
            i += 1
            while not lines[i].startswith("```"):
                i += 1
            blocks.append(Block(lang, "\n".join(lines[start:i]) + "\n", marker, start))
            marker = None
        elif line.strip():
            marker = None
        i += 1
    return blocks


def files() -> dict[str, str]:
    out = {}
    for block in readme_blocks():
        if block.lang == "python" and block.marker and block.marker.startswith("file:"):
            out[block.marker.split(":", 1)[1].strip()] = block.code
    return out


def commands() -> list[str]:
    out = []
    for block in readme_blocks():
        if block.lang == "bash":
            out.extend(line for line in block.code.splitlines() if line.strip())
    return out


def test_every_python_block_is_accounted_for() -> None:
    for block in readme_blocks():
        if block.lang == "python":
            assert block.marker is not None, f"README.md:{block.line}: python block unmarked"
            assert block.marker.startswith(("file:", "sdk-example:")), block.marker
        assert block.lang in ("python", "bash", "text", "yaml"), f"README.md:{block.line}"


@pytest.fixture
def tour(user_project: pytest.Pytester) -> pytest.Pytester:
    for name, code in files().items():
        user_project.path.joinpath(name).write_text(code, encoding="utf-8")
    perf = user_project.path / "tests" / "perf"
    perf.mkdir(parents=True)
    (perf / "test_tour.py").write_text(files()["test_tour.py"], encoding="utf-8")
    return user_project


def test_python_blocks_pass_under_performance_mode(tour: pytest.Pytester) -> None:
    names = sorted(n for n in files() if n.startswith("test_"))
    assert len(names) >= 5
    result = tour.runpytest_subprocess("--axiom-perf", *names)
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert outcomes.get("passed", 0) == sum(
        files()[n].count("\ndef test_") + files()[n].count("\nasync def test_") for n in names
    )
    result.stdout.fnmatch_lines(["PASS: 0 over budget, 0 regressions, 0 not comparable (*)"])


def test_script_blocks_run(tour: pytest.Pytester) -> None:
    scripts = [n for n in files() if not n.startswith("test_")]
    assert scripts
    for name in scripts:
        done = subprocess.run(
            [sys.executable, name], cwd=tour.path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "=== Performance Report ===" in done.stdout


def test_shell_commands_run(tour: pytest.Pytester) -> None:
    ran = 0
    for command in commands():
        if command in NOT_RUN_HERE or command in SDK_RUN:
            continue
        words = shlex.split(command, comments=True)
        if words[0] == "pytest":
            result = tour.runpytest_subprocess(*words[1:])
            if any(w.startswith("--axiom-perf-compare") for w in words):
                # An unchanged tour compared with itself: the command must run and compare;
                # whether this machine's noise trips the gate is the benchmarks' question.
                assert result.ret in (0, 1), f"{command}\n{result.stdout.str()}"
                result.stdout.fnmatch_lines(["*Result: *regression(s)*"])
            else:
                assert result.ret == 0, f"{command}\n{result.stdout.str()}"
        elif words[0] == "axiomperf":
            for name in ("old.json", "new.json"):
                made = tour.runpytest_subprocess(
                    "--axiom-perf", f"--axiom-perf-json={name}", "test_tour.py"
                )
                assert made.ret == 0
            script = Path(sys.executable).with_name("axiomperf")  # the installed console script
            done = subprocess.run(
                [str(script), *words[1:]], cwd=tour.path, capture_output=True, text=True, timeout=60
            )
            assert done.returncode in (0, 1), f"{command}\n{done.stdout}{done.stderr}"
            assert done.stdout.strip(), command
        elif words[:3] == ["python", "-m", "pytest_axiomperf.exchange"]:
            with subprocess.Popen(
                [sys.executable, *words[1:]], stdout=subprocess.PIPE, text=True
            ) as server:
                try:
                    assert server.stdout is not None
                    assert server.stdout.readline().startswith("REST http://127.0.0.1:")
                    assert server.stdout.readline().startswith("WS ws://127.0.0.1:")
                finally:
                    server.terminate()
        else:
            pytest.fail(f"README command not exercised: {command!r}")
        ran += 1
    assert ran >= 7


def test_workflow_uses_real_options() -> None:
    flags = {o.flag for o in OPTIONS if o.flag}
    (workflow,) = [b for b in readme_blocks() if b.lang == "yaml"]
    used = set(re.findall(r"(--axiom[-a-z]*)", workflow.code))
    assert used <= flags, used - flags
    # The A/B step's own options are the command's (what goes after -- is pytest's).
    (step,) = re.findall(r"axiomperf ab (--base .*?) -- ", workflow.code.replace("\n", " "))
    words = shlex.split(step.replace("${{ github.base_ref }}", "main"))
    args, unknown = build_parser().parse_known_args(["ab", *words])
    assert not unknown and args.base == "origin/main" and args.json is not None


def test_options_table_lists_every_option() -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- options-table -->", 1)[1].split("\n\n", 1)[0]
    for option in OPTIONS:
        row = next((r for r in table.splitlines() if f"`{option.flag}" in r), None)
        assert row is not None, option.flag
        if option.ini:
            assert f"`{option.ini}`" in row, option.ini
        if option.env:
            assert f"`{option.env}`" in row, option.env
