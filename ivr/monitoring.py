"""A supervisor listening to, whispering to, or barging into a connected call.

Part of a call actor, like ``ivr.interpreting``: it runs in the actor's
worker, so the session is touched in order with the call's other events. The
API posts a ``MonitorRequest`` to the actor, which answers it at once
(accepted, or refused and why) and then carries it out. One supervisor at a
time monitors a call; they switch modes without being dialled again.

The supervisor's phone (their roster endpoint) is dialled into our Stasis
app. How each mode then reaches the call:

- listen and whisper: a snoop channel on the *advocate's* leg, bridged with
  the supervisor's leg in a bridge of their own. ``spy=both`` gives the
  supervisor what the advocate says (in) and what the advocate hears (out:
  the caller, and an interpreter when one is on). ``whisper=out`` mixes what
  the supervisor says into what is sent to the advocate, and into nothing
  else. In listen mode ``whisper=none``: whatever the supervisor's phone
  sends reaches nobody. Asterisk fixes a snoop's directions when it creates
  it, so a switch between the two replaces the snoop.
- barge: the supervisor's leg moves into the call's own mixing bridge.
  Conferencing is what that bridge does natively (each participant hears
  the mix of all the others), so caller, advocate and an interpreter hear
  the supervisor as any third party, and the bridge's channel list shows
  plainly who is on the call. A snoop whispering both ways on the
  advocate's leg would also reach the caller, but only as part of the
  advocate's voice, through a second audiohook on the leg the call hangs
  on. A Stasis channel moves between bridges with one addChannel: Asterisk
  takes it out of the bridge it was in.

Everything is audited (``ivr.monitoring.audit`` log lines, the Redis list
``Keys.supervisor_audit``, ``hotline_supervisor_actions_total``): who, when,
which call, which mode; a call is named by its id, never by a number.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from ivr.ari.errors import AriBadRequest, AriConflict, AriError, AriNotFound
from ivr.ari.events import ChannelDestroyed, ChannelEnteredBridge, ChannelHangupRequest, StasisEnd, StasisStart
from ivr.services import CallServices
from routing.audit import AuditEntry
from routing.errors import RoutingError

log = logging.getLogger(__name__)
audit_log = logging.getLogger("ivr.monitoring.audit")


class Mode(StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


def parse_mode(value: object) -> Mode:
    """The mode named by an API request; ValueError saying which modes exist."""
    if isinstance(value, str) and value in {m.value for m in Mode}:
        return Mode(value)
    raise ValueError(f"must be one of {', '.join(m.value for m in Mode)}")


@dataclass(frozen=True)
class SnoopDirections:
    spy: str  # what the supervisor hears of the advocate's leg: in, out, both
    whisper: str  # where what the supervisor says goes on that leg: none, out (to the advocate)


# The snoop on the advocate's leg per mode; barge needs none (see above).
SNOOP: Mapping[Mode, SnoopDirections] = {
    Mode.LISTEN: SnoopDirections(spy="both", whisper="none"),
    Mode.WHISPER: SnoopDirections(spy="both", whisper="out"),
}


# -- requests and the decision on them (pure) ---------------------------------


@dataclass(frozen=True)
class MonitorAnswer:
    accepted: bool
    status: str  # dialling | switching | unchanged | stopping; refused | timeout
    detail: str = ""

    @classmethod
    def refused(cls, why: str) -> MonitorAnswer:
        return cls(False, "refused", why)


@dataclass(frozen=True)
class MonitorRequest:
    """To a call actor: a supervisor starts, switches (``mode``) or stops (``mode`` None) monitoring."""

    supervisor: str
    endpoint: str  # the supervisor's phone, from the roster
    mode: Mode | None
    reply: asyncio.Future[MonitorAnswer] = field(compare=False, repr=False)

    @property
    def abandoned(self) -> bool:
        """The API stopped waiting (and told the supervisor so): do nothing."""
        return self.reply.done()

    def answer(self, answer: MonitorAnswer) -> None:
        if not self.reply.done():
            self.reply.set_result(answer)


@dataclass(frozen=True)
class MonitorRecord:
    """What the engine asked Asterisk for on a call, as it stands."""

    supervisor: str
    mode: Mode
    leg: str  # the supervisor's channel
    answered: bool
    bridge: str | None  # the bridge the supervisor's leg is in: theirs with the snoop, or the call's
    snoop: str | None  # the snoop channel on the advocate's leg (listen, whisper)
    spy: str | None  # the snoop's directions, as asked of Asterisk
    whisper: str | None


@dataclass(frozen=True)
class Start:
    mode: Mode


@dataclass(frozen=True)
class Switch:
    mode: Mode


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Unchanged:
    pass


@dataclass(frozen=True)
class Refuse:
    why: str


Decision = Start | Switch | Stop | Unchanged | Refuse


def decide(current: MonitorRecord | None, *, supervisor: str, mode: Mode | None, advocate: str) -> Decision:
    """What a request does to a connected call's monitoring."""
    if mode is None:
        # Any supervisor may end a session: a colleague may have to.
        return Stop() if current is not None else Refuse("nobody is monitoring the call")
    if supervisor == advocate:
        return Refuse("the supervisor is the advocate on this call")
    if current is None:
        return Start(mode)
    if current.supervisor != supervisor:
        return Refuse(f"supervisor {current.supervisor!r} is monitoring the call; stop that first")
    return Unchanged() if current.mode == mode else Switch(mode)


