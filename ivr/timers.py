"""Named one-shot timers that post into a call's own mailbox.

A timer never touches call state itself: when it fires it posts
``TimerFired`` to the actor, whose worker handles it in order with the
call's ARI events. Restarting or cancelling a timer bumps its token, so a
timer that fired just before being cancelled is recognised as stale.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from ivr.tasks import TaskSet


@dataclass(frozen=True)
class TimerFired:
    name: str
    token: int


class Timers:
    def __init__(self, owner: str, post: Callable[[object], None], tasks: TaskSet) -> None:
        self._owner = owner
        self._post = post
        self._tasks = tasks
        self._tokens = itertools.count(1)
        self._live: dict[str, tuple[int, asyncio.Task[None]]] = {}

    def start(self, name: str, seconds: float) -> None:
        self.cancel(name)
        token = next(self._tokens)
        task = self._tasks.spawn(self._fire(name, token, seconds), name=f"timer-{self._owner}-{name}")
        self._live[name] = (token, task)

    def cancel(self, name: str) -> None:
        live = self._live.pop(name, None)
        if live is not None:
            live[1].cancel()

    def cancel_all(self) -> None:
        for name in list(self._live):
            self.cancel(name)

    def is_current(self, fired: TimerFired) -> bool:
        live = self._live.get(fired.name)
        if live is None or live[0] != fired.token:
            return False
        del self._live[fired.name]
        return True

    async def _fire(self, name: str, token: int, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._post(TimerFired(name, token))
