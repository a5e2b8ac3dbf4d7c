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
   goes to wrap-up until that engine restores them or their wrap-up ends);
3. every call this engine holds writes itself back (``RoutingRestored``):
   waiting calls are enqueued again with their original arrival, calls
   ringing, connected or escalating claim their advocates again;
4. calls of this engine still in play in Redis whose channel is gone (they
   ended while Redis could not be told) are ended there, so that no advocate
   is left ringing or on a call that no longer exists. This sweep also runs
   every ``sweep_s``, whatever happened.

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

from ivr.ari.errors import AriError
from ivr.ari.rest import AriRest
from ivr.call_states import RoutingOutage, RoutingRestored
from ivr.wrapup import WrapUpTimers
from routing.advocates import AdvocateState
from routing.errors import RoutingError, StaleOffer, UnknownAdvocate
from routing.restore import AdvocateMark, OwnedCall, RestoreStore
from routing.store import RoutingStore

log = logging.getLogger(__name__)

_S = AdvocateState


@dataclass(frozen=True)
class RecoveryConfig:
    owner: str  # this engine's instance id
    probe_s: float  # how often Redis is asked whether it is there, and the same
    outage_hold_s: float  # how long waiting callers stay on hold without Redis
    sweep_s: float  # how often calls left in Redis without a channel are looked for


# -- decisions ------------------------------------------------------------------


def marks_to_restore(marks: Iterable[AdvocateMark], now_ms: int) -> list[AdvocateMark]:
    """What to put back, after Redis lost its data, from the advocates' last known states.

    Offline advocates stay as the roster sync made them. One who was ringing
    or on a call goes to wrap-up from now: if the call is another engine's,
    that engine puts them back on it; if it ended meanwhile, their wrap-up
    ends as any other would. Never available: that could offer them a second call.
    """
    restored = []
    for mark in marks:
        if mark.state in (_S.AVAILABLE, _S.AWAY, _S.WRAP_UP):
            restored.append(mark)
        elif mark.state in (_S.RINGING, _S.ON_CALL):
            restored.append(replace(mark, state=_S.WRAP_UP, state_since=now_ms))
    return restored


@dataclass(frozen=True)
class EndInRedis:
    """How a call left in play in Redis without a channel is ended there."""

    call_id: str
    action: str  # abandon | offer_cancelled | call_ended | escalation_settled
    advocates: tuple[str, ...]


def orphan_endings(owned: Iterable[OwnedCall], held: Collection[str], live: Collection[str]) -> list[EndInRedis]:
    """Calls of this engine that Redis still has in play although the engine
    does not hold them and their channel is gone.

    A call whose channel is still up is left alone even if this engine does
    not hold it: it went on in the dialplan (fallback), or it waits for an
    engine restarted under the same id to adopt it.
    """
    endings = []
    for call in owned:
        if call.call_id in held or call.call_id in live:
            continue
        match call.state:
            case "waiting":
                endings.append(EndInRedis(call.call_id, "abandon", ()))
            case "offered" if call.advocate:
                endings.append(EndInRedis(call.call_id, "offer_cancelled", (call.advocate,)))
            case "bridged" if call.advocate:
                endings.append(EndInRedis(call.call_id, "call_ended", (call.advocate,)))
            case "escalating":
                endings.append(EndInRedis(call.call_id, "escalation_settled", call.supervisors))
    return endings


# -- the task -------------------------------------------------------------------


class RoutingRecovery:
    def __init__(self, config: RecoveryConfig, *, store: RoutingStore, restore: RestoreStore, rest: AriRest,
                 held: Callable[[], Collection[str]], post: Callable[[str, object], bool],
                 sync_roster: Callable[[], Awaitable[None]], wrap_up: WrapUpTimers,
                 on_redis: Callable[[bool], None] = lambda up: None,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._store = store
        self._restore = restore
        self._rest = rest
        self._held = held  # keys of the calls this engine holds now
        self._post = post  # into a call actor's mailbox
        self._sync_roster = sync_roster
        self._wrap_up = wrap_up
        self._on_redis = on_redis
        self._clock = clock
        self._epoch: str | None = None
        self._marks: list[AdvocateMark] = []  # every advocate, as last read
        self._down_since: float | None = None
        self._outage_told = False
        self._next_sweep = clock() + config.sweep_s
        self.rebuilds = 0

    @property
    def redis_up(self) -> bool:
        return self._down_since is None

    @property
    def advocates_seen(self) -> dict[str, AdvocateState]:
        """Each advocate's state as last read: what a rebuild would restore."""
        return {mark.advocate_id: mark.state for mark in self._marks}

    async def run(self) -> None:
        """Probe, rebuild when Redis returns, sweep; until cancelled."""
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
        if now >= self._next_sweep:
            self._next_sweep = now + self._config.sweep_s
            await self.sweep()

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
            for mark in marks_to_restore(self._marks, now_ms):
                try:
                    await self._restore.restore_advocate(mark)
                    restored += 1
                except UnknownAdvocate:
                    pass  # no longer in the roster
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
        await self.sweep()

    def sweep_soon(self, delay_s: float = 2.0) -> None:
        """Sweep at the next probe after `delay_s`: after the ARI events
        reconnected, once the calls found gone have had time to end themselves."""
        self._next_sweep = min(self._next_sweep, self._clock() + delay_s)

    async def sweep(self) -> None:
        """End in Redis the calls of this engine whose channel is gone."""
        try:
            live = {channel.id for channel in await self._rest.list_channels()}
        except AriError:
            return  # without Asterisk's list, a live call could be taken for a gone one
        try:
            owned = await self._restore.owned_calls(self._config.owner)
            for ending in orphan_endings(owned, self._held(), live):
                if ending.call_id in self._held():
                    continue  # adopted meanwhile
                await self._end(ending)
        except RoutingError as exc:
            log.warning("sweep of calls left in Redis interrupted (%s)", type(exc).__name__)

    async def _end(self, ending: EndInRedis) -> None:
        log.warning("call %s: still %s in Redis but its channel is gone; ending it there", ending.call_id,
                    ending.action)
        try:
            match ending.action:
                case "abandon":
                    await self._store.abandon(ending.call_id)
                case "offer_cancelled":
                    await self._store.offer_cancelled(ending.call_id, ending.advocates[0])
                case "call_ended":
                    await self._store.call_ended(ending.call_id, ending.advocates[0])
                    self._wrap_up.start(ending.advocates[0])
                case "escalation_settled":
                    await self._store.escalation_settled(ending.call_id, None, ending.advocates)
                    for advocate_id in ending.advocates:
                        self._wrap_up.start(advocate_id)
        except StaleOffer:
            pass  # settled meanwhile
