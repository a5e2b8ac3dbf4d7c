"""Monitoring requests and what they do to a call (pure), and the API's way to post them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


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
            async with asyncio.timeout(self._timeout_s):
                return await reply
        except TimeoutError:
            return MonitorAnswer(False, "timeout", "the call did not take the request in time; try again")
