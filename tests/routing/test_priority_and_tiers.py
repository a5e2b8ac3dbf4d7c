"""Crisis priority and skill tiers against a real redis-server: who is offered
first, where a widened call stands, and that no waiting call is starved when
calls follow their CallPlan on a simulated clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import redis.asyncio as aioredis
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from routing_support import QUEUES, TEST_KEYS, ManualClock, assert_routing_invariants

from routing import (
    AdvocateState,
    Keys,
    Offer,
    RoutingStore,
    WaitingCall,
    hash_token,
    queues_for,
    waiting_score,
)
from routing.policy import (
    CallPlan,
    Escalate,
    Overflow,
    QueuePolicy,
    RelayPolicy,
    Tier,
    Widen,
    plan_call,
)

S = AdvocateState
TTL_S = 3600
NORMAL, CRISIS = 5, 9


async def add_advocate(store: RoutingStore, advocate_id: str, skills: frozenset[str]) -> None:
    await store.upsert_advocate(advocate_id, advocate_id, f"PJSIP/{advocate_id}@phones", skills,
                                frozenset({"advocate"}), hash_token(f"token-{advocate_id}"))


async def arrive(store: RoutingStore, clock: ManualClock, call_id: str, queue: str, priority: int) -> list[Offer]:
    clock.advance_ms(1_000)
    now_ms = int(clock.now * 1000)
    return await store.enqueue(WaitingCall(call_id, queue, priority, now_ms, "e1"), {}, TTL_S)


def pairs(offers: list[Offer]) -> list[tuple[str, str]]:
    return [(o.call_id, o.advocate_id) for o in offers]


# -- crisis first ------------------------------------------------------------------------


async def test_crisis_call_arriving_after_three_calls_is_offered_first(store, clock):
    await add_advocate(store, "a1", frozenset({"en"}))
    for n in range(3):
        assert await arrive(store, clock, f"c{n}", "english", NORMAL) == []
    assert await arrive(store, clock, "crisis", "english", CRISIS) == []

    assert pairs(await store.set_state("a1", S.AVAILABLE)) == [("crisis", "a1")]
    assert await store.waiting("english") == ["c0", "c1", "c2"]


async def test_crisis_call_in_either_queue_an_advocate_serves_is_offered_first(store, clock):
    await add_advocate(store, "a1", frozenset({"en", "es"}))
    for n in range(3):
        await arrive(store, clock, f"en{n}", "english", NORMAL)
        await arrive(store, clock, f"es{n}", "spanish", NORMAL)
    for queue in ("english", "spanish"):
        await arrive(store, clock, f"crisis-{queue}", queue, CRISIS)

    first = await store.set_state("a1", S.AVAILABLE)
    assert pairs(first) == [("crisis-english", "a1")]  # the older of the two crisis calls
    await store.offer_answered("crisis-english", "a1", waited_ms=0)
    await store.call_ended("crisis-english", "a1")
    assert pairs(await store.set_state("a1", S.AVAILABLE)) == [("crisis-spanish", "a1")]
    await store.offer_answered("crisis-spanish", "a1", waited_ms=0)
    await store.call_ended("crisis-spanish", "a1")
    # Then the oldest call of either queue: en0 arrived just before es0.
    assert pairs(await store.set_state("a1", S.AVAILABLE)) == [("en0", "a1")]


async def test_crisis_call_in_the_other_queue_beats_older_calls_of_the_first(store, clock):
    await add_advocate(store, "a1", frozenset({"en", "es"}))
    for n in range(3):
        await arrive(store, clock, f"en{n}", "english", NORMAL)
    await arrive(store, clock, "crisis", "spanish", CRISIS)
    assert pairs(await store.set_state("a1", S.AVAILABLE)) == [("crisis", "a1")]


# -- widening keeps the place in line ---------------------------------------------------------


async def test_widened_call_keeps_its_score_and_stands_by_arrival_in_the_wider_queue(store, clock, redis_client):
    await arrive(store, clock, "en-older", "english", NORMAL)
    await arrive(store, clock, "es", "spanish", NORMAL)
    await arrive(store, clock, "en-newer", "english", NORMAL)
    score = await redis_client.zscore(TEST_KEYS.waiting("spanish"), "es")

    assert await store.move_queue("es", "spanish", "english") == []
    assert await redis_client.zscore(TEST_KEYS.waiting("english"), "es") == score
    assert await store.waiting("english") == ["en-older", "es", "en-newer"]
    assert (await store.position("es", "english"), await store.position("es", "spanish")) == (2, None)


async def test_widened_crisis_call_goes_ahead_of_every_normal_call_in_the_wider_queue(store, clock):
    for n in range(3):
        await arrive(store, clock, f"en{n}", "english", NORMAL)
    await arrive(store, clock, "es-crisis", "spanish", CRISIS)
    await store.move_queue("es-crisis", "spanish", "english")
    assert await store.waiting("english") == ["es-crisis", "en0", "en1", "en2"]
    await add_advocate(store, "a1", frozenset({"en"}))
    assert pairs(await store.set_state("a1", S.AVAILABLE)) == [("es-crisis", "a1")]


async def test_widened_call_is_offered_at_once_to_a_free_advocate_of_the_wider_queue(store, clock):
    await add_advocate(store, "a1", frozenset({"en"}))
    await store.set_state("a1", S.AVAILABLE)
    assert await arrive(store, clock, "es", "spanish", NORMAL) == []
    assert pairs(await store.move_queue("es", "spanish", "english")) == [("es", "a1")]


# -- no waiting call is starved ------------------------------------------------------------------


@dataclass
class SimCall:
    id: str
    plan: CallPlan
    priority: int
    arrival_ms: int
    queue: str  # where the call waits now, by its plan
    steps_done: int = 0
    status: str = "waiting"  # waiting | offered | bridged | ended | overflowed | abandoned

    @property
    def score(self) -> int:
        return waiting_score(self.priority, self.arrival_ms)


class Hotline:
    """Calls following their plans on a simulated clock, as call actors would,
    with every offer checked against the lines as they stood just before."""

    def __init__(self, client: aioredis.Redis, keys: Keys, clock: ManualClock, policies, relay: RelayPolicy,
                 skills: list[frozenset[str]]) -> None:
        self.client, self.keys, self.clock = client, keys, clock
        self.store = RoutingStore(client, QUEUES, keys, clock=clock)
        self.policies, self.relay = policies, relay
        self.serves = {f"a{n}": queues_for(s, QUEUES) for n, s in enumerate(skills)}
        self.calls: dict[str, SimCall] = {}
        self.holder: dict[str, str] = {}  # advocate -> call they ring for or talk on

    def now_ms(self) -> int:
        return int(self.clock.now * 1000)

    async def lines(self) -> dict[str, dict[str, float]]:
        return {q.name: dict(await self.client.zrange(self.keys.waiting(q.name), 0, -1, withscores=True))
                for q in QUEUES}

    async def routed(self, action, *args, joins: SimCall | None = None):
        """Run one store call that may make offers, and check each offer
        against the waiting lines as they stood just before it (plus `joins`,
        the call this action enqueues or moves)."""
        lines = await self.lines()
        if joins is not None:
            for waiting in lines.values():
                waiting.pop(joins.id, None)
            lines[joins.queue][joins.id] = joins.score
        reply = await action(*args)
        for offer in reply or []:
            self.check_offer(lines, offer)
            del lines[offer.queue][offer.call_id]
        return reply

    def check_offer(self, lines: dict[str, dict[str, float]], offer: Offer) -> None:
        call = self.calls[offer.call_id]
        assert call.status == "waiting", f"{call.id} offered while {call.status} (offered twice?)"
        assert offer.advocate_id not in self.holder, \
            f"{offer.advocate_id} offered {call.id} while holding {self.holder.get(offer.advocate_id)}"
        assert offer.queue == call.queue and offer.queue in self.serves[offer.advocate_id]
        assert lines[offer.queue].get(call.id) == call.score
        rivals = {c: s for q in self.serves[offer.advocate_id] for c, s in lines[q].items()}
        better = sorted(c for c, s in rivals.items() if s < call.score)
        assert not better, f"{call.id} offered to {offer.advocate_id} before {better}"
        # Shown by --hypothesis-show-statistics: how often each path ran.
        event("offer made")
        if len(rivals) > 1:
            event("offer chosen among several waiting calls")
            if len({q for q in self.serves[offer.advocate_id] if lines[q]}) > 1:
                event("offer chosen among calls in several queues")
            if call.priority == CRISIS:
                event("crisis call offered ahead of waiting calls")
        call.status = "offered"
        self.holder[offer.advocate_id] = call.id

    # -- what happens to calls

    async def arrive(self, language_queue: str, relay: bool, priority: int) -> None:
        plan = plan_call(queue=language_queue, relay=relay, crisis=priority == CRISIS, policies=self.policies,
                         relay_policy=self.relay, crisis_policy=None, ring_s=20.0, interpreters=True)
        call = SimCall(f"c{len(self.calls)}", plan, priority, self.now_ms(), plan.entry_queue)
        self.calls[call.id] = call
        await self.routed(self.store.enqueue, WaitingCall(call.id, call.queue, priority, call.arrival_ms, "e1"),
                          {}, TTL_S, joins=call)

    async def plans_due(self) -> None:
        """Every waiting call's timer: carry out the steps whose time has come."""
        for call in self.calls.values():
            waited_s = (self.now_ms() - call.arrival_ms) / 1000
            for step in call.plan.due(call.steps_done, waited_s):
                if call.status != "waiting":
                    break
                call.steps_done += 1
                match step:
                    case Widen(tier=tier):
                        from_queue, call.queue = call.queue, tier.queue
                        reply = await self.routed(self.store.move_queue, call.id, from_queue, tier.queue,
                                                  joins=call)
                        assert reply is not None, f"{call.id} waiting in {from_queue} could not widen"
                        event("widened and offered at once" if reply else "widened")
                    case Overflow():
                        assert await self.store.abandon(call.id), f"{call.id} was waiting, not removed"
                        call.status = "overflowed"
                        event("overflowed")
                    case Escalate():
                        raise AssertionError("plans here have no crisis policy")

    async def set_state(self, n: int, state: S) -> None:
        advocate_id = sorted(self.serves)[n % len(self.serves)]
        current = (await self.store.get_advocate(advocate_id)).state
        if current in (S.RINGING, S.ON_CALL):
            return  # only the offer decides; refused (tested in test_routing_scripts)
        await self.routed(self.store.set_state, advocate_id, state)

    async def answer(self, n: int) -> None:
        ringing = sorted(a for a, c in self.holder.items() if self.calls[c].status == "offered")
        if ringing:
            advocate_id = ringing[n % len(ringing)]
            await self.store.offer_answered(self.holder[advocate_id], advocate_id, waited_ms=0)
            self.calls[self.holder[advocate_id]].status = "bridged"

    async def end(self, n: int) -> None:
        talking = sorted(a for a, c in self.holder.items() if self.calls[c].status == "bridged")
        if talking:
            advocate_id = talking[n % len(talking)]
            call_id = self.holder.pop(advocate_id)
            await self.store.call_ended(call_id, advocate_id)
            self.calls[call_id].status = "ended"

    async def hang_up(self, n: int) -> None:
        live = sorted(c.id for c in self.calls.values() if c.status in ("waiting", "offered"))
        if not live:
            return
        call = self.calls[live[n % len(live)]]
        if call.status == "waiting":
            assert await self.store.abandon(call.id)
            call.status = "abandoned"
        else:
            advocate_id = next(a for a, c in self.holder.items() if c == call.id)
            del self.holder[advocate_id]
            call.status = "abandoned"
            await self.routed(self.store.offer_cancelled, call.id, advocate_id)

    # -- what must always hold

    async def check(self) -> None:
        lines = await self.lines()
        for call in self.calls.values():
            where = [q for q, waiting in lines.items() if call.id in waiting]
            if call.status == "waiting":
                assert where == [call.queue], f"{call.id} should wait in {call.queue}, is in {where}"
                waited_s = (self.now_ms() - call.arrival_ms) / 1000
                assert waited_s < call.plan.policy.max_wait_s, f"{call.id} waited past its max wait"
            else:
                assert where == [], f"{call.id} is {call.status} but still waits in {where}"
        await assert_routing_invariants(self.client, self.keys, set(self.calls))


