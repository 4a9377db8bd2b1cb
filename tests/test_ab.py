"""``axiomperf ab``: a throwaway git repository with two commits, measured side by side."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_axiomperf.ab import abba_order

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

BOT = """
import time

DELAY = {delay}


def decide():
    time.sleep(DELAY)
    return "buy"
"""

PERF_TEST = """
import botlib


def test_decision(axiom_tracker):
    for _ in range(20):
        with axiom_tracker.measure("decision_times"):
            assert botlib.decide() == "buy"
"""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A user's repository: a flat-layout package and a perf test; base commit 1 ms a
    decision. The working tree is left to each test."""
    root = tmp_path / "bot"
    (root / "botlib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "botlib" / "__init__.py").write_text(BOT.format(delay=0.001))
    (root / "tests" / "test_perf.py").write_text(PERF_TEST)
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "dev@example.com")
    _git(root, "config", "user.name", "dev")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    return root


def _ab(repo: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | extra_env
    # The plugin under test, wherever this checkout is, stays importable in the rounds.
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-m", "pytest_axiomperf.cli", "ab", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_abba_order() -> None:
    assert abba_order(3) == [
        (1, "base"), (1, "head"), (2, "head"), (2, "base"), (3, "base"), (3, "head"),
    ]  # fmt: skip


def test_a_slower_working_tree_fails_and_the_base_tree_is_measured_as_committed(
    repo: Path,
) -> None:
    # The change under review: 20 ms a decision instead of 1 ms (uncommitted, as in a PR
    # checkout the working tree is what is measured). Generous, so that a loaded machine
    # cannot turn a pair around.
    (repo / "botlib" / "__init__.py").write_text(BOT.format(delay=0.020))
    done = _ab(repo, "--base", "HEAD", "--rounds", "7", "--json", "ab.json", "tests/")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert len(re.findall(r"^  round \d/7  (?:base|head)", out, re.M)) == 14
    assert "7 rounds a side (2 passes each)" in out
    assert "REGRESSION        tests/test_perf.py::test_decision  decision_times" in out
    assert "significant (p=0.0078) across 7 pairs" in out
    assert "rounds agree (Wilcoxon signed-rank or permutation test, p < 0.05 in all)" in out
    data = json.loads((repo / "ab.json").read_text())
    verdict = data["tests"]["tests/test_perf.py::test_decision"]["extra"]["comparison"][0]
    assert verdict["evidence"] == "paired rounds" and verdict["status"] == "regression"
    assert len(verdict["new_rounds"]) == 7  # a round's two passes are one observation
    assert all(v > 0.0195 for v in verdict["new_rounds"])  # head: 20 ms
    assert all(0.0009 < v < 0.0195 for v in verdict["old_rounds"])  # base: 1 ms
    assert data["comparison"]["paired"] is True
    # The temporary worktree of the base is gone.
    assert _git(repo, "worktree", "list").count("\n") == 1


def test_a_bad_revision_or_a_broken_round_is_a_usage_error(repo: Path, tmp_path: Path) -> None:
    bad = _ab(repo, "--base", "no-such-branch", "tests/")
    assert bad.returncode == 2
    assert "--base no-such-branch: no such commit here" in bad.stderr
    assert "Traceback" not in bad.stderr
    broken = _ab(repo, "--base", "HEAD", "--rounds", "2", "--", "--no-such-option")
    assert broken.returncode == 2
    assert "the base side" in broken.stderr and "usage error" in broken.stderr
    assert "--no-such-option" in broken.stderr
    passes = _ab(repo, "--base", "HEAD", "--passes", "0")
    assert passes.returncode == 2
    assert "--passes: expected a whole number of passes from 1 to 1000, got '0'" in passes.stderr
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    lost = _ab(outside, "--base", "main")
    assert lost.returncode == 2 and "is not in a git repository" in lost.stderr


SPANS_TEST = """
import os
import time

import botlib


def test_decision(axiom_tracker):
    started = time.monotonic()
    for _ in range(5):
        with axiom_tracker.measure("decision_times"):
            assert botlib.decide() == "buy"
    with open(os.environ["SPANS"], "a") as fh:
        fh.write(f"{botlib.SIDE} {os.getpid()} {started} {time.monotonic()}\\n")
"""


def test_the_sides_take_turns_round_by_round_in_abba_order(repo: Path, tmp_path: Path) -> None:
    """One process a side: while one measures a round (its passes), the other waits."""
    spans = tmp_path / "spans.txt"
    for side in ("base", "head"):
        (repo / "botlib" / "__init__.py").write_text(BOT.format(delay=0.002) + f"SIDE = {side!r}\n")
        (repo / "tests" / "test_perf.py").write_text(SPANS_TEST)
        if side == "base":
            _git(repo, "commit", "-qam", "spans")
    done = _ab(repo, "--base", "HEAD", "--rounds", "3", "--passes", "2", "tests/", SPANS=str(spans))
    assert done.returncode in (0, 1), done.stdout + done.stderr
    rows = [line.split() for line in spans.read_text().splitlines()]
    sides = [side for side, _, _, _ in rows]
    # Each round's two passes back to back, the sides in ABBA order.
    assert sides == ["base"] * 2 + ["head"] * 4 + ["base"] * 4 + ["head"] * 2
    # One process a side, all of its rounds in it.
    pids = {(side, pid) for side, pid, _, _ in rows}
    assert len(pids) == len({pid for _, pid in pids}) == 2
    times = [(float(start), float(end)) for _, _, start, end in rows]
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(times)), times
    assert len(re.findall(r"^  round \d/3  (?:base|head)", done.stdout, re.M)) == 6


