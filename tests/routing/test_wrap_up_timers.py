"""The wrap-up timer against the session's real redis-server: a wrap-up whose
end Redis did not take is ended later, not left to hold the advocate; a
timer armed for the wrap-up an advocate is in ends that one only."""

from __future__ import annotations

import pytest
from routing_support import QUEUES, TEST_KEYS, until

from ivr import wrapup
from ivr.tasks import TaskSet
from ivr.wrapup import WrapUpTimers
from metrics.hotline import HotlineMetrics
from routing import AdvocateState, RoutingStore, WaitingCall, hash_token
from routing.errors import RoutingUnavailable


class RefusingOnce(RoutingStore):
    """The real store, whose first end of a wrap-up meets Redis unreachable."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tries = 0

    async def end_wrap_up(self, *args, **kwargs):
        self.tries += 1
        if self.tries == 1:
            raise RoutingUnavailable("Redis unreachable: a test's refusal")
        return await super().end_wrap_up(*args, **kwargs)


async def test_a_wrap_up_end_redis_refused_is_tried_again_until_the_advocate_is_available(
        redis_client, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(wrapup, "END_RETRY_S", 0.05)
    store = RefusingOnce(redis_client, QUEUES, TEST_KEYS)
    await store.upsert_advocate("ana", "Ana", "PJSIP/ana@phones", frozenset({"en"}), frozenset({"advocate"}),
                                hash_token("token-ana"))
    await store.set_state("ana", AdvocateState.AVAILABLE)
    (offer,) = await store.enqueue(WaitingCall("c1", "english", 5, 1_000, "e1"), {}, 60)
    await store.offer_answered("c1", offer.advocate_id, waited_ms=0)
    await store.call_ended("c1", "ana")
    assert (await store.get_advocate("ana")).state is AdvocateState.WRAP_UP

    async def available() -> bool:
        return (await store.get_advocate("ana")).state is AdvocateState.AVAILABLE

    tasks = TaskSet()
    try:
        WrapUpTimers(store, tasks, 0.01, HotlineMetrics()).start("ana", "c1")
        await until(available, 5, "ana available after her wrap-up")
    finally:
        await tasks.close()
    assert store.tries == 2


async def test_a_timer_armed_for_the_wrap_up_an_advocate_is_in_leaves_a_later_one_alone(redis_client):
    # As an escalation that rang a supervisor in wrap-up gives her back to it.
    store = RoutingStore(redis_client, QUEUES, TEST_KEYS)
    await store.upsert_advocate("sam", "Sam", "PJSIP/sam@phones", frozenset({"en"}), frozenset({"supervisor"}),
                                hash_token("token-sam"))

    async def a_call_taken_and_ended(call_id: str) -> None:
        await store.set_state("sam", AdvocateState.AVAILABLE)
        (offer,) = await store.enqueue(WaitingCall(call_id, "english", 5, 1_000, "e1"), {}, 60)
        await store.offer_answered(call_id, offer.advocate_id, waited_ms=0)
        await store.call_ended(call_id, "sam")
    await a_call_taken_and_ended("c1")

    tasks = TaskSet()
    try:
        await WrapUpTimers(store, tasks, 0.1, HotlineMetrics()).start_current("sam")
        # She ends that wrap-up herself (another engine's API), takes another
        # call and ends it before the timer fires.
        await store.end_wrap_up("sam", AdvocateState.AWAY)
        await a_call_taken_and_ended("c2")

        async def timer_done() -> bool:
            return len(tasks) == 0
        await until(timer_done, 5, "the wrap-up timer fired and done")
    finally:
        await tasks.close()
    sam = await store.get_advocate("sam")
    assert (sam.state, sam.call_id) == (AdvocateState.WRAP_UP, "c2")
