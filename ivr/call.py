"""One caller's call, from the hotline answering to the advocate hanging up.

A ``CallActor`` owns one caller channel and everything the engine creates
for it (the advocate leg, the bridge, its timers). The dispatcher feeds it
ARI events, routing offers and timer firings through one mailbox, in order,
so its state is only ever touched by its own worker and a slow call never
holds up another.

The call's life is an explicit state object: ``InMenu`` -> ``Waiting`` ->
``Ringing`` -> ``Connected`` -> ``Ended``. What to do is decided by pure code
(the menu session, the Lua matcher); this module carries the decisions out
over ARI and Redis and records what happened.

Failure rule: whatever goes wrong, the caller ends with a human or a clear
message. If routing is unavailable the call goes to the dialplan fallback
(backup destination, then the hotline's message); if an advocate does not
answer, the call goes back first in line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ivr.ari.errors import AriError, AriNotFound
from ivr.ari.events import (ChannelDestroyed, ChannelDtmfReceived, ChannelHangupRequest, PlaybackFinished,
                            StasisEnd, StasisStart)
from ivr.feature_codes import AddInterpreter, FeatureCodes, RemoveInterpreter, Unknown
from ivr.interpreting import TIMER as INTERPRETER_TIMER
from ivr.interpreting import InterpreterRequest, Interpreting
from ivr.menu import CancelTimer, Finish, MenuOutcome, MenuSession, Play, StartTimer, StopPlayback
from ivr.services import CallServices
from ivr.timers import Timers, TimerFired
from routing.errors import RoutingError, RoutingUnavailable, StaleOffer
from routing.queues import Offer, WaitingCall

log = logging.getLogger(__name__)

# How long the advocate may pause between the digits of a feature code.
FEATURE_CODE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class OfferArrived:
    """The matcher chose an advocate for this call (delivered over Redis pub/sub)."""

    offer: Offer


@dataclass(frozen=True)
class ChannelGone:
    """Reconciliation found the caller's channel gone while the events stream was down."""


# -- states ---------------------------------------------------------------------


@dataclass
class Answering:
    pass


@dataclass
class InMenu:
    session: MenuSession
    playback: str | None = None
    serial: int = 0  # the session's serial of the current Play


@dataclass
class Waiting:
    queue: str
    arrival_ms: int


@dataclass
class Ringing:
    queue: str
    arrival_ms: int
    offer: Offer
    leg: str
    rang_at: float = field(default_factory=time.monotonic)


@dataclass
class Connected:
    queue: str
    offer: Offer
    leg: str
    bridge: str
    codes: FeatureCodes
    interpreting: Interpreting | None = None


@dataclass
class Ended:
    reason: str


State = Answering | InMenu | Waiting | Ringing | Connected | Ended


