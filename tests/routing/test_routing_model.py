"""The Lua matcher against a small pure-Python reference model.

Hypothesis drives random sequences of advocate and caller events through both;
after every event the offers made, the advocates' states and the waiting lines
must agree, and the raw Redis state must satisfy the routing invariants.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from routing import (
    AdvocateState,
    InvalidTransition,
    RoutingStore,
    StaleOffer,
    WaitingCall,
    hash_token,
    queues_for,
    waiting_score,
)
from routing.advocates import allowed_sources
from routing_support import QUEUES, TEST_KEYS, ManualClock, assert_routing_invariants

S = AdvocateState
QUEUE_NAMES = [q.name for q in QUEUES]


@dataclass
class ModelAdvocate:
    id: str
    queues: tuple[str, ...]
    state: str = "offline"
    idle_since: int | None = None
    call: str | None = None


@dataclass
class ModelCall:
    id: str
    queue: str
    score: int
    state: str = "waiting"
    advocate: str | None = None


class RoutingModel:
    """What routing should decide, written as plainly as possible: it
    rescans everything and matches across all queues, where the scripts keep
    sorted sets and only look at the queues an event could have unblocked."""

    def __init__(self) -> None:
        self.advocates: dict[str, ModelAdvocate] = {}
        self.calls: dict[str, ModelCall] = {}
        self.now = 0  # ms, the time the store's clock shows for this event

    def match(self) -> list[tuple[str, str]]:
        offers = []
        while True:
            best = None
            for index, queue in enumerate(QUEUE_NAMES):
                free = sorted((a.idle_since, a.id) for a in self.advocates.values()
                              if a.state == "available" and queue in a.queues)
                waiting = sorted((c.score, c.id) for c in self.calls.values()
                                 if c.state == "waiting" and c.queue == queue)
                if free and waiting:
                    # Equal scores in two queues: the queue configured first.
                    candidate = (waiting[0][0], index, waiting[0][1], free[0][1])
                    best = min(best or candidate, candidate)
            if best is None:
                return offers
            _, _, call_id, advocate_id = best
            adv, call = self.advocates[advocate_id], self.calls[call_id]
            adv.state, adv.call = "ringing", call_id
            call.state, call.advocate = "offered", advocate_id
            offers.append((call_id, advocate_id))

    def set_state(self, advocate_id: str, new: S) -> list[tuple[str, str]]:
        adv = self.advocates[advocate_id]
        if S(adv.state) not in allowed_sources(new):
            raise InvalidTransition(advocate_id, S(adv.state), new)
        if adv.state == new:
            return []
        adv.state, adv.call = str(new), None
        if new is S.AVAILABLE:
            adv.idle_since = self.now
        return self.match()

    def enqueue(self, call_id: str, queue: str, score: int) -> list[tuple[str, str]]:
        self.calls[call_id] = ModelCall(call_id, queue, score)
        return self.match()

    def _offered(self, call_id: str, advocate_id: str) -> bool:
        adv, call = self.advocates.get(advocate_id), self.calls.get(call_id)
        return (adv is not None and call is not None and adv.state == "ringing"
                and adv.call == call_id and call.state == "offered"
                and call.advocate == advocate_id)

    def offer_answered(self, call_id: str, advocate_id: str) -> None:
        adv, call = self.advocates[advocate_id], self.calls[call_id]
        if (adv.state, adv.call, call.state, call.advocate) == (
                "on_call", call_id, "bridged", advocate_id):
            return
        if not self._offered(call_id, advocate_id):
            raise StaleOffer(call_id, advocate_id)
        adv.state, call.state = "on_call", "bridged"
        return None

    def offer_failed(self, call_id: str, advocate_id: str) -> list[tuple[str, str]]:
        if not self._offered(call_id, advocate_id):
            raise StaleOffer(call_id, advocate_id)
        adv, call = self.advocates[advocate_id], self.calls[call_id]
        adv.state, adv.call = "away", None
        call.state, call.advocate = "waiting", None
        return self.match()

    def offer_cancelled(self, call_id: str, advocate_id: str) -> list[tuple[str, str]]:
        if not self._offered(call_id, advocate_id):
            raise StaleOffer(call_id, advocate_id)
        adv, call = self.advocates[advocate_id], self.calls[call_id]
        adv.state, adv.call = "available", None  # idle_since kept
        call.state = "ended"
        return self.match()

    def call_ended(self, call_id: str, advocate_id: str) -> None:
        adv, call = self.advocates[advocate_id], self.calls[call_id]
        if (adv.state, adv.call, call.state, call.advocate) == (
                "wrap_up", call_id, "ended", advocate_id):
            return
        if (adv.state, adv.call, call.state, call.advocate) != (
                "on_call", call_id, "bridged", advocate_id):
            raise StaleOffer(call_id, advocate_id)
        adv.state, call.state = "wrap_up", "ended"
        return None

    def abandon(self, call_id: str) -> bool:
        call = self.calls[call_id]
        if call.state != "waiting":
            return False
        call.state = "ended"
        return True


# Skill sets that serve one, two, three or no queues (see QUEUES).
skill_sets = st.sampled_from([
    frozenset({"en"}), frozenset({"es"}), frozenset({"en", "es"}),
    frozenset({"en", "relay"}), frozenset({"en", "es", "relay"}), frozenset({"relay"}),
])
index = st.integers(0, 1000)
operations = st.one_of(
    st.tuples(st.just("enqueue"), st.sampled_from(QUEUE_NAMES), st.integers(0, 9),
              st.sampled_from(["e1", "e2"])),
    st.tuples(st.just("state"), index, st.sampled_from([S.AVAILABLE, S.AVAILABLE, S.AWAY, S.OFFLINE])),
    st.tuples(st.just("no_answer"), index),
    st.tuples(st.just("answer"), index),
    st.tuples(st.just("hangup"), index),
    st.tuples(st.just("stale"),
              st.sampled_from(["offer_answered", "offer_failed", "offer_cancelled", "call_ended"]),
              index, index),
    st.tuples(st.just("tick"), st.integers(1_000, 60_000)),
)
# Each event comes after 0..2 ms: 0 makes equal idle times and arrivals, so
# tie-breaking is compared too; 1..2 keeps every place in line observable.
timed_operations = st.tuples(st.integers(0, 2), operations)


def pick(items: list, i: int):
    return sorted(items)[i % len(items)] if items else None


# What the store needs besides the model's arguments (the model keeps no record fields).
STORE_ONLY = {"offer_answered": {"waited_ms": 0}}


async def run_both(model, store, name: str, *args):
    """Run one event on both; they must agree on the outcome."""
    try:
        expected = getattr(model, name)(*args)
    except (InvalidTransition, StaleOffer) as exc:
        expected_error = type(exc)
    else:
        expected_error = None
    try:
        actual = await getattr(store, name)(*args, **STORE_ONLY.get(name, {}))
    except (InvalidTransition, StaleOffer) as exc:
        assert type(exc) is expected_error, f"{name}{args}: store raised {exc!r}"
        return
    assert expected_error is None, f"{name}{args}: store accepted, model raised {expected_error}"
    # Events show, with --hypothesis-show-statistics, how often each path ran.
    event(f"{name} accepted")
    if isinstance(actual, list):
        if actual:
            event(f"{name} made offers")
        actual = [(o.call_id, o.advocate_id) for o in actual]
    assert actual == expected, f"{name}{args}"


async def assert_same_state(model: RoutingModel, store: RoutingStore) -> None:
    advocates = {a.id: a for a in await store.list_advocates()}
    for adv in model.advocates.values():
        stored = advocates[adv.id]
        assert (stored.state, stored.call_id) == (adv.state, adv.call), adv.id
        if adv.state == "available":
            assert stored.idle_since == adv.idle_since, adv.id
    for queue in QUEUE_NAMES:
        expected = [c.id for c in sorted(model.calls.values(), key=lambda c: (c.score, c.id))
                    if c.state == "waiting" and c.queue == queue]
        assert await store.waiting(queue) == expected, queue
    for call in model.calls.values():
        stored = await store.get_call(call.id)
        assert (stored["state"], stored.get("advocate")) == (call.state, call.advocate), call.id


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(skills=st.lists(skill_sets, min_size=1, max_size=5),
       ops=st.lists(timed_operations, min_size=10, max_size=60))
async def test_lua_matcher_agrees_with_the_reference_model(redis_url, skills, ops):
    clock = ManualClock()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await client.flushdb()
        store = RoutingStore(client, QUEUES, TEST_KEYS, clock=clock)
        model = RoutingModel()
        for n, skill_set in enumerate(skills):
            advocate_id = f"a{n}"
            await store.upsert_advocate(advocate_id, advocate_id, f"PJSIP/{n}@phones", skill_set,
                                        frozenset(), hash_token(advocate_id))
            model.advocates[advocate_id] = ModelAdvocate(advocate_id, queues_for(skill_set, QUEUES))

        for elapsed_ms, op in ops:
            clock.advance_ms(elapsed_ms)
            now = model.now = int(clock.now * 1000)
            ringing = [a.id for a in model.advocates.values() if a.state == "ringing"]
            kind = op[0]
            if kind == "tick":
                clock.advance_ms(op[1])
            elif kind == "enqueue":
                _, queue, priority, owner = op
                call_id = f"c{len(model.calls)}"
                expected = model.enqueue(call_id, queue, waiting_score(priority, now))
                offers = await store.enqueue(
                    WaitingCall(call_id, queue, priority, now, owner), {}, 600)
                assert [(o.call_id, o.advocate_id) for o in offers] == expected
                assert all(o.owner == owner for o in offers)
                if offers:
                    event("enqueue made offers")
            elif kind == "state":
                await run_both(model, store, "set_state", pick(list(model.advocates), op[1]), op[2])
            elif kind in ("no_answer", "answer") and ringing:
                advocate_id = pick(ringing, op[1])
                name = "offer_failed" if kind == "no_answer" else "offer_answered"
                await run_both(model, store, name, model.advocates[advocate_id].call, advocate_id)
            elif kind == "hangup" and model.calls:
                call = model.calls[pick(list(model.calls), op[1])]
                if call.state == "waiting" or call.state == "ended":
                    await run_both(model, store, "abandon", call.id)
                elif call.state == "offered":
                    await run_both(model, store, "offer_cancelled", call.id, call.advocate)
                else:
                    await run_both(model, store, "call_ended", call.id, call.advocate)
            elif kind == "stale" and model.calls:
                _, name, call_index, advocate_index = op
                await run_both(model, store, name, pick(list(model.calls), call_index),
                               pick(list(model.advocates), advocate_index))
            await assert_same_state(model, store)
            await assert_routing_invariants(client, TEST_KEYS, set(model.calls))
    finally:
        await client.aclose()