skill_sets = st.sampled_from([
    frozenset({"en"}), frozenset({"es"}), frozenset({"en", "es"}),
    frozenset({"en", "relay"}), frozenset({"en", "es", "relay"}),
])
index = st.integers(0, 100)
arrivals = st.tuples(st.just("arrive"), st.sampled_from(["english", "spanish"]), st.booleans(),
                    st.sampled_from([NORMAL, NORMAL, CRISIS]))
availables = st.tuples(st.just("available"), index)
operations = st.one_of(
    arrivals, arrivals, availables, availables,
    st.tuples(st.just("away"), index),
    st.tuples(st.just("answer"), index),
    st.tuples(st.just("end"), index),
    st.tuples(st.just("hang_up"), index),
    st.tuples(st.just("tick"), st.integers(1, 5)),
)
# 0 ms between events gives equal arrival times, so ties are exercised too.
timed_operations = st.tuples(st.sampled_from([0, 1, 400]), operations)


@st.composite
def line_setups(draw):
    max_wait = st.integers(10, 40).map(float)
    policies = {
        "english": QueuePolicy("english", draw(max_wait), 30.0),
        "spanish": QueuePolicy("spanish", draw(max_wait), 30.0,
                               widen=(Tier("english", float(draw(st.integers(0, 20))), "spa"),)),
        "relay": QueuePolicy("relay", draw(max_wait), 30.0),
    }
    relay = RelayPolicy("relay", skilled_only_s=float(draw(st.integers(0, 15))), ring_s=40.0)
    return policies, relay


