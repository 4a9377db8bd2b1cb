"""How busy the rest of the machine was during a run: the CPU its neighbours used.

The calibration (:mod:`pytest_axiomperf.calibration`) tells a slower machine from a
faster one (its fastest repetition) and a machine that ran slower while the tests ran
(its typical one); neither sees a busy neighbour. A CPU-bound neighbour on a 2-core
runner slows the bot and the exchange together by a quarter to a half, while the
calibration, one thread run between tests, finds the free core and reads as on a
quiet machine. Measured on real runs
(``benchmarks/RESULTS.md``), a baseline saved quietly and compared under such a
neighbour failed as a regression with no change in the code.

So each performance run also measures its neighbours: the CPU time the whole
machine spent (``psutil.cpu_times``: user, nice, system, and on a virtual machine
the time other guests took, *steal*) minus what this run's own processes spent
(pytest, its workers, the exchange), over the run's wall time, in cores. It reads
the whole machine (``/proc/stat``): in a container limited by a CPU quota it sees
the host, so there the guard says little.
When a committed baseline's neighbours and this run's differ by more than
:data:`BUSIER_SHARE` of the machine, a regression is "not comparable", as for a
machine of another speed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

#: Neighbours using this much more (or less) of the machine than when the baseline was
#: saved make its timings incomparable: a quarter of the cores (half a core on 2).
BUSIER_SHARE = 0.25


def _machine_busy() -> float:
    """CPU seconds the whole machine spent working (all cores), including steal."""
    times = psutil.cpu_times()
    # Interrupt time is left out: much of it is the kernel moving this run's own loopback
    # traffic, charged to no process. (Guest time is already inside user and nice.)
    busy = times.user + times.system
    for name in ("nice", "steal"):
        busy += getattr(times, name, 0.0)
    return float(busy)


def _own_busy(process: psutil.Process) -> float:
    """CPU seconds this process, its reaped children and its live descendants spent."""
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    try:
        children = process.children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # gone in between: its time is in children_* once reaped
            continue
        # A live child's own time, and that of the children it reaped (an xdist worker's
        # exchange): never counted twice, children_* only holds reaped ones.
        total += (
            child_times.user
            + child_times.system
            + child_times.children_user
            + child_times.children_system
        )
    return float(total)


class NeighbourMeter:
    """Started at the beginning of a run; :meth:`stop` says how busy its neighbours were."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self._started = time.monotonic()
        self._machine = _machine_busy()
        self._own = _own_busy(self._process)

    def stop(self) -> dict[str, Any] | None:
        """``{"cores": neighbours' mean CPU use, "cpus": logical CPUs, "seconds": wall}``;
        None for a run too short to say (under a second)."""
        seconds = time.monotonic() - self._started
        if seconds < 1.0:
            return None
        machine = _machine_busy() - self._machine
        own = _own_busy(self._process) - self._own
        cpus = psutil.cpu_count() or 1
        cores = min(max(machine - own, 0.0) / seconds, float(cpus))
        return {"cores": round(cores, 3), "cpus": cpus, "seconds": round(seconds, 2)}


def busier(old: object, new: object) -> float | None:
    """How much more of the machine (a share of its CPUs, negative: less) the neighbours
    used in the new run than in the old; None when either side has no usable figure."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None
    values = [old.get("cores"), new.get("cores"), old.get("cpus"), new.get("cpus")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    was, now, old_cpus, new_cpus = (float(v) for v in values)  # type: ignore[arg-type]
    if old_cpus < 1 or new_cpus < 1:
        return None
    return now / new_cpus - was / old_cpus
