"""Crisis escalation (escalate.lua, escalation_settled.lua) and the queue's
recent answers (offer_answered.lua) against a real redis-server."""

from __future__ import annotations

import pytest
from routing_support import QUEUES, TEST_KEYS, ManualClock, drive_to

from routing import (
    AdvocateState,
    Offer,
    RoutingStore,
    StaleOffer,
    WaitingCall,
    hash_token,
)

S = AdvocateState
TTL_S = 3600
CRISIS = 9
RETURNING_STATES = [S.AVAILABLE, S.AWAY, S.WRAP_UP, S.OFFLINE]


async def add(store: RoutingStore, advocate_id: str, *, supervisor: bool, skills=("en",)) -> None:
    roles = frozenset({"advocate", "supervisor"} if supervisor else {"advocate"})
    await store.upsert_advocate(advocate_id, advocate_id, f"PJSIP/{advocate_id}@phones", frozenset(skills),
                                roles, hash_token(f"token-{advocate_id}"))


async def enqueue(store: RoutingStore, clock: ManualClock, call_id: str, queue="english",
                  priority=5) -> list[Offer]:
    clock.advance_ms(1_000)
    return await store.enqueue(WaitingCall(call_id, queue, priority, int(clock.now * 1000), "e1"), {}, TTL_S)


async def in_available_sets(redis_client, advocate_id: str) -> list[str]:
    return [q.name for q in QUEUES
            if await redis_client.zscore(TEST_KEYS.available(q.name), advocate_id) is not None]


async def crisis_call(store: RoutingStore, clock: ManualClock, call_id="crisis") -> str:
    # In the Spanish queue, which no advocate here serves: it waits for the escalation.
    assert await enqueue(store, clock, call_id, "spanish", CRISIS) == []
    return call_id


# -- escalate ------------------------------------------------------------------------------


async def test_only_a_waiting_call_escalates(store, clock):
    await add(store, "s1", supervisor=True)
    await add(store, "a1", supervisor=False)
    await store.set_state("s1", S.AWAY)
    await store.set_state("a1", S.AVAILABLE)
    await enqueue(store, clock, "offered")
    await enqueue(store, clock, "waiting")
    assert await store.escalate("offered") is None
    assert (await store.get_call("offered"))["state"] == "offered"
    assert await store.escalate("unknown") is None
    assert (await store.get_advocate("s1")).state is S.AWAY  # nobody claimed

    assert await store.escalate("waiting") == [("s1", "PJSIP/s1@phones")]
    assert await store.escalate("waiting") is None  # already escalating
    await store.offer_answered("offered", "a1", waited_ms=0)
    assert await store.escalate("offered") is None  # bridged


async def test_escalated_call_leaves_its_queue_and_is_never_offered(store, clock):
    await enqueue(store, clock, "older")
    await enqueue(store, clock, "crisis", priority=CRISIS)
    assert await store.position("crisis", "english") == 1
    assert await store.escalate("crisis") == []
    assert await store.waiting("english") == ["older"]
    assert await store.position("crisis", "english") is None
    assert (await store.get_call("crisis"))["state"] == "escalating"

    await add(store, "a1", supervisor=False)
    offers = await store.set_state("a1", S.AVAILABLE)
    assert [(o.call_id, o.advocate_id) for o in offers] == [("older", "a1")]


@pytest.mark.parametrize("previous", RETURNING_STATES)
async def test_supervisor_is_claimed_whatever_their_state_and_cannot_be_offered_a_call(
        store, clock, redis_client, previous):
    await add(store, "s1", supervisor=True)
    await drive_to(store, clock, "s1", previous)
    call_id = await crisis_call(store, clock)

    assert await store.escalate(call_id) == [("s1", "PJSIP/s1@phones")]
    s1 = await store.get_advocate("s1")
    assert (s1.state, s1.call_id, s1.state_since) == (S.RINGING, call_id, int(clock.now * 1000))
    assert await redis_client.hget(TEST_KEYS.advocate("s1"), "escalated_from") == previous
    assert await in_available_sets(redis_client, "s1") == []
    # An English call arriving now waits: the matcher does not see s1.
    assert await enqueue(store, clock, "next") == []
    assert await store.waiting("english") == ["next"]