def answer_for(decision: Decision) -> MonitorAnswer:
    match decision:
        case Start():
            return MonitorAnswer(True, "dialling", "the supervisor's phone is ringing")
        case Switch():
            return MonitorAnswer(True, "switching")
        case Unchanged():
            return MonitorAnswer(True, "unchanged")
        case Stop():
            return MonitorAnswer(True, "stopping")
        case Refuse(why=why):
            return MonitorAnswer.refused(why)


# -- carrying it out ----------------------------------------------------------


@dataclass(frozen=True)
class CallLine:
    """The connected call a session works on."""

    key: str  # the call actor's key (the caller's channel id)
    bridge: str  # the call's mixing bridge
    advocate_leg: str
    advocate: str


async def carry_out(request: MonitorRequest, session: Monitoring | None, call: CallLine, *,
                    serial: Callable[[], int], services: CallServices) -> Monitoring | None:
    """Answer ``request`` and act on it; the session the call has afterwards."""
    decision = decide(session.record if session is not None else None, supervisor=request.supervisor,
                      mode=request.mode, advocate=call.advocate)
    request.answer(answer_for(decision))
    match decision:
        case Start(mode=mode):
            session = Monitoring(call, serial(), request.supervisor, request.endpoint, mode, services)
            await session.start()
        case Switch(mode=mode) if session is not None:
            await session.switch(mode, by=request.supervisor)
        case Stop() if session is not None:
            await session.stop(by=request.supervisor)
        case Refuse(why=why):
            log.info("call %s: monitoring request by %s refused: %s", call.key, request.supervisor, why)
    return session if session is not None and not session.over else None


