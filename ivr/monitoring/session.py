"""One supervisor's monitoring session on a call: their leg, the snoop, their bridge, the audit."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from dataclasses import asdict, dataclass

from ivr.ari.errors import AriBadRequest, AriConflict, AriError, AriNotFound
from ivr.ari.events import ChannelDestroyed, ChannelEnteredBridge, ChannelHangupRequest, StasisEnd, StasisStart
from ivr.monitoring.requests import (SNOOP, Mode, MonitorRecord, MonitorRequest, Refuse, SnoopDirections, Start,
                                     Stop, Switch, answer_for, decide)
from ivr.services import CallServices
from routing.audit import AuditEntry
from routing.errors import RoutingError

log = logging.getLogger(__name__)
audit_log = logging.getLogger("ivr.monitoring.audit")


@dataclass(frozen=True)
class CallLine:
    """The connected call a session works on."""

    key: str  # the call actor's key (the caller's channel id)
    bridge: str  # the call's mixing bridge
    advocate_leg: str
    advocate: str


async def carry_out(request: MonitorRequest, session: Monitoring | None, call: CallLine, *,
                    services: CallServices) -> Monitoring | None:
    """Answer ``request`` and act on it; the session the call has afterwards."""
    decision = decide(session.record if session is not None else None, supervisor=request.supervisor,
                      mode=request.mode, advocate=call.advocate)
    request.answer(answer_for(decision))
    match decision:
        case Start(mode=mode):
            session = Monitoring(call, request.supervisor, request.endpoint, mode, services)
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

    def __init__(self, call: CallLine, supervisor: str, endpoint: str, mode: Mode,
                 services: CallServices) -> None:
        self.call = call
        self.supervisor = supervisor
        self.endpoint = endpoint
        self.mode = mode
        self.s = services
        # Unique beyond this engine: one that adopts the call after this one
        # died starts afresh, while the dead one's bridge (and a snoop, until
        # audio frees it) may still be there under its id.
        self.leg = f"{call.key}-mon-{secrets.token_hex(3)}"
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
