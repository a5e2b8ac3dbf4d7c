"""Ownership of the engine's background tasks.

asyncio keeps only a weak reference to a task, and an exception in a task
nobody awaits is reported late or never. Every background task of the
engine is spawned through a ``TaskSet``, which keeps it alive, logs its
failure with its name the moment it ends, and cancels it at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class TaskSet:
    def __init__(self, name: str = "tasks") -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Start ``coro`` as a task owned by this set."""
        if self._closed:
            coro.close()  # never started: close it so Python does not warn it was never awaited
            raise RuntimeError(f"{self._name}: cannot spawn {name!r} after close()")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: task %s failed", self._name, task.get_name(), exc_info=exc)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Cancel every task and wait, at most ``timeout_s``, until all have ended.

        A task that swallows its cancellation would otherwise hold shutdown
        forever; it is named in the log instead, and shutdown goes on.
        """
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: already logged by _finished
        if pending:
            log.error("%s: %d tasks did not stop within %.0f s: %s", self._name, len(pending), timeout_s,
                      ", ".join(sorted(t.get_name() for t in pending)))
