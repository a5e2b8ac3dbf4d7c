"""TaskSet: every background task owned, its failure logged, its end awaited."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

from ivr.tasks import TaskSet

from .waiting import TIMEOUT_S


async def test_finished_tasks_leave_the_set() -> None:
    tasks = TaskSet()
    done = asyncio.Event()

    async def work() -> int:
        await done.wait()
        return 7

    task = tasks.spawn(work(), name="work")
    assert len(tasks) == 1
    done.set()

    assert await asyncio.wait_for(task, TIMEOUT_S) == 7
    # The set's done-callback was registered first, so it has already run.
    assert len(tasks) == 0


async def test_a_failing_task_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet("engine")

    async def crash() -> None:
        raise RuntimeError("lost otherwise")

    task = tasks.spawn(crash(), name="call:1741944413.42")
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(task, TIMEOUT_S)

    [record] = [r for r in caplog.records if r.name == "ivr.tasks"]
    assert record.levelno == logging.ERROR
    assert "call:1741944413.42" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_close_cancels_and_awaits_every_task(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet()
    cleaned_up: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append(name)

    for name in ("a", "b", "c"):
        tasks.spawn(forever(name), name=name)

    await asyncio.wait_for(tasks.close(), TIMEOUT_S)

    assert sorted(cleaned_up) == ["a", "b", "c"]
    assert len(tasks) == 0
    assert not [r for r in caplog.records if r.name == "ivr.tasks"]  # a cancel is not a failure


async def test_spawn_after_close_is_refused_without_leaking_the_coroutine() -> None:
    tasks = TaskSet()
    await tasks.close()
    ran = []

    async def late() -> None:
        ran.append(True)

    coro = late()
    with pytest.raises(RuntimeError, match="after close"):
        tasks.spawn(coro, name="late")

    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # so no "never awaited" warning
    assert ran == []
