"""Each routing script against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from routing_support import QUEUES, TEST_KEYS, assert_routing_invariants, drive_to, free_port
from routing import (
    AdvocateState,
    Conflict,
    InvalidTransition,
    Offer,
    RoutingStore,
    RoutingUnavailable,
    StaleOffer,
    UnknownAdvocate,
    WaitingCall,
    check_transition,
    hash_token,
)

S = AdvocateState
TTL_S = 3600


async def add_advocate(store: RoutingStore, advocate_id: str, skills=("en",), *, available=False):
    await store.upsert_advocate(
        advocate_id, f"name {advocate_id}", f"PJSIP/{advocate_id}@phones",
        frozenset(skills), frozenset({"advocate"}), hash_token(f"token-{advocate_id}"),
    )
    if available:
        return await store.set_state(advocate_id, S.AVAILABLE)
    return []


def call(call_id: str, queue="english", priority=5, arrival_ms=1_000, owner="e1") -> WaitingCall:
    return WaitingCall(call_id, queue, priority, arrival_ms, owner)


def pairs(offers: list[Offer]) -> list[tuple[str, str]]:
    return [(o.call_id, o.advocate_id) for o in offers]


# -- advocates ----------------------------------------------------------------


async def test_new_advocate_is_offline_and_found_by_token_hash(store):
    await add_advocate(store, "a1", ("en", "relay"))
    adv = await store.get_advocate("a1")
    assert adv.state is S.OFFLINE and adv.queues == ("english", "relay")
    assert adv.token_hash == hash_token("token-a1")
    assert await store.advocate_for_token_hash(hash_token("token-a1")) == "a1"
    assert await store.get_advocate("nobody") is None


async def test_upsert_keeps_state_and_replaces_the_token(store):
    await add_advocate(store, "a1", available=True)
    await store.upsert_advocate("a1", "Ana", "PJSIP/9@phones", frozenset({"en"}),
                                frozenset({"supervisor"}), hash_token("new"))
    adv = await store.get_advocate("a1")
    assert (adv.state, adv.name, adv.roles) == (S.AVAILABLE, "Ana", {"supervisor"})
    assert await store.advocate_for_token_hash(hash_token("token-a1")) is None
    assert await store.advocate_for_token_hash(hash_token("new")) == "a1"


async def test_token_hash_of_another_advocate_is_refused(store):
    await add_advocate(store, "a1")
    with pytest.raises(Conflict):
        await store.upsert_advocate("a2", "B", "PJSIP/2@phones", frozenset({"en"}),
                                    frozenset(), hash_token("token-a1"))
    assert await store.get_advocate("a2") is None


async def test_available_advocate_gaining_a_skill_is_matched_in_the_new_queue(store, clock):
    await add_advocate(store, "a1", ("en",), available=True)
    idle_since = (await store.get_advocate("a1")).idle_since
    assert await store.enqueue(call("c1", queue="spanish"), {}, TTL_S) == []
    clock.advance_ms(10)
    offers = await store.upsert_advocate("a1", "A", "PJSIP/a1@phones", frozenset({"en", "es"}),
                                         frozenset(), hash_token("token-a1"))
    assert pairs(offers) == [("c1", "a1")]
    await store.offer_cancelled("c1", "a1")
    assert (await store.get_advocate("a1")).idle_since == idle_since


async def test_listing_advocates_returns_every_registered_one(store):
    for advocate_id in ("a1", "a2", "a3"):
        await add_advocate(store, advocate_id)
    assert [a.id for a in await store.list_advocates()] == ["a1", "a2", "a3"]


async def test_advocate_cannot_be_removed_while_ringing(store, redis_client):
    await add_advocate(store, "a1", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    with pytest.raises(InvalidTransition):
        await store.remove_advocate("a1")
    await store.offer_failed("c1", "a1")
    await add_advocate(store, "a2", available=True)  # takes c1
    await store.set_state("a1", S.AVAILABLE)
    assert await store.remove_advocate("a1") is True
    assert await store.get_advocate("a1") is None
    assert await store.advocate_for_token_hash(hash_token("token-a1")) is None
    assert await redis_client.zrange(TEST_KEYS.available("english"), 0, -1) == []
    assert await store.remove_advocate("a1") is False


@pytest.mark.parametrize("old", list(S))
@pytest.mark.parametrize("new", list(S))
async def test_script_accepts_exactly_the_transitions_the_pure_check_accepts(store, clock, old, new):
    await add_advocate(store, "a1")
    await drive_to(store, clock, "a1", old)
    try:
        check_transition(old, new, "a1")
    except InvalidTransition:
        with pytest.raises(InvalidTransition) as info:
            await store.set_state("a1", new)
        assert (info.value.old, info.value.new) == (old, new)
        assert (await store.get_advocate("a1")).state is old
    else:
        await store.set_state("a1", new)
        assert (await store.get_advocate("a1")).state is new


async def test_invalid_transition_is_refused(store):
    await add_advocate(store, "a1", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    with pytest.raises(InvalidTransition):
        await store.set_state("a1", S.AWAY)  # ringing: only the offer decides
    adv = await store.get_advocate("a1")
    assert (adv.state, adv.call_id) == (S.RINGING, "c1")


async def test_unknown_advocate_cannot_change_state(store):
    with pytest.raises(UnknownAdvocate):
        await store.set_state("ghost", S.AVAILABLE)


async def test_repeated_available_keeps_the_place_in_line(store, clock):
    await add_advocate(store, "a1", available=True)
    clock.advance_ms(5)
    await add_advocate(store, "a2", available=True)
    clock.advance_ms(5)
    await store.set_state("a1", S.AVAILABLE)  # a retried request
    assert pairs(await store.enqueue(call("c1"), {}, TTL_S)) == [("c1", "a1")]


# -- matching -------------------------------------------------------------------


async def test_waiting_call_is_offered_to_longest_idle_advocate(store, clock):
    await add_advocate(store, "a1", available=True)
    clock.advance_ms(10)
    await add_advocate(store, "a2", available=True)
    offers = await store.enqueue(call("c1"), {"language": "en"}, TTL_S)
    assert offers == [Offer("c1", "a1", "PJSIP/a1@phones", "english", "e1", int(clock.now * 1000))]
    adv = await store.get_advocate("a1")
    assert (adv.state, adv.call_id, adv.state_since) == (S.RINGING, "c1", int(clock.now * 1000))
    stored = await store.get_call("c1")
    assert (stored["state"], stored["advocate"], stored["language"]) == ("offered", "a1", "en")
    assert await store.waiting("english") == []


async def test_higher_priority_call_is_offered_before_older_calls(store, clock):
    await store.enqueue(call("old", priority=1, arrival_ms=1_000), {}, TTL_S)
    await store.enqueue(call("older", priority=1, arrival_ms=500), {}, TTL_S)
    await store.enqueue(call("crisis", priority=9, arrival_ms=9_000), {}, TTL_S)
    assert await store.waiting("english") == ["crisis", "older", "old"]
    offers = await add_advocate(store, "a1", available=True)
    assert pairs(offers) == [("crisis", "a1")]


async def test_advocate_serving_two_queues_gets_the_best_head_call(store):
    await store.enqueue(call("en-old", "english", priority=3, arrival_ms=100), {}, TTL_S)
    await store.enqueue(call("es-urgent", "spanish", priority=8, arrival_ms=900), {}, TTL_S)
    await store.enqueue(call("es-calm", "spanish", priority=3, arrival_ms=50), {}, TTL_S)
    offers = await add_advocate(store, "a1", ("en", "es"), available=True)
    assert pairs(offers) == [("es-urgent", "a1")]
    # The advocate left every line, so the next advocate gets the next call.
    offers = await add_advocate(store, "a2", ("en", "es"), available=True)
    assert pairs(offers) == [("es-calm", "a2")]


async def test_expired_head_call_is_dropped_and_the_next_head_competes_with_other_queues(
        store, redis_client):
    await store.enqueue(call("en-gone", "english", arrival_ms=100), {}, TTL_S)
    await store.enqueue(call("en-next", "english", arrival_ms=1_500), {}, TTL_S)
    await store.enqueue(call("es", "spanish", arrival_ms=2_000), {}, TTL_S)
    await redis_client.delete(TEST_KEYS.call("en-gone"))  # as if its TTL ran out
    assert pairs(await add_advocate(store, "a1", ("en", "es"), available=True)) == [("en-next", "a1")]
    assert (await store.waiting("english"), await store.waiting("spanish")) == ([], ["es"])
    await assert_routing_invariants(redis_client, TEST_KEYS, {"en-next", "es"})


async def test_cancelled_offer_gives_the_two_queue_advocate_the_configured_queue_first(
        store, clock, redis_client):
    await add_advocate(store, "a1", ("en", "es"), available=True)
    idle_since = (await store.get_advocate("a1")).idle_since
    await store.enqueue(call("c1", "english", arrival_ms=500), {}, TTL_S)
    # Equal scores in both of a1's queues: english is configured first.
    await store.enqueue(call("es", "spanish", arrival_ms=1_000), {}, TTL_S)
    await store.enqueue(call("en", "english", arrival_ms=1_000), {}, TTL_S)
    clock.advance_ms(10)
    assert pairs(await store.offer_cancelled("c1", "a1")) == [("en", "a1")]
    adv = await store.get_advocate("a1")
    assert (adv.state, adv.call_id, adv.idle_since) == (S.RINGING, "en", idle_since)
    assert await store.waiting("spanish") == ["es"]
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1", "es", "en"})


async def test_one_advocate_becoming_available_takes_one_call_and_the_rest_wait(store, clock):
    for i in range(3):
        await store.enqueue(call(f"c{i}", arrival_ms=1_000 + i), {}, TTL_S)
    assert pairs(await add_advocate(store, "a1", available=True)) == [("c0", "a1")]
    assert await store.waiting("english") == ["c1", "c2"]


async def test_advocate_without_the_skill_is_not_offered(store):
    await add_advocate(store, "a1", ("en",), available=True)
    assert await store.enqueue(call("c1", "spanish"), {}, TTL_S) == []
    assert await store.waiting("spanish") == ["c1"]


async def test_same_call_id_cannot_be_enqueued_twice(store):
    await store.enqueue(call("c1"), {}, TTL_S)
    with pytest.raises(Conflict):
        await store.enqueue(call("c1", priority=9), {}, TTL_S)
    with pytest.raises(Conflict):
        await store.enqueue(call("c1", queue="spanish"), {}, TTL_S)
    assert (await store.get_call("c1"))["priority"] == "5"


async def test_the_same_enqueue_run_twice_queues_the_call_once(store, redis_client):
    # redis-py runs a script again when its reply is late (a timeout); the
    # caller must not be sent away as a conflict with themselves.
    await add_advocate(store, "a1", ("en",), available=True)
    first = await store.enqueue(call("c1"), {}, TTL_S)
    assert pairs(first) == [("c1", "a1")]
    assert await store.enqueue(call("c1"), {}, TTL_S) == []
    assert (await store.get_call("c1"))["state"] == "offered"
    assert (await store.get_advocate("a1")).state is S.RINGING


async def test_call_whose_hash_expired_is_dropped_not_offered(store, redis_client):
    await store.enqueue(call("gone"), {}, TTL_S)
    await store.enqueue(call("kept", arrival_ms=2_000), {}, TTL_S)
    await redis_client.delete(TEST_KEYS.call("gone"))  # as if its TTL ran out
    offers = await add_advocate(store, "a1", available=True)
    assert pairs(offers) == [("kept", "a1")]
    assert await store.waiting("english") == []


# -- offers -----------------------------------------------------------------------


async def test_answered_offer_becomes_a_bridged_call_and_repeats_are_harmless(store):
    await add_advocate(store, "a1", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    await store.offer_answered("c1", "a1", waited_ms=0)
    await store.offer_answered("c1", "a1", waited_ms=0)
    assert (await store.get_advocate("a1")).state is S.ON_CALL
    assert (await store.get_call("c1"))["state"] == "bridged"


async def test_no_answer_puts_call_back_first_in_line_and_advocate_away(store, clock):
    await add_advocate(store, "a1", available=True)
    await store.enqueue(call("c1", arrival_ms=1_000), {}, TTL_S)
    await store.enqueue(call("c2", arrival_ms=500, priority=1), {}, TTL_S)
    await store.enqueue(call("c3", arrival_ms=2_000), {}, TTL_S)
    clock.advance_ms(30_000)
    assert await store.offer_failed("c1", "a1") == []
    assert await store.waiting("english") == ["c1", "c3", "c2"]
    adv = await store.get_advocate("a1")
    assert (adv.state, adv.call_id) == (S.AWAY, None)
    stored = await store.get_call("c1")
    assert stored["state"] == "waiting" and "advocate" not in stored


async def test_no_answer_offers_the_call_to_the_next_advocate_at_once(store, clock):
    await add_advocate(store, "a1", available=True)
    clock.advance_ms(1)
    await add_advocate(store, "a2", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    assert pairs(await store.offer_failed("c1", "a1")) == [("c1", "a2")]


async def test_stale_no_answer_changes_nothing(store, redis_client):
    await add_advocate(store, "a1", available=True)
    await add_advocate(store, "a2", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    for call_id, advocate_id in [("c1", "a2"), ("nope", "a1"), ("c1", "ghost")]:
        with pytest.raises(StaleOffer):
            await store.offer_failed(call_id, advocate_id)
    await store.offer_failed("c1", "a1")
    with pytest.raises(StaleOffer):
        await store.offer_failed("c1", "a1")
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1"})


async def test_caller_hanging_up_while_ringing_returns_advocate_to_the_front(store, clock):
    await add_advocate(store, "a1", available=True)
    idle_since = (await store.get_advocate("a1")).idle_since
    clock.advance_ms(10)
    await add_advocate(store, "a2", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    clock.advance_ms(10)
    assert await store.offer_cancelled("c1", "a1") == []
    adv = await store.get_advocate("a1")
    assert (adv.state, adv.idle_since, adv.call_id) == (S.AVAILABLE, idle_since, None)
    assert (await store.get_call("c1"))["state"] == "ended"
    assert pairs(await store.enqueue(call("c2"), {}, TTL_S)) == [("c2", "a1")]
    with pytest.raises(StaleOffer):
        await store.offer_answered("c1", "a1", waited_ms=0)


async def test_cancelled_offer_frees_the_advocate_for_the_next_waiting_call(store):
    await add_advocate(store, "a1", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    await store.enqueue(call("c2", arrival_ms=2_000), {}, TTL_S)
    assert pairs(await store.offer_cancelled("c1", "a1")) == [("c2", "a1")]


async def test_abandon_removes_only_a_waiting_call(store):
    await store.enqueue(call("c1"), {}, TTL_S)
    assert await store.abandon("c1") is True
    assert await store.abandon("c1") is False
    assert await store.abandon("unknown") is False
    assert await store.waiting("english") == []
    assert (await store.get_call("c1"))["state"] == "ended"
    await add_advocate(store, "a1", available=True)
    await store.enqueue(call("c2"), {}, TTL_S)
    assert await store.abandon("c2") is False  # offered: that is offer_cancelled's job
    assert (await store.get_call("c2"))["state"] == "offered"


async def test_ended_call_puts_advocate_in_wrap_up_until_they_choose(store):
    await add_advocate(store, "a1", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    with pytest.raises(StaleOffer):
        await store.call_ended("c1", "a1")  # not bridged yet
    await store.offer_answered("c1", "a1", waited_ms=0)
    await store.call_ended("c1", "a1")
    await store.call_ended("c1", "a1")
    adv = await store.get_advocate("a1")
    assert (adv.state, adv.call_id) == (S.WRAP_UP, "c1")
    assert await store.enqueue(call("c2"), {}, TTL_S) == []
    assert pairs(await store.set_state("a1", S.AVAILABLE)) == [("c2", "a1")]


async def test_call_hash_ttl_is_refreshed_on_each_routing_change(store, redis_client):
    await store.enqueue(call("c1"), {"language": "en"}, 100)
    assert 0 < await redis_client.ttl(TEST_KEYS.call("c1")) <= 100
    await redis_client.expire(TEST_KEYS.call("c1"), 5)
    assert await store.update_call("c1", {"note": "x"}) is True
    assert await redis_client.ttl(TEST_KEYS.call("c1")) <= 5  # metadata does not extend it
    await add_advocate(store, "a1", available=True)
    assert 5 < await redis_client.ttl(TEST_KEYS.call("c1")) <= 100


async def test_update_of_an_unknown_call_creates_nothing(store, redis_client):
    assert await store.update_call("gone", {"note": "x"}) is False
    assert await redis_client.exists(TEST_KEYS.call("gone")) == 0
    with pytest.raises(ValueError):
        await store.update_call("gone", {"state": "ended"})


async def test_offer_is_published_to_the_owner_channel(store, clock):
    await add_advocate(store, "a1", available=True)
    await add_advocate(store, "a2", available=True)
    async with store.subscribe_offers("e1") as offers:
        await store.enqueue(call("c1", owner="e1"), {}, TTL_S)
        first = await asyncio.wait_for(anext(offers), 2)
        await store.enqueue(call("c2", owner="e2"), {}, TTL_S)
        await store.enqueue(call("c3", owner="e1"), {}, TTL_S)  # no advocate left: waits
        await store.offer_failed("c1", "a1")  # c1 back ahead of c3, nobody free
        await store.set_state("a1", S.AVAILABLE)
        second = await asyncio.wait_for(anext(offers), 2)
    assert first == Offer("c1", "a1", "PJSIP/a1@phones", "english", "e1", int(clock.now * 1000))
    # c2's offer went to e2's channel only: the next e1 message is c1 again.
    assert (second.call_id, second.advocate_id, second.owner) == ("c1", "a1", "e1")


async def test_offers_generator_yields_published_offers(store, redis_client):
    await add_advocate(store, "a1", available=True)
    stream = store.offers("e1")
    pending = asyncio.ensure_future(anext(stream))
    try:
        # The generator subscribes on first iteration: enqueue only once the
        # subscription is visible on the server.
        async with asyncio.timeout(2):
            while (await redis_client.pubsub_numsub(TEST_KEYS.offers("e1")))[0][1] == 0:
                await asyncio.sleep(0.01)
        await store.enqueue(call("c1", owner="e1"), {}, TTL_S)
        offer = await asyncio.wait_for(pending, 2)
    finally:
        await stream.aclose()
    assert offer.call_id == "c1"


async def test_offer_never_answered_is_found_by_the_sweep(store, clock):
    await add_advocate(store, "a1", available=True)
    await add_advocate(store, "a2", available=True)
    await store.enqueue(call("c1"), {}, TTL_S)
    clock.advance_ms(61_000)
    await store.enqueue(call("c2"), {}, TTL_S)
    assert [o.call_id for o in await store.stale_offers(60)] == ["c1"]
    await store.offer_answered("c1", "a1", waited_ms=0)
    assert await store.stale_offers(60) == []


async def test_the_sweep_reads_each_offer_whole_though_the_call_is_offered_again_between_its_reads(
        store, clock, redis_client, monkeypatch):
    # The sweep finds the ringing calls first, then reads their hashes. In
    # between, c1's ring at a1 is missed and a1, back, is offered c1 again.
    # Stamped with the first ring's time, that second offer would pass for
    # another one than the one ringing: its call would decline it, and the
    # decline cancel the ring in progress.
    await add_advocate(store, "a1", available=True)
    [first] = await store.enqueue(call("c1"), {}, TTL_S)
    find_ringing = redis_client.zrangebyscore

    async def offered_again_after(*args, **kwargs):
        found = await find_ringing(*args, **kwargs)
        await store.offer_failed("c1", "a1")
        clock.advance_ms(5_000)
        offers.extend(await store.set_state("a1", S.AVAILABLE))
        return found

    offers: list[Offer] = []
    monkeypatch.setattr(redis_client, "zrangebyscore", offered_again_after)
    swept = await store.stale_offers(0)
    [second] = offers
    assert second.offered_ms == first.offered_ms + 5_000
    assert swept == [second]
    assert await store.offer_current(second)
    assert not await store.offer_current(first)


async def test_adopting_a_call_answers_its_record_as_the_takeover_found_it(store):
    # Adoption reads each call's record before it takes the call over; an
    # advocate freed in between is offered the call (to the dead engine).
    # The engine must act on the record of the takeover, not the one it read.
    await add_advocate(store, "a1")
    await store.enqueue(call("c1", owner="dead"), {}, TTL_S)
    assert (await store.get_call("c1"))["state"] == "waiting"
    [offer] = await store.set_state("a1", S.AVAILABLE)
    record = await store.adopt_call("c1", "new")
    assert (record["state"], record["advocate"], int(record["offered_ms"]), record["owner"]) == \
        ("offered", "a1", offer.offered_ms, "new")
    assert await store.get_call("c1") == record
    assert await store.adopt_call("unknown", "new") is None


async def test_a_widening_whose_reply_came_too_late_is_known_by_the_calls_record(store, redis_client, monkeypatch):
    await store.enqueue(call("c1", queue="spanish"), {}, TTL_S)
    evalsha = redis_client.evalsha

    async def ran_then_late(*args):
        await evalsha(*args)
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    async def late_unrun(*args):
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(redis_client, "evalsha", ran_then_late)
    assert await store.move_queue("c1", "spanish", "english") == []
    monkeypatch.setattr(redis_client, "evalsha", late_unrun)
    with pytest.raises(RoutingUnavailable):
        await store.move_queue("c1", "english", "relay")
    monkeypatch.undo()
    assert (await store.get_call("c1"))["queue"] == "english"
    assert await store.waiting("english") == ["c1"]


# -- observation and failure ---------------------------------------------------------


async def test_snapshot_reports_depth_oldest_arrival_and_states(store):
    await store.enqueue(call("calm-old", priority=1, arrival_ms=1_000), {}, TTL_S)
    await store.enqueue(call("urgent-new", priority=9, arrival_ms=5_000), {}, TTL_S)
    await add_advocate(store, "a1", ("es",), available=True)
    await add_advocate(store, "a2", ("es",))
    snap = await store.snapshot()
    english, spanish = snap.queues["english"], snap.queues["spanish"]
    assert (english.waiting, english.available, english.oldest_arrival_ms) == (2, 0, 1_000)
    assert (spanish.waiting, spanish.available, spanish.oldest_arrival_ms) == (0, 1, None)
    assert snap.advocates[S.AVAILABLE] == 1 and snap.advocates[S.OFFLINE] == 1
    assert snap.advocates[S.RINGING] == 0


async def test_snapshot_counts_advocates_by_skill_and_state(store, redis_client):
    await add_advocate(store, "bilingual", ("en", "es"), available=True)
    await add_advocate(store, "es-only", ("es",))
    await add_advocate(store, "en-only", ("en",))
    await store.set_state("en-only", S.AWAY)
    await add_advocate(store, "vanished", ("relay",))
    await redis_client.delete(TEST_KEYS.advocate("vanished"))
    snap = await store.snapshot()
    assert set(snap.advocates_by_skill) == {"en", "es"}
    es, en = snap.advocates_by_skill["es"], snap.advocates_by_skill["en"]
    assert (es[S.AVAILABLE], es[S.OFFLINE], es[S.AWAY]) == (1, 1, 0)
    assert (en[S.AVAILABLE], en[S.OFFLINE], en[S.AWAY]) == (1, 0, 1)
    assert set(es) == set(S)


async def test_unreachable_redis_raises_routing_unavailable(clock):
    # No retries: the default backoff would only make the test slow.
    client = aioredis.Redis(
        port=free_port(), decode_responses=True, socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    store = RoutingStore(client, QUEUES, TEST_KEYS, clock=clock)
    try:
        with pytest.raises(RoutingUnavailable):
            await store.get_advocate("a1")
        with pytest.raises(RoutingUnavailable):
            await store.set_state("a1", S.AVAILABLE)
        with pytest.raises(RoutingUnavailable):
            await store.snapshot()
    finally:
        await client.aclose()


async def test_a_redis_that_refuses_writes_raises_routing_unavailable(store, redis_client):
    # Out of memory with noeviction, as a full production Redis answers: the
    # engine must take it as a lost Redis (callers to the fallback), not as
    # an error no caller path handles.
    await add_advocate(store, "a1")
    used = int((await redis_client.info("memory"))["used_memory"])
    await redis_client.config_set("maxmemory", used // 2)
    try:
        with pytest.raises(RoutingUnavailable, match=r"refused the command \(OutOfMemoryError\)"):
            await store.enqueue(call("c1"), {}, 60)
        with pytest.raises(RoutingUnavailable, match="OutOfMemoryError"):
            await store.set_state("a1", S.AVAILABLE)
    finally:
        await redis_client.config_set("maxmemory", 0)
    assert await store.waiting("english") == []


async def test_equal_head_calls_in_two_queues_go_by_configured_queue_order(store):
    # Same priority, same millisecond: no call is better, so the order of the
    # queue configuration decides (english is configured before spanish).
    await store.enqueue(call("es", "spanish", priority=5, arrival_ms=1_000), {}, TTL_S)
    await store.enqueue(call("en", "english", priority=5, arrival_ms=1_000), {}, TTL_S)
    assert pairs(await add_advocate(store, "a1", ("en", "es"), available=True)) == [("en", "a1")]


async def test_a_call_joining_with_a_sip_call_id_is_found_by_it_until_it_expires(store, redis_client):
    await store.enqueue(call("c1"), {"sip_call_id": "abc@10.0.0.1", "language": "en"}, 60)
    await store.enqueue(call("c2"), {"sip_call_id": ""}, 60)
    assert await store.call_for_sip_id("abc@10.0.0.1") == "c1"
    assert 0 < await redis_client.ttl(TEST_KEYS.sip_call("abc@10.0.0.1")) <= 60
    assert await store.call_for_sip_id("") is None
    assert await store.call_for_sip_id("unknown") is None
    record = await redis_client.hgetall(TEST_KEYS.call("c1"))
    assert record["sip_call_id"] == "abc@10.0.0.1" and record["language"] == "en" and record["state"] == "waiting"


async def test_a_call_written_back_is_indexed_by_its_sip_call_id_again(store, redis_client):
    await store.enqueue(call("c1"), {}, TTL_S)
    await store.index_sip_call_id("c1", "abc@10.0.0.1", 60)
    assert await store.call_for_sip_id("abc@10.0.0.1") == "c1"
    assert 0 < await redis_client.ttl(TEST_KEYS.sip_call("abc@10.0.0.1")) <= 60


async def test_overflow_moves_a_waiting_call_keeping_its_place_and_offers_it(store, clock, redis_client):
    await store.enqueue(call("old", queue="english", arrival_ms=500), {}, TTL_S)
    await store.enqueue(call("es1", queue="spanish", arrival_ms=100), {}, TTL_S)
    await store.enqueue(call("new", queue="english", arrival_ms=900), {}, TTL_S)
    assert await store.move_queue("es1", "spanish", "english") == []
    assert await store.waiting("spanish") == []
    assert await store.waiting("english") == ["es1", "old", "new"]  # arrived first, stays first
    assert (await store.get_call("es1"))["queue"] == "english"
    await add_advocate(store, "a1", available=True)
    assert (await store.get_call("es1"))["advocate"] == "a1"
    await assert_routing_invariants(redis_client, TEST_KEYS, {"old", "es1", "new"})


async def test_overflow_of_a_call_no_longer_waiting_changes_nothing(store, clock):
    await add_advocate(store, "a1", skills=("es",), available=True)
    assert pairs(await store.enqueue(call("es1", queue="spanish"), {}, TTL_S)) == [("es1", "a1")]
    assert await store.move_queue("es1", "spanish", "english") is None
    assert (await store.get_call("es1"))["queue"] == "spanish"
    assert await store.move_queue("nobody", "spanish", "english") is None
