"""Putting routing back after Redis lost its data or missed changes
(routing/restore.py and its scripts), against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from routing_support import QUEUES, TEST_KEYS, ManualClock, assert_routing_invariants

from ivr.recovery import RecoveryConfig, RoutingRecovery
from ivr.tasks import TaskSet
from ivr.wrapup import WrapUpTimers
from metrics.hotline import HotlineMetrics
from routing import (
    AdvocateState,
    RoutingStore,
    UnknownAdvocate,
    WaitingCall,
    hash_token,
)
from routing.restore import AdvocateMark, RestoreStore

S = AdvocateState
TTL_S = 3600


@pytest.fixture
def restore(redis_client: aioredis.Redis, clock: ManualClock) -> RestoreStore:
    return RestoreStore(redis_client, QUEUES, TEST_KEYS, clock=clock)


async def add(store: RoutingStore, advocate_id: str, skills=("en",)) -> None:
    await store.upsert_advocate(advocate_id, advocate_id, f"PJSIP/{advocate_id}@phones", frozenset(skills),
                                frozenset({"advocate"}), hash_token(f"token-{advocate_id}"))


def call(call_id: str, arrival_ms: int = 1_000, owner: str = "e1") -> WaitingCall:
    return WaitingCall(call_id, "english", 5, arrival_ms, owner)


async def test_the_epoch_is_claimed_once_and_read_with_the_advocates(restore, store, clock):
    await add(store, "a1")
    await store.set_state("a1", S.AWAY)
    assert await restore.presence() == (None, [AdvocateMark("a1", S.AWAY, int(clock.now * 1000), None)])
    assert await restore.claim_epoch("first") == "first"
    assert await restore.claim_epoch("second") == "first"
    epoch, marks = await restore.presence()
    assert epoch == "first" and [m.state for m in marks] == [S.AWAY]


async def test_a_recreated_advocate_is_restored_available_in_their_old_place_and_matched(
        restore, store, redis_client, clock):
    await add(store, "a1")
    await add(store, "a2")
    await store.enqueue(call("c1"), {}, TTL_S)
    offers = await restore.restore_advocate(AdvocateMark("a2", S.AVAILABLE, 500, idle_since=400))
    assert [(o.call_id, o.advocate_id) for o in offers] == [("c1", "a2")]
    await restore.restore_advocate(AdvocateMark("a1", S.AVAILABLE, 500, idle_since=300))
    assert await redis_client.zscore(TEST_KEYS.available("english"), "a1") == 300
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1"})


async def test_an_advocate_who_is_not_offline_any_more_keeps_their_state(restore, store):
    await add(store, "a1")
    await store.set_state("a1", S.AWAY)
    assert await restore.restore_advocate(AdvocateMark("a1", S.AVAILABLE, 500, 400)) == []
    assert (await store.get_advocate("a1")).state is S.AWAY
    with pytest.raises(UnknownAdvocate):
        await restore.restore_advocate(AdvocateMark("gone", S.AWAY, 500, None))


async def test_a_bridged_call_lost_by_redis_claims_its_advocate_again(restore, store, redis_client):
    await add(store, "a1")
    await store.set_state("a1", S.AVAILABLE)
    left_alone = await restore.restore_call(call("c1"), "bridged", ["a1"], {"language": "en"}, TTL_S)
    assert left_alone == []
    advocate = await store.get_advocate("a1")
    assert (advocate.state, advocate.call_id) == (S.ON_CALL, "c1")
    record = await store.get_call("c1")
    assert (record["state"], record["advocate"], record["language"]) == ("bridged", "a1", "en")
    assert 0 < await redis_client.ttl(TEST_KEYS.call("c1")) <= TTL_S
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1"})
    await store.call_ended("c1", "a1")  # the end of the call is recorded as usual
    assert (await store.get_advocate("a1")).state is S.WRAP_UP


async def test_a_ringing_call_restored_can_be_answered_and_an_intact_one_is_unchanged(restore, store, redis_client):
    await add(store, "a1")
    await restore.restore_call(call("c1"), "offered", ["a1"], {}, TTL_S)
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1"})
    before = await store.get_advocate("a1")
    await restore.restore_call(call("c1"), "offered", ["a1"], {}, TTL_S)  # Redis had it: no change
    assert await store.get_advocate("a1") == before
    await store.offer_answered("c1", "a1", waited_ms=0)
    assert (await store.get_advocate("a1")).state is S.ON_CALL


async def test_an_advocate_redis_has_with_another_call_is_left_alone(restore, store):
    await add(store, "a1")
    await store.set_state("a1", S.AVAILABLE)
    await store.enqueue(call("c1"), {}, TTL_S)  # offered to a1
    assert await restore.restore_call(call("c2", owner="e2"), "bridged", ["a1"], {}, TTL_S) == ["a1"]
    advocate = await store.get_advocate("a1")
    assert (advocate.state, advocate.call_id) == (S.RINGING, "c1")


async def test_an_escalation_restored_settles_back_to_the_supervisors_states(restore, store, redis_client):
    for advocate_id in ("s1", "s2"):
        await add(store, advocate_id)
    await store.set_state("s1", S.AWAY)
    await restore.restore_call(call("c1"), "escalating", ["s1", "s2"], {}, TTL_S)
    assert {a.id: (a.state, a.call_id) for a in await store.list_advocates()} == {
        "s1": (S.RINGING, "c1"), "s2": (S.RINGING, "c1")}
    await store.escalation_settled("c1", "s2", ["s1", "s2"])
    states = {a.id: a.state for a in await store.list_advocates()}
    assert states == {"s1": S.AWAY, "s2": S.ON_CALL}
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1"})


async def test_a_waiting_call_taken_out_by_a_restore_leaves_its_queue(restore, store, redis_client):
    await add(store, "a1")
    await store.enqueue(call("c1"), {}, TTL_S)
    await restore.restore_call(call("c1"), "offered", ["a1"], {}, TTL_S)
    assert await store.waiting("english") == []
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1"})


async def test_an_advocate_ringing_for_a_held_call_is_not_put_back_available_after_a_loss(
        store, restore, redis_client, clock):
    # ivr/recovery.py against a real Redis. The engine's last read (a probe)
    # has ana available; she is then offered c1, which this engine holds, and
    # Redis restarts empty before the next probe. Put back as that read said,
    # ana would be offered c2 as c2 is enqueued again, before c1 claims her.
    posted: list[tuple[str, object]] = []
    tasks = TaskSet()
    recovery = RoutingRecovery(
        RecoveryConfig(owner="e1", probe_s=1, outage_hold_s=30), restore=restore,
        held=lambda: ["c1", "c2"], claimed=lambda: {"ana"},
        post=lambda key, item: posted.append((key, item)) is None,
        sync_roster=lambda: add(store, "ana"), wrap_up=WrapUpTimers(store, tasks, 2.0, HotlineMetrics()),
        clear_ghosts=lambda: asyncio.sleep(0), clock=clock)
    await add(store, "ana")
    await store.set_state("ana", S.AVAILABLE)
    await recovery.probe()  # the last read: ana available
    (offer,) = await store.enqueue(call("c1"), {}, TTL_S)
    assert offer.advocate_id == "ana"

    await redis_client.flushdb()
    await recovery.probe()

    assert [key for key, _ in posted] == ["c1", "c2"]  # each held call writes itself back...
    assert await store.enqueue(call("c2", arrival_ms=2_000), {}, TTL_S) == []  # ...c2 offered nobody
    assert await restore.restore_call(call("c1"), "offered", ["ana"], {}, TTL_S) == []  # c1 claims ana
    ana = await store.get_advocate("ana")
    assert (ana.state, ana.call_id) == (S.RINGING, "c1")
    await tasks.close()


async def test_after_a_loss_another_engines_ring_claims_its_advocate_before_anyone_is_put_back_available(
        store, restore, redis_client, clock):
    # Two engines on one Redis. e2's last read has ana available; e1's call
    # c1 then rings her, and Redis restarts empty before e2's next probe. e2
    # rebuilds first: had it put ana back available at once, its next caller
    # (c2) would be offered her, and c1's claim on her would come too late.
    tasks = TaskSet()

    def engine(owner: str, held: list[str], claimed: set[str]) -> RoutingRecovery:
        return RoutingRecovery(
            RecoveryConfig(owner=owner, probe_s=1, outage_hold_s=30), restore=restore,
            held=lambda: held, claimed=lambda: claimed, post=lambda key, item: True,
            sync_roster=lambda: add(store, "ana"), wrap_up=WrapUpTimers(store, tasks, 2.0, HotlineMetrics()),
            clear_ghosts=lambda: asyncio.sleep(0), clock=clock)
    e1, e2 = engine("e1", ["c1"], {"ana"}), engine("e2", [], set())
    try:
        await add(store, "ana")
        await store.set_state("ana", S.AVAILABLE)
        await e2.probe()  # e2's last read: ana available
        (offer,) = await store.enqueue(call("c1"), {}, TTL_S)  # e1's call rings ana
        await e1.probe()
        await redis_client.flushdb()

        clock.advance_ms(1_000)
        await e2.probe()  # e2 rebuilds first
        assert await store.enqueue(call("c2", arrival_ms=2_000, owner="e2"), {}, TTL_S) == []
        await e1.probe()  # then e1, whose ringing call claims ana back
        assert await restore.restore_call(call("c1"), "offered", ["ana"], {}, TTL_S) == []

        for _ in range(2):
            clock.advance_ms(1_000)
            await e2.probe()  # two probes after its rebuild, e2 puts back the available: not ana
        ana = await store.get_advocate("ana")
        assert (ana.state, ana.call_id) == (S.RINGING, "c1")
        assert (await store.get_call("c2"))["state"] == "waiting"
    finally:
        await tasks.close()


async def test_an_advocate_last_seen_available_is_put_back_two_probes_after_the_rebuild_and_matched(
        store, restore, redis_client, clock):
    tasks = TaskSet()
    recovery = RoutingRecovery(
        RecoveryConfig(owner="e1", probe_s=1, outage_hold_s=30), restore=restore,
        held=lambda: ["c1"], claimed=set, post=lambda key, item: True,
        sync_roster=lambda: add(store, "ana"), wrap_up=WrapUpTimers(store, tasks, 2.0, HotlineMetrics()),
        clear_ghosts=lambda: asyncio.sleep(0), clock=clock)
    try:
        await add(store, "ana")
        await store.set_state("ana", S.AVAILABLE)
        await recovery.probe()
        await redis_client.flushdb()
        clock.advance_ms(1_000)
        await recovery.probe()  # the rebuild
        assert await store.enqueue(call("c1"), {}, TTL_S) == []  # written back; ana not yet available
        assert (await store.get_advocate("ana")).state is S.OFFLINE
        clock.advance_ms(1_000)
        await recovery.probe()
        assert (await store.get_advocate("ana")).state is S.OFFLINE
        clock.advance_ms(1_000)
        await recovery.probe()
        ana = await store.get_advocate("ana")
        assert (ana.state, ana.call_id) == (S.RINGING, "c1")  # put back, and offered the waiting call
    finally:
        await tasks.close()
