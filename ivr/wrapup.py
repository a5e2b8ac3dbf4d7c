"""After-call work: an advocate who ends a call is in wrap-up for a while.

When the time is up the advocate becomes available again, which is what
offers them the next waiting call (the matcher runs inside that state
change). The advocate can end wrap-up early through the API, recording the
call's disposition; whichever comes first ends it (one Lua script,
``end_wrap_up``), and the other finds it over and does nothing, so after-call
work is measured once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ivr.tasks import TaskSet
from metrics.hotline import HotlineMetrics
from routing.advocates import AdvocateState, WrapUpEnded
from routing.errors import RoutingError, UnknownAdvocate
from routing.store import RoutingStore

log = logging.getLogger(__name__)

# The hotline's call categories, as published in its statistics: what the
# advocate records at the end of wrap-up. id -> label on the console. The
# ids are metric label values: a fixed set, never free text.
DISPOSITIONS = {
    "crisis": "Crisis",
    "tip": "Tip",
    "training_technical_assistance": "Training and technical assistance",
    "referral": "Referral",
    "general_information": "General information",
    "at_risk": "At-risk",
    "unrelated": "Unrelated",
}


def record_wrap_up_end(metrics: HotlineMetrics, ended: WrapUpEnded, disposition: str | None, now_ms: int) -> None:
    """Observe a wrap-up that has just ended (by the API or the timer)."""
    metrics.after_call_work_seconds.observe(max(0.0, (now_ms - ended.since_ms) / 1000))
    if disposition is not None:
        # The menu's call type of the call: bounded by the menu definition.
        metrics.dispositions.labels(call_type=ended.call_type or "unknown", disposition=disposition).inc()


# Seconds between tries to end a wrap-up that Redis did not take.
END_RETRY_S = 5.0


class WrapUpTimers:
    def __init__(self, store: RoutingStore, tasks: TaskSet, seconds: float, metrics: HotlineMetrics) -> None:
        self._store = store
        self._tasks = tasks
        self._seconds = seconds
        self._metrics = metrics
        self._timers: dict[str, asyncio.Task[None]] = {}

    def start(self, advocate_id: str, call_id: str | None = None, seconds: float | None = None) -> None:
        """Arm the wrap-up timer of `advocate_id`, after the call `call_id`."""
        self.cancel(advocate_id)
        if self._tasks.closed:
            # The engine is stopping: the next engine resumes this wrap-up
            # from Redis (resume below), so the advocate is not stuck in it.
            return
        self._timers[advocate_id] = self._tasks.spawn(
            self._end(advocate_id, call_id, self._seconds if seconds is None else seconds),
            name=f"wrap-up-{advocate_id}")

    async def start_current(self, advocate_id: str) -> None:
        """Arm the timer of the wrap-up `advocate_id` is in now, if any: a
        supervisor an escalation rang goes back to the state they were in,
        which may be an unfinished wrap-up. The timer is for that wrap-up's
        call, so that it cannot end the wrap-up of a later call (which
        another engine may hold)."""
        try:
            advocate = await self._store.get_advocate(advocate_id)
        except RoutingError:
            self.start(advocate_id)  # Redis cannot tell: any wrap-up they are in ends on time
            return
        if advocate is not None and advocate.state is AdvocateState.WRAP_UP:
            self.start(advocate_id, advocate.call_id)

    async def resume(self, now_ms: int) -> None:
        """At start-up: wrap-ups a stopped engine left running end on time."""
        for advocate in await self._store.list_advocates():
            if advocate.state is AdvocateState.WRAP_UP:
                left = self._seconds - (now_ms - advocate.state_since) / 1000
                self.start(advocate.id, advocate.call_id, max(0.0, left))

    def cancel(self, advocate_id: str) -> None:
        timer = self._timers.pop(advocate_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _end(self, advocate_id: str, call_id: str | None, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._timers.pop(advocate_id, None)
        try:
            # Only the wrap-up of this call: the advocate may have ended it
            # (API) and finished another call since.
            ended = await self._store.end_wrap_up(advocate_id, call_id=call_id)
        except UnknownAdvocate:
            return  # removed from the roster meanwhile
        except RoutingError:
            # Tried again until it ends: an advocate left in wrap-up takes no
            # call, and Redis may be slow for a moment without an outage
            # that ivr.recovery would see and resume the wrap-ups after.
            log.error("advocate %s: could not end wrap-up (Redis unavailable); again in %g s", advocate_id,
                      END_RETRY_S)
            self.start(advocate_id, call_id, END_RETRY_S)
            return
        if ended is not None:
            record_wrap_up_end(self._metrics, ended, None, int(time.time() * 1000))
            log.info("advocate %s: wrap-up over, available", advocate_id)