prefixes = (f"hl:starve:{n}:" for n in itertools.count())


# Each example is a few hundred Redis round trips: 40 of them take seconds, but
# shrinking a failure can take Hypothesis' five-minute cap. The explain phase
# would add more runs for little, so it is left out.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
@given(setup=line_setups(), skills=st.lists(skill_sets, min_size=1, max_size=4),
       queued=st.lists(arrivals, max_size=6), ops=st.lists(timed_operations, min_size=10, max_size=40))
async def test_no_waiting_call_is_starved_or_passed_over(redis_url, setup, skills, queued, ops):
    policies, relay = setup
    clock = ManualClock()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        line = Hotline(client, Keys(next(prefixes)), clock, policies, relay, skills)
        for n, skill_set in enumerate(skills):
            await add_advocate(line.store, f"a{n}", skill_set)
        # Calls already waiting when the first advocates log in: the lines are
        # long from the start, so offers choose among calls in several queues.
        for elapsed_ms, op in [(1, arrival) for arrival in queued] + ops:
            clock.advance_ms(elapsed_ms)
            await line.plans_due()
            match op:
                case ("arrive", queue, is_relay, priority):
                    await line.arrive(queue, is_relay, priority)
                case ("available", n):
                    await line.set_state(n, S.AVAILABLE)
                case ("away", n):
                    await line.set_state(n, S.AWAY)
                case ("answer", n):
                    await line.answer(n)
                case ("end", n):
                    await line.end(n)
                case ("hang_up", n):
                    await line.hang_up(n)
                case ("tick", seconds):
                    clock.advance_ms(seconds * 1000)
            await line.plans_due()
            await line.check()

        # Past every max wait: each call was offered, or left by Overflow (or hung up).
        clock.advance_ms(int(max(p.max_wait_s for p in policies.values()) * 1000) + 1)
        await line.plans_due()
        await line.check()
        assert {c.id: c.status for c in line.calls.values() if c.status == "waiting"} == {}
        assert all(c.steps_done == len(c.plan.steps) for c in line.calls.values() if c.status == "overflowed")
    finally:
        await client.aclose()
