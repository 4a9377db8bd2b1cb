"""EagerStarter: a coroutine's first step in the caller, the rest in a task, as in a task."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import sys
import types
from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest
import pytest_asyncio

from pytest_axiomperf.eager import EagerStart, EagerStarter

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def finish(started: EagerStart) -> Any:
    """A task's coroutine that continues ``started`` (what a handler slot's task does)."""
    return await started


@pytest_asyncio.fixture
async def idle_task() -> AsyncIterator[asyncio.Task[None]]:
    """A task that is not running: one to continue an eagerly started coroutine."""
    task = asyncio.create_task(asyncio.sleep(3600))
    yield task
    task.cancel()


@pytest.mark.asyncio
async def test_a_coroutine_that_never_suspends_runs_to_its_end_without_a_task() -> None:
    steps: list[str] = []

    async def sync() -> int:
        steps.append("ran")
        return 1

    tasks = asyncio.all_tasks()
    assert EagerStarter().start(sync()) is None
    assert steps == ["ran"]
    assert asyncio.all_tasks() == tasks


@pytest.mark.asyncio
@pytest.mark.parametrize("given", [False, True], ids=["no task", "task"])
async def test_a_generator_based_coroutine_is_driven_like_a_native_one(
    given: bool, idle_task: asyncio.Task[None]
) -> None:
    """Not only native coroutines: any coroutine object the runner can ``yield from``."""
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()

    @types.coroutine
    def legacy() -> Generator[Any, Any, int]:
        got = yield from gate
        return got + 1

    coro = legacy()
    assert not inspect.iscoroutine(coro)  # a generator, not a native coroutine
    started = EagerStarter().start(coro, idle_task if given else None)
    assert started is not None
    gate.set_result(41)
    assert await asyncio.wait_for(finish(started), 5) == 42


@pytest.mark.asyncio
async def test_an_exception_before_the_first_suspension_reaches_the_caller() -> None:
    async def broken() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        EagerStarter().start(broken())


@pytest.mark.asyncio
async def test_suspended_on_a_future_it_waits_for_that_future_then_goes_on() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    steps: list[str] = []

    async def waits() -> int:
        steps.append("before")
        value = await gate
        steps.append(f"got {value}")
        return value * 2

    started = EagerStarter().start(waits())
    assert started is not None and steps == ["before"]
    task = asyncio.create_task(finish(started))
    for _ in range(3):  # the task waits on the future: turns of the loop change nothing
        await asyncio.sleep(0)
    assert steps == ["before"] and not task.done()
    gate.set_result(21)
    assert await asyncio.wait_for(task, 1) == 42
    assert steps == ["before", "got 21"]


@pytest.mark.asyncio
async def test_one_starter_runs_many_coroutines_whatever_each_one_does() -> None:
    """Finishing, raising and suspending coroutines, interleaved, from one starter:
    each gets its own result, exception and context, however the previous one ended."""
    loop = asyncio.get_running_loop()
    gates = [loop.create_future() for _ in range(3)]

    async def finishes(i: int) -> int:
        var.set(f"finishes {i}")
        return i

    async def raises(i: int) -> None:
        raise KeyError(i)

    async def waits(i: int) -> tuple[int, str]:
        var.set(f"waits {i}")
        got = await gates[i]
        return got, var.get()

    starter = EagerStarter()
    suspended = []
    for i in range(3):
        assert starter.start(finishes(i)) is None
        with pytest.raises(KeyError):
            starter.start(raises(i))
        started = starter.start(waits(i))
        assert started is not None
        suspended.append(asyncio.create_task(finish(started)))
        assert starter.start(finishes(i)) is None
    assert var.get() == "unset"  # no coroutine's context is the caller's
    for i, gate in enumerate(gates):
        gate.set_result(i * 10)
    assert await asyncio.wait_for(asyncio.gather(*suspended), 5) == [
        (0, "waits 0"),
        (10, "waits 1"),
        (20, "waits 2"),
    ]


class Stop(BaseException):
    """Not an Exception: like KeyboardInterrupt, it must pass through untouched."""


@pytest.mark.asyncio
async def test_a_base_exception_before_suspending_propagates_and_the_starter_goes_on() -> None:
    async def stops() -> None:
        raise Stop

    async def finishes() -> str:
        return "after"

    starter = EagerStarter()
    with pytest.raises(Stop):
        starter.start(stops())
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[str] = loop.create_future()

    async def waits() -> str:
        return await gate

    assert starter.start(finishes()) is None
    started = starter.start(waits())
    assert started is not None
    gate.set_result("resumed")
    assert await asyncio.wait_for(finish(started), 5) == "resumed"


@pytest.mark.asyncio
async def test_a_start_from_inside_a_started_coroutine_runs_too() -> None:
    starter = EagerStarter()
    steps: list[str] = []

    async def inner() -> None:
        steps.append("inner")

    async def outer() -> None:
        steps.append("outer")
        assert starter.start(inner()) is None
        steps.append("outer again")

    assert starter.start(outer()) is None
    assert starter.start(inner()) is None  # the starter still works afterwards
    assert steps == ["outer", "inner", "outer again", "inner"]


@pytest.mark.asyncio
async def test_a_start_never_continued_closes_its_coroutine_when_dropped() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await gate
        finally:
            cleaned.append("finally ran")

    started = EagerStarter().start(waits())
    assert started is not None and cleaned == []
    del started
    gc.collect()
    assert cleaned == ["finally ran"]


@pytest.mark.asyncio
async def test_suspended_on_sleep_0_it_resumes_on_the_next_turn_of_the_loop() -> None:
    steps: list[int] = []

    async def yields() -> str:
        for i in range(3):
            steps.append(i)
            await asyncio.sleep(0)  # a bare yield, not a future
        return "done"

    started = EagerStarter().start(yields())
    assert started is not None and steps == [0]
    assert await asyncio.wait_for(asyncio.create_task(finish(started)), 1) == "done"
    assert steps == [0, 1, 2]


@pytest.mark.asyncio
async def test_exceptions_after_the_first_suspension_reach_the_coroutine_then_the_task() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    second: asyncio.Future[None] = loop.create_future()
    caught: list[str] = []

    async def fails() -> None:
        try:
            await first
        except KeyError as exc:  # the future's exception arrives at the await
            caught.append(repr(exc))
        await second
        raise ValueError("later")

    started = EagerStarter().start(fails())
    assert started is not None
    task = asyncio.create_task(finish(started))
    await asyncio.sleep(0)
    first.set_exception(KeyError("first"))
    await asyncio.sleep(0)
    second.set_result(None)
    with pytest.raises(ValueError, match="later"):
        await asyncio.wait_for(task, 1)
    assert caught == ["KeyError('first')"]


@pytest.mark.asyncio
async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def waits() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleaned up")

    started = EagerStarter().start(waits())
    assert started is not None
    task = asyncio.create_task(finish(started))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled", "cleaned up"]
    assert gate.cancelled()  # as a task of its own would have, it cancelled what it awaited


@pytest.mark.asyncio
async def test_throw_delivers_an_error_at_the_first_await_instead_of_waiting() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()

    async def waits() -> str:
        try:
            await gate
        except asyncio.CancelledError:
            return "saw the cancellation"
        return "waited"

    started = EagerStarter().start(waits())
    assert started is not None
    started.throw(asyncio.CancelledError())
    assert await finish(started) == "saw the cancellation"


@pytest.mark.asyncio
async def test_contextvars_are_the_coroutines_own_as_in_a_task() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def sets() -> None:
        seen.append(var.get())  # a copy of the caller's context
        var.set("before suspending")
        await gate
        seen.append(var.get())  # its own context, continued in the task
        var.set("after suspending")
        seen.append(var.get())

    var.set("caller's")
    started = EagerStarter().start(sets())
    assert started is not None
    assert var.get() == "caller's"  # nothing leaked back before the suspension
    task = asyncio.create_task(finish(started))
    var.set("caller changed it later")
    gate.set_result(None)
    await asyncio.wait_for(task, 1)
    assert seen == ["caller's", "before suspending", "after suspending"]
    assert var.get() == "caller changed it later"


@pytest.mark.asyncio
async def test_the_given_task_is_current_while_it_runs_and_the_caller_after(
    idle_task: asyncio.Task[None],
) -> None:
    caller = asyncio.current_task()
    seen: list[asyncio.Task[Any] | None] = []

    async def looks() -> None:
        seen.append(asyncio.current_task())

    async def looks_then_fails() -> None:
        seen.append(asyncio.current_task())
        raise ValueError("boom")

    assert EagerStarter().start(looks(), idle_task) is None
    assert asyncio.current_task() is caller
    with pytest.raises(ValueError):
        EagerStarter().start(looks_then_fails(), idle_task)
    assert asyncio.current_task() is caller
    assert EagerStarter().start(looks()) is None  # no task given: the caller's
    assert seen == [idle_task, idle_task, caller]


@pytest.mark.asyncio
async def test_a_starter_belongs_to_the_task_that_made_it(idle_task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[BaseException] = loop.create_future()
    steps: list[str] = []

    async def never() -> None:
        steps.append("ran")

    def from_a_callback() -> None:  # a loop callback runs in no task
        try:
            EagerStarter()
        except RuntimeError as exc:
            outcome.set_result(exc)

    loop.call_soon(from_a_callback)
    assert "created in a task" in str(await asyncio.wait_for(outcome, 1))

    starter = EagerStarter()

    async def elsewhere() -> None:
        starter.start(never(), idle_task)

    with pytest.raises(RuntimeError, match="from the task that created it"):
        await asyncio.create_task(elsewhere())
    assert steps == []


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
@pytest.mark.asyncio
async def test_a_timeout_entered_before_suspending_cancels_the_continuing_task_only() -> None:
    handoff: asyncio.Future[EagerStart] = asyncio.get_running_loop().create_future()

    async def times_out() -> str:
        try:
            if sys.version_info >= (3, 11):  # mypy checks for 3.10 (where this test is skipped)
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "not timed out"

    async def slot() -> Any:  # like a handler slot: idle until handed a started coroutine
        return await (await handoff)

    task = asyncio.create_task(slot())
    await asyncio.sleep(0)
    started = EagerStarter().start(times_out(), task)
    assert started is not None
    handoff.set_result(started)
    # Without the task swapped in, the timeout would have cancelled this test's task.
    assert await asyncio.wait_for(task, 1) == "timed out"