async def test_advocates_and_busy_supervisors_are_not_claimed(store, clock, redis_client):
    await add(store, "s-ringing", supervisor=True)
    await drive_to(store, clock, "s-ringing", S.RINGING)
    await add(store, "s-on-call", supervisor=True)
    await drive_to(store, clock, "s-on-call", S.ON_CALL)
    await add(store, "a-free", supervisor=False, skills=("en",))
    await add(store, "a-away", supervisor=False)
    await store.set_state("a-away", S.AWAY)
    await add(store, "s-away", supervisor=True)
    await store.set_state("s-away", S.AWAY)
    await add(store, "s-offline", supervisor=True)
    await store.set_state("a-free", S.AVAILABLE)
    call_id = await crisis_call(store, clock)
    before = {a.id: a for a in await store.list_advocates()}

    assert await store.escalate(call_id) == [("s-away", "PJSIP/s-away@phones"),
                                             ("s-offline", "PJSIP/s-offline@phones")]
    after = {a.id: a for a in await store.list_advocates()}
    for unchanged in ("s-ringing", "s-on-call", "a-free", "a-away"):
        assert after[unchanged] == before[unchanged], unchanged
    assert await in_available_sets(redis_client, "a-free") == ["english"]


# -- escalation_settled -----------------------------------------------------------------------


async def supervisors_in(store: RoutingStore, clock: ManualClock, states: dict[str, S]) -> dict[str, object]:
    """Register supervisors and bring each to their state: the ones needing a
    call first, each alone. Returns their Advocate records."""
    for advocate_id in states:
        await add(store, advocate_id, supervisor=True)
    for advocate_id, state in sorted(states.items(), key=lambda item: item[1] is S.AVAILABLE):
        clock.advance_ms(1_000)
        await drive_to(store, clock, advocate_id, state)
    return {a.id: a for a in await store.list_advocates()}


async def test_winner_takes_the_call_and_the_others_return_to_exactly_their_state(store, clock, redis_client):
    before = await supervisors_in(store, clock, {
        "s-win": S.AWAY, "s-available": S.AVAILABLE, "s-away": S.AWAY, "s-wrap-up": S.WRAP_UP,
        "s-offline": S.OFFLINE})
    call_id = await crisis_call(store, clock)
    rung = [a for a, _ in await store.escalate(call_id)]
    assert sorted(rung) == sorted(before)
    clock.advance_ms(5_000)

    assert await store.escalation_settled(call_id, "s-win", rung) == []
    winner = await store.get_advocate("s-win")
    assert (winner.state, winner.call_id) == (S.ON_CALL, call_id)
    call = await store.get_call(call_id)
    assert (call["state"], call["advocate"]) == ("bridged", "s-win")
    for advocate_id in rung:
        assert await redis_client.hget(TEST_KEYS.advocate(advocate_id), "escalated_from") is None
    for advocate_id in ("s-available", "s-away", "s-wrap-up", "s-offline"):
        now, then = await store.get_advocate(advocate_id), before[advocate_id]
        assert now.state is then.state, advocate_id
        assert now.idle_since == then.idle_since, advocate_id
    assert await in_available_sets(redis_client, "s-available") == ["english"]
    assert await redis_client.zscore(TEST_KEYS.available("english"), "s-available") == \
        before["s-available"].idle_since
    for advocate_id in ("s-win", "s-away", "s-wrap-up", "s-offline"):
        assert await in_available_sets(redis_client, advocate_id) == [], advocate_id


