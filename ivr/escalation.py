"""Crisis escalation: ring the on-call supervisors, all at once.

Part of a call actor, like ``ivr.interpreting``: it runs in the actor's
worker. The ``escalate`` script has already taken the call out of its queue
and claimed the supervisors, so the matcher cannot hand them another call
while their phones ring. The first to answer takes the call; the others are
hung up and go back to the state they were in. If nobody answers within
``supervisor_ring_s``, or every phone refuses, the actor sends the caller to
the backup destination.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ivr.ari.errors import AriError, AriNotFound
from ivr.services import CallServices
from ivr.timers import Timers
from routing.errors import RoutingError, StaleOffer
from routing.queues import Offer

log = logging.getLogger(__name__)

TIMER = "escalation"


@dataclass(frozen=True)
class Supervisor:
    advocate_id: str
    endpoint: str


class Escalation:
    def __init__(self, call_key: str, queue: str, services: CallServices, timers: Timers) -> None:
        self.call_key = call_key
        self.queue = queue
        self.s = services
        self.timers = timers
        self.rung: tuple[Supervisor, ...] = ()
        self.legs: dict[str, Supervisor] = {}  # ringing legs still up

    def owns(self, channel_id: str) -> bool:
        return channel_id in self.legs

    async def start(self) -> bool:
        """Claim and ring the supervisors. False if the call was offered
        meanwhile (nothing changed); True otherwise, even with nobody to ring:
        then ``ringing`` is empty and the actor goes straight to the backup."""
        claimed = await self.s.store.escalate(self.call_key)  # RoutingError goes to the actor
        if claimed is None:
            return False
        self.rung = tuple(Supervisor(a, e) for a, e in claimed)
        log.info("call %s: crisis escalation to %d supervisor(s)", self.call_key, len(self.rung))
        if self.rung:
            self.timers.start(TIMER, self.s.config.supervisor_ring_s)
        for n, supervisor in enumerate(self.rung, start=1):
            leg = f"{self.call_key}-sup{n}"
            self.legs[leg] = supervisor
            self.s.dispatcher.route(leg, self.call_key)
            try:
                await self.s.rest.originate(
                    supervisor.endpoint, app=self.s.config.app, app_args=f"leg,{self.call_key}", channel_id=leg,
                    caller_id=f'"Hotline CRISIS" <{self.s.config.toll_free}>',
                    timeout_s=int(self.s.config.supervisor_ring_s) + 5)
                self.s.metrics.advocate_rings.inc()
            except AriError as exc:
                log.warning("call %s: ringing supervisor %s failed (%s)", self.call_key, supervisor.advocate_id,
                            type(exc).__name__)
                self._drop(leg)
        return True

    @property
    def ringing(self) -> bool:
        return bool(self.legs)

    def ringing_ids(self) -> list[str]:
        """The supervisors whose phones still ring."""
        return [s.advocate_id for s in self.legs.values()]

    async def answered(self, leg: str) -> Offer | None:
        """A supervisor picked up: theirs is the call, unless it was too late."""
        supervisor = self.legs.get(leg)
        if supervisor is None:
            return None
        self.timers.cancel(TIMER)
        try:
            await self.s.store.escalation_settled(self.call_key, supervisor.advocate_id,
                                                  [s.advocate_id for s in self.rung])
        except StaleOffer:
            log.warning("call %s: supervisor %s answered too late", self.call_key, supervisor.advocate_id)
            await self._hang_up(leg)
            return None
        except RoutingError:
            # Redis is gone but a person answered a crisis call: connect them.
            log.error("call %s: could not record supervisor %s's answer; connecting anyway", self.call_key,
                      supervisor.advocate_id)
        del self.legs[leg]
        await self._hang_up_all()
        for other in self.rung:
            if other is not supervisor:
                await self.s.wrap_up.start_current(other.advocate_id)  # see give_up
        return Offer(call_id=self.call_key, advocate_id=supervisor.advocate_id, endpoint=supervisor.endpoint,
                     queue=self.queue, owner=self.s.config.owner)

    def leg_gone(self, leg: str) -> None:
        """A supervisor's phone refused, was busy or stopped ringing."""
        if leg in self.legs:
            log.info("call %s: supervisor %s did not take the crisis call", self.call_key,
                     self.legs[leg].advocate_id)
            self._drop(leg)

    async def give_up(self) -> None:
        """Nobody answered (or the caller left): every supervisor goes back."""
        self.timers.cancel(TIMER)
        await self._hang_up_all()
        try:
            await self.s.store.escalation_settled(self.call_key, None, [s.advocate_id for s in self.rung])
        except RoutingError:
            log.error("call %s: could not release the supervisors in Redis", self.call_key)
        for supervisor in self.rung:
            # One who was in wrap-up may have missed the end of it while
            # ringing: a fresh wrap-up timer ends it.
            await self.s.wrap_up.start_current(supervisor.advocate_id)

    async def _hang_up_all(self) -> None:
        for leg in list(self.legs):
            await self._hang_up(leg)
            self._drop(leg)

    def _drop(self, leg: str) -> None:
        self.legs.pop(leg, None)
        self.s.dispatcher.unroute(leg)

    async def _hang_up(self, channel_id: str) -> None:
        try:
            await self.s.rest.hangup(channel_id)
        except AriNotFound:
            pass
        except AriError as exc:
            # Asterisk out of reach: the leg dies with it; the supervisors are
            # released in Redis all the same.
            log.warning("call %s: could not hang up %s (%s)", self.call_key, channel_id, type(exc).__name__)
