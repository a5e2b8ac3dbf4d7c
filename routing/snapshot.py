"""A point-in-time view of the queues and advocates, for /metrics."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from routing.advocates import AdvocateState, split_csv
from routing.queues import arrival_from_score


@dataclass(frozen=True)
class QueueDepth:
    waiting: int
    available: int  # advocates available for this queue
    oldest_arrival_ms: int | None  # earliest arrival among waiting calls


@dataclass(frozen=True)
class RoutingSnapshot:
    queues: Mapping[str, QueueDepth]
    advocates: Mapping[AdvocateState, int]  # every state present, zero included
    # skill -> state -> advocates; an advocate counts once for each skill.
    advocates_by_skill: Mapping[str, Mapping[AdvocateState, int]]


def queue_depth(waiting: int, available: int, band_heads: Sequence[Sequence]) -> QueueDepth:
    """`band_heads`: per priority band, the ZRANGEBYSCORE ... LIMIT 0 1
    WITHSCORES reply, i.e. [] or [(call_id, score)]. The oldest call is the
    oldest head among bands, not the queue head (a newer urgent call leads)."""
    arrivals = [arrival_from_score(head[0][1]) for head in band_heads if head]
    return QueueDepth(waiting, available, min(arrivals) if arrivals else None)


def count_states(states: Iterable[str | None]) -> dict[AdvocateState, int]:
    # None: an id in the advocates set whose hash is gone; not counted.
    counts = Counter(AdvocateState(s) for s in states if s)
    return {state: counts.get(state, 0) for state in AdvocateState}


def count_states_by_skill(
    advocates: Iterable[tuple[str | None, str | None]],
) -> dict[str, dict[AdvocateState, int]]:
    """`advocates`: (state, skills csv) of each advocate. Every skill someone
    has gets every state, zero included, so "nobody who speaks es is logged
    in" reads as zeros rather than as a missing series."""
    states_by_skill: dict[str, list[str | None]] = defaultdict(list)
    for state, skills in advocates:
        for skill in split_csv(skills):
            states_by_skill[skill].append(state)
    return {skill: count_states(states) for skill, states in states_by_skill.items()}