class Monitoring:
    """One supervisor's session on one call: their leg, the snoop, their bridge."""

    def __init__(self, call: CallLine, serial: int, supervisor: str, endpoint: str, mode: Mode,
                 services: CallServices) -> None:
        self.call = call
        self.supervisor = supervisor
        self.endpoint = endpoint
        self.mode = mode
        self.s = services
        self.leg = f"{call.key}-mon{serial}"
        self.bridge = f"{self.leg}-bridge"
        self.snoop: str | None = None
        self.directions: SnoopDirections | None = None
        self.answered = False
        self.over = False
        self._in_bridge: str | None = None
        self._bridge_made = False
        self._snoops = itertools.count(1)
        self._routed: set[str] = set()

    @property
    def record(self) -> MonitorRecord:
        directions = self.directions if self.snoop is not None else None
        return MonitorRecord(self.supervisor, self.mode, self.leg, self.answered, self._in_bridge, self.snoop,
                             directions.spy if directions else None, directions.whisper if directions else None)

    def concerns(self, item: object) -> bool:
        """Whether an ARI event is about this session's channels or bridge."""
        channel_ids = getattr(item, "channel_ids", None)
        bridge_id = getattr(item, "bridge_id", None)
        if channel_ids is None or bridge_id is None:
            return False
        return bool(self._routed.intersection(channel_ids())) or bridge_id() == self.bridge

    async def start(self) -> None:
        await self._audit("start", by=self.supervisor)
        # Routed before the originate: the leg's first event may beat the reply.
        self._route(self.leg)
        try:
            await self.s.rest.originate(
                self.endpoint, app=self.s.config.app, app_args=f"monitor,{self.call.key}", channel_id=self.leg,
                caller_id=f'"Hotline MONITOR" <{self.s.config.toll_free}>',
                timeout_s=int(self.s.config.monitor_ring_s))
        except AriError as exc:
            log.warning("call %s: dialling supervisor %s failed (%s)", self.call.key, self.supervisor,
                        type(exc).__name__)
            await self._end("dial_failed", by="engine")
            return
        log.info("call %s: ringing supervisor %s to %s", self.call.key, self.supervisor, self.mode)

    async def handle(self, item: object) -> None:
        match item:
            case StasisStart(channel=channel) if channel.id == self.leg:
                self.answered = True
                log.info("call %s: supervisor %s answered (%s)", self.call.key, self.supervisor, self.mode)
                await self._arrange()
            case StasisStart(channel=channel) if channel.id == self.snoop:
                try:
                    await self.s.rest.add_to_bridge(self.bridge, [channel.id])
                except (AriNotFound, AriConflict, AriBadRequest):
                    # The snoop or the bridge went meanwhile (a gone channel is a
                    # 400 to addChannel): their events follow.
                    log.info("call %s: snoop %s went before joining", self.call.key, channel.id)
            case StasisStart(channel=channel):
                await self._hangup(channel.id)  # a snoop replaced before it got going
            case ChannelEnteredBridge(channel=channel, bridge=bridge):
                log.info("call %s: %s joined bridge %s (%s)", self.call.key, channel.id, bridge.id, self.mode)
            case StasisEnd(channel=channel) | ChannelDestroyed(channel=channel) | \
                    ChannelHangupRequest(channel=channel) if channel.id == self.leg:
                # The supervisor hung up (or never answered): the call goes on.
                await self._end("supervisor_hung_up" if self.answered else "supervisor_unreachable", by="engine")
            case ChannelDestroyed(channel=channel):
                self._unroute(channel.id)  # a replaced snoop, or the current one as the advocate left
                if channel.id == self.snoop:
                    self.snoop = None

    async def switch(self, mode: Mode, *, by: str) -> None:
        old, self.mode = self.mode, mode
        await self._audit("switch", by=by, from_mode=old)
        if self.answered:
            await self._arrange()
        # Otherwise the phone still rings: the new mode applies when it is answered.

    async def stop(self, *, by: str) -> None:
        await self._end("", by=by, action="stop")

    async def end(self, reason: str) -> None:
        """The call ended (or the engine gave up on the session)."""
        await self._end(reason, by="engine")

    async def _arrange(self) -> None:
        """Put the answered supervisor where the mode wants them."""
        directions = SNOOP.get(self.mode)
        try:
            if directions is None:
                await self._drop_snoop()
                await self.s.rest.add_to_bridge(self.call.bridge, [self.leg])
                self._in_bridge = self.call.bridge
                return
            if not self._bridge_made:
                self._route(self.bridge)
                await self.s.rest.create_bridge(self.bridge, bridge_type="mixing", name=f"monitor-{self.call.key}")
                self._bridge_made = True
            if self._in_bridge != self.bridge:
                await self.s.rest.add_to_bridge(self.bridge, [self.leg])
                self._in_bridge = self.bridge
            # The old snoop goes before the new one comes: a switch from
            # whisper to listen must not let one more word reach the advocate.
            await self._drop_snoop()
            snoop = f"{self.leg}-snoop{next(self._snoops)}"
            self._route(snoop)
            self.snoop, self.directions = snoop, directions
            # The snoop enters our app on its own; it joins the bridge on its
            # StasisStart. Its appArgs repeat the directions, so ARI's view of
            # the channel (dialplan.app_data) says what it was created with.
            await self.s.rest.snoop(self.call.advocate_leg, app=self.s.config.app, spy=directions.spy,
                                    whisper=directions.whisper, snoop_id=snoop,
                                    app_args=f"snoop,{self.call.key},{directions.spy},{directions.whisper}")
        except AriNotFound:
            # The supervisor's or the advocate's leg went meanwhile: its own
            # events end the session or the call.
            log.info("call %s: a monitoring channel went while arranging %s", self.call.key, self.mode)
        except AriError as exc:
            log.warning("call %s: arranging %s for supervisor %s failed (%s)", self.call.key, self.mode,
                        self.supervisor, type(exc).__name__)
            await self._end("failed", by="engine")

    async def _drop_snoop(self) -> None:
        snoop, self.snoop = self.snoop, None
        if snoop is not None:
            await self._hangup(snoop)  # still routed: its ChannelDestroyed unroutes it

    async def _end(self, reason: str, *, by: str, action: str = "ended") -> None:
        if self.over:
            return
        self.over = True
        await self._audit(action, by=by, reason=reason)
        # Unrouted first: the hang-ups' own events are of no interest to the call.
        for resource in list(self._routed):
            self._unroute(resource)
        if self.snoop is not None:
            await self._hangup(self.snoop)
        await self._hangup(self.leg)
        if self._bridge_made:
            try:
                await self.s.rest.destroy_bridge(self.bridge)
            except AriNotFound:
                pass
        log.info("call %s: monitoring by %s over (%s)", self.call.key, self.supervisor, reason or action)

    async def _audit(self, action: str, *, by: str, reason: str = "", from_mode: str = "") -> None:
        entry = AuditEntry(at_ms=int(time.time() * 1000), call=self.call.key, supervisor=self.supervisor, by=by,
                           action=action, mode=str(self.mode), reason=reason, from_mode=str(from_mode),
                           engine=self.s.config.owner)
        audit_log.info("supervisor %s", action, extra={"fields": asdict(entry)})
        if action in {"start", "switch"}:
            self.s.metrics.supervisor_actions.labels(mode=str(self.mode)).inc()
        elif action == "stop":
            self.s.metrics.supervisor_actions.labels(mode="stop").inc()
        try:
            await self.s.audit.append(entry)
        except RoutingError as exc:
            log.error("call %s: supervisor audit entry not stored in Redis (%s); the log line stands",
                      self.call.key, type(exc).__name__)

    def _route(self, resource: str) -> None:
        self._routed.add(resource)
        self.s.dispatcher.route(resource, self.call.key)

    def _unroute(self, resource: str) -> None:
        self._routed.discard(resource)
        self.s.dispatcher.unroute(resource)

    async def _hangup(self, channel_id: str) -> None:
        try:
            await self.s.rest.hangup(channel_id)
        except AriNotFound:
            pass


class MonitorDesk:
    """The API's way to a call's monitoring (``ivr.api.MonitorControl``)."""

    def __init__(self, post: Callable[[str, object], bool], endpoints: Mapping[str, str], timeout_s: float) -> None:
        self._post = post
        self._endpoints = dict(endpoints)  # supervisor id -> their phone, from the roster
        self._timeout_s = timeout_s

    async def request(self, call_id: str, supervisor: str, mode: Mode | None) -> MonitorAnswer | None:
        """The call's answer; None if this engine does not hold the call."""
        endpoint = self._endpoints.get(supervisor)
        if endpoint is None:
            return MonitorAnswer.refused(f"supervisor {supervisor!r} has no phone on the roster")
        reply: asyncio.Future[MonitorAnswer] = asyncio.get_running_loop().create_future()
        if not self._post(call_id, MonitorRequest(supervisor, endpoint, mode, reply)):
            return None
        try:
            # On timeout the future is cancelled, so the call skips the request.
            return await asyncio.wait_for(reply, self._timeout_s)
        except TimeoutError:
            return MonitorAnswer(False, "timeout", "the call did not take the request in time; try again")
