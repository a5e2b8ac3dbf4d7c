"""The hotline's Stasis application: new calls, offers, reconciliation.

The engine turns what arrives from outside into work for the call actors:
a StasisStart for an unknown caller channel becomes a new ``CallActor``;
an offer published by the Redis matcher is posted to the actor holding that
call; after the events WebSocket (re)connects, every call is given the
channels Asterisk has (what ended unheard meanwhile, a caller, an advocate's
leg, a prompt, each call finds out for itself), and the calls of a dead
engine are adopted
(``ivr.adoption``). Per-call behaviour lives in ``ivr.call``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Sequence

from ivr.adoption import GHOST_SWEEP_S, Adoption
from ivr.ari.errors import AriError, AriNotFound
from ivr.ari.events import Event, StasisStart, UnknownEvent
from ivr.call import CallActor
from ivr.call_states import Adopt, OfferArrived, Reconciled
from ivr.dispatch import Dispatcher
from ivr.services import CallServices
from ivr.tasks import TaskSet
from routing.errors import RoutingError, StaleOffer
from routing.queues import Offer

log = logging.getLogger(__name__)

# The event types the engine acts on. Asterisk sends an application every
# event of its channels: 45 for an answered call, 25 of them ChannelVarset.
# Asked for these only it sends about a dozen, and the engine parses no
# more: a third of its CPU time per call went to parsing events it ignored.
# (The answers to REST requests come on a socket of their own: ivr.ari.stream.)
EVENTS = ("StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest", "ChannelDtmfReceived",
          "PlaybackFinished", "ChannelEnteredBridge")

# Events nobody needs: Asterisk sends them for every channel of the app.
QUIET = frozenset({"ChannelVarset", "ChannelStateChange", "ChannelDialplan", "ChannelConnectedLine",
                   "ChannelCallerId", "Dial", "ChannelTalkingStarted", "ChannelTalkingFinished",
                   "PlaybackStarted", "ChannelEnteredBridge", "ChannelLeftBridge", "BridgeCreated",
                   "BridgeDestroyed", "ChannelHold", "ChannelUnhold", "ChannelDestroyed", "StasisEnd",
                   "ChannelHangupRequest", "PlaybackFinished", "ChannelDtmfReceived", "BridgeMerged"})

# appArgs of the channels the engine creates for a call (the first word).
CALL_LEGS = frozenset({"leg", "interpreter", "monitor", "snoop"})


class Engine:
    def __init__(self, tasks: TaskSet, build_services: Callable[[Engine], CallServices]) -> None:
        self.tasks = tasks
        self.dispatcher = Dispatcher(tasks, on_unrouted=self.on_unrouted)
        self.calls: dict[str, CallActor] = {}
        # The calls' services include this engine's dispatcher and forget().
        self.services = build_services(self)

    # -- ARI events -----------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if isinstance(event, UnknownEvent):
            # No call handles a type we do not model. Those we know we need
            # not are quiet; any other is counted, so a new one gets noticed.
            if event.type not in QUIET:
                self.services.metrics.ari_events_skipped.labels(reason="unknown_type").inc()
                log.info("ARI event %s not handled; skipped", event.type)
            return
        self.dispatcher.deliver(event)

    def on_unrouted(self, event: Event) -> None:
        match event:
            case StasisStart(args=[kind, *_]) if kind in CALL_LEGS:
                # An advocate, interpreter or supervisor answered (or a snoop
                # started) for a call this engine no longer holds: the caller
                # left a moment earlier. Nobody to connect them to, and not a new call.
                self.tasks.spawn(self._hang_up(event.channel.id), name=f"orphan-leg-{event.channel.id}")
            case StasisStart():
                self._new_call(event)
            case _ if event.type not in QUIET:
                log.debug("ARI %s for no call; skipped", event.type)

    def _new_call(self, event: StasisStart) -> None:
        did, sip_call_id = call_args(event.args)
        actor = CallActor(event.channel.id, did, self.services, sip_call_id=sip_call_id)
        self.calls[actor.key] = actor
        self.dispatcher.register(actor)
        self.dispatcher.post(actor.key, event)

    def adopt(self, did: str, item: Adopt) -> None:
        """A call a dead engine held: an actor of ours carries it on."""
        actor = CallActor(item.caller.id, did, self.services)
        self.calls[actor.key] = actor
        self.dispatcher.register(actor)
        for leg in item.legs:
            self.dispatcher.route(leg, actor.key)
        self.dispatcher.post(actor.key, item)

    def forget(self, actor: CallActor) -> None:
        self.calls.pop(actor.key, None)
        self.tasks.spawn(self.dispatcher.unregister(actor.key), name=f"unregister-{actor.key}")

    def claimed_advocates(self) -> set[str]:
        """The advocates (and supervisors) ringing for or talking with the calls this engine holds."""
        return {advocate for actor in self.calls.values() for advocate in actor.advocates_held}

    async def _hang_up(self, channel_id: str) -> None:
        try:
            await self.services.rest.hangup(channel_id)
        except AriNotFound:
            pass

    # -- routing offers -------------------------------------------------------

    def take_offers(self, offers: list[Offer]) -> None:
        """Offers in the reply of a script this engine ran: its own calls'
        are posted at once, a Redis round trip before their pub/sub copy
        (which the actor then ignores). Offers for calls it does not hold are
        left to that copy: another engine's, or, before the first adoption,
        a dead predecessor's about to be adopted."""
        for offer in offers:
            if offer.owner == self.services.config.owner:
                self.dispatcher.post(offer.call_id, OfferArrived(offer))

    async def on_offer(self, offer: Offer, swept: bool = False) -> None:
        if self.dispatcher.post(offer.call_id, OfferArrived(offer, swept)):
            return
        # The call is no longer ours (it ended): give the advocate back.
        log.info("offer for ended call %s; releasing advocate %s", offer.call_id, offer.advocate_id)
        try:
            await self.services.store.offer_cancelled(offer.call_id, offer.advocate_id)
        except StaleOffer:
            # The late copy of an offer the call acted on before it ended.
            log.debug("offer of advocate %s for call %s settled already", offer.advocate_id, offer.call_id)
        except RoutingError:
            log.error("could not release advocate %s", offer.advocate_id)

    # -- (re)connection -------------------------------------------------------

    async def on_connected(self) -> None:
        try:
            await self.services.rest.set_event_filter(self.services.config.app, EVENTS)
        except AriError as exc:
            # Every event still arrives; the engine only spends more time on them.
            log.warning("ARI: could not filter the events sent to the engine (%s)", type(exc).__name__)
        await self.reconcile()

    async def reconcile(self) -> None:
        """After a (re)connection: calls whose caller or advocate hung up while
        we were deaf learn it now."""
        try:
            live = frozenset(channel.id for channel in await self.services.rest.list_channels())
        except AriError as exc:
            log.warning("reconcile: cannot list channels (%s)", type(exc).__name__)
            raise
        gone = [key for key in self.calls if key not in live]
        for key in self.calls:
            self.dispatcher.post(key, Reconciled(live))
        log.info("reconciled: %d calls held, %d gone while disconnected", len(self.calls) - len(gone), len(gone))
        # Calls in our application nobody holds: a dead engine's, ours now.
        await Adoption(self.services, self.calls, self.adopt).run()

    async def sweep_ghosts(self) -> None:
        """Forever: clear calls whose caller left while their engine was dead."""
        while True:
            await asyncio.sleep(GHOST_SWEEP_S)
            await Adoption(self.services, self.calls, self.adopt).clear()


def call_args(args: Sequence[str]) -> tuple[str, str]:
    """The DID and SIP Call-ID a caller's channel enters Stasis with.

    dialplans/extensions.conf passes the Call-ID base64-encoded; a dialplan
    that passes none (or something else) leaves it to be read over ARI.
    """
    did = args[0] if args else ""
    try:
        sip_call_id = base64.b64decode(args[1], validate=True).decode() if len(args) > 1 else ""
    except ValueError:  # binascii.Error and UnicodeDecodeError both are
        sip_call_id = ""
    return did, sip_call_id
