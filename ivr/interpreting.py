"""Bringing a tele-interpreter into a connected call.

Part of a call actor: it runs inside the actor's worker, so its state is
touched in order with the call's other events. The interpreter is dialled
on the provider's dial string; when the provider answers, the account, PIN
and language code go out as DTMF (Asterisk streams them on the leg, pauses
included, and adds the leg to the bridge only after the digits are sent:
commands on one channel run in order), and the interpreter joins the
caller and the advocate in the call's mixing bridge.

Failure never touches the caller and the advocate: a busy, unanswered or
vanished provider is retried per its settings, then the second provider is
tried, then the advocate alone hears that no interpreter could be reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ivr.ari.errors import AriConflict, AriError, AriNotFound
from ivr.ari.events import ChannelDestroyed, ChannelEnteredBridge, StasisStart
from ivr.interpreters.catalog import Language, LanguageCatalog
from ivr.interpreters.provider import ProviderSettings, dtmf_for, parse_dtmf_plan, serves
from ivr.services import CallServices
from ivr.timers import Timers

log = logging.getLogger(__name__)

TIMER = "interpreter"
# Q.850 causes of a dial that ended before answer.
BUSY_CAUSES = frozenset({17, 34, 41, 42})
NO_ANSWER_CAUSES = frozenset({18, 19})


@dataclass(frozen=True)
class InterpreterRequest:
    """To a call actor: add an interpreter (``language`` None: the provider's
    operator, who finds the language) or remove the one on the call."""

    language: str | None = None
    remove: bool = False
    source: str = "api"  # api | feature_code | menu | overflow


@dataclass(frozen=True)
class Attempt:
    provider: ProviderSettings
    number: int  # 1 = first try at this provider


DTMF_TONE_MS = 120
DTMF_GAP_MS = 150


def keying_seconds(dtmf: str) -> float:
    """How long Asterisk takes to key ``dtmf`` in: tones, gaps and w/W pauses."""
    steps = parse_dtmf_plan(dtmf)
    tones = sum(len(digits) for digits, _ in steps)
    return tones * (DTMF_TONE_MS + DTMF_GAP_MS) / 1000 + sum(pause for _, pause in steps)


def attempt_plan(providers: Sequence[ProviderSettings], language: str | None) -> tuple[Attempt, ...]:
    """Every dial to make, in order: each provider's first try and its
    retries; for a `language`, only the providers that serve it (another
    has no code to key in for it). None: the operator, at any provider."""
    return tuple(Attempt(p, n) for p in providers if language is None or serves(p, language)
                 for n in range(1, p.retries + 2))


def failure_reason(cause: int | None) -> str:
    if cause in BUSY_CAUSES:
        return "busy"
    if cause in NO_ANSWER_CAUSES:
        return "no_answer"
    return "unavailable"


class Interpreting:
    """One request for an interpreter on one connected call."""

    def __init__(self, call_key: str, bridge: str, advocate_leg: str, language: str | None,
                 services: CallServices, timers: Timers) -> None:
        self.call_key = call_key
        self.bridge = bridge
        self.advocate_leg = advocate_leg
        self.language = language  # None: the provider's operator finds the language
        self.s = services
        self.timers = timers
        self.plan = list(attempt_plan(services.config.interpreter_providers, language))
        self.leg: str | None = None
        self.answered = False
        self.joined = False
        self.over = False
        self._legs = 0
        self._requested = time.monotonic()
        self.join_seconds: float | None = None

    @property
    def label(self) -> str:
        return self.language or "operator"

    def owns(self, channel_id: str) -> bool:
        return channel_id == self.leg

    async def start(self) -> None:
        log.info("call %s: interpreter (%s) requested", self.call_key, self.label)
        await self._next()

    async def _next(self) -> None:
        if not self.plan:
            await self._give_up()
            return
        attempt = self.plan.pop(0)
        self._legs += 1
        leg = self.leg = f"{self.call_key}-int{self._legs}"
        self.answered = False
        self._attempt = attempt
        self.s.dispatcher.route(leg, self.call_key)
        self.timers.start(TIMER, attempt.provider.connect_timeout_s)
        try:
            await self.s.rest.originate(
                attempt.provider.dial_string, app=self.s.config.app, app_args=f"interpreter,{self.call_key}",
                channel_id=leg, caller_id=f'"Hotline" <{self.s.config.toll_free}>',
                timeout_s=int(attempt.provider.connect_timeout_s) + 5)
        except AriError as exc:
            log.warning("call %s: dialling interpreter provider %s failed (%s)", self.call_key,
                        attempt.provider.name, type(exc).__name__)
            await self._failed("dial_failed")

    async def handle(self, item: object) -> None:
        match item:
            case StasisStart(channel=channel) if channel.id == self.leg:
                await self._provider_answered()
            case ChannelEnteredBridge(channel=channel) if channel.id == self.leg and not self.joined:
                self.joined = True
                self.join_seconds = time.monotonic() - self._requested
                self.s.metrics.interpreter_connect_seconds.labels(language=self.label).observe(self.join_seconds)
                log.info("call %s: interpreter (%s) joined after %.2f s", self.call_key, self.label,
                         self.join_seconds)
            case ChannelDestroyed(channel=channel) if channel.id == self.leg:
                self.s.dispatcher.unroute(channel.id)
                self.leg = None
                if self.joined or self.over:
                    # The interpreter left: caller and advocate simply go on.
                    log.info("call %s: interpreter (%s) left the call", self.call_key, self.label)
                    self.over = True
                elif self.answered:
                    await self._failed("hung_up")
                else:
                    await self._failed(failure_reason(item.cause))

    async def timed_out(self) -> None:
        if not self.answered and self.leg is not None:
            await self._let_go_of_leg("no_answer")

    async def _let_go_of_leg(self, reason: str) -> None:
        """This attempt failed with its leg still up: hang it up, try the next."""
        leg, self.leg = self.leg, None
        assert leg is not None
        self.s.dispatcher.unroute(leg)
        await self._hangup(leg)
        await self._failed(reason)

    async def _provider_answered(self) -> None:
        self.timers.cancel(TIMER)
        self.answered = True
        leg = self.leg
        assert leg is not None
        dtmf = dtmf_for(self._attempt.provider, self.language)
        try:
            await self.s.rest.send_dtmf(leg, dtmf, between_ms=DTMF_GAP_MS, duration_ms=DTMF_TONE_MS)
            # Joins after the digits (commands on a channel run in order), so
            # caller and advocate never hear the provider's own menu.
            await self.s.rest.add_to_bridge(self.bridge, [leg], waits_s=10 + keying_seconds(dtmf))
        except (AriNotFound, AriConflict):
            pass  # the provider hung up meanwhile: its ChannelDestroyed follows
        except AriError as exc:
            # Asterisk slow or refusing: not joined, and no event would say
            # so. The next provider is tried, or the advocate told.
            log.warning("call %s: interpreter of provider %s not joined (%s)", self.call_key,
                        self._attempt.provider.name, type(exc).__name__)
            await self._let_go_of_leg("join_failed")

    async def _failed(self, reason: str) -> None:
        self.timers.cancel(TIMER)
        self.s.metrics.interpreter_failures.labels(reason=reason, language=self.label).inc()
        log.warning("call %s: interpreter attempt failed (%s, provider %s)", self.call_key, reason,
                    self._attempt.provider.name)
        await self._next()

    async def _give_up(self) -> None:
        self.over = True
        self.s.metrics.interpreter_failures.labels(reason="exhausted", language=self.label).inc()
        log.error("call %s: no interpreter reached (%s); telling the advocate", self.call_key, self.label)
        try:
            # Played on the advocate's leg only: the caller does not hear it.
            await self.s.rest.play(self.advocate_leg, "sound:hotline/interpreter_unavailable")
        except AriNotFound:
            pass
        except AriError as exc:
            # The call goes on; the log above and the metric say it.
            log.warning("call %s: could not tell the advocate (%s)", self.call_key, type(exc).__name__)

    async def remove(self) -> None:
        """The advocate or the API asked for the interpreter to leave."""
        self.over = True
        self.timers.cancel(TIMER)
        if self.leg is not None:
            await self._hangup(self.leg)

    async def _hangup(self, channel_id: str) -> None:
        try:
            await self.s.rest.hangup(channel_id)
        except AriNotFound:
            pass
        except AriError as exc:
            # Asterisk out of reach: the provider's leg ends when they hang up.
            log.warning("call %s: could not hang up the interpreter's leg (%s)", self.call_key, type(exc).__name__)


class InterpreterDesk:
    """The API's way to a call's interpreter (``ivr.api.InterpreterControl``)."""

    def __init__(self, catalog: LanguageCatalog, providers: Sequence[ProviderSettings],
                 post: Callable[[str, object], bool]) -> None:
        self._catalog = catalog
        self._providers = tuple(providers)
        self._post = post

    def language(self, code: str) -> str:
        language = self._catalog.get(code)  # UnknownLanguage is a ValueError saying why
        if not any(serves(p, language.code) for p in self._providers):
            raise ValueError(f"{language.name} ({language.code}) is not served by the interpreter providers")
        return language.code

    def request(self, call_id: str, language: str | None, *, remove: bool) -> bool:
        return self._post(call_id, InterpreterRequest(language, remove=remove, source="api"))

    def languages(self) -> list[Language]:
        served = {code for p in self._providers for code in p.languages}
        return [language for language in self._catalog if language.code in served]
