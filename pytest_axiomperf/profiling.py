"""cProfile around one test body: a ``.prof`` file and the top functions by cumulative time.

The profiler is enabled in the thread that runs the test body; pytest-asyncio runs an
async test's coroutine in that thread (inside ``pytest_pyfunc_call``, itself inside
``pytest_runtest_call``), so the coroutine's work and the loop's waiting both show up.
Work in other threads or processes (a thread pool, the embedded exchange) does not.
"""

from __future__ import annotations

import cProfile
import hashlib
import marshal
import os
import pstats
import re
from pathlib import Path

from pytest_axiomperf.results import write_bytes_atomic

#: Functions listed in a failure message.
TOP_FUNCTIONS = 10

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_NAME = 150


def _package_dir(name: str) -> str | None:
    try:
        module = __import__(name)
    except ImportError:
        return None
    file = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(file)) + os.sep if file else None


#: Frames of the test runner and of the event loop's machinery rather than of the code
#: under test: left out of the top list (the loop's waiting still shows as its poll call).
_RUNNER_DIRS = tuple(
    d
    for d in (
        _package_dir(n)
        for n in ("_pytest", "pluggy", "pytest_asyncio", "pytest_axiomperf", "asyncio")
    )
    if d
)
_RUNNER_FUNCS = ("<method 'disable' of '_lsprof.Profiler' objects>",)


def profile_filename(nodeid: str) -> str:
    """A file name for a test's profile: ``tests/test_a.py::test_b[x]`` ->
    ``tests_test_a.py__test_b_x_-<hash>.prof``. The short hash of the whole id keeps
    names unique where the readable part is not (``[a/b]`` and ``[a_b]``, long ids)."""
    name = _UNSAFE.sub("_", nodeid).strip("_.") or "test"
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:10]
    return f"{name[: _MAX_NAME - 11]}-{digest}.prof"


class BodyProfile:
    """cProfile for one test body: :meth:`start`, :meth:`stop`, then :meth:`dump`."""

    def __init__(self) -> None:
        self._profiler = cProfile.Profile()
        self._running = False
        #: Why profiling could not start (another profiler active), else None.
        self.error: str | None = None

    def start(self) -> bool:
        """Enable the profiler; False (and :attr:`error` set) if another one is active."""
        try:
            self._profiler.enable()
        except ValueError as exc:
            self.error = str(exc)
            return False
        self._running = True
        return True

    def stop(self) -> None:
        """Disable the profiler (idempotent)."""
        if self._running:
            self._profiler.disable()
            self._running = False

    def dump(self, path: Path) -> None:
        """Write the profile to ``path`` (pstats format: ``python -m pstats``, snakeviz).

        Atomically, as ``Profile.dump_stats`` writes it; a symlink at ``path`` is
        replaced, not followed.
        """
        self._profiler.create_stats()
        stats = self._profiler.stats
        write_bytes_atomic(path, marshal.dumps(stats), follow_symlinks=False)

    def top_functions(self, n: int = TOP_FUNCTIONS) -> list[str]:
        """The ``n`` functions with the most cumulative time, test-runner frames left out."""
        stats = pstats.Stats(self._profiler)
        rows = []
        # pstats keeps no public accessor for the per-function table.
        table = stats.stats  # type: ignore[attr-defined]
        for (filename, line, func), (_, calls, own, cumulative, _) in table.items():
            if filename.startswith(_RUNNER_DIRS) or func in _RUNNER_FUNCS:
                continue
            rows.append((cumulative, own, calls, _where(filename, line, func)))
        rows.sort(key=lambda r: -r[0])
        lines = [f"  {'cumulative':>11}  {'own':>10}  {'calls':>7}  function"]
        lines.extend(
            f"  {cum * 1e3:>9.2f}ms  {own * 1e3:>8.2f}ms  {calls:>7}  {where}"
            for cum, own, calls, where in rows[:n]
        )
        return lines


def _where(filename: str, line: int, func: str) -> str:
    if filename == "~":  # a built-in: func reads "<built-in method time.sleep>"
        return func
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        relative = filename
    shown = filename if relative.startswith("..") else relative
    return f"{shown}:{line}({func})"
