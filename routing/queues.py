"""Queues, waiting calls and offers, and the order in which calls are served."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

MAX_PRIORITY = 9

# Arrival times are epoch ms below 10**13 (year 2286), so a score stays below
# 10**14 < 2**53: Redis keeps ZSET scores as doubles, and every score must be
# exact or two calls could swap places.
_ARRIVAL_SPAN = 10**13


@dataclass(frozen=True)
class QueueSpec:
    name: str
    skills: frozenset[str]

    def __post_init__(self) -> None:
        # Queue names are stored in csv fields and inside key names.
        if not self.name or any(c in self.name for c in ",:* "):
            raise ValueError(f"bad queue name {self.name!r}")


def queues_for(skills: Iterable[str], queues: Sequence[QueueSpec]) -> tuple[str, ...]:
    """Names of the queues an advocate with `skills` serves (all skills needed)."""
    have = frozenset(skills)
    return tuple(q.name for q in queues if q.skills <= have)


def waiting_score(priority: int, arrival_ms: int) -> int:
    """ZSET score of a waiting call: lower is offered first.

    Priority dominates (9 is served first), then the earlier arrival.
    """
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be 0..{MAX_PRIORITY}, got {priority}")
    if not 0 <= arrival_ms < _ARRIVAL_SPAN:
        raise ValueError(f"arrival_ms out of range: {arrival_ms}")
    return (MAX_PRIORITY - priority) * _ARRIVAL_SPAN + arrival_ms


def priority_band(priority: int) -> tuple[int, int]:
    """Inclusive score range of the calls waiting with `priority`."""
    low = waiting_score(priority, 0)
    return low, low + _ARRIVAL_SPAN - 1


def arrival_from_score(score: float) -> int:
    return int(score) % _ARRIVAL_SPAN


@dataclass(frozen=True)
class WaitingCall:
    call_id: str
    queue: str
    priority: int
    arrival_ms: int
    owner: str  # id of the engine process holding the caller's channel

    @property
    def score(self) -> int:
        return waiting_score(self.priority, self.arrival_ms)


@dataclass(frozen=True)
class Offer:
    """Ring `endpoint` for `call_id`: published to the owner engine's channel."""

    call_id: str
    advocate_id: str
    endpoint: str
    queue: str
    owner: str
    # When the matcher made it (its score in the ringing set). Together with
    # the call and the advocate it names one offer: the same advocate may be
    # offered the same call again later, and that is a new offer, not a copy.
    offered_ms: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def offer_from_json(payload: str) -> Offer:
    data = json.loads(payload)
    return Offer(
        call_id=data["call_id"],
        advocate_id=data["advocate_id"],
        endpoint=data["endpoint"],
        queue=data["queue"],
        owner=data["owner"],
        offered_ms=int(data.get("offered_ms", 0)),
    )


# Fields of the call hash that the routing scripts own; metadata written by
# enqueue() or update_call() must not overwrite them.
ROUTING_CALL_FIELDS = frozenset(
    {"queue", "priority", "arrival_ms", "score", "owner", "ttl_s", "state", "advocate", "offered_ms"}
)


def check_metadata(fields: dict[str, str]) -> None:
    clash = ROUTING_CALL_FIELDS.intersection(fields)
    if clash:
        raise ValueError(f"call metadata may not set routing fields: {sorted(clash)}")
