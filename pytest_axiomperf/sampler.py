"""Background sampling of this process's CPU and memory (psutil), in performance mode;
the run's totals over pytest-xdist workers."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from pytest_axiomperf.tracker import CPU_USAGE, MEMORY_USAGE, PerformanceTracker

#: One sample: (wall-clock time, RSS in MB, CPU % since the previous sample or None).
Sample = tuple[float, float, "float | None"]


class ResourceSampler:
    """Records process RSS (MB) into ``memory_usage`` and CPU % into ``cpu_usage``.

    One long-lived ``psutil.Process``; ``cpu_percent`` is primed once so every
    sample is the usage since the previous one. The thread is a daemon and
    :meth:`stop` joins it, taking one last sample.

    While a test runs (:meth:`watch`), each sample also goes to that test's tracker's
    timeline, and the tracker is ticked so its latency windows follow the clock.
    """

    def __init__(self, tracker: PerformanceTracker, interval: float = 0.5) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        import psutil  # here: the pytest11 entry point must not import it

        self.tracker = tracker
        self.interval = interval
        #: Every sample, in order: a pytest-xdist controller adds the workers' series up.
        self.samples: list[Sample] = []
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._watched: Callable[[], PerformanceTracker | None] | None = None

    def start(self) -> None:
        """Start sampling in a background thread (idempotent)."""
        if self._thread is not None:
            return
        self._process.cpu_percent(None)
        self._sample_memory()
        self._thread = threading.Thread(target=self._run, name="axiomperf-sampler", daemon=True)
        self._thread.start()

    def _sample_memory(self) -> None:
        rss = self._process.memory_info().rss / 2**20
        self.tracker.record(MEMORY_USAGE, rss)
        self.samples.append((time.time(), rss, None))

    def _sample(self) -> None:
        with self._lock:
            cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss / 2**20
            watched = self._watched() if self._watched is not None else None
        self.tracker.record(CPU_USAGE, cpu)
        self.tracker.record(MEMORY_USAGE, rss)
        # Wall-clock time, not a duration: it lines up the samples of other processes.
        self.samples.append((time.time(), rss, cpu))
        if watched is not None:
            # Two ticks per window: a window between two ticks would be empty by aliasing.
            watched.timeline.offer_width(2 * self.interval)
            watched.tick()
            watched.timeline.sample_resources(cpu, rss)

    def watch(self, tracker: Callable[[], PerformanceTracker | None] | None) -> None:
        """Also feed the tracker ``tracker()`` returns (a test's, once it has one), or
        stop (None); a sample is taken at once, so a short test has one at each end."""
        if self._thread is None:
            return
        if tracker is None:
            self._sample()
        with self._lock:
            self._watched = tracker
        if tracker is not None:
            self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> None:
        """Stop the thread and take a final sample (idempotent)."""
        thread = self._thread
        if thread is None or self._stop.is_set():
            return
        self._stop.set()
        thread.join(timeout=max(5.0, 2 * self.interval))
        self._sample()


def record_run_totals(
    tracker: PerformanceTracker, workers: Mapping[str, Sequence[Sequence[float | None]]]
) -> None:
    """Record into ``tracker`` the run's totals over pytest-xdist workers' samples.

    At every moment one of the workers took a sample, ``memory_usage`` is the sum of
    the RSS of the workers running then (each worker's first sample at or after that
    moment) and ``cpu_usage`` the sum of their CPU % (which can exceed 100 with several
    cores busy). A worker counts from its first sample to its last.
    """
    runs: list[list[Sample]] = []
    for samples in workers.values():
        run = sorted(
            (float(t or 0.0), float(rss or 0.0), None if cpu is None else float(cpu))
            for t, rss, cpu in samples
        )
        if run:
            runs.append(run)
    times = [[t for t, _, _ in run] for run in runs]
    for moment in sorted({t for run_times in times for t in run_times}):
        rss_total = 0.0
        cpu_total: float | None = None
        for run, run_times in zip(runs, times, strict=True):
            if not run_times[0] <= moment <= run_times[-1]:
                continue
            _, rss, cpu = run[bisect.bisect_left(run_times, moment)]
            rss_total += rss
            if cpu is not None:
                cpu_total = (cpu_total or 0.0) + cpu
        tracker.record(MEMORY_USAGE, rss_total)
        if cpu_total is not None:
            tracker.record(CPU_USAGE, cpu_total)