async def test_returning_available_supervisor_keeps_their_place_ahead_of_later_advocates(store, clock, redis_client):
    await supervisors_in(store, clock, {"s1": S.AVAILABLE})
    call_id = await crisis_call(store, clock)
    rung = [a for a, _ in await store.escalate(call_id)]
    await add(store, "a-later", supervisor=False)
    clock.advance_ms(1_000)
    await store.set_state("a-later", S.AVAILABLE)  # idle since after s1

    await store.escalation_settled(call_id, None, rung)
    assert await redis_client.zrange(TEST_KEYS.available("english"), 0, -1) == ["s1", "a-later"]
    offers = await enqueue(store, clock, "next")
    assert [(o.call_id, o.advocate_id) for o in offers] == [("next", "s1")]


@pytest.mark.parametrize("answered", [True, False])
async def test_returning_available_supervisor_is_matched_at_once_to_a_waiting_call(store, clock, answered):
    await supervisors_in(store, clock, {"s-win": S.AWAY, "s1": S.AVAILABLE})
    call_id = await crisis_call(store, clock)
    rung = [a for a, _ in await store.escalate(call_id)]
    assert await enqueue(store, clock, "waiting") == []  # s1 is claimed meanwhile

    offers = await store.escalation_settled(call_id, "s-win" if answered else None, rung)
    assert offers == [Offer("waiting", "s1", "PJSIP/s1@phones", "english", "e1", int(clock.now * 1000))]
    assert (await store.get_advocate("s1")).call_id == "waiting"


async def test_nobody_answering_ends_the_call_and_every_supervisor_returns(store, clock, redis_client):
    before = await supervisors_in(store, clock, {
        "s-available": S.AVAILABLE, "s-away": S.AWAY, "s-wrap-up": S.WRAP_UP, "s-offline": S.OFFLINE})
    call_id = await crisis_call(store, clock)
    rung = [a for a, _ in await store.escalate(call_id)]

    assert await store.escalation_settled(call_id, None, rung) == []
    call = await store.get_call(call_id)
    assert call["state"] == "ended" and "advocate" not in call
    after = {a.id: a for a in await store.list_advocates()}
    assert {a: after[a].state for a in rung} == {a: before[a].state for a in rung}
    for advocate_id in rung:
        assert await redis_client.hget(TEST_KEYS.advocate(advocate_id), "escalated_from") is None
    assert after["s-available"].idle_since == before["s-available"].idle_since


async def test_escalation_with_no_supervisor_to_ring_ends_when_settled(store, clock):
    call_id = await crisis_call(store, clock)
    assert await store.escalate(call_id) == []
    assert await store.escalation_settled(call_id, None, []) == []
    assert (await store.get_call(call_id))["state"] == "ended"


async def test_answer_after_the_escalation_gave_up_is_stale_and_changes_nothing(store, clock):
    await supervisors_in(store, clock, {"s1": S.AWAY, "s2": S.AVAILABLE})
    call_id = await crisis_call(store, clock)
    rung = [a for a, _ in await store.escalate(call_id)]
    await store.escalation_settled(call_id, None, rung)
    settled = ({a.id: a for a in await store.list_advocates()}, await store.get_call(call_id))

    for late in rung:
        with pytest.raises(StaleOffer):
            await store.escalation_settled(call_id, late, rung)
    assert ({a.id: a for a in await store.list_advocates()}, await store.get_call(call_id)) == settled


async def test_second_answer_after_a_winner_is_stale_and_changes_nothing(store, clock):
    await supervisors_in(store, clock, {"s1": S.AWAY, "s2": S.AWAY})
    call_id = await crisis_call(store, clock)
    rung = [a for a, _ in await store.escalate(call_id)]
    await store.escalation_settled(call_id, "s1", rung)
    settled = ({a.id: a for a in await store.list_advocates()}, await store.get_call(call_id))

    with pytest.raises(StaleOffer):
        await store.escalation_settled(call_id, "s2", rung)
    await store.escalation_settled(call_id, None, rung)  # a give-up racing the answer
    assert ({a.id: a for a in await store.list_advocates()}, await store.get_call(call_id)) == settled


