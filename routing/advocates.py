"""Advocates and the state moves the API may ask for.

ringing and on_call are entered and left only by the offer scripts (an offer
made, answered, refused, cancelled, a call ended); a person can only ask to be
available, away or offline, and only from a state where nobody is waiting on
them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from routing.errors import InvalidTransition
from routing.queues import Offer


class AdvocateState(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    AWAY = "away"


_S = AdvocateState

# old state -> states the API may move an advocate to.
_API_MOVES: Mapping[AdvocateState, frozenset[AdvocateState]] = {
    _S.OFFLINE: frozenset({_S.AVAILABLE, _S.AWAY}),
    _S.AVAILABLE: frozenset({_S.AWAY, _S.OFFLINE}),
    _S.AWAY: frozenset({_S.AVAILABLE, _S.OFFLINE}),
    _S.WRAP_UP: frozenset({_S.AVAILABLE, _S.AWAY, _S.OFFLINE}),
}

API_TARGETS = frozenset({_S.OFFLINE, _S.AVAILABLE, _S.AWAY})


def allowed_sources(new: AdvocateState) -> frozenset[AdvocateState]:
    """States from which the API may move an advocate to `new`.

    Asking for the state one is already in is accepted (and changes nothing,
    not even idle_since), so a retried HTTP request cannot cost an advocate
    their place in line.
    """
    if new not in API_TARGETS:
        return frozenset()
    return frozenset({new} | {old for old, targets in _API_MOVES.items() if new in targets})


def check_transition(old: AdvocateState, new: AdvocateState, advocate_id: str = "") -> None:
    """Raise InvalidTransition unless the API may move `old` to `new`."""
    if old not in allowed_sources(new):
        raise InvalidTransition(advocate_id, old, new)


def hash_token(token: str) -> str:
    """sha256 hex of a bearer token: the only form in which tokens are stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Advocate:
    id: str
    name: str
    endpoint: str  # SIP dial string, e.g. "PJSIP/1001@phones"
    skills: frozenset[str]
    roles: frozenset[str]
    queues: tuple[str, ...]  # derived from skills when the advocate was last upserted
    token_hash: str
    state: AdvocateState
    state_since: int  # epoch ms
    idle_since: int | None = None  # epoch ms; their place in the available line
    call_id: str | None = None  # set while ringing, on_call, wrap_up


@dataclass(frozen=True)
class WrapUpEnded:
    """A wrap-up that has just ended: which call it was for and since when."""

    call_id: str | None  # None if the advocate's record had lost it
    since_ms: int  # epoch ms the wrap-up began (the call's end)
    call_type: str | None  # the menu's call type of that call, if its record is still there
    offers: tuple[Offer, ...] = ()  # made at once if the advocate became available


def split_csv(value: str | None) -> tuple[str, ...]:
    return tuple(part for part in (value or "").split(",") if part)


def advocate_from_hash(advocate_id: str, fields: Mapping[str, str]) -> Advocate:
    """Build an Advocate from its Redis hash (see Keys.advocate)."""
    idle_since = fields.get("idle_since")
    return Advocate(
        id=advocate_id,
        name=fields.get("name", ""),
        endpoint=fields.get("endpoint", ""),
        skills=frozenset(split_csv(fields.get("skills"))),
        roles=frozenset(split_csv(fields.get("roles"))),
        queues=split_csv(fields.get("queues")),
        token_hash=fields.get("token_hash", ""),
        state=AdvocateState(fields.get("state", AdvocateState.OFFLINE)),
        state_since=int(fields.get("state_since", 0)),
        idle_since=int(idle_since) if idle_since else None,
        call_id=fields.get("call") or None,
    )
