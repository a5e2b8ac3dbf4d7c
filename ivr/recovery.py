"""Routing survives Redis restarting, or being out of reach for a while.

Asterisk holds the calls, not Redis: while Redis is gone, a bridged call goes
on untouched, a caller in the menu finishes it, and a new call that reaches
the queue goes to the dialplan fallback (the backup destination: a human).
Callers already waiting stay on hold, hearing their music, and keep their
place: a Redis restart takes a second or two, and sending every waiting
caller to the backup line at once would swamp it and cost them their turn.
Routing cannot go on without Redis, though, so if it stays away longer than
``outage_hold_s`` they go to the backup destination after all (as a caller
nobody could serve within the maximum wait does).

``RoutingRecovery`` probes Redis every ``probe_s`` (a task of the engine's
TaskSet). When Redis answers again it rebuilds:

1. the roster is synced from the settings (a Redis that lost its data has no
   advocates at all);
2. if Redis lost its data (its epoch token is gone or new), every advocate is
   put back in the state this engine last read (available with their place
   in line, away, wrap-up; one who was ringing or on a call of another engine
   goes to wrap-up until that engine restores them or their wrap-up ends),
   except those ringing for or talking with a call this engine holds: its
   last read may be a probe old, from before that ring, and put back as
   available such an advocate would be offered a second call before their
   own call claims them in step 3. For the same reason the available are put
   back last, two probes later: by then every engine has rebuilt, and an
   advocate another engine's call rang since this engine's last read has been
   claimed by that call (the script leaves alone anyone no longer offline);
3. every call this engine holds writes itself back (``RoutingRestored``):
   waiting calls are enqueued again with their original arrival, calls
   ringing, connected or escalating claim their advocates again;
4. calls of this engine still in play in Redis whose channel is gone (they
   ended while Redis could not be told) are ended there, so that no advocate
   is left ringing or on a call that no longer exists. This is the engine's
   sweep of ghost calls (``ivr.adoption``), run at once rather than at its
   next turn; it also runs soon after the ARI events reconnect, when calls
   that failed to end themselves while Asterisk was away are found.

Offers the matcher publishes while the offers listener resubscribes are not
lost: the listener sweeps for them once subscribed (``ivr.offers``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, replace

from ivr.call_states import RoutingOutage, RoutingRestored
from ivr.wrapup import WrapUpTimers
from routing.advocates import AdvocateState
from routing.errors import RoutingError, UnknownAdvocate
from routing.restore import AdvocateMark, RestoreStore

log = logging.getLogger(__name__)

_S = AdvocateState


@dataclass(frozen=True)
class RecoveryConfig:
    owner: str  # this engine's instance id
    probe_s: float  # how often Redis is asked whether it is there and whether it lost its data
    outage_hold_s: float  # how long waiting callers stay on hold without Redis


# -- decisions ------------------------------------------------------------------


def marks_to_restore(marks: Iterable[AdvocateMark], now_ms: int,
                     claimed: Collection[str] = ()) -> list[AdvocateMark]:
    """What to put back, after Redis lost its data, from the advocates' last known states.

    Offline advocates stay as the roster sync made them, and so do the
    `claimed`, whose call this engine holds: the call puts them back on it
    (``RoutingRestored``), whatever this older read says. One who was ringing
    or on a call goes to wrap-up from now: if the call is another engine's,
    that engine puts them back on it; if it ended meanwhile, their wrap-up
    ends as any other would. Never available: that could offer them a second call.
    """
    restored = []
    for mark in marks:
        if mark.advocate_id in claimed:
            continue
        if mark.state in (_S.AVAILABLE, _S.AWAY, _S.WRAP_UP):
            restored.append(mark)
        elif mark.state in (_S.RINGING, _S.ON_CALL):
            restored.append(replace(mark, state=_S.WRAP_UP, state_since=now_ms))
    return restored


# -- the task -------------------------------------------------------------------


class RoutingRecovery:
    def __init__(self, config: RecoveryConfig, *, restore: RestoreStore, held: Callable[[], Collection[str]],
                 claimed: Callable[[], Collection[str]],
                 post: Callable[[str, object], bool], sync_roster: Callable[[], Awaitable[None]],
                 wrap_up: WrapUpTimers, clear_ghosts: Callable[[], Awaitable[None]],
                 on_redis: Callable[[bool], None] = lambda up: None,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._restore = restore
        self._held = held  # keys of the calls this engine holds now
        self._claimed = claimed  # advocates ringing for or talking with those calls now
        self._post = post  # into a call actor's mailbox
        self._sync_roster = sync_roster
        self._wrap_up = wrap_up
        self._clear_ghosts = clear_ghosts  # one pass of the engine's sweep of calls without a channel
        self._on_redis = on_redis
        self._clock = clock
        self._epoch: str | None = None
        self._marks: list[AdvocateMark] = []  # every advocate, as last read
        self._down_since: float | None = None
        self._outage_told = False
        self._sweep_at: float | None = None
        # Available advocates put back once every engine's calls have claimed theirs: _rebuild.
        self._available_later: dict[str, AdvocateMark] = {}
        self._available_at = 0.0
        self.rebuilds = 0

    @property
    def redis_up(self) -> bool:
        return self._down_since is None

    @property
    def advocates_seen(self) -> dict[str, AdvocateState]:
        """Each advocate's state as last read: what a rebuild would restore."""
        return {mark.advocate_id: mark.state for mark in self._marks}

    async def run(self) -> None:
        """Probe, rebuild when Redis returns; until cancelled."""
        while True:
            await self.probe()
            await asyncio.sleep(self._config.probe_s)

    async def probe(self) -> None:
        now = self._clock()
        try:
            epoch, marks = await self._restore.presence()
            if epoch is None:
                epoch = await self._restore.claim_epoch(secrets.token_hex(8))
        except RoutingError as exc:
            self._unreachable(now, exc)
            return
        lost = self._epoch is not None and epoch != self._epoch
        if self._down_since is not None or lost:
            try:
                await self._rebuild(lost)
            except RoutingError as exc:
                self._unreachable(now, exc)
                return
        else:
            # Only a Redis that kept its data is copied: after a loss, the
            # copy from before is what the rebuild needs.
            self._marks = marks
        self._epoch = epoch
        if self._available_later and now >= self._available_at:
            await self._restore_available()
        if self._sweep_at is not None and now >= self._sweep_at:
            self._sweep_at = None
            await self._clear_ghosts()

    def _unreachable(self, now: float, exc: RoutingError) -> None:
        if self._down_since is None:
            self._down_since = now
            self._on_redis(False)
            log.error("redis unreachable (%s): new calls go to the backup destination, waiting calls are held "
                      "for %.0f s", type(exc).__name__, self._config.outage_hold_s)
        elif not self._outage_told and now - self._down_since >= self._config.outage_hold_s:
            self._outage_told = True
            held = list(self._held())
            log.error("redis unreachable for %.0f s: %d held calls; waiting callers go to the backup destination",
                      now - self._down_since, len(held))
            for key in held:
                self._post(key, RoutingOutage())

    async def _rebuild(self, lost: bool) -> None:
        now_ms = int(self._clock() * 1000)
        await self._sync_roster()
        restored = 0
        if lost:
            marks = marks_to_restore(self._marks, now_ms, self._claimed())
            self._available_later.update((m.advocate_id, m) for m in marks if m.state is _S.AVAILABLE)
            self._available_at = self._clock() + 2 * self._config.probe_s
            restored = await self._restore_marks([m for m in marks if m.state is not _S.AVAILABLE])
            # Wrap-ups restored above end on time, whichever engine ran them.
            await self._wrap_up.resume(now_ms)
        held = list(self._held())
        for key in held:
            self._post(key, RoutingRestored())
        outage_s = 0.0 if self._down_since is None else self._clock() - self._down_since
        self._down_since = None
        self._outage_told = False
        self._on_redis(True)
        self.rebuilds += 1
        log.warning("redis back after %.1f s%s: roster synced, %d advocates restored, %d held calls written back",
                    outage_s, " with its data lost" if lost else "", restored, len(held))
        await self._clear_ghosts()

    async def _restore_marks(self, marks: Iterable[AdvocateMark]) -> int:
        restored = 0
        for mark in marks:
            try:
                await self._restore.restore_advocate(mark)
                restored += 1
            except UnknownAdvocate:
                pass  # no longer in the roster
        return restored

    async def _restore_available(self) -> None:
        marks = list(self._available_later.values())
        try:
            restored = await self._restore_marks(marks)
        except RoutingError as exc:
            log.error("could not put the available advocates back (%s); at the next probe", type(exc).__name__)
            return
        self._available_later.clear()
        log.warning("%d advocates put back available after the rebuild", restored)

    def sweep_soon(self, delay_s: float = 2.0) -> None:
        """Sweep for calls without a channel at the first probe after
        `delay_s`: after the ARI events reconnected, once the calls found gone
        have had time to end themselves."""
        self._sweep_at = self._clock() + delay_s