async def test_supervisor_who_took_the_call_enters_wrap_up_when_it_ends(store, clock):
    await supervisors_in(store, clock, {"s1": S.AVAILABLE})
    call_id = await crisis_call(store, clock)
    rung = [a for a, _ in await store.escalate(call_id)]
    await store.escalation_settled(call_id, "s1", rung)
    clock.advance_ms(60_000)

    await store.call_ended(call_id, "s1")
    s1 = await store.get_advocate("s1")
    assert (s1.state, s1.state_since) == (S.WRAP_UP, int(clock.now * 1000))
    assert (await store.get_call(call_id))["state"] == "ended"
    await store.set_state("s1", S.AVAILABLE)  # wrap-up is left as after any call


# -- recent answers and position ------------------------------------------------------------------


async def answer_next(store: RoutingStore, clock: ManualClock, call_id: str, queue="english") -> int:
    """a1 takes `call_id` and hangs up; returns the ms of the answer."""
    offers = await enqueue(store, clock, call_id, queue)
    assert [(o.call_id, o.advocate_id) for o in offers] == [(call_id, "a1")]
    clock.advance_ms(3_000)
    answered_ms = int(clock.now * 1000)
    await store.offer_answered(call_id, "a1", waited_ms=0)
    await store.call_ended(call_id, "a1")
    await store.set_state("a1", S.AVAILABLE)
    return answered_ms


async def test_answer_time_goes_on_the_queues_recent_answers_once(store, clock, redis_client):
    await add(store, "a1", supervisor=False)
    await store.set_state("a1", S.AVAILABLE)
    await enqueue(store, clock, "c1")
    clock.advance_ms(2_500)
    await store.offer_answered("c1", "a1", waited_ms=0)
    answered_ms = int(clock.now * 1000)
    clock.advance_ms(1_000)
    await store.offer_answered("c1", "a1", waited_ms=0)  # a repeated event

    assert await store.recent_answers("english") == [answered_ms]
    assert await store.recent_answers("spanish") == []
    assert 0 < await redis_client.ttl(TEST_KEYS.answered("english")) <= 3600


async def test_recent_answers_keep_the_latest_twenty_newest_first(store, clock):
    await add(store, "a1", supervisor=False)
    await store.set_state("a1", S.AVAILABLE)
    answered = [await answer_next(store, clock, f"c{n}") for n in range(25)]
    assert await store.recent_answers("english") == answered[::-1][:20]


async def test_widened_call_counts_towards_the_queue_it_was_answered_from(store, clock):
    await add(store, "a1", supervisor=False)
    await enqueue(store, clock, "es1", "spanish")
    await store.move_queue("es1", "spanish", "english")
    offers = await store.set_state("a1", S.AVAILABLE)
    assert [(o.call_id, o.queue) for o in offers] == [("es1", "english")]
    clock.advance_ms(4_000)
    await store.offer_answered("es1", "a1", waited_ms=0)
    assert await store.recent_answers("english") == [int(clock.now * 1000)]
    assert await store.recent_answers("spanish") == []


async def test_position_counts_from_one_and_follows_priority(store, clock):
    await enqueue(store, clock, "c1")
    await enqueue(store, clock, "c2")
    assert [await store.position(c, "english") for c in ("c1", "c2")] == [1, 2]
    await enqueue(store, clock, "crisis", priority=CRISIS)
    assert [await store.position(c, "english") for c in ("crisis", "c1", "c2")] == [1, 2, 3]
    assert await store.position("c1", "spanish") is None
    assert await store.position("unknown", "english") is None
    await store.abandon("c1")
    assert await store.position("c2", "english") == 2


async def test_supervisor_rung_from_wrap_up_returns_to_the_wrap_up_of_the_same_call(store, clock):
    before = await supervisors_in(store, clock, {"s1": S.WRAP_UP})
    call_id = await crisis_call(store, clock)
    rung = [a for a, _ in await store.escalate(call_id)]
    await store.escalation_settled(call_id, None, rung)
    after = await store.get_advocate("s1")
    assert (after.state, after.call_id) == (S.WRAP_UP, before["s1"].call_id)
