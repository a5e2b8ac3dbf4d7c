"""One caller's call, from the hotline answering to the advocate hanging up.

A ``CallActor`` owns one caller channel and everything the engine creates
for it (the advocate leg, the bridge, its timers). The dispatcher feeds it
ARI events, routing offers and timer firings through one mailbox, in order,
so its state is only ever touched by its own worker and a slow call never
holds up another.

The call's life is an explicit state object: ``InMenu`` -> ``Waiting`` ->
``Ringing`` -> ``Connected`` -> ``Ended``, with ``Escalating`` for a crisis
call that rings the supervisors. What to do is decided by pure code (the
menu session, the call's ``CallPlan`` of queue policies, the Lua matcher);
this module carries the decisions out over ARI and Redis and records what
happened.

Failure rule: whatever goes wrong, the caller ends with a human or a clear
message. If routing is unavailable the call goes to the dialplan fallback
(backup destination, then the hotline's message); if an advocate does not
answer, the call goes back first in line; a call that reaches its queue's
maximum wait goes to the backup destination, told so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable

from ivr.ari.errors import AriError, AriNotFound, AriUnavailable
from ivr.ari.events import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from ivr.ari.models import Channel
from ivr.call_states import (
    Adopt,
    Answering,
    Connected,
    Ended,
    Escalating,
    InMenu,
    OfferArrived,
    Reconciled,
    Ringing,
    RoutingOutage,
    RoutingRestored,
    State,
    Waiting,
)
from ivr.escalation import TIMER as ESCALATION_TIMER
from ivr.escalation import Escalation
from ivr.feature_codes import AddInterpreter, FeatureCodes, RemoveInterpreter, Unknown
from ivr.hold import HoldLine, stop_playback
from ivr.interpreting import TIMER as INTERPRETER_TIMER
from ivr.interpreting import InterpreterRequest, Interpreting
from ivr.menu import (
    CancelTimer,
    Finish,
    MenuOutcome,
    MenuSession,
    Play,
    StartTimer,
    StopPlayback,
)
from ivr.monitoring import CallLine, MonitorAnswer, MonitorRecord, MonitorRequest, carry_out
from ivr.privacy import call_id_unsafe, number_tail
from ivr.services import CallServices
from ivr.timers import TimerFired, Timers
from routing.errors import Conflict, RoutingError, RoutingUnavailable, StaleOffer
from routing.policy import (
    CallPlan,
    Escalate,
    Overflow,
    Widen,
    announced_minutes,
    estimated_wait_s,
    within_target,
)
from routing.queues import Offer, WaitingCall

log = logging.getLogger(__name__)

# How long the advocate may pause between the digits of a feature code.
FEATURE_CODE_TIMEOUT_S = 3.0
# Pauses between attempts to hand a caller to the dialplan fallback while
# Asterisk does not answer (a request times out, or a 5xx); then, with the
# music on meanwhile, one every FALLBACK_RETRY_EVERY_S until it takes them.
FALLBACK_RETRIES_S = (0.5, 1.0, 2.0)
FALLBACK_RETRY_EVERY_S = 10.0
# A plan step Redis refused because the call was offered waits for that
# offer's ring. The offer comes in a round trip, or with the offers sweep
# after a resubscription; one not here after this long is not coming.
OFFER_LOST_S = 10.0
# Hold music Asterisk refused is asked for again this soon: otherwise only
# the next comfort message's end (a minute) would end the silence.
MUSIC_RETRY_S = 2.0
# A call adopted in the menu: the dead engine's playbacks on it that the new
# one stops (ivr.hold.HoldLine.stop_left_behind). A playback per prompt, so
# as many prompts as a caller hears in minutes of the menu; one who has
# heard more may have their first request held until the prompt ends.
ADOPTED_PROMPTS_STOPPED = 40
# The dialplan context that takes a caller to the backup destination (dialplans/extensions.conf).
FALLBACK_CONTEXT = "hotline-fallback"
# Set on the channel of a caller who said in the menu that they call through
# a relay service (one known by number or line needs no mark): an engine
# adopting the call mid-menu reads it, as it reads the channel's language.
RELAY_CHOSEN_VAR = "HOTLINE_RELAY_CHOSEN"


class CallActor:
    def __init__(self, channel_id: str, did: str, services: CallServices, sip_call_id: str = "") -> None:
        self.key = channel_id
        self.channel = channel_id
        self.did = did
        self.s = services
        self.state: State = Answering()
        self.outcome: MenuOutcome | None = None
        self.language = "en"
        self.timers = Timers(channel_id, lambda item: services.dispatcher.post(channel_id, item), services.tasks)
        self.caller_ref = ""  # HMAC of the number, never the number
        self._caller_tail = ""  # its last digits, only to keep them out of the SIP Call-ID we store
        self.sip_call_id = sip_call_id  # from the dialplan; else read as the call is answered
        self.relay = False  # TRS/711, known from the number or line, chosen, or a silent caller
        self._relay_marked = False  # RELAY_CHOSEN_VAR set on the channel
        self.plan: CallPlan | None = None  # fixed when the call joins the line
        self._steps_done = 0  # of plan.steps
        self._steps_pending = False  # a step fell due while an advocate's phone rang
        self._refused_at_leg: int | None = None  # self._legs when Redis last refused a due step
        self._extra_legs: tuple[str, ...] = ()  # found in an adopted call's bridge (an interpreter)
        self.hold = HoldLine(channel_id, services.rest)
        self._legs = 0
        # Offers acted on: each comes at least twice (the script's reply,
        # pub/sub) and maybe again from the offers sweep.
        self._offers_taken: set[Offer] = set()
        # Joined as soon as the advocate answers: the operator for "other
        # languages", Spanish after an overflow.
        self.interpreter_on_answer: InterpreterRequest | None = None
        self._enqueued_at = time.monotonic()

    def __repr__(self) -> str:
        return f"CallActor({self.key}, {type(self.state).__name__})"

    @property
    def advocates_held(self) -> tuple[str, ...]:
        """Who is ringing for or talking with this call, as the engine knows it."""
        match self.state:
            case Ringing(offer=offer) | Connected(offer=offer):
                return (offer.advocate_id,)
            case Escalating(escalation=escalation):
                return tuple(escalation.ringing_ids())
        return ()

    @property
    def monitor_record(self) -> MonitorRecord | None:
        """What a supervisor monitoring the call has been given, if one is."""
        if isinstance(self.state, Connected) and self.state.monitoring is not None:
            return self.state.monitoring.record
        return None

    # -- entry ----------------------------------------------------------------

    async def handle(self, item: object) -> None:
        try:
            await self._handle(item)
        except Exception as exc:  # whatever failed, the caller needs a way out
            if isinstance(self.state, (Connected, Ended)):
                raise  # with a human, or over: it goes on as it is (the dispatcher logs it)
            await self._rescue(item, exc)

    async def _rescue(self, item: object, exc: Exception) -> None:
        """No step of the call handled `exc` (Asterisk or Redis failing
        mid-step, or a bug): whatever state it left, a caller not yet with a
        human goes to the backup destination rather than stay in silence or
        in a line nobody serves."""
        what = getattr(item, "type", type(item).__name__)
        state = self.state
        if isinstance(exc, AriNotFound) and not await self._exists(self.s.rest.get_channel(self.channel)):
            # The caller hung up mid-step (a prompt for a channel just gone):
            # their hang-up, not an engine error.
            await self._caller_gone("caller hung up")
            return
        log.error("call %s: %s handling %s in %s; to the backup destination", self.key, type(exc).__name__,
                  what, type(state).__name__, exc_info=exc)
        self.timers.cancel_all()
        try:
            await self._let_go(state)
        except Exception as cleanup:  # noqa: BLE001 - the caller's way out comes first
            log.error("call %s: could not release its routing (%s)", self.key, type(cleanup).__name__)
        await self._to_fallback("engine_error")

    @staticmethod
    async def _exists(lookup: Awaitable[object]) -> bool:
        """Whether Asterisk still has what `lookup` (a GET) asks for; True
        when it cannot tell, so that the step that would follow a gone
        channel or playback is not taken on a guess."""
        try:
            await lookup
        except AriNotFound:
            return False
        except AriError:
            return True
        return True

    async def _handle(self, item: object) -> None:
        if isinstance(self.state, Ended):
            await self._after_end(item)
            return
        if isinstance(self.state, Connected) and self.state.interpreting is not None \
                and _concerns(item, self.state.interpreting):
            await self._interpreter_event(self.state.interpreting, item)
            return
        if isinstance(self.state, Connected) and self.state.monitoring is not None \
                and self.state.monitoring.concerns(item):
            connected = self.state
            await self.state.monitoring.handle(item)
            if connected.monitoring is not None and connected.monitoring.over:
                connected.monitoring = None  # the supervisor left; caller and advocate go on
            return
        if isinstance(self.state, Escalating) and await self._escalation_event(self.state, item):
            return
        match item:
            case StasisStart(channel=channel) if channel.id == self.channel:
                if isinstance(self.state, Answering):
                    await self._answer(item)
                else:
                    # Carried on already: adopted at a (re)connection while
                    # this event waited behind the reconciliation, or a repeat.
                    log.info("call %s: its caller's StasisStart again, in state %s; skipped", self.key,
                             type(self.state).__name__)
            case Adopt():
                await self._adopt(item)
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
            case MonitorRequest():
                await self._monitor_request(item)
            case PlaybackFinished(playback=playback) if self.hold.finished(playback.id):
                await self._hold_message_over()
            case PlaybackFinished(playback=playback):
                if isinstance(self.state, InMenu) and playback.id == self.state.playback:
                    await self._prompt_over(self.state)
            case TimerFired():
                if self.timers.is_current(item):
                    await self._timer(item.name)
            case OfferArrived(offer=offer, swept=swept):
                await self._offer(offer, swept)
            case StasisEnd(channel=channel) | ChannelDestroyed(channel=channel) | \
                    ChannelHangupRequest(channel=channel):
                if channel.id == self.channel:
                    await self._caller_gone("caller hung up")
                elif isinstance(self.state, (Ringing, Connected)) and channel.id == self.state.leg:
                    await self._leg_gone()
            case Reconciled(live=live):
                await self._reconciled(live)
            case RoutingRestored():
                await self._routing_restored()
            case RoutingOutage():
                if isinstance(self.state, Waiting):
                    log.warning("call %s: routing unavailable for too long; to the backup destination", self.key)
                    await self._to_fallback("routing_unavailable")
            case _:
                log.debug("call %s: %s ignored in %s", self.key, getattr(item, "type", type(item).__name__),
                          type(self.state).__name__)

    # -- answer and menu ------------------------------------------------------

    async def _answer(self, event: StasisStart) -> None:
        self.s.metrics.calls_received.inc()
        self._identify(event.channel)
        self.sip_call_id = self._fit_call_id(self.sip_call_id)
        session = self._menu_session(self.s.config.entry_for_did(self.did))
        self.state = InMenu(session)
        actions = session.start()
        log.info("call %s on the %s line%s", self.key, self.s.config.line_kind(self.did),
                 " (relay)" if self.relay else "")
        # dialplans/extensions.conf answers before Stasis; another dialplan may leave it to us.
        up = event.channel.state == "Up"
        skips_menu = any(isinstance(a, Finish) for a in actions) and not any(isinstance(a, Play) for a in actions)
        if skips_menu and not self._call_id_to_read():
            # A line that skips the menu: the caller joins the line while
            # Asterisk answers, so a free advocate's phone rings a round trip
            # sooner. (The music may start a moment before the answer: early
            # media.) Not while the SIP Call-ID is still to be read: the
            # record written as the call joins the line carries it.
            menu, picked_up = await asyncio.gather(self._menu(actions), self._pick_up(up), return_exceptions=True)
            for outcome in (menu, picked_up):
                if isinstance(outcome, BaseException):
                    raise outcome
            if not picked_up:
                await self._caller_gone("hung up before answer")
            return
        if not await self._pick_up(up):
            await self._caller_gone("hung up before answer")
            return
        await self._menu(actions)

    def _identify(self, caller: Channel) -> None:
        """The caller as the call keeps them: their number's HMAC, its last
        digits (to keep it out of the SIP Call-ID we store), and whether the
        number or the line is a relay service's."""
        number = caller.caller.number
        self.caller_ref = self.s.hasher(number)
        self._caller_tail = number_tail(number)
        self.relay = self.s.config.is_relay(number, self.did)

    def _menu_session(self, entry: str | None) -> MenuSession:
        """The menu from `entry` (None: its start); a relay caller's from the
        relay entry, with the relay timeouts throughout."""
        if self.relay and "relay" in self.s.menu.entries:
            entry = "relay"
        return MenuSession(self.s.menu, entry=entry, relay=self.relay,
                           relay_timeout_factor=self.s.config.relay_menu_factor)

    async def _pick_up(self, up: bool) -> bool:
        """Answer the caller unless the dialplan did (`up`), learning the SIP
        Call-ID meanwhile if the dialplan did not pass it; False if they are gone."""
        try:
            if up:
                await self._learn_sip_call_id()
            else:
                await asyncio.gather(self.s.rest.answer(self.channel), self._learn_sip_call_id())
        except AriNotFound:
            return False
        return True

    # -- adoption -------------------------------------------------------------

    async def _adopt(self, item: Adopt) -> None:
        """Carry on a call a dead engine held, from where Redis and Asterisk say it is.

        The caller never hears the change: a waiting caller keeps their music
        and place in line, a connected call its bridge (Asterisk kept both).
        """
        if not isinstance(self.state, Answering):
            return
        self._legs = max([self._legs, *(_leg_number(leg) for leg in item.legs)])
        try:
            # The record as the takeover found it: the one read when the
            # channels were grouped may be older (an offer made since).
            record = await self.s.store.adopt_call(self.key, self.s.config.owner) \
                if item.record is not None else None
        except RoutingError:
            await self._to_fallback("routing_unavailable")
            return
        if record is None:
            # Still in the menu when the engine died: start it again, for the
            # caller as they called (a relay caller keeps the relay menu's
            # patience) and in the language their channel kept: a caller
            # who chose Spanish goes on in Spanish at the Spanish line's
            # entry, not back at the bilingual language menu.
            self._identify(item.caller)
            self.relay = self.relay or await self._relay_chosen()
            self.language = item.caller.language
            entry = self.s.config.entry_for_did(self.did) or self.s.menu.entry_for_language(self.language)
            log.info("call %s adopted in the menu; starting it again%s", self.key,
                     f" at {entry}" if entry else "")
            await self.hold.stop_left_behind(ADOPTED_PROMPTS_STOPPED)
            await self._learn_sip_call_id()
            session = self._menu_session(entry)
            self.state = InMenu(session)
            await self._menu(session.start())
            return
        self._restore(record)
        state = record.get("state")
        queue = record.get("queue", self._plan.entry_queue)
        arrival_ms = int(record.get("arrival_ms", "0"))
        log.info("call %s adopted in state %s", self.key, state)
        try:
            match state:
                case "waiting":
                    self.state = Waiting(queue, arrival_ms)
                    await self._wait_adopted()
                case "offered":
                    await self._adopt_offered(item, record, queue, arrival_ms)
                case "bridged":
                    await self._adopt_bridged(item, record, queue)
                case "escalating":
                    # The supervisors' phones may still ring for a dead engine:
                    # release them all and send the caller to the backup line.
                    rung = [a.id for a in await self.s.store.list_advocates() if a.call_id == self.key]
                    for leg in item.legs:
                        await self._hangup(leg)
                    await self.s.store.escalation_settled(self.key, None, rung)
                    await self._to_fallback("crisis_escalation")
                case _:
                    await self._to_fallback("adopted")
        except RoutingError:
            await self._to_fallback("routing_unavailable")

    def _restore(self, record: dict[str, str]) -> None:
        """The call's plan and flags, rebuilt from its record."""
        self.relay = record.get("relay") == "1"
        self.caller_ref = record.get("caller_ref", "")
        self.sip_call_id = record.get("sip_call_id", "")
        language = record.get("language", "en")
        # What the menu decided, as the record keeps it: a call adopted
        # without it could not be written back after Redis lost its data,
        # and would wait in a line Redis no longer has.
        defaults = self.s.menu.defaults
        priority = record.get("priority", "")
        self.outcome = MenuOutcome(
            language=language, call_type=record.get("call_type", defaults.call_type),
            priority=int(priority) if priority.isdigit() else defaults.priority,
            path=tuple(record.get("path", "").split()), no_input=record.get("no_input") == "1",
            relay=self.relay)
        self.plan = self.s.config.plan(self.s.config.queue_for_language(language), self.relay,
                                       record.get("call_type") == "crisis")
        waited_s = max(0.0, time.time() - int(record.get("arrival_ms", "0")) / 1000)
        self._enqueued_at = time.monotonic() - waited_s
        # Tiers already taken are not taken again; the interpreter the
        # current tier (or the menu) asked for is still due on answer.
        tiers = [t.queue for t in self._plan.tiers]
        current = max((i for i, q in enumerate(tiers) if q == record.get("queue")), default=0)
        for step in self._plan.steps:
            if not (isinstance(step, Widen) and tiers.index(step.tier.queue) <= current):
                break
            self._steps_done += 1
            if step.tier.interpreter is not None:
                self.interpreter_on_answer = InterpreterRequest(step.tier.interpreter, source="overflow")
        if language == "other" and self.interpreter_on_answer is None:
            self.interpreter_on_answer = InterpreterRequest(None, source="menu")

    async def _wait_adopted(self) -> None:
        """An adopted call in line: its music, comfort messages and plan."""
        await self._music()
        self._arm_comfort()
        await self._policy_due()

    async def _adopt_offered(self, item: Adopt, record: dict[str, str], queue: str, arrival_ms: int) -> None:
        advocate = await self.s.store.get_advocate(record.get("advocate", ""))
        offer = Offer(call_id=self.key, advocate_id=record.get("advocate", ""),
                      endpoint=advocate.endpoint if advocate else "", queue=queue, owner=self.s.config.owner,
                      offered_ms=int(record.get("offered_ms") or 0))
        ringing = [leg for leg in item.legs if "-leg" in leg]
        self.state = Waiting(queue, arrival_ms)
        # The plan's steps (widen, escalate, overflow) are looked at again
        # if this ring is missed: _advocate_missed.
        self._steps_pending = True
        if not ringing:
            # The dead engine never rang: ring now, once, if Redis still says so.
            await self._offer(offer, swept=True)
            if isinstance(self.state, Waiting):
                await self._wait_adopted()  # settled meanwhile: back in line, or its offer on its way
            return
        leg = ringing[-1]
        self.state = Ringing(queue, arrival_ms, offer, leg)
        self.s.dispatcher.route(leg, self.key)
        if leg in item.up_legs:
            await self._connect(queue, offer, leg, recorded=False)
        else:
            self.timers.start("ring", self._plan.ring_s)

    async def _adopt_bridged(self, item: Adopt, record: dict[str, str], queue: str) -> None:
        advocate_id = record.get("advocate", "")
        advocate = await self.s.store.get_advocate(advocate_id)
        offer = Offer(call_id=self.key, advocate_id=advocate_id, endpoint=advocate.endpoint if advocate else "",
                      queue=queue, owner=self.s.config.owner)
        bridge = f"{self.key}-bridge"
        in_bridge = [c for c in item.bridge or () if c != self.channel]
        legs = [c for c in in_bridge if "-leg" in c or "-sup" in c]
        self._extra_legs = tuple(c for c in in_bridge if c not in legs)
        self.s.dispatcher.route(bridge, self.key)
        for channel in in_bridge:
            self.s.dispatcher.route(channel, self.key)
        # The answer was at arrival + wait, both on the record: the handle
        # time counts from there, not from the adoption (unknown without them).
        answered_at = None
        if "arrival_ms" in record and "waited_ms" in record:
            answered_s = (int(record["arrival_ms"]) + int(record["waited_ms"])) / 1000
            answered_at = time.monotonic() - max(0.0, time.time() - answered_s)
        self.state = Connected(queue, offer, legs[0] if legs else "", bridge,
                               FeatureCodes(self.s.config.feature_codes), answered_at=answered_at)
        if not legs:
            # The advocate hung up while no engine was listening: the call is over.
            await self._hangup(self.channel)
            await self._finish_connected("advocate hung up")

    def _call_id_to_read(self) -> bool:
        # Not when the dialplan passed it, nor when it would not be kept
        # whatever it is (a withheld number: ivr.privacy.call_id_unsafe).
        return not self.sip_call_id and bool(self._caller_tail)

    async def _learn_sip_call_id(self) -> None:
        # Carriers ask for the SIP Call-ID in trouble tickets; it names the
        # call (never the caller: _fit_call_id). dialplans/extensions.conf passes it.
        if not self._call_id_to_read():
            return
        try:
            self.sip_call_id = self._fit_call_id(await self.s.rest.get_var(self.channel, "CHANNEL(pjsip,call-id)"))
        except AriError:
            pass

    def _fit_call_id(self, call_id: str) -> str:
        """`call_id`, or "" if it may carry the caller's number: it is kept
        in Redis and shown through the API (ivr.privacy.call_id_unsafe)."""
        if why := call_id_unsafe(call_id, self._caller_tail):
            log.info("call %s: SIP Call-ID not kept: %s", self.key, why)
            return ""
        return call_id

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

    async def _relay_chosen(self) -> bool:
        try:
            return await self.s.rest.get_var(self.channel, RELAY_CHOSEN_VAR) == "1"
        except AriError:  # unset: Asterisk answers 404
            return False

    async def _play(self, state: InMenu, prompts: tuple[str, ...], language: str) -> None:
        if state.session.state.outcome.relay and not self.relay and not self._relay_marked:
            # Before the next prompt, as the language: no prompt of ours is
            # playing, which Asterisk would hold the request behind.
            await self.s.rest.set_var(self.channel, RELAY_CHOSEN_VAR, "1")
            self._relay_marked = True
        if language != self.language:
            await self.s.rest.set_var(self.channel, "CHANNEL(language)", language)
            self.language = language
        playback = self.hold.next_playback_id()
        state.playback = playback
        await self.s.rest.play(self.channel, [f"sound:hotline/{p}" for p in prompts], playback_id=playback)

    async def _stop_playback(self, state: InMenu) -> None:
        playback, state.playback = state.playback, None
        if playback is not None:
            await self._stop(playback)

    async def _stop(self, playback: str) -> None:
        await stop_playback(self.s.rest, playback)

    async def _timer(self, name: str) -> None:
        if name == "menu" and isinstance(self.state, InMenu):
            await self._menu(self.state.session.timed_out())
        elif name == "policy":
            await self._policy_due()
        elif name == "music" and isinstance(self.state, (Waiting, Ringing, Escalating)) \
                and self.hold.message is None:
            await self._music()
        elif name == "comfort" and isinstance(self.state, Waiting):
            await self._comfort(self.state)
        elif name == "feature" and isinstance(self.state, Connected):
            await self._feature_outcome(self.state, self.state.codes.timed_out())
        elif name == "ring" and isinstance(self.state, Ringing):
            log.info("call %s: advocate %s did not answer in %.0f s", self.key, self.state.offer.advocate_id,
                     self._plan.ring_s)
            await self._advocate_missed("no_answer")

    @property
    def _plan(self) -> CallPlan:
        assert self.plan is not None, "the call has no plan before it joins the line"
        return self.plan

    def _labels(self) -> dict[str, str]:
        """Metric labels of a queued call: the queue it entered, and relay."""
        return {"queue": self._plan.entry_queue, "relay": str(self.relay).lower()}

    # -- queue ----------------------------------------------------------------

    async def _enqueue(self, outcome: MenuOutcome) -> None:
        self.outcome = outcome
        # Silence all the way through may be a relay operator still typing:
        # routed as relay (longer rings, relay-skilled advocates first).
        self.relay = outcome.relay or outcome.silent
        crisis = outcome.call_type == "crisis"
        self.plan = self.s.config.plan(self.s.config.queue_for_language(outcome.language), self.relay, crisis)
        queue = self._plan.entry_queue
        arrival_ms = int(time.time() * 1000)
        self.s.metrics.menu_outcomes.labels(language=outcome.language, call_type=outcome.call_type).inc()
        self.state = Waiting(queue, arrival_ms)
        self._enqueued_at = time.monotonic()
        call = WaitingCall(call_id=self.key, queue=queue, priority=outcome.priority, arrival_ms=arrival_ms,
                           owner=self.s.config.owner)
        try:
            enqueued = await self.s.store.enqueue(call, self._record_fields(), self.s.config.call_ttl_s,
                                                  tally=self.s.daily.tally(queue, "offered"))
        except RoutingError as exc:
            log.error("call %s: routing unavailable (%s); sending to the fallback", self.key, type(exc).__name__)
            await self._to_fallback("routing_unavailable")
            return
        self.s.metrics.calls_offered.labels(**self._labels()).inc()
        if outcome.language == "other":
            self.interpreter_on_answer = InterpreterRequest(None, source="menu")
        self._arm_policy()
        self._arm_comfort()
        log.info("call %s waiting in %s (priority %d, %s, %s%s)%s", self.key, queue, outcome.priority,
                 outcome.language, outcome.call_type, ", relay" if self.relay else "",
                 " - matched at once" if enqueued else "")
        for offer in enqueued:
            if offer.call_id == self.key:
                await self._offer(offer)
        # The music after the ring, not beside the enqueue: when many callers
        # arrive together, their music starts took Asterisk's CPU ahead of
        # the advocates' rings (bench, 50 at once, seven runs each: arrival
        # to ring median 264 ms against 363). A caller with no advocate free
        # hears it a Redis round trip later. Not over a message being said
        # (its end starts the music), nor once the call has left the line.
        if isinstance(self.state, (Waiting, Ringing, Escalating)) and self.hold.message is None:
            try:
                await self.s.rest.start_moh(self.channel)
            except AriNotFound:
                # Gone as they joined the line (the menu's last moment, or
                # the ring just sent); the call is in Redis now and leaves it
                # as any caller who hangs up while waiting or ringing.
                await self._caller_gone("hung up in the menu")
            except AriError as exc:
                # Asterisk slow or out of reach: the call keeps its place in line.
                log.warning("call %s: hold music not started (%s)", self.key, type(exc).__name__)
                self.timers.start("music", MUSIC_RETRY_S)

    async def _count_today(self, *counts: str) -> None:
        """Today's counts on the wallboard, shared by every engine: counted
        with the hotline_calls_* metrics, by the queue the call entered."""
        try:
            await self.s.daily.add(self._plan.entry_queue, *counts)
        except RoutingError:
            log.error("call %s: not counted in today's %s (Redis unavailable)", self.key, ", ".join(counts))

    def _record_fields(self) -> dict[str, str]:
        """The call's metadata in its Redis record (never the caller's number)."""
        outcome = self.outcome
        assert outcome is not None and self.plan is not None
        return {"language": outcome.language, "call_type": outcome.call_type, "path": " ".join(outcome.path),
                "no_input": str(int(outcome.no_input)), "did_kind": self.s.config.line_kind(self.did),
                "relay": str(int(self.relay)), "entry_queue": self.plan.entry_queue, "ari": self.s.config.ari_url,
                "sip_call_id": self.sip_call_id, "caller_ref": self.caller_ref}

    def _waited_s(self) -> float:
        return time.monotonic() - self._enqueued_at

    async def _say(self, media: list[str]) -> bool:
        """A message to a caller in line, or the music again if it cannot be said."""
        if await self.hold.say(media):
            return True
        await self._music()
        return False

    async def _music(self) -> None:
        """Hold music for a caller in line; asked for again shortly if refused."""
        if not await self.hold.music():
            self.timers.start("music", MUSIC_RETRY_S)

    def _arm_comfort(self) -> None:
        # Counted from the end of whatever was last said: the caller always
        # gets comfort_every_s of music between two messages.
        if self._plan.policy.comfort_every_s is not None:
            self.timers.start("comfort", self._plan.policy.comfort_every_s)

    def _arm_policy(self) -> None:
        at = self._plan.next_at(self._steps_done)
        if at is not None:
            self.timers.start("policy", max(0.0, at - self._waited_s()))

    async def _policy_due(self) -> None:
        """Carry out the plan's steps whose time has come (widen, escalate, overflow)."""
        if isinstance(self.state, Ringing):
            self._steps_pending = True  # unless this ring is answered: see _advocate_missed
            return
        self._steps_pending = False
        for step in self._plan.due(self._steps_done, self._waited_s()):
            if not isinstance(self.state, Waiting):
                return
            match step:
                case Widen(tier=tier):
                    done = await self._widen(self.state, tier.queue, tier.interpreter, tier.say)
                case Escalate():
                    done = await self._escalate(self.state)
                case Overflow():
                    done = await self._max_wait(self.state)
            if not done:
                if self._refused_at_leg == self._legs:
                    await self._routing_lost()
                    return
                # The call was offered meanwhile (the offer is on its way):
                # the step stays due, for when that ring is missed. Should
                # the ring never come, the steps are tried again.
                self._refused_at_leg = self._legs
                self._steps_pending = True
                self.timers.start("policy", OFFER_LOST_S)
                return
            self._refused_at_leg = None
            self._steps_done += 1
        if isinstance(self.state, Waiting):
            self._arm_policy()

    async def _routing_lost(self) -> None:
        """A due step refused twice with no ring between: Redis has this call
        in no line an advocate can take it from, or offered with a ring that
        never came (a record lost or out of step with the engine). Waiting on
        would be music with no end; the backup destination is the human the
        caller can still reach."""
        log.error("call %s: Redis refused its due steps twice and no advocate rang; "
                  "sending it to the backup destination", self.key)
        try:
            record = await self.s.store.get_call(self.key) or {}
            if record.get("state") == "offered":
                self.s.take_offers(await self.s.store.offer_cancelled(self.key, record.get("advocate", "")))
            else:
                await self.s.store.abandon(self.key)
        except RoutingError:
            pass  # a record left behind ends with the caller's channel, or expires
        await self._to_fallback("routing_lost")

    async def _offer(self, offer: Offer, swept: bool = False) -> None:
        # Redis offers a call only while it waits: an offer naming the advocate
        # this call rings or talks to is that same offer, however stamped (a
        # call restored after Redis lost it has no offer time on its record).
        if offer in self._offers_taken or isinstance(self.state, (Ringing, Connected)) and \
                self.state.offer.advocate_id == offer.advocate_id:
            return  # a copy of an offer acted on: pub/sub after the reply, or the sweep
        self._offers_taken.add(offer)
        # Before declining: declining a swept offer settled since would cancel
        # whatever Redis now has between this call and that advocate.
        if swept and not await self._offer_current(offer):
            log.info("call %s: offer of advocate %s settled already; ignored", self.key, offer.advocate_id)
            return
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
        ring_s = self._plan.ring_s
        self.timers.start("ring", ring_s)
        try:
            await self.s.rest.originate(
                offer.endpoint, app=self.s.config.app, app_args=f"leg,{self.key}", channel_id=leg,
                # The advocate's display shows the hotline, never the caller.
                caller_id=f'"Hotline {self.state.queue}{" RELAY" if self.relay else ""}" <{self.s.config.toll_free}>',
                timeout_s=int(ring_s) + 5)
        except AriError as exc:
            log.warning("call %s: ringing advocate %s failed (%s)", self.key, offer.advocate_id, type(exc).__name__)
            await self._advocate_missed("dial_failed")
            return
        self.s.metrics.advocate_rings.inc()
        log.info("call %s ringing advocate %s", self.key, offer.advocate_id)

    async def _offer_current(self, offer: Offer) -> bool:
        # An offer from a script's reply or from pub/sub is current when it
        # first arrives (later copies are known by _offers_taken); one
        # re-delivered by the offers sweep may not be: read before this call's
        # ring failed, it names an advocate who may meanwhile be ringing for another call.
        try:
            return await self.s.store.offer_current(offer)
        except RoutingError:
            return True  # Redis gone: ring as offered; the answer is recorded if Redis returns

    async def _leg_answered(self, leg: str) -> None:
        if isinstance(self.state, Escalating):
            offer = await self.state.escalation.answered(leg)
            if offer is None:
                await self._hangup(leg)
            else:
                self.s.metrics.escalations.labels(outcome="supervisor").inc()
                await self._connect(self.state.queue, offer, leg, recorded=True)
            return
        if not isinstance(self.state, Ringing) or leg != self.state.leg:
            await self._hangup(leg)
            return
        self.timers.cancel("ring")
        await self._connect(self.state.queue, self.state.offer, leg, recorded=False)

    async def _connect(self, queue: str, offer: Offer, leg: str, *, recorded: bool) -> None:
        """Bridge the caller with the advocate (or supervisor) who answered on `leg`.

        `recorded`: Redis already knows who took the call (the escalation script).
        """
        bridge = f"{self.key}-bridge"
        self.s.dispatcher.route(bridge, self.key)
        try:
            # A playback holds the channel: it would join the bridge only
            # after the message, with the advocate listening to silence.
            await self.hold.stop()
            await self.s.rest.stop_moh(self.channel)
            # dtmf_events: no native RTP bridging, so the advocate's feature codes reach us.
            await self.s.rest.create_bridge(bridge, bridge_type="mixing,dtmf_events", name=f"call-{self.key}")
            await self.s.rest.add_to_bridge(bridge, [self.channel, leg])
        except AriNotFound:
            # The caller hung up as the advocate answered.
            if recorded:  # the supervisor is on the call in Redis: end it there
                self.state = Connected(queue, offer, leg, bridge, FeatureCodes({}))
            else:
                self.state = Ringing(queue, 0, offer, leg)
            await self._caller_gone("hung up as the advocate answered")
            return
        except AriError as exc:
            if not recorded and not isinstance(self.state, Ringing):
                raise
            try:
                await self.s.rest.destroy_bridge(bridge)
            except AriError:
                pass  # never made, or Asterisk is away
            self.s.dispatcher.unroute(bridge)
            if recorded:
                await self._supervisor_not_connected(offer, leg, exc)
                return
            # Asterisk too slow or out of reach: the caller is not connected
            # and must not be left in silence. The advocate's leg is let go
            # and the call is first in line again, with its music.
            log.warning("call %s: could not connect advocate %s (%s)", self.key, offer.advocate_id,
                        type(exc).__name__)
            await self._advocate_missed("dial_failed")
            if isinstance(self.state, Waiting):
                await self._music()
            return
        self.timers.cancel("policy")
        self.timers.cancel("comfort")
        self.state = Connected(queue, offer, leg, bridge, FeatureCodes(self.s.config.feature_codes),
                               answered_at=time.monotonic())
        if self.interpreter_on_answer is not None:
            await self._interpreter_request(self.interpreter_on_answer)
        waited = self._waited_s()
        labels = self._labels()
        self.s.metrics.calls_answered.labels(**labels).inc()
        self.s.metrics.wait_seconds.labels(**labels).observe(waited)
        within = within_target(waited, self._plan.policy)
        if within:
            self.s.metrics.answered_within_target.labels(**labels).inc()
        counts = ("answered", *(("answered_within_target",) if within else ()))
        try:
            if not recorded:
                await self.s.store.offer_answered(self.key, offer.advocate_id, waited_ms=int(waited * 1000),
                                                  tally=self.s.daily.tally(self._plan.entry_queue, *counts))
            else:  # a supervisor, whom the escalation script recorded
                await self.s.store.update_call(self.key, {"answered_by": offer.advocate_id,
                                                          "waited_ms": str(int(waited * 1000))})
                await self._count_today(*counts)
        except RoutingError:
            log.error("call %s: could not record the answer in Redis; the call goes on", self.key)
        log.info("call %s connected to advocate %s after %.1f s", self.key, offer.advocate_id, waited)

    async def _supervisor_not_connected(self, offer: Offer, leg: str, exc: AriError) -> None:
        """A supervisor answered the crisis call but Asterisk could not bridge
        them (their phone hung up at once, or Asterisk failing). The
        escalation is settled in Redis with them on the call: that call ends
        there (they go to wrap-up), and the caller goes to the backup
        destination, the escalation's own last resort."""
        log.error("call %s: could not connect supervisor %s (%s); to the backup destination", self.key,
                  offer.advocate_id, type(exc).__name__)
        await self._hangup(leg)
        try:
            await self.s.store.call_ended(self.key, offer.advocate_id)
        except RoutingError:
            log.error("call %s: could not record the end in Redis", self.key)
        self.s.wrap_up.start(offer.advocate_id, self.key)
        await self._to_fallback("crisis_escalation")

    async def _hold_message_over(self) -> None:
        # Ringing too: an offer may come while a message is being said.
        if isinstance(self.state, (Waiting, Ringing, Escalating)):
            await self._music()
        if isinstance(self.state, Waiting):
            self._arm_comfort()

    async def _prompt_over(self, menu: InMenu) -> None:
        menu.playback = None
        await self._menu(menu.session.prompt_finished(menu.serial))

    async def _reconciled(self, live: frozenset[str]) -> None:
        if self.channel not in live:
            await self._caller_gone("channel gone")
            return
        # A prompt or hold message whose end came unheard: what follows it
        # is due now, not after the menu's playback guard or never.
        rest = self.s.rest
        if isinstance(self.state, InMenu) and self.state.playback:
            if not await self._exists(rest.get_playback(self.state.playback)):
                await self._prompt_over(self.state)
        elif self.hold.message is not None and not await self._exists(rest.get_playback(self.hold.message)):
            self.hold.finished(self.hold.message)
            await self._hold_message_over()
        # An advocate's leg not listed is asked about again: the list may be
        # older than a ring begun since.
        if isinstance(self.state, (Ringing, Connected)) and self.state.leg and self.state.leg not in live \
                and not await self._exists(rest.get_channel(self.state.leg)):
            log.warning("call %s: advocate %s's leg ended while the engine could not hear it", self.key,
                        self.state.offer.advocate_id)
            await self._leg_gone()

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
            self.s.take_offers(await self.s.store.offer_failed(self.key, ringing.offer.advocate_id))
        except StaleOffer:
            log.warning("call %s: offer to %s already settled", self.key, ringing.offer.advocate_id)
        except RoutingUnavailable:
            await self._to_fallback("routing_unavailable")
            return
        if isinstance(self.state, Waiting):
            self._arm_comfort()  # a comfort tick during the ring was skipped
        if self._steps_pending:
            await self._policy_due()

    # -- queue policies -------------------------------------------------------

    async def _widen(self, waiting: Waiting, target: str, interpreter: str | None, say: str | None) -> bool:
        """A skill tier: the call may now be taken by the advocates of `target`
        too. False if it was offered meanwhile, and nothing was done."""
        try:
            moved = await self.s.store.move_queue(self.key, waiting.queue, target)
        except RoutingError:
            log.error("call %s: could not widen to %s; it keeps waiting", self.key, target)
            return True  # not tried again: the next steps keep their times
        if moved is None:
            return False
        self.s.metrics.queue_widenings.labels(from_queue=waiting.queue, to_queue=target).inc()
        log.info("call %s widened from %s to %s%s", self.key, waiting.queue, target,
                 f" with an interpreter ({interpreter})" if interpreter else "")
        waiting.queue = target
        if interpreter is not None:
            self.interpreter_on_answer = InterpreterRequest(interpreter, source="overflow")
        if say is not None and isinstance(self.state, Waiting):
            await self._say([f"sound:hotline/{say}"])
        return True

    async def _comfort(self, waiting: Waiting) -> None:
        """The periodic comfort message, with position and estimated wait when known."""
        policy = self._plan.policy
        if self.hold.message is not None:
            return  # something is being said; its end re-arms the timer
        media = ["sound:hotline/hold_comfort"]
        said = "comfort message"
        if policy.comfort_position:
            try:
                position = await self.s.store.position(self.key, waiting.queue)
                answers = await self.s.store.recent_answers(waiting.queue) if position else []
            except RoutingError:
                position, answers = None, []
            if position is not None:
                media += ["sound:hotline/comfort_position", f"number:{position}", "sound:hotline/comfort_in_line"]
                said += f", position {position}"
                wait = estimated_wait_s(position, answers, int(time.time() * 1000))
                if wait is not None:
                    minutes = announced_minutes(wait)
                    media += ["sound:hotline/comfort_estimate", f"number:{minutes}", "sound:hotline/minutes"]
                    said += f", about {minutes} min"
        if isinstance(self.state, Waiting):
            self.s.metrics.comfort_messages.labels(queue=self._plan.entry_queue).inc()
            log.info("call %s: %s", self.key, said)
            if not await self._say(media):
                self._arm_comfort()  # no end of it will re-arm the timer

    async def _max_wait(self, waiting: Waiting) -> bool:
        """Nobody answered within the queue's maximum wait: the backup
        destination, announced. False if an offer is on its way: it rings."""
        try:
            left = await self.s.store.abandon(self.key)
        except RoutingError:
            left = True  # Redis is gone; its record expires
        if not left:
            return False
        log.warning("call %s: %.0f s in line, the maximum; sending to the backup destination", self.key,
                    self._waited_s())
        self.s.metrics.max_wait_overflows.labels(queue=self._plan.entry_queue).inc()
        await self._to_fallback("max_wait", announce="hotline/max_wait_overflow")
        return True

    async def _escalate(self, waiting: Waiting) -> bool:
        """A crisis call nobody answered in time: the on-call supervisors, then
        the backup. False if it was offered meanwhile, and nothing was done."""
        escalation = Escalation(self.key, waiting.queue, self.s, self.timers)
        try:
            started = await escalation.start()
        except RoutingError:
            await self._to_fallback("routing_unavailable")
            return True
        if not started:
            return False
        self.timers.cancel("comfort")
        self.state = Escalating(waiting.queue, escalation)
        if not escalation.ringing:
            await self._escalation_failed(escalation)
            return True
        await self._say(["sound:hotline/escalating"])
        return True

    async def _escalation_event(self, state: Escalating, item: object) -> bool:
        """Events about the supervisors' legs and the escalation timer; True if handled."""
        match item:
            case TimerFired(name=name) if name == ESCALATION_TIMER:
                if self.timers.is_current(item):
                    log.info("call %s: no supervisor answered in time", self.key)
                    await self._escalation_failed(state.escalation)
                return True
            case StasisEnd(channel=channel) | ChannelDestroyed(channel=channel) | \
                    ChannelHangupRequest(channel=channel) if state.escalation.owns(channel.id):
                state.escalation.leg_gone(channel.id)
                if not state.escalation.ringing:
                    await self._escalation_failed(state.escalation)
                return True
        return False

    async def _escalation_failed(self, escalation: Escalation) -> None:
        await escalation.give_up()
        self.s.metrics.escalations.labels(outcome="backup").inc()
        await self._to_fallback("crisis_escalation")

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

    # -- supervisor monitoring -----------------------------------------------

    async def _monitor_request(self, request: MonitorRequest) -> None:
        if request.abandoned:
            return  # the API stopped waiting and said so: carry out nothing it did not promise
        if not isinstance(self.state, Connected):
            request.answer(MonitorAnswer.refused(f"the call is {type(self.state).__name__.lower()}, not connected"))
            return
        connected = self.state
        call = CallLine(self.key, connected.bridge, connected.leg, connected.offer.advocate_id)
        connected.monitoring = await carry_out(request, connected.monitoring, call, services=self.s)

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

    # -- Redis came back -------------------------------------------------------

    async def _routing_restored(self) -> None:
        """Write this call back into Redis as the engine knows it.

        A waiting call is enqueued again with its original arrival: it keeps
        its place in line (a Redis that still has it answers Conflict, and
        nothing changes). A call ringing an advocate, connected, or ringing
        the supervisors puts back its record and claims its advocates again,
        so that they are not offered another call meanwhile.
        """
        if self.outcome is None or self.plan is None:
            return  # not in the line yet: nothing of it was in Redis
        state = self.state
        if not isinstance(state, (Waiting, Ringing, Connected, Escalating)):
            return
        # Waiting and ringing calls know their arrival; for the others it is
        # only on the record, where the wait since joining the line gives it.
        arrival_ms = getattr(state, "arrival_ms", 0) or int((time.time() - self._waited_s()) * 1000)
        call = WaitingCall(self.key, state.queue, self.outcome.priority, arrival_ms, self.s.config.owner)
        fields, ttl_s = self._record_fields(), self.s.config.call_ttl_s
        try:
            match state:
                case Waiting():
                    try:
                        await self.s.store.enqueue(call, fields, ttl_s)
                    except Conflict:
                        pass  # Redis kept it
                    # A step that fell due while Redis had lost the call was
                    # told "not waiting" and left for a ring that never comes.
                    if self._steps_pending:
                        await self._policy_due()
                case Ringing(offer=offer):
                    await self._restore_record("offered", call, [offer.advocate_id], fields)
                case Connected(offer=offer):
                    await self._restore_record("bridged", call, [offer.advocate_id],
                                               {**fields, "answered_by": offer.advocate_id})
                case Escalating(escalation=escalation):
                    await self._restore_record("escalating", call, escalation.ringing_ids(), fields)
            if self.sip_call_id:
                await self.s.store.index_sip_call_id(self.key, self.sip_call_id, ttl_s)
        except RoutingError as exc:
            log.error("call %s: could not write it back to Redis (%s); the next recovery will", self.key,
                      type(exc).__name__)
            return
        log.info("call %s written back to Redis as %s", self.key, type(state).__name__)

    async def _restore_record(self, state: str, call: WaitingCall, advocates: list[str],
                              fields: dict[str, str]) -> None:
        left_alone = await self.s.restore.restore_call(call, state, advocates, fields, self.s.config.call_ttl_s)
        for advocate_id in left_alone:
            log.error("call %s: advocate %s is with another call in Redis; left as is", self.key, advocate_id)

    # -- the end --------------------------------------------------------------

    async def _caller_gone(self, why: str) -> None:
        state = self.state
        self.state = Ended(why)
        self.timers.cancel_all()
        match state:
            case Waiting():
                self.s.metrics.calls_abandoned.labels(**self._labels(), stage="queue").inc()
                self.s.metrics.abandon_wait_seconds.labels(**self._labels()).observe(self._waited_s())
            case Ringing():
                self.s.metrics.calls_abandoned.labels(**self._labels(), stage="ringing").inc()
            case Escalating():
                self.s.metrics.calls_abandoned.labels(**self._labels(), stage="escalating").inc()
                self.s.metrics.escalations.labels(outcome="abandoned").inc()
            case Connected():
                self.state = state
                await self._finish_connected(why)
                return
            case Answering() | InMenu():
                self.s.metrics.calls_abandoned.labels(queue="", stage="menu", relay=str(self.relay).lower()).inc()
        await self._let_go(state)
        if isinstance(state, (Waiting, Ringing, Escalating)):
            await self._count_today("abandoned")
        log.info("call %s ended: %s", self.key, why)
        self.s.forget(self)

    async def _let_go(self, state: State) -> None:
        """Release what a call leaving in `state` held in routing: its place
        in line, the advocate's ringing phone, the supervisors'."""
        match state:
            case Waiting():
                try:
                    if not await self.s.store.abandon(self.key):
                        # An offer is on its way; _after_end releases it.
                        log.info("call %s left the line with an offer in flight", self.key)
                except RoutingError:
                    log.error("call %s: could not remove it from Redis", self.key)
            case Ringing(offer=offer, leg=leg):
                await self._hangup(leg)
                await self._release(offer)
            case Escalating(escalation=escalation):
                await escalation.give_up()

    async def _finish_connected(self, why: str) -> None:
        assert isinstance(self.state, Connected)
        connected = self.state
        self.state = Ended(why)
        self.timers.cancel_all()
        if connected.answered_at is not None:
            self.s.metrics.handle_seconds.labels(queue=self._plan.entry_queue).observe(
                time.monotonic() - connected.answered_at)
        try:
            if connected.monitoring is not None:
                await connected.monitoring.end("call_ended")
            if connected.interpreting is not None:
                await connected.interpreting.remove()
        except AriError as exc:
            # Asterisk out of reach (restarting): what could not be torn down
            # dies with it, and the end is recorded in Redis all the same.
            log.warning("call %s: could not tear down its extra parties (%s)", self.key, type(exc).__name__)
        for leg in (connected.leg, *self._extra_legs):
            await self._hangup(leg)
        try:
            await self.s.rest.destroy_bridge(connected.bridge)
        except AriError:
            pass  # gone already, or with Asterisk
        try:
            await self.s.store.call_ended(self.key, connected.offer.advocate_id)
        except RoutingError:
            log.error("call %s: could not record the end in Redis", self.key)
        self.s.wrap_up.start(connected.offer.advocate_id, self.key)
        log.info("call %s ended: %s", self.key, why)
        self.s.forget(self)

    async def _after_end(self, item: object) -> None:
        if isinstance(item, OfferArrived):
            if item.offer not in self._offers_taken:
                self._offers_taken.add(item.offer)
                await self._release(item.offer)
        elif isinstance(item, MonitorRequest):
            item.answer(MonitorAnswer.refused("the call has ended"))
        elif isinstance(item, StasisStart) and item.channel.id != self.channel:
            await self._hangup(item.channel.id)  # an advocate or interpreter answering too late

    async def _release(self, offer: Offer) -> None:
        try:
            # The advocate is free again and may be offered another call at once.
            self.s.take_offers(await self.s.store.offer_cancelled(self.key, offer.advocate_id))
        except RoutingError:
            log.error("call %s: could not release advocate %s", self.key, offer.advocate_id)

    async def _to_fallback(self, reason: str, announce: str | None = None) -> None:
        """Hand the call back to the dialplan: backup destination, then the hotline message.

        The dialplan plays `announce` (a sound, in the channel's language)
        before dialling; by default a bilingual "please stay on the line".
        """
        self.s.metrics.fallbacks.labels(reason=reason).inc()
        self.state = Ended(f"fallback: {reason}")
        self.timers.cancel_all()
        try:
            await self.hold.stop()
            await self.s.rest.stop_moh(self.channel)
            if announce is not None:
                await self.s.rest.set_var(self.channel, "HOTLINE_ANNOUNCE", announce)
        except AriError:
            pass
        tries, music = 0, False
        while True:
            if music:
                # The dialplan's announcement next, not over the music.
                with contextlib.suppress(AriError):
                    await self.s.rest.stop_moh(self.channel)
            try:
                await self.s.rest.continue_in_dialplan(self.channel, context=FALLBACK_CONTEXT, extension="s",
                                                       priority=1)
            except AriNotFound:
                pass  # the caller hung up
            except AriUnavailable as exc:
                # Asterisk slow or restarting: no reconnection need follow,
                # and nobody else would move the caller. If Asterisk dies,
                # the channel dies with it.
                if tries < len(FALLBACK_RETRIES_S):
                    pause_s = FALLBACK_RETRIES_S[tries]
                    log.warning("call %s: fallback not reached (%s); again in %g s", self.key,
                                type(exc).__name__, pause_s)
                else:
                    pause_s = FALLBACK_RETRY_EVERY_S
                    if not music:
                        log.error("call %s: fallback not reached (%s); music meanwhile, again every %g s",
                                  self.key, type(exc).__name__, pause_s)
                    await self.hold.music()
                    music = True
                tries += 1
                await asyncio.sleep(pause_s)
                continue
            except AriError as exc:
                # Refused for good (the channel left our application): nothing to try again.
                log.error("call %s: could not hand it to the fallback (%s)", self.key, type(exc).__name__)
            break
        self.s.forget(self)

    async def _hangup(self, channel_id: str) -> None:
        try:
            await self.s.rest.hangup(channel_id)
        except AriNotFound:
            pass
        except AriError as exc:
            # Asterisk out of reach (restarting): the channel dies with it or
            # reconciliation finds it; the call's own state must move on.
            log.warning("call %s: could not hang up %s (%s)", self.key, channel_id, type(exc).__name__)



def _concerns(item: object, interpreting: Interpreting) -> bool:
    """Whether an item is about the interpreter leg (its events or its timer)."""
    if isinstance(item, TimerFired):
        return item.name == INTERPRETER_TIMER
    channel = getattr(item, "channel", None)
    return channel is not None and getattr(channel, "id", None) is not None and interpreting.owns(channel.id)


def _leg_number(leg: str) -> int:
    """n of a leg id "<call>-leg<n>" (or -sup<n>, -int<n>): new legs are numbered after it."""
    digits = ""
    for char in reversed(leg):
        if not char.isdigit():
            break
        digits = char + digits
    return int(digits) if digits else 0