CALL_COUNTER = """
import os

CALLS = []


def test_counted(axiom_tracker):
    CALLS.append(1)
    {action}
"""


def test_a_round_whose_tests_fail_and_a_side_that_dies(repo: Path, tmp_path: Path) -> None:
    # The working tree fails its tests in round 2 only (its third and fourth pass).
    action = 'assert len(CALLS) not in (3, 4), "failed in round 2"'
    (repo / "tests" / "test_perf.py").write_text(PERF_TEST + CALL_COUNTER.format(action=action))
    failing = _ab(repo, "--base", "HEAD", "--rounds", "3", "tests/")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    marked = re.findall(r"^  round (\d)/3  (\w+) .*\(tests failed\)", failing.stdout, re.M)
    assert marked == [("2", "head")], failing.stdout
    assert "tests failed on the working tree in round(s) 2" in failing.stdout
    # The working tree's process dies in its second round: a clear error, no hang.
    action = "os._exit(7) if len(CALLS) == 3 else None"
    (repo / "tests" / "test_perf.py").write_text(PERF_TEST + CALL_COUNTER.format(action=action))
    died = _ab(repo, "--base", "HEAD", "--rounds", "3", "tests/")
    assert died.returncode == 2, died.stdout + died.stderr
    assert "the head side" in died.stderr and "exit code 7" in died.stderr
    assert "round 3/3" not in died.stdout  # stopped there, not after base's every round
    assert "Traceback" not in died.stderr


