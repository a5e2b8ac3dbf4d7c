"""The states of a call, and the items other parts of the engine post to it.

``ivr.call.CallActor`` holds one of these at a time; each names what the call
is doing and carries only what that phase needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ivr.ari.models import Channel
from ivr.escalation import Escalation
from ivr.feature_codes import FeatureCodes
from ivr.interpreting import Interpreting
from ivr.menu import MenuSession
from ivr.monitoring import Monitoring
from routing.queues import Offer


@dataclass(frozen=True)
class OfferArrived:
    """The matcher chose an advocate for this call: in the reply of the
    script that matched it, when this engine ran that script, and always over
    Redis pub/sub; the actor acts on an offer once, whichever copy comes first."""

    offer: Offer
    # Re-delivered by the offers sweep after a resubscription: read from
    # Redis a moment ago, it may have been settled since.
    swept: bool = False


@dataclass(frozen=True)
class Adopt:
    """Take over a call another engine held when it died (see ivr.adoption).

    `caller` is the caller's channel as ARI lists it (their number, the
    language their prompts play in); `record` the call's Redis record
    (None: it was still in the menu);
    `legs` the ids of the channels of this call in the Stasis application,
    other than the caller's; `bridge` its bridge if one exists.
    """

    caller: Channel
    record: dict[str, str] | None
    legs: tuple[str, ...]
    up_legs: frozenset[str]  # of `legs`, those answered
    bridge: tuple[str, ...] | None  # the channels in the call's bridge, if it exists


@dataclass(frozen=True)
class Reconciled:
    """The events stream was down: these are the channels Asterisk had once
    it was back. A call whose caller or advocate left meanwhile was told
    nothing of it."""
    live: frozenset[str]


@dataclass(frozen=True)
class RoutingRestored:
    """Redis is back (restarted empty, or reachable again): the call writes
    itself back as the engine knows it (``ivr.recovery``)."""


@dataclass(frozen=True)
class RoutingOutage:
    """Redis has been unreachable for longer than a waiting caller is held."""


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
    queue: str  # where the call waits now: its tier
    arrival_ms: int


@dataclass
class Ringing:
    queue: str
    arrival_ms: int
    offer: Offer
    leg: str
    rang_at: float = field(default_factory=time.monotonic)


@dataclass
class Escalating:
    queue: str
    escalation: Escalation


@dataclass
class Connected:
    queue: str
    offer: Offer
    leg: str
    bridge: str
    codes: FeatureCodes
    interpreting: Interpreting | None = None
    # Monotonic time the advocate answered, for the handle time; None when
    # the caller was gone before the bridge held both (nothing was handled).
    answered_at: float | None = None
    monitoring: Monitoring | None = None  # a supervisor listening, whispering or barging in


@dataclass
class Ended:
    reason: str


State = Answering | InMenu | Waiting | Ringing | Escalating | Connected | Ended
