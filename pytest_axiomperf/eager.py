"""Start a coroutine eagerly: run it up to its first suspension at once, continue it later.

Python 3.12's eager tasks start a task's coroutine in the caller instead of
scheduling its first step; a coroutine that finishes without suspending then
never costs an event-loop wake-up. The WebSocket reader wants that for message
handlers, which mostly finish without waiting, on Python 3.10 and 3.11 too, and
without creating a task per message: it runs each handler in one of a few
long-lived slot tasks, so only a handler that suspends needs its slot's task to
wake up and continue it.

:meth:`EagerStarter.start` runs the coroutine's first step here, in a copy of the
current context (as ``create_task`` would), with the task that will continue it
made the current task meanwhile, so that ``asyncio.current_task()``,
``asyncio.timeout()`` and ``TaskGroup`` entered before the first suspension
belong to that task, as with a 3.12 eager task, and not to the caller.
If the coroutine suspends, the returned :class:`EagerStart` continues it when
awaited, driving it the way ``asyncio.Task`` does.
"""

from __future__ import annotations

import asyncio
from asyncio import _enter_task, _leave_task
from collections.abc import Coroutine, Generator
from contextvars import Context, copy_context
from types import CoroutineType
from typing import Any

__all__ = ["EagerStart", "EagerStarter"]

# Called unbound on a native coroutine: no bound method made per step (~60 ns a start).
_send = CoroutineType.send


class EagerStart:
    """A coroutine suspended at its first real ``await``: awaiting this continues it.

    Await it once, from one task. That task first waits on exactly what the
    coroutine yielded when it suspended (``asyncio.Task`` handles it: a future
    flagged ``_asyncio_future_blocking`` is waited on, a bare ``yield`` such as
    ``asyncio.sleep(0)``'s gives up one loop iteration), then resumes the
    coroutine with ``send``, or with ``throw`` for the future's exception or a
    cancellation of the awaiting task: the coroutine sees what it would see in a
    task of its own. The awaiting task gets the coroutine's result or exception.
    """

    __slots__ = ("_context", "_coro", "_error", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], context: Context, yielded: Any) -> None:
        self._coro = coro
        self._context = context
        self._yielded = yielded
        self._error: BaseException | None = None

    def throw(self, error: BaseException) -> None:
        """Deliver ``error`` at the coroutine's first ``await`` instead of waiting there.

        For a cancellation that reached the continuing task before it could
        start waiting: a task of the coroutine's own would have been waiting on
        the yielded future already and delivered it there.
        """
        self._error = error

    def __await__(self) -> Generator[Any, Any, Any]:
        """Continue the coroutine (PEP 380's ``yield from``, entered after its first step)."""
        coro, run = self._coro, self._context.run
        yielded, error = self._yielded, self._error
        self._yielded = self._error = None
        while True:
            sent = None
            if error is None:
                try:
                    sent = yield yielded
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as exc:  # the awaited future failed, or a cancellation
                    error = exc
            try:
                yielded = run(coro.send, sent) if error is None else run(coro.throw, error)
            except StopIteration as stop:
                return stop.value
            error = None


class EagerStarter:
    """Starts coroutines eagerly from one task: the one that creates it.

    A hot loop makes one and keeps it: it looks the loop and the current task up
    once (~0.25 us a start otherwise, on CPython 3.11).
    """

    __slots__ = ("_caller", "_loop")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        caller = asyncio.current_task(self._loop)
        if caller is None:
            raise RuntimeError("an EagerStarter must be created in a task")
        self._caller = caller

    def start(
        self, coro: Coroutine[Any, Any, Any], task: asyncio.Task[Any] | None = None
    ) -> EagerStart | None:
        """Run ``coro`` until it first suspends; ``None`` when it finished without suspending.

        It runs in a copy of the current context, like a new task. ``task``,
        when given, is the task that will await the result: it is the current
        task while ``coro`` runs here. An exception ``coro`` raises before
        suspending propagates; its return value is dropped. Call it from the
        task that created the starter.
        """
        context = copy_context()
        if task is None:
            try:
                if coro.__class__ is CoroutineType:
                    yielded = context.run(_send, coro, None)
                else:
                    yielded = context.run(coro.send, None)
            except StopIteration:
                return None
            return EagerStart(coro, context, yielded)
        loop, caller = self._loop, self._caller
        # asyncio's own hooks for task implementations (in asyncio.__all__ since 3.7),
        # what 3.12's eager tasks do on their first step.
        try:
            _leave_task(loop, caller)
        except RuntimeError:
            coro.close()
            raise RuntimeError(
                f"EagerStarter.start() must be called from the task that created it ({caller!r})"
            ) from None
        _enter_task(loop, task)
        try:
            if coro.__class__ is CoroutineType:
                yielded = context.run(_send, coro, None)
            else:
                yielded = context.run(coro.send, None)
        except StopIteration:
            return None
        finally:
            _leave_task(loop, task)
            _enter_task(loop, caller)
        return EagerStart(coro, context, yielded)