@pytest.mark.parametrize("where", ["command line", "PYTEST_ADDOPTS"])
def test_under_xdist_each_round_is_its_own_process(
    repo: Path, where: str, tmp_path: Path
) -> None:
    """pytest-xdist's workers cannot take turns: wherever -n comes from, a process a round."""
    args = ["--", "-n", "1"] if where == "command line" else []
    extra = {"PYTEST_ADDOPTS": "-n 1"} if where == "PYTEST_ADDOPTS" else {}
    kept = tmp_path / "kept"
    done = _ab(
        repo, "--base", "HEAD", "--rounds", "2", "--passes", "2", "--keep", str(kept), *args,
        **extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pytest-xdist is on: a pytest process a round" in done.stdout
    # The per-process form names the tests each round's process ran.
    assert len(re.findall(r"^  round \d/2  (?:base|head)  1 test\(s\)", done.stdout, re.M)) == 4
    # Each process read the machine at its start and end only, not before its second pass
    # (ab's rounds are paired: the readings would only take time beside the other side).
    for side in ("base", "head"):
        measured = json.loads((kept / f"{side}-1.json").read_text())
        assert measured["environment"]["calibration"]["readings"] == 2


def test_a_side_that_stops_early_is_an_error_at_once(repo: Path) -> None:
    """A round missing on one side would leave pairs unmatched: the run stops there."""
    (repo / "tests" / "test_perf.py").write_text(
        PERF_TEST + CALL_COUNTER.format(action="assert len(CALLS) != 3")
    )
    stopped = _ab(repo, "--base", "HEAD", "--rounds", "4", "--", "-x")
    assert stopped.returncode == 2, stopped.stdout + stopped.stderr
    assert "the head side" in stopped.stderr
    assert "pytest ended after round 2 of 4 (exit code 1: a test failed, and -x" in stopped.stderr
    assert "round 3/4" not in stopped.stdout
    # A side that cannot collect its tests: reported before any round is measured.
    (repo / "tests" / "test_perf.py").write_text("def test_broken(:\n")
    broken = _ab(repo, "--base", "HEAD", "--rounds", "4", "tests/")
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert "the head side" in broken.stderr and "(interrupted)" in broken.stderr
    assert "SyntaxError" in broken.stderr and "round 1/4" not in broken.stdout


PID_TEST = """
import os
import time


def test_slowly(axiom_tracker):
    with open(os.environ["PIDS"], "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    with axiom_tracker.measure("decision_times"):
        time.sleep(0.01)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT")
@pytest.mark.parametrize("group", [True, False], ids=["terminal", "driver-only"])
def test_ctrl_c_stops_both_sides_and_removes_the_worktree(
    repo: Path, tmp_path: Path, group: bool
) -> None:
    """Ctrl-C mid-run: SIGINT to the whole process group, as a terminal sends it, or to
    axiomperf alone (its pytest processes are then stopped by it)."""
    import signal
    import time

    import psutil

    (repo / "tests" / "test_perf.py").write_text(PID_TEST)
    _git(repo, "commit", "-qam", "pids")
    pids, out = tmp_path / "pids.txt", tmp_path / "out.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PIDS": str(pids)}
    with open(out, "w") as fh:
        ab = subprocess.Popen(
            [sys.executable, "-m", "pytest_axiomperf.cli", "ab", "--base", "HEAD",
             "--rounds", "50", "tests/"],
            cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "round 3/50" not in out.read_text() and time.monotonic() < deadline:
            assert ab.poll() is None, out.read_text()
            time.sleep(0.05)
        if group:
            os.killpg(ab.pid, signal.SIGINT)
        else:
            os.kill(ab.pid, signal.SIGINT)
        assert ab.wait(timeout=60) == 2
    finally:
        if ab.poll() is None:
            os.killpg(ab.pid, signal.SIGKILL)
            ab.wait()
    text = out.read_text()
    assert "axiomperf ab: interrupted" in text and "Traceback" not in text, text
    sides = {int(line) for line in pids.read_text().split()}
    assert len(sides) == 2  # both sides' pytest processes had started
    assert not any(psutil.pid_exists(pid) for pid in sides)
    assert _git(repo, "worktree", "list").count("\n") == 1


WRAPPER_CONFTEST = """
import os
import time

import pytest

import botlib


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    # As a per-test timeout plugin does: time each test's whole protocol.
    started = time.monotonic()
    result = yield
    with open(os.environ["PROTOCOLS"], "a") as fh:
        fh.write(f"{botlib.DELAY} {time.monotonic() - started}\\n")
    return result
"""

TWO_CALLS = """
import botlib


def test_decision(axiom_tracker):
    for _ in range(2):
        with axiom_tracker.measure("decision_times"):
            botlib.decide()
"""


def test_the_wait_for_a_turn_is_outside_other_plugins_wrappers(repo: Path, tmp_path: Path) -> None:
    """A plugin timing each test's protocol (a timeout plugin) never sees the other side's
    turn: the head's tests take ~1 ms while each base turn takes ~1 s."""
    (repo / "tests" / "conftest.py").write_text(WRAPPER_CONFTEST)
    (repo / "tests" / "test_perf.py").write_text(TWO_CALLS)
    (repo / "botlib" / "__init__.py").write_text(BOT.format(delay=0.25))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a slow base")
    (repo / "botlib" / "__init__.py").write_text(BOT.format(delay=0.0005))
    protocols = tmp_path / "protocols.txt"
    done = _ab(repo, "--base", "HEAD", "--rounds", "3", "tests/", PROTOCOLS=str(protocols))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in protocols.read_text().splitlines()]
    base = [float(took) for delay, took in rows if delay == "0.25"]
    head = [float(took) for delay, took in rows if delay == "0.0005"]
    assert len(base) == len(head) == 6  # 3 rounds x 2 passes a side
    assert min(base) >= 0.5  # two calls of 0.25 s
    assert max(head) < 0.4, head  # never the 1 s of a base turn
