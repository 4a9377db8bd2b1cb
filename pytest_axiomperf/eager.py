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
import types
from asyncio import _enter_task, _leave_task
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context, copy_context
from typing import Any, cast

__all__ = ["EagerStart", "EagerStarter"]

#: What a runner yields when the coroutine it was running has finished.
_DONE: Any = object()


def _run_each(result: list[Any]) -> Generator[Any, Any, None]:
    """A runner: runs each coroutine sent to it to its end, through ``yield from``.

    ``send(coro)`` returns ``_DONE`` once ``coro`` has finished (its value in
    ``result[0]``), or what ``coro`` yielded when it suspended: the runner then
    stays inside ``coro`` (sends and throws reach it) until it finishes, and
    only then takes the next one. Why not ``coro.send(None)``: a coroutine that
    finishes inside ``yield from`` raises no ``StopIteration`` out here, which
    saves ~0.1 us a start (CPython 3.11), most of what finishing costs.
    """
    coro = yield
    while True:
        result[0] = yield from coro
        coro = yield _DONE


# types.coroutine lets a generator ``yield from`` a native coroutine; typed as a generator.
_runner = cast(
    "Callable[[list[Any]], types.GeneratorType[Any, Any, None]]", types.coroutine(_run_each)
)


class _Runner:
    """A primed runner, its ``send`` looked up once, and the box for results."""

    __slots__ = ("gen", "result", "send")

    def __init__(self) -> None:
        self.result: list[Any] = [None]
        self.gen = _runner(self.result)
        self.gen.send(None)  # to its first yield: ready for a coroutine
        self.send = self.gen.send


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

    __slots__ = ("_context", "_error", "_runner", "_yielded")

    def __init__(self, runner: _Runner, context: Context, yielded: Any) -> None:
        self._runner = runner  # inside the coroutine, which it drives from here on
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
        runner, run = self._runner, self._context.run
        gen = runner.gen
        yielded, error = self._yielded, self._error
        self._yielded = self._error = None
        while True:
            sent = None
            if error is None:
                try:
                    sent = yield yielded
                except GeneratorExit:
                    gen.close()  # closes the coroutine inside it
                    raise
                except BaseException as exc:  # the awaited future failed, or a cancellation
                    error = exc
            yielded = run(gen.send, sent) if error is None else run(gen.throw, error)
            if yielded is _DONE:
                result, runner.result[0] = runner.result[0], None
                return result
            error = None


class EagerStarter:
    """Starts coroutines eagerly from one task: the one that creates it.

    A hot loop makes one and keeps it: it looks the loop and the current task up
    once (~0.25 us a start otherwise, on CPython 3.11), and keeps a runner (see
    ``_run_each``) until a coroutine suspends in it or raises through it.
    """

    __slots__ = ("_caller", "_loop", "_runner")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        caller = asyncio.current_task(self._loop)
        if caller is None:
            raise RuntimeError("an EagerStarter must be created in a task")
        self._caller = caller
        self._runner = _Runner()

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
        runner = self._runner
        loop, caller = self._loop, self._caller
        if task is None:
            if runner.gen.gi_running:  # called from a coroutine this starter is running
                runner = _Runner()
        else:
            # asyncio's own hooks for task implementations (in asyncio.__all__ since
            # 3.7), what 3.12's eager tasks do on their first step.
            try:
                _leave_task(loop, caller)
            except RuntimeError:
                coro.close()
                raise RuntimeError(
                    "EagerStarter.start() must be called from the task that created it "
                    f"({caller!r})"
                ) from None
            _enter_task(loop, task)
        try:
            yielded = context.run(runner.send, coro)
        except BaseException:
            self._runner = _Runner()  # the exception ended this one
            raise
        finally:
            if task is not None:
                _leave_task(loop, task)
                _enter_task(loop, caller)
        if yielded is _DONE:
            runner.result[0] = None  # dropped: not kept alive until the next start
            return None
        self._runner = _Runner()  # this one stays inside the suspended coroutine
        return EagerStart(runner, context, yielded)
