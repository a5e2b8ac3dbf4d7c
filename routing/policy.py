"""Queue policies, as pure decisions: where a waiting call may go, and when.

A call's ``CallPlan`` is fixed when it joins the line. Its steps, in time
order since arrival, are what happens if nobody has answered by then:

- ``Widen``: the call moves to a wider queue, keeping its place by age and
  priority (relay-skilled advocates only for 30 s, then anyone; no
  Spanish-speaking advocate in 60 s, then anyone with an interpreter). One
  mechanism for both, carried out by the ``move_queue`` script.
- ``Escalate``: a crisis call nobody answered rings the on-call supervisors,
  then the backup destination.
- ``Overflow``: the queue's maximum wait is reached; the call goes to the
  backup destination, announced.

Every plan ends with an ``Overflow``, so no call waits without a bound: it is
offered before its maximum wait or it leaves for a line that answers. The
engine arms one timer for the next step; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    """A queue the call may wait in from `after_s` seconds after arrival."""

    queue: str
    after_s: float
    interpreter: str | None = None  # ISO 639-3 language joined when the call is answered
    say: str | None = None  # prompt id announced to the caller on entering the tier


@dataclass(frozen=True)
class QueuePolicy:
    name: str
    max_wait_s: float
    service_level_s: float
    comfort_every_s: float | None = None
    comfort_position: bool = False
    widen: tuple[Tier, ...] = ()  # after_s counted from arrival in this queue


@dataclass(frozen=True)
class RelayPolicy:
    queue: str  # served by advocates with the relay skill
    skilled_only_s: float  # then the caller's language queue (and its tiers)
    ring_s: float  # relay calls are slow to pick up: the advocate gets longer


@dataclass(frozen=True)
class CrisisPolicy:
    escalate_after_s: float


@dataclass(frozen=True)
class Widen:
    at_s: float
    tier: Tier


@dataclass(frozen=True)
class Escalate:
    at_s: float


@dataclass(frozen=True)
class Overflow:
    at_s: float


Step = Widen | Escalate | Overflow


@dataclass(frozen=True)
class CallPlan:
    tiers: tuple[Tier, ...]  # tiers[0] is where the call enters, at 0 s
    steps: tuple[Step, ...]  # in time order; the last is always an Overflow
    ring_s: float
    policy: QueuePolicy  # of the queue the call entered: max wait, comfort, service level
    relay: bool
    crisis: bool

    @property
    def entry_queue(self) -> str:
        return self.tiers[0].queue

    def due(self, done: int, waited_s: float) -> tuple[Step, ...]:
        """Steps after the first `done` whose time has come at `waited_s`."""
        return tuple(s for s in self.steps[done:] if s.at_s <= waited_s)

    def next_at(self, done: int) -> float | None:
        """When the first step not yet done falls due (None: none left)."""
        return self.steps[done].at_s if done < len(self.steps) else None


def plan_call(*, queue: str, relay: bool, crisis: bool, policies: Mapping[str, QueuePolicy],
              relay_policy: RelayPolicy, crisis_policy: CrisisPolicy | None, ring_s: float,
              interpreters: bool) -> CallPlan:
    """The plan of a call that chose (or was sent to) `queue`.

    A relay call waits for relay-skilled advocates first, then goes on as a
    call of `queue` would, `skilled_only_s` later. Tiers that need an
    interpreter are skipped when no interpreter provider is configured: the
    caller would reach an advocate who cannot understand them.
    """
    tiers: list[Tier] = []
    shift = 0.0
    if relay:
        tiers.append(Tier(relay_policy.queue, 0.0))
        shift = relay_policy.skilled_only_s
    tiers.append(Tier(queue, shift))
    for tier in policies[queue].widen:
        if tier.interpreter is not None and not interpreters:
            continue
        tiers.append(Tier(tier.queue, tier.after_s + shift, tier.interpreter, tier.say))
    entry = policies[tiers[0].queue]
    steps: list[Step] = [Widen(t.after_s, t) for t in tiers[1:] if t.after_s < entry.max_wait_s]
    if crisis and crisis_policy is not None and crisis_policy.escalate_after_s < entry.max_wait_s:
        steps.append(Escalate(crisis_policy.escalate_after_s))
    # Stable sort: at equal times the call widens first, so an advocate free
    # in the wider queue is tried before the supervisors are disturbed.
    steps.sort(key=lambda s: s.at_s)
    steps.append(Overflow(entry.max_wait_s))
    return CallPlan(tiers=tuple(tiers), steps=tuple(steps), ring_s=relay_policy.ring_s if relay else ring_s,
                    policy=entry, relay=relay, crisis=crisis)


# -- estimated wait ----------------------------------------------------------------

# Fewer recent answers than this say nothing reliable about the pace.
MIN_ANSWERS_FOR_ESTIMATE = 3
# Estimates beyond this are not announced: they would only discourage.
MAX_ANNOUNCED_WAIT_S = 30 * 60


def estimated_wait_s(position: int, answered_ms: Sequence[int], now_ms: int,
                     window_ms: int = 30 * 60 * 1000) -> float | None:
    """Expected wait of the caller at `position` (1 = next), from the times at
    which this queue's recent calls were answered: position / answer rate.

    None when there is too little recent history or the result is too long
    to be worth saying.
    """
    if position < 1:
        return None
    recent = [t for t in answered_ms if 0 <= now_ms - t <= window_ms]
    if len(recent) < MIN_ANSWERS_FOR_ESTIMATE:
        return None
    span_ms = now_ms - min(recent)
    if span_ms <= 0:
        return None
    per_answer_s = span_ms / 1000 / len(recent)
    wait = position * per_answer_s
    return wait if wait <= MAX_ANNOUNCED_WAIT_S else None


def announced_minutes(wait_s: float) -> int:
    """Whole minutes to say: rounded up, never "zero minutes"."""
    return max(1, math.ceil(wait_s / 60))


def within_target(waited_s: float, policy: QueuePolicy) -> bool:
    return waited_s <= policy.service_level_s
