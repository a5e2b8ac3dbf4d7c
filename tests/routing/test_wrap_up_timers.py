"""The wrap-up timer against the session's real redis-server: a wrap-up whose
end Redis did not take is ended later, not left to hold the advocate."""

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
