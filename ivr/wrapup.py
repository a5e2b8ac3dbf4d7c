"""After-call work: an advocate who ends a call is in wrap-up for a while.

When the time is up the advocate becomes available again, which is what
offers them the next waiting call (the matcher runs inside that state
change). The advocate can end wrap-up early through the API; a timer that
fires after that finds the advocate no longer in wrap-up and does nothing.
"""

from __future__ import annotations

import asyncio
import logging

from ivr.tasks import TaskSet
from routing.advocates import AdvocateState
from routing.errors import InvalidTransition, RoutingError
from routing.store import RoutingStore

log = logging.getLogger(__name__)


class WrapUpTimers:
    def __init__(self, store: RoutingStore, tasks: TaskSet, seconds: float) -> None:
        self._store = store
        self._tasks = tasks
        self._seconds = seconds
        self._timers: dict[str, asyncio.Task[None]] = {}

    def start(self, advocate_id: str, seconds: float | None = None) -> None:
        self.cancel(advocate_id)
        if self._tasks.closed:
            # The engine is stopping: the next engine resumes this wrap-up
            # from Redis (resume below), so the advocate is not stuck in it.
            return
        self._timers[advocate_id] = self._tasks.spawn(self._end(advocate_id, self._seconds if seconds is None
                                                                else seconds), name=f"wrap-up-{advocate_id}")

    async def resume(self, now_ms: int) -> None:
        """At start-up: wrap-ups a stopped engine left running end on time."""
        for advocate in await self._store.list_advocates():
            if advocate.state is AdvocateState.WRAP_UP:
                left = self._seconds - (now_ms - advocate.state_since) / 1000
                self.start(advocate.id, max(0.0, left))

    def cancel(self, advocate_id: str) -> None:
        timer = self._timers.pop(advocate_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _end(self, advocate_id: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._timers.pop(advocate_id, None)
        advocate = await self._store.get_advocate(advocate_id)
        if advocate is None or advocate.state is not AdvocateState.WRAP_UP:
            return
        try:
            await self._store.set_state(advocate_id, AdvocateState.AVAILABLE)
            log.info("advocate %s: wrap-up over, available", advocate_id)
        except InvalidTransition:
            pass  # changed state meanwhile
        except RoutingError:
            log.error("advocate %s: could not end wrap-up (Redis unavailable)", advocate_id)