class CallActor:
    def __init__(self, channel_id: str, did: str, services: CallServices) -> None:
        self.key = channel_id
        self.channel = channel_id
        self.did = did
        self.s = services
        self.state: State = Answering()
        self.outcome: MenuOutcome | None = None
        self.language = "en"
        self.timers = Timers(channel_id, lambda item: services.dispatcher.post(channel_id, item), services.tasks)
        self.caller_ref = ""  # HMAC of the number, never the number
        self.sip_call_id = ""
        self._playbacks = 0
        self._legs = 0
        # Joined as soon as the advocate answers: the operator for "other
        # languages", Spanish after an overflow.
        self.interpreter_on_answer: InterpreterRequest | None = None
        self._overflow_due = False
        self._hold_message: str | None = None
        self._enqueued_at = time.monotonic()

    def __repr__(self) -> str:
        return f"CallActor({self.key}, {type(self.state).__name__})"

    # -- entry ----------------------------------------------------------------

    async def handle(self, item: object) -> None:
        if isinstance(self.state, Ended):
            await self._after_end(item)
            return
        if isinstance(self.state, Connected) and self.state.interpreting is not None \
                and _concerns(item, self.state.interpreting):
            await self._interpreter_event(self.state.interpreting, item)
            return
        match item:
            case StasisStart(channel=channel) if channel.id == self.channel:
                await self._answer(item)
            case StasisStart(channel=channel):
                await self._leg_answered(channel.id)
            case ChannelDtmfReceived(channel=channel, digit=digit) if channel.id == self.channel:
                if isinstance(self.state, InMenu):
                    await self._menu(self.state.session.digit(digit))
            case ChannelDtmfReceived(channel=channel, digit=digit):
                if isinstance(self.state, Connected) and channel.id == self.state.leg:
                    await self._feature_digit(self.state, digit)
            case InterpreterRequest():
                await self._interpreter_request(item)
            case PlaybackFinished(playback=playback) if playback.id == self._hold_message:
                self._hold_message = None
                if isinstance(self.state, Waiting):
                    await self._moh()
            case PlaybackFinished(playback=playback):
                if isinstance(self.state, InMenu) and playback.id == self.state.playback:
                    self.state.playback = None
                    await self._menu(self.state.session.prompt_finished(self.state.serial))
            case TimerFired():
                if self.timers.is_current(item):
                    await self._timer(item.name)
            case OfferArrived(offer=offer):
                await self._offer(offer)
            case StasisEnd(channel=channel) | ChannelDestroyed(channel=channel) | \
                    ChannelHangupRequest(channel=channel):
                if channel.id == self.channel:
                    await self._caller_gone("caller hung up")
                elif isinstance(self.state, (Ringing, Connected)) and channel.id == self.state.leg:
                    await self._leg_gone()
            case ChannelGone():
                await self._caller_gone("channel gone")
            case _:
                log.debug("call %s: %s ignored in %s", self.key, getattr(item, "type", type(item).__name__),
                          type(self.state).__name__)

    # -- answer and menu ------------------------------------------------------

    async def _answer(self, event: StasisStart) -> None:
        self.s.metrics.calls_received.inc()
        self.caller_ref = self.s.hasher(event.channel.caller.number)
        try:
            await self.s.rest.answer(self.channel)
            self.sip_call_id = await self._sip_call_id()
        except AriNotFound:
            await self._caller_gone("hung up before answer")
            return
        session = MenuSession(self.s.menu, entry=self.s.config.entry_for_did(self.did))
        self.state = InMenu(session)
        log.info("call %s answered on the %s line", self.key, self.s.config.line_kind(self.did))
        await self._menu(session.start())

    async def _sip_call_id(self) -> str:
        # Carriers ask for the SIP Call-ID in trouble tickets; it names the
        # call, never the caller.
        try:
            return await self.s.rest.get_var(self.channel, "CHANNEL(pjsip,call-id)")
        except AriError:
            return ""

    async def _menu(self, actions: tuple[object, ...]) -> None:
        for action in actions:
            if not isinstance(self.state, InMenu):
                return
            match action:
                case Play(prompt_ids=prompts, language=language, serial=serial):
                    self.state.serial = serial
                    await self._play(self.state, prompts, language)
                case StopPlayback():
                    await self._stop_playback(self.state)
                case StartTimer(seconds=seconds):
                    self.timers.start("menu", seconds)
                case CancelTimer():
                    self.timers.cancel("menu")
                case Finish(outcome=outcome):
                    self.timers.cancel("menu")
                    await self._stop_playback(self.state)
                    await self._enqueue(outcome)

    async def _play(self, state: InMenu, prompts: tuple[str, ...], language: str) -> None:
        if language != self.language:
            await self.s.rest.set_var(self.channel, "CHANNEL(language)", language)
            self.language = language
        self._playbacks += 1
        playback = f"{self.key}-pb{self._playbacks}"
        state.playback = playback
        await self.s.rest.play(self.channel, [f"sound:hotline/{p}" for p in prompts], playback_id=playback)

    async def _stop_playback(self, state: InMenu) -> None:
        playback, state.playback = state.playback, None
        if playback is not None:
            await self._stop(playback)

    async def _stop(self, playback: str) -> None:
        try:
            await self.s.rest.stop_playback(playback)
        except AriNotFound:
            pass  # it had just finished

    async def _timer(self, name: str) -> None:
        if name == "menu" and isinstance(self.state, InMenu):
            await self._menu(self.state.session.timed_out())
        elif name == "overflow":
            if isinstance(self.state, Waiting):
                await self._spanish_overflow(self.state)
            elif isinstance(self.state, Ringing):
                self._overflow_due = True  # unless this ring is answered
        elif name == "feature" and isinstance(self.state, Connected):
            await self._feature_outcome(self.state, self.state.codes.timed_out())
        elif name == "ring" and isinstance(self.state, Ringing):
            log.info("call %s: advocate %s did not answer in %.0f s", self.key, self.state.offer.advocate_id,
                     self.s.config.ring_s)
            await self._advocate_missed("no_answer")

    # -- queue ----------------------------------------------------------------

    async def _enqueue(self, outcome: MenuOutcome) -> None:
        self.outcome = outcome
        queue = self.s.config.queue_for_language(outcome.language)
        arrival_ms = int(time.time() * 1000)
        self.s.metrics.menu_outcomes.labels(language=outcome.language, call_type=outcome.call_type).inc()
        try:
            await self.s.rest.start_moh(self.channel)
        except AriNotFound:
            await self._caller_gone("hung up in the menu")
            return
        self.state = Waiting(queue, arrival_ms)
        self._enqueued_at = time.monotonic()
        call = WaitingCall(call_id=self.key, queue=queue, priority=outcome.priority, arrival_ms=arrival_ms,
                           owner=self.s.config.owner)
        fields = {"language": outcome.language, "call_type": outcome.call_type, "path": " ".join(outcome.path),
                  "no_input": str(int(outcome.no_input)), "did_kind": self.s.config.line_kind(self.did),
                  "sip_call_id": self.sip_call_id, "caller_ref": self.caller_ref}
        try:
            offers = await self.s.store.enqueue(call, fields, self.s.config.call_ttl_s)
        except RoutingError as exc:
            log.error("call %s: routing unavailable (%s); sending to the fallback", self.key, type(exc).__name__)
            await self._to_fallback("routing_unavailable")
            return
        self.s.metrics.calls_offered.labels(queue=queue).inc()
        if outcome.language == "other":
            self.interpreter_on_answer = InterpreterRequest(None, source="menu")
        if queue == self.s.config.spanish_queue and self.s.config.interpreter_providers:
            self.timers.start("overflow", self.s.config.spanish_overflow_s)
        if self.sip_call_id:
            await self.s.store.index_sip_call_id(self.key, self.sip_call_id, self.s.config.call_ttl_s)
        log.info("call %s waiting in %s (priority %d, %s, %s)%s", self.key, queue, outcome.priority,
                 outcome.language, outcome.call_type, " - matched at once" if offers else "")

    async def _offer(self, offer: Offer) -> None:
        if isinstance(self.state, (Ringing, Connected)) and self.state.offer == offer:
            return  # the same offer again, from the sweep after a resubscription
        if not isinstance(self.state, Waiting):
            log.warning("call %s: offer of advocate %s in state %s; declining", self.key, offer.advocate_id,
                        type(self.state).__name__)
            await self._release(offer)
            return
        self._legs += 1
        leg = f"{self.key}-leg{self._legs}"
        self.state = Ringing(self.state.queue, self.state.arrival_ms, offer, leg)
        # Routed before the originate: the leg's first event may beat the reply.
        self.s.dispatcher.route(leg, self.key)
        self.timers.start("ring", self.s.config.ring_s)
        try:
            await self.s.rest.originate(
                offer.endpoint, app=self.s.config.app, app_args=f"leg,{self.key}", channel_id=leg,
                # The advocate's display shows the hotline, never the caller.
                caller_id=f'"Hotline {self.state.queue}" <{self.s.config.toll_free}>',
                timeout_s=int(self.s.config.ring_s) + 5)
        except AriError as exc:
            log.warning("call %s: ringing advocate %s failed (%s)", self.key, offer.advocate_id, type(exc).__name__)
            await self._advocate_missed("dial_failed")
            return
        self.s.metrics.advocate_rings.inc()
        log.info("call %s ringing advocate %s", self.key, offer.advocate_id)

    async def _leg_answered(self, leg: str) -> None:
        if not isinstance(self.state, Ringing) or leg != self.state.leg:
            await self._hangup(leg)
            return
        ringing = self.state
        self.timers.cancel("ring")
        bridge = f"{self.key}-bridge"
        self.s.dispatcher.route(bridge, self.key)
        try:
            if self._hold_message is not None:
                # A playback holds the channel: it would join the bridge only
                # after the message, with the advocate listening to silence.
                playback, self._hold_message = self._hold_message, None
                await self._stop(playback)
            await self.s.rest.stop_moh(self.channel)
            # dtmf_events: no native RTP bridging, so the advocate's feature codes reach us.
            await self.s.rest.create_bridge(bridge, bridge_type="mixing,dtmf_events", name=f"call-{self.key}")
            await self.s.rest.add_to_bridge(bridge, [self.channel, leg])
        except AriNotFound:
            # The caller hung up as the advocate answered: the leg is told below.
            await self._caller_gone("hung up as the advocate answered")
            return
        self.timers.cancel("overflow")
        self.state = Connected(ringing.queue, ringing.offer, leg, bridge, FeatureCodes(self.s.config.feature_codes))
        if self.interpreter_on_answer is not None:
            await self._interpreter_request(self.interpreter_on_answer)
        waited = time.monotonic() - self._enqueued_at
        self.s.metrics.calls_answered.labels(queue=ringing.queue).inc()
        self.s.metrics.wait_seconds.labels(queue=ringing.queue).observe(waited)
        try:
            await self.s.store.offer_answered(self.key, ringing.offer.advocate_id)
            await self.s.store.update_call(self.key, {"answered_by": ringing.offer.advocate_id,
                                                      "waited_ms": str(int(waited * 1000))})
        except RoutingError:
            log.error("call %s: could not record the answer in Redis; the call goes on", self.key)
        log.info("call %s connected to advocate %s after %.1f s", self.key, ringing.offer.advocate_id, waited)

    async def _leg_gone(self) -> None:
        if isinstance(self.state, Ringing):
            await self._advocate_missed("rejected")
        elif isinstance(self.state, Connected):
            # The advocate ended the call; the caller is not left in silence.
            await self._hangup(self.channel)
            await self._finish_connected("advocate hung up")

    async def _advocate_missed(self, reason: str) -> None:
        """The advocate did not take the call: away, and the call is first in line again."""
        assert isinstance(self.state, Ringing)
        ringing = self.state
        self.timers.cancel("ring")
        self.state = Waiting(ringing.queue, ringing.arrival_ms)
        await self._hangup(ringing.leg)
        self.s.dispatcher.unroute(ringing.leg)
        self.s.metrics.advocate_missed.labels(reason=reason).inc()
        try:
            await self.s.store.offer_failed(self.key, ringing.offer.advocate_id)
        except StaleOffer:
            log.warning("call %s: offer to %s already settled", self.key, ringing.offer.advocate_id)
        except RoutingUnavailable:
            await self._to_fallback("routing_unavailable")
            return
        if self._overflow_due and isinstance(self.state, Waiting):
            await self._spanish_overflow(self.state)

    async def _spanish_overflow(self, waiting: Waiting) -> None:
        """No Spanish-speaking advocate in time: any advocate, with a Spanish interpreter."""
        self._overflow_due = False
        target = self.s.config.overflow_queue
        try:
            moved = await self.s.store.move_queue(self.key, waiting.queue, target)
        except RoutingError:
            log.error("call %s: could not overflow to %s; it keeps waiting", self.key, target)
            return
        if moved is None:
            return  # offered meanwhile
        waiting.queue = target
        self.interpreter_on_answer = InterpreterRequest("spa", source="overflow")
        self.s.metrics.spanish_overflows.inc()
        log.info("call %s: Spanish overflow to %s with an interpreter", self.key, target)
        # Told in Spanish what is happening, then back to the music.
        self._playbacks += 1
        self._hold_message = f"{self.key}-pb{self._playbacks}"
        try:
            await self.s.rest.stop_moh(self.channel)
            await self.s.rest.play(self.channel, "sound:hotline/spanish_overflow", playback_id=self._hold_message)
        except AriNotFound:
            pass

    async def _moh(self) -> None:
        try:
            await self.s.rest.start_moh(self.channel)
        except AriNotFound:
            pass

    # -- interpreter ----------------------------------------------------------

    async def _interpreter_request(self, request: InterpreterRequest) -> None:
        if not isinstance(self.state, Connected):
            log.info("call %s: interpreter request while %s; ignored", self.key, type(self.state).__name__)
            return
        current = self.state.interpreting
        if current is not None and not current.over:
            await current.remove()
        if request.remove:
            self.state.interpreting = None
            return
        self.s.metrics.interpreter_requests.labels(language=request.language or "operator",
                                                   source=request.source).inc()
        interpreting = Interpreting(self.key, self.state.bridge, self.state.leg, request.language, self.s,
                                    self.timers)
        self.state.interpreting = interpreting
        await interpreting.start()

    async def _interpreter_event(self, interpreting: Interpreting, item: object) -> None:
        if isinstance(item, TimerFired):
            if self.timers.is_current(item):
                await interpreting.timed_out()
        else:
            await interpreting.handle(item)

    async def _feature_digit(self, connected: Connected, digit: str) -> None:
        outcome = connected.codes.digit(digit)
        if connected.codes.collecting:
            self.timers.start("feature", FEATURE_CODE_TIMEOUT_S)
        else:
            self.timers.cancel("feature")
        await self._feature_outcome(connected, outcome)

    async def _feature_outcome(self, connected: Connected, outcome: object) -> None:
        match outcome:
            case AddInterpreter(language=language):
                await self._interpreter_request(InterpreterRequest(language, source="feature_code"))
            case RemoveInterpreter():
                await self._interpreter_request(InterpreterRequest(remove=True, source="feature_code"))
            case Unknown(code=code):
                log.info("call %s: advocate dialled unknown feature code *%s", self.key, code)

    # -- the end --------------------------------------------------------------

    async def _caller_gone(self, why: str) -> None:
        state = self.state
        self.state = Ended(why)
        self.timers.cancel_all()
        match state:
            case Waiting(queue=queue):
                self.s.metrics.calls_abandoned.labels(queue=queue, stage="queue").inc()
                self.s.metrics.abandon_wait_seconds.labels(queue=queue).observe(time.monotonic() - self._enqueued_at)
                try:
                    if not await self.s.store.abandon(self.key):
                        # An offer is on its way; _after_end releases it.
                        log.info("call %s abandoned with an offer in flight", self.key)
                except RoutingError:
                    log.error("call %s: could not remove it from Redis", self.key)
            case Ringing(queue=queue, offer=offer, leg=leg):
                self.s.metrics.calls_abandoned.labels(queue=queue, stage="ringing").inc()
                await self._hangup(leg)
                await self._release(offer)
            case Connected():
                self.state = state
                await self._finish_connected(why)
                return
            case Answering() | InMenu():
                self.s.metrics.calls_abandoned.labels(queue="", stage="menu").inc()
        log.info("call %s ended: %s", self.key, why)
        self.s.forget(self)

    async def _finish_connected(self, why: str) -> None:
        assert isinstance(self.state, Connected)
        connected = self.state
        self.state = Ended(why)
        self.timers.cancel_all()
        if connected.interpreting is not None:
            await connected.interpreting.remove()
        await self._hangup(connected.leg)
        try:
            await self.s.rest.destroy_bridge(connected.bridge)
        except AriNotFound:
            pass
        try:
            await self.s.store.call_ended(self.key, connected.offer.advocate_id)
        except RoutingError:
            log.error("call %s: could not record the end in Redis", self.key)
        self.s.wrap_up.start(connected.offer.advocate_id)
        log.info("call %s ended: %s", self.key, why)
        self.s.forget(self)

    async def _after_end(self, item: object) -> None:
        if isinstance(item, OfferArrived):
            await self._release(item.offer)
        elif isinstance(item, StasisStart) and item.channel.id != self.channel:
            await self._hangup(item.channel.id)  # an advocate or interpreter answering too late

    async def _release(self, offer: Offer) -> None:
        try:
            await self.s.store.offer_cancelled(self.key, offer.advocate_id)
        except RoutingError:
            log.error("call %s: could not release advocate %s", self.key, offer.advocate_id)

    async def _to_fallback(self, reason: str) -> None:
        """Hand the call back to the dialplan: backup destination, then the hotline message."""
        self.s.metrics.fallbacks.labels(reason=reason).inc()
        self.state = Ended(f"fallback: {reason}")
        self.timers.cancel_all()
        try:
            await self.s.rest.stop_moh(self.channel)
        except AriError:
            pass
        try:
            await self.s.rest.continue_in_dialplan(self.channel, context="hotline-fallback", extension="s",
                                                   priority=1)
        except AriNotFound:
            pass
        self.s.forget(self)

    async def _hangup(self, channel_id: str) -> None:
        try:
            await self.s.rest.hangup(channel_id)
        except AriNotFound:
            pass



def _concerns(item: object, interpreting: Interpreting) -> bool:
    """Whether an item is about the interpreter leg (its events or its timer)."""
    if isinstance(item, TimerFired):
        return item.name == INTERPRETER_TIMER
    channel = getattr(item, "channel", None)
    return channel is not None and getattr(channel, "id", None) is not None and interpreting.owns(channel.id)
