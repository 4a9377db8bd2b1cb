"""An event loop whose timers wake on time, to well under a millisecond, on Linux.

asyncio on Linux waits in ``epoll_wait``, whose timeout is whole milliseconds:
CPython rounds every wait up to the next millisecond, so each ``asyncio.sleep``
or ``loop.call_at`` wakes 0 to 1 ms late (about 0.5 ms at the median). For the
exchange that is a scenario emitted up to 1 ms off its schedule, and at a
replay's 0.1 ms gaps messages leaving in batches of ten.

`new_event_loop` returns a selector loop whose epoll set also holds a timerfd:
before each wait the timerfd is armed for the exact timeout (nanoseconds), so
the wait ends when the loop's next timer is due and that timer runs in the same
iteration. Nothing spins, no thread is involved: between timers the loop sleeps
in the kernel as before, and I/O wakes it as before. Where there is no timerfd
(not Linux, or the call fails) it is asyncio's own loop: kqueue (macOS) already
waits with nanosecond timeouts.

The selector also notes when it last saw each fd readable (`read_at`): the
venue's arrival time of an order, taken when the loop saw the request's bytes
rather than when it got round to parsing and routing them (on Python 3.11 two
loop iterations later, after whatever else those iterations ran). It is never
before the bytes were there, except for a request pipelined behind another on
one connection and read with it (HTTP clients do not pipeline by default).

`run` is ``asyncio.run`` on such a loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import selectors
import sys
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["TimerFd", "new_event_loop", "read_at", "run", "timer_wakes"]

_T = TypeVar("_T")

_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class TimerFd:
    """A one-shot monotonic timerfd (Linux): readable once `arm`'s time has passed."""

    def __init__(self) -> None:
        """Create it disarmed; OSError where the system has no timerfd."""
        self._settime: Callable[[int], None]
        create_fd = getattr(os, "timerfd_create", None)  # Python 3.13+
        if create_fd is not None:
            fd: int = create_fd(time.CLOCK_MONOTONIC, flags=_TFD_NONBLOCK | _TFD_CLOEXEC)
            self.fd = fd
            settime_ns = getattr(os, "timerfd_settime_ns")  # noqa: B009 (3.13+)
            self._settime = lambda ns: settime_ns(fd, initial=ns)
            return
        if not sys.platform.startswith("linux"):
            raise OSError("timerfd is Linux's")
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
        create.argtypes = (ctypes.c_int, ctypes.c_int)
        create.restype = ctypes.c_int
        settime.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
        settime.restype = ctypes.c_int
        fd = create(time.CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
        self.fd = fd
        spec = _Itimerspec()
        pointer = ctypes.addressof(spec)

        def settime_c(ns: int) -> None:
            spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(ns, 1_000_000_000)
            if settime(fd, 0, pointer, None) < 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error))

        self._settime = settime_c

    def arm(self, seconds: float) -> None:
        """Fire `seconds` from now (at least 1 ns: zero would disarm it); this also
        clears a past expiry, so the fd is not readable until the new one."""
        self._settime(max(1, int(seconds * 1e9) + 1))

    def disarm(self) -> None:
        """Stop it and clear a past expiry."""
        self._settime(0)

    def close(self) -> None:
        """Close the fd."""
        os.close(self.fd)


if sys.platform.startswith("linux"):  # epoll and timerfd are Linux's

    class _TimedEpollSelector(selectors.EpollSelector):
        """An epoll selector whose waits end on time: a timerfd among its keys is armed for
        each wait's exact timeout. The loop never sees that key (`select` takes it out).

        A fired timer stays readable until the next wait that could block re-arms it (which
        clears it) or, with no timeout, disarms it: no wait is cut short by an old expiry,
        and a wake costs one timerfd call, not two (on Python < 3.13 each is a ctypes call,
        about 3 us here)."""

        def __init__(self, timer: TimerFd) -> None:
            super().__init__()
            self._timer = timer
            # Armed, or fired and not cleared yet: the timerfd may be (or become) readable.
            self._set = False
            self._fired = False
            # Waits the timer ended: a loop that sleeps sub-millisecond gaps shows them here.
            self.timer_wakes = 0
            # When each fd was last seen readable (monotonic s): when its bytes had arrived.
            self.read_at: dict[int, float] = {}
            try:
                self._timer_key = self.register(timer.fd, selectors.EVENT_READ)
            except BaseException:
                super().close()  # the epoll fd; the caller closes the timer
                raise

        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is not None and timeout > 0:
                self._timer.arm(timeout)
                self._set, self._fired = True, False
            elif timeout is None and self._set:
                self._timer.disarm()
                self._set = False
            # The selector's own timeout (rounded up to whole ms) stays as a backstop.
            ready = super().select(timeout)
            if self._set:
                for index, (key, _) in enumerate(ready):
                    if key is self._timer_key:
                        del ready[index]
                        if not self._fired:
                            self._fired = True
                            self.timer_wakes += 1
                        break
            if ready:
                now = time.monotonic()
                read_at = self.read_at
                for key, events in ready:
                    if events & selectors.EVENT_READ:
                        read_at[key.fd] = now
            return ready

        def unregister(self, fileobj: Any) -> selectors.SelectorKey:
            key = super().unregister(fileobj)
            self.read_at.pop(key.fd, None)
            return key

        def close(self) -> None:
            try:
                super().close()
            finally:
                self._timer.close()


# The selectors of the loops `new_event_loop` made precise.
_SELECTORS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _TimedEpollSelector] = (
    weakref.WeakKeyDictionary()
)


def timer_wakes(loop: asyncio.AbstractEventLoop) -> int | None:
    """How many of `loop`'s waits its timerfd ended, or None when its timers are asyncio's
    own (it does not come from `new_event_loop`, or the system has no timerfd)."""
    selector = _SELECTORS.get(loop)
    return None if selector is None else selector.timer_wakes


def read_at(loop: asyncio.AbstractEventLoop, fd: int) -> float | None:
    """When `loop` last saw `fd` readable (its clock), or None when unknown (not seen,
    or the loop does not come from `new_event_loop`)."""
    selector = _SELECTORS.get(loop)
    return None if selector is None else selector.read_at.get(fd)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop whose timers wake on time where the system allows (see above)."""
    if not sys.platform.startswith("linux"):
        return asyncio.new_event_loop()
    try:
        timer = TimerFd()
    except (OSError, AttributeError):
        return asyncio.new_event_loop()
    try:
        selector = _TimedEpollSelector(timer)
    except BaseException:
        timer.close()
        raise
    try:
        loop = asyncio.SelectorEventLoop(selector)
    except BaseException:
        selector.close()  # closes the timer too
        raise
    _SELECTORS[loop] = selector
    return loop


class _Policy(asyncio.DefaultEventLoopPolicy):
    """Python 3.10's way to give ``asyncio.run`` a loop of ours (it has no loop_factory)."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop()


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on a loop from `new_event_loop`."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(main)
    # asyncio.run itself (its cancelling, async generators and executor shutdown), with a
    # policy whose loops are ours while it runs.
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_Policy())
    try:
        return asyncio.run(main)
    finally:
        asyncio.set_event_loop_policy(previous)
