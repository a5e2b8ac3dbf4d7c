"""Taking over the calls of an engine that died, and clearing what it left behind.

Asterisk outlives the engine: a caller in our Stasis application stays there
with music on hold, a connected caller stays bridged with the advocate. When
an engine (re)connects it finds every channel in its application that no
call actor of its own holds, and adopts it: the call's Redis record says
where it was (waiting, ringing an advocate, connected), and the actor carries
on from there. Calls in Redis whose caller left while no engine listened
(their channel is gone, their owner's heartbeat too) are cleared, so they do
not hold an advocate or a place in line.

Which channels belong to which call is decided by ``group_channels``, a pure
function over what ARI reports.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from ivr.ari.errors import AriError, AriNotFound
from ivr.ari.models import Bridge, Channel
from ivr.ari.rest import AriRest
from ivr.call import ADOPTED_PROMPTS_STOPPED, FALLBACK_CONTEXT
from ivr.call_states import Adopt
from ivr.hold import HoldLine
from ivr.services import CallServices
from routing.errors import RoutingError, StaleOffer

log = logging.getLogger(__name__)

# Heartbeat of each engine in Redis: calls of an engine without one are
# another engine's to adopt or clear.
HEARTBEAT_TTL_S = 15
HEARTBEAT_EVERY_S = 5
GHOST_SWEEP_S = 20


@dataclass
class CallChannels:
    caller: Channel
    did: str
    legs: list[Channel] = field(default_factory=list)


@dataclass(frozen=True)
class Grouped:
    calls: dict[str, CallChannels]  # by caller channel id
    orphans: tuple[str, ...]  # legs whose caller is gone, and a dead engine's monitoring channels


# The channels the engine originates are named after their call's caller
# channel: "<call>-leg<n>" (an advocate), "-sup<n>" (a supervisor), "-int<n>"
# (an interpreter), "-mon-<hex>" (a supervisor monitoring). One still ringing
# is listed in the application but has not run Stasis yet: its name is all
# that tells it from a caller.
_ORIGINATED = re.compile(r"^(?P<call>.+)-(?:(?P<leg>leg|sup)|(?P<interpreter>int))\d+$"
                         r"|^(?P<monitored>.+)-mon-[0-9a-f]+$")


def _stasis_args(channel: Channel) -> list[str]:
    """The arguments the channel entered Stasis with: passed by the dialplan
    (the DID, the SIP Call-ID) or by our originate (leg,<call> /
    interpreter,<call> / monitor,<call> / snoop,<call>,...); for one of ours
    still ringing, those its originate will pass."""
    args = (channel.dialplan.app_data or "").split(",")[1:]
    if args or not (named := _ORIGINATED.match(channel.id)):
        return args
    if named["monitored"]:
        return ["monitor", named["monitored"]]
    return ["leg" if named["leg"] else "interpreter", named["call"]]


def group_channels(channels: Iterable[Channel], in_app: set[str], held: set[str]) -> Grouped:
    """The callers in our application no actor holds, with their legs."""
    calls: dict[str, CallChannels] = {}
    legs: list[tuple[str, Channel]] = []
    orphans: list[str] = []
    for channel in channels:
        if channel.id not in in_app:
            continue
        args = _stasis_args(channel)
        if args and args[0] in ("monitor", "snoop") and len(args) > 1:
            # A supervisor's monitoring is not carried over: their phone and
            # the snoop hang up (they may ask again), the call goes on.
            if args[1] not in held:
                orphans.append(channel.id)
        elif args and args[0] in ("leg", "interpreter") and len(args) > 1:
            legs.append((args[1], channel))
        elif channel.id not in held:
            calls[channel.id] = CallChannels(channel, args[0] if args else "")
    for call_id, leg in legs:
        if call_id in calls:
            calls[call_id].legs.append(leg)
        elif call_id not in held:
            orphans.append(leg.id)
    return Grouped(calls, tuple(orphans))


class Adoption:
    def __init__(self, services: CallServices, held: Collection[str],
                 adopt: Callable[[str, Adopt], None]) -> None:
        self.s = services
        self._held = held  # the engine's own calls (a live view)
        self._adopt = adopt  # (DID, what to adopt, its caller's channel included): a new call actor

    async def run(self) -> int:
        """Adopt what this engine finds in its application; clear ghosts. Returns calls adopted.

        Raises AriError when Asterisk cannot be read: the reconciliation
        then fails and the events connection is made again, so adoption is
        tried again. Nothing else would try it, and a dead engine's callers
        would wait in silence or on music with no plan.
        """
        try:
            in_app, channels, bridges = await read_application(self.s.rest, self.s.config.app)
        except AriError as exc:
            log.warning("adoption: cannot read the application (%s)", type(exc).__name__)
            raise
        grouped = group_channels(channels, in_app, set(self._held))
        for leg in grouped.orphans:
            await self._hang_up(leg)
        adopted = 0
        for call_id, found in grouped.calls.items():
            try:
                record = await self.s.store.get_call(call_id)
            except RoutingError:
                # Still adopted, as a call with no record: the actor starts
                # its menu again, whose end finds Redis down and takes the
                # fallback. A bridged caller would lose their advocate that
                # way; the window for it is the moment between the start-up
                # roster sync, which needs Redis (the engine will not start
                # without it), and this first pass.
                record = None
            bridge = bridges.get(f"{call_id}-bridge")
            item = Adopt(caller=found.caller, record=record, legs=tuple(c.id for c in found.legs),
                         up_legs=frozenset(c.id for c in found.legs if c.state == "Up"),
                         bridge=bridge.channels if isinstance(bridge, Bridge) else None)
            self._adopt(found.did, item)
            adopted += 1
        if adopted or grouped.orphans:
            log.warning("adoption: %d calls taken over, %d orphan legs hung up", adopted, len(grouped.orphans))
        await self._clear_ghosts({c.id for c in channels})
        return adopted

    async def clear(self) -> None:
        """Clear ghosts only: run every GHOST_SWEEP_S, since a dead engine's
        heartbeat outlives it by up to HEARTBEAT_TTL_S."""
        try:
            channels = await self.s.rest.list_channels()
        except AriError:
            return
        await self._clear_ghosts({c.id for c in channels})

    async def _clear_ghosts(self, live_channels: set[str]) -> None:
        """Calls Redis still routes whose caller left while their engine was
        dead, or while this engine could not tell Redis (ivr.recovery): a call
        of our own that we no longer hold and whose channel is gone ended then."""
        try:
            calls = await self.s.store.live_calls()
            owners = {r.get("owner", "") for r in calls.values()}
            others_alive = await self.s.store.alive(sorted(owners - {self.s.config.owner}))
        except RoutingError:
            return
        for call_id, record in calls.items():
            if call_id in live_channels or record.get("owner", "") in others_alive or call_id in self._held:
                continue
            if record.get("ari") not in (None, self.s.config.ari_url):
                continue  # another Asterisk's call: its own engine will see to it
            await self._clear(call_id, record)

    async def _clear(self, call_id: str, record: dict[str, str]) -> None:
        state, advocate = record.get("state"), record.get("advocate", "")
        log.warning("adoption: call %s (%s) lost its caller while no engine held it; clearing", call_id, state)
        try:
            if state == "waiting":
                await self.s.store.abandon(call_id)
            elif state == "offered":
                await self.s.store.offer_cancelled(call_id, advocate)
            elif state == "bridged":
                await self.s.store.call_ended(call_id, advocate)
                self.s.wrap_up.start(advocate, call_id)
            elif state == "escalating":
                rung = [a.id for a in await self.s.store.list_advocates() if a.call_id == call_id]
                await self.s.store.escalation_settled(call_id, None, rung)
        except StaleOffer:
            pass
        except RoutingError:
            log.error("adoption: could not clear call %s", call_id)

    async def _hang_up(self, channel_id: str) -> None:
        try:
            await self.s.rest.hangup(channel_id)
        except AriNotFound:
            pass


async def read_application(rest: AriRest, app: str) -> tuple[set[str], list[Channel], dict[str, Bridge]]:
    """What Asterisk has of `app`: the ids of the channels in it, every
    channel, and the bridges by id (raises AriError, AriNotFound if Asterisk
    no longer knows the application)."""
    application = await rest.get_application(app)
    channels = await rest.list_channels()
    bridges = {b.id: b for b in await rest.list_bridges()}
    return set(application.get("channel_ids", [])), channels, bridges


async def rescue_stranded(rest: AriRest, app: str) -> int:
    """Hand to the dialplan fallback every caller left in `app` who is not
    talking to anyone; returns how many.

    For an engine that cannot start (Redis down): a dead engine's callers
    stay in its Stasis application, in silence or on music, and no engine
    will move them until one starts. The backup destination is the human
    they can reach. A caller bridged with an advocate, an interpreter or a
    supervisor stays as they are; legs still ringing for the others hang up.
    """
    try:
        in_app, channels, bridges = await read_application(rest, app)
    except AriNotFound:
        return 0  # Asterisk forgot the application: no channel is left in it
    talking = {c for b in bridges.values() if len(b.channels) > 1 for c in b.channels}
    grouped = group_channels(channels, in_app, held=set())
    handed = 0
    for call_id, found in grouped.calls.items():
        if call_id in talking:
            continue
        for leg in found.legs:
            await _hang_up_quietly(rest, leg.id)
        try:
            # What the dead engine left playing would hold the hand-over until its end.
            await HoldLine(call_id, rest).stop_left_behind(ADOPTED_PROMPTS_STOPPED)
            with contextlib.suppress(AriError):
                await rest.stop_moh(call_id)  # the dialplan's announcement next, not over the music
            await rest.continue_in_dialplan(call_id, context=FALLBACK_CONTEXT, extension="s", priority=1)
        except AriNotFound:
            continue  # the caller hung up meanwhile
        except AriError as exc:
            log.error("rescue: caller %s not handed to the fallback (%s)", call_id, type(exc).__name__)
            continue
        handed += 1
    for orphan in grouped.orphans:
        await _hang_up_quietly(rest, orphan)
    return handed


async def _hang_up_quietly(rest: AriRest, channel_id: str) -> None:
    try:
        await rest.hangup(channel_id)
    except AriError:
        pass  # gone already, or Asterisk busy: a ringing leg times out by itself
