"""``axiomperf ab``: a throwaway git repository with two commits, measured side by side."""

from __future__ import annotations

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


def _ab(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
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
    assert "round 1 on base" in broken.stderr and "usage error" in broken.stderr
    assert "--no-such-option" in broken.stderr
    passes = _ab(repo, "--base", "HEAD", "--passes", "0")
    assert passes.returncode == 2
    assert "--passes: expected a whole number of passes from 1 to 1000, got '0'" in passes.stderr
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    lost = _ab(outside, "--base", "main")
    assert lost.returncode == 2 and "is not in a git repository" in lost.stderr
