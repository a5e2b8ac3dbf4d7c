"""The end of wrap-up (one script for the API and the timer), the wallboard's
read of waiting calls, and today's per-queue counts, against a real redis-server."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from routing import AdvocateState, Conflict, RoutingStore, UnknownAdvocate, WaitingCall, hash_token
from routing.daily import DAY_TTL_S, DailyCounts, DayCounts, day_of
from routing_support import TEST_KEYS, ManualClock, assert_routing_invariants

S = AdvocateState
TTL_S = 3600
NEW_YORK = ZoneInfo("America/New_York")


async def advocate(store: RoutingStore, advocate_id: str, *, available: bool = False) -> None:
    await store.upsert_advocate(advocate_id, advocate_id, f"PJSIP/{advocate_id}@phones", frozenset({"en"}),
                                frozenset({"advocate"}), hash_token(f"token-{advocate_id}"))
    if available:
        await store.set_state(advocate_id, S.AVAILABLE)


async def in_wrap_up(store: RoutingStore, advocate_id: str, call_id: str, call_type: str = "tip") -> None:
    """`advocate_id` (available, nothing waiting) takes `call_id` and it ends."""
    await store.enqueue(WaitingCall(call_id, "english", 5, 1_000, "e1"), {"call_type": call_type}, TTL_S)
    await store.offer_answered(call_id, advocate_id, waited_ms=0)
    await store.call_ended(call_id, advocate_id)


# -- end of wrap-up ---------------------------------------------------------------


async def test_ending_wrap_up_records_the_disposition_and_says_since_when(store, clock):
    await advocate(store, "a1", available=True)
    await in_wrap_up(store, "a1", "c1", call_type="crisis")
    wrap_up_since = int(clock.now * 1000)
    clock.advance_ms(42_000)

    ended = await store.end_wrap_up("a1", disposition="at_risk")

    assert (ended.call_id, ended.since_ms, ended.call_type) == ("c1", wrap_up_since, "crisis")
    assert (await store.get_call("c1"))["disposition"] == "at_risk"
    a1 = await store.get_advocate("a1")
    assert (a1.state, a1.call_id) == (S.AVAILABLE, None)


async def test_wrap_up_ends_once_whoever_comes_second_changes_nothing(store, clock):
    await advocate(store, "a1", available=True)
    await in_wrap_up(store, "a1", "c1")
    assert await store.end_wrap_up("a1", disposition="tip") is not None  # the advocate, through the API

    assert await store.end_wrap_up("a1", call_id="c1") is None  # the timer, a moment later
    assert await store.end_wrap_up("a1", disposition="referral") is None  # a double click
    assert (await store.get_call("c1"))["disposition"] == "tip"


async def test_a_timer_armed_for_an_earlier_call_leaves_a_later_wrap_up_alone(store, clock):
    await advocate(store, "a1", available=True)
    await in_wrap_up(store, "a1", "c1")
    await store.end_wrap_up("a1")
    await in_wrap_up(store, "a1", "c2")

    assert await store.end_wrap_up("a1", call_id="c1") is None
    assert (await store.get_advocate("a1")).state is S.WRAP_UP
    assert (await store.end_wrap_up("a1", call_id="c2")).call_id == "c2"


async def test_becoming_available_at_the_end_of_wrap_up_takes_the_next_waiting_call(store, redis_client):
    await advocate(store, "a1", available=True)
    await in_wrap_up(store, "a1", "c1")
    await store.enqueue(WaitingCall("c2", "english", 5, 2_000, "e1"), {}, TTL_S)

    ended = await store.end_wrap_up("a1")

    assert [(o.call_id, o.advocate_id) for o in ended.offers] == [("c2", "a1")]
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1", "c2"})


async def test_wrap_up_may_end_away_or_offline_without_being_offered_calls(store, redis_client):
    await advocate(store, "a1", available=True)
    await in_wrap_up(store, "a1", "c1")
    await store.enqueue(WaitingCall("c2", "english", 5, 2_000, "e1"), {}, TTL_S)

    ended = await store.end_wrap_up("a1", S.AWAY)

    assert ended.offers == () and (await store.get_advocate("a1")).state is S.AWAY
    assert await store.waiting("english") == ["c2"]
    with pytest.raises(ValueError):
        await store.end_wrap_up("a1", S.ON_CALL)
    await assert_routing_invariants(redis_client, TEST_KEYS, {"c1", "c2"})


async def test_ending_wrap_up_of_an_unknown_or_busy_advocate(store):
    with pytest.raises(UnknownAdvocate):
        await store.end_wrap_up("nobody")
    await advocate(store, "a1", available=True)
    assert await store.end_wrap_up("a1", disposition="tip") is None


async def test_a_disposition_never_recreates_an_expired_call_record(store, redis_client):
    await advocate(store, "a1", available=True)
    await in_wrap_up(store, "a1", "c1")
    await redis_client.delete(TEST_KEYS.call("c1"))

    ended = await store.end_wrap_up("a1", disposition="tip")

    assert (ended.call_id, ended.call_type) == ("c1", None)
    assert await redis_client.exists(TEST_KEYS.call("c1")) == 0


# -- waiting calls, as the wallboard reads them -----------------------------------


async def test_waiting_calls_carry_only_the_fields_asked_for(store, redis_client):
    await store.enqueue(WaitingCall("c1", "english", 5, 1_000, "e1"),
                        {"language": "en", "caller_ref": "0123abcd", "relay": "1"}, TTL_S)
    await store.enqueue(WaitingCall("c2", "english", 9, 2_000, "e1"), {"language": "es"}, TTL_S)
    await store.enqueue(WaitingCall("c3", "spanish", 5, 3_000, "e1"), {}, TTL_S)
    await store.enqueue(WaitingCall("gone", "spanish", 5, 4_000, "e1"), {}, TTL_S)
    await redis_client.delete(TEST_KEYS.call("gone"))  # expired: its id lingers in the queue

    calls = await store.waiting_calls(("arrival_ms", "language", "relay"))

    assert calls["english"] == [("c2", {"arrival_ms": "2000", "language": "es"}),  # crisis first, as offered
                                ("c1", {"arrival_ms": "1000", "language": "en", "relay": "1"})]
    assert calls["spanish"] == [("c3", {"arrival_ms": "3000"})]
    assert calls["relay"] == []
    assert "0123abcd" not in repr(calls)


# -- today's counts ----------------------------------------------------------------


def at(text: str, zone: ZoneInfo = NEW_YORK) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def test_the_day_is_the_date_in_the_configured_zone_not_in_utc():
    late_evening = at("2026-11-28T23:30:00")  # already the 29th in UTC
    assert day_of(late_evening, NEW_YORK) == "2026-11-28"
    assert day_of(late_evening, ZoneInfo("UTC")) == "2026-11-29"


def test_service_level_is_the_share_of_answered_calls_within_target():
    assert DayCounts(offered=10, answered=8, answered_within_target=6, abandoned=2).service_level == 0.75
    assert DayCounts(offered=3, abandoned=3).service_level is None  # nothing answered yet: no figure, not 0 %


async def test_counts_add_up_per_queue_and_day_and_expire_in_two_days(redis_client):
    clock = ManualClock(at("2026-11-28T23:59:00"))
    daily = DailyCounts(redis_client, TEST_KEYS, NEW_YORK, clock=clock)
    await daily.add("english", "offered")
    await daily.add("english", "answered", "answered_within_target")
    await daily.add("spanish", "offered")
    day, counts = await daily.read(["english", "spanish", "relay"])
    assert day == "2026-11-28"
    assert counts["english"] == DayCounts(offered=1, answered=1, answered_within_target=1)
    assert counts["spanish"] == DayCounts(offered=1) and counts["relay"] == DayCounts()
    assert DAY_TTL_S - 5 < await redis_client.ttl(TEST_KEYS.day("2026-11-28", "english")) <= DAY_TTL_S

    clock.advance_ms(120_000)  # past midnight: a new day starts from zero
    await daily.add("english", "abandoned")
    day, counts = await daily.read(["english"])
    assert (day, counts["english"]) == ("2026-11-29", DayCounts(abandoned=1))


async def test_engines_counting_at_once_lose_no_increment(redis_url, redis_client):
    clients = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in range(4)]

    async def engine(client: aioredis.Redis) -> None:
        daily = DailyCounts(client, TEST_KEYS, NEW_YORK)
        for _ in range(50):
            await daily.add("english", "offered", "answered")

    try:
        await asyncio.gather(*(engine(client) for client in clients))
    finally:
        for client in clients:
            await client.aclose()
    _, counts = await DailyCounts(redis_client, TEST_KEYS, NEW_YORK).read(["english"])
    assert (counts["english"].offered, counts["english"].answered) == (200, 200)


async def test_the_routing_scripts_count_the_changes_they_make_once(store, redis_client):
    clock = ManualClock(at("2026-11-28T23:59:00"))
    daily = DailyCounts(redis_client, TEST_KEYS, NEW_YORK, clock=clock)
    await advocate(store, "a1", available=True)
    call = WaitingCall("c1", "english", 5, 1_000, "e1")
    await store.enqueue(call, {}, TTL_S, tally=daily.tally("english", "offered"))
    # The same call again (redis-py retrying a late reply) is counted once.
    assert await store.enqueue(call, {}, TTL_S, tally=daily.tally("english", "offered")) == []
    with pytest.raises(Conflict):  # another call with its id: refused, not counted
        await store.enqueue(WaitingCall("c1", "english", 9, 1_000, "e1"), {}, TTL_S,
                            tally=daily.tally("english", "offered"))
    answered = daily.tally("english", "answered", "answered_within_target")
    await store.offer_answered("c1", "a1", waited_ms=1_500, tally=answered)
    await store.offer_answered("c1", "a1", waited_ms=1_500, tally=answered)  # a repeated event
    # The entry queue's counts, whatever queue the script was given the call in.
    await store.enqueue(WaitingCall("c2", "spanish", 5, 2_000, "e1"), {}, TTL_S,
                        tally=daily.tally("english", "offered"))
    await store.enqueue(WaitingCall("c3", "spanish", 5, 3_000, "e1"), {}, TTL_S)  # written back: not counted

    day, counts = await daily.read(["english", "spanish"])
    assert day == "2026-11-28"
    assert counts == {"english": DayCounts(offered=2, answered=1, answered_within_target=1), "spanish": DayCounts()}
    assert DAY_TTL_S - 5 < await redis_client.ttl(TEST_KEYS.day("2026-11-28", "english")) <= DAY_TTL_S
    record = await store.get_call("c1")
    assert (record["answered_by"], record["waited_ms"], record["state"]) == ("a1", "1500", "bridged")


async def test_an_unknown_count_is_refused_before_redis_is_touched(redis_client):
    with pytest.raises(ValueError, match="unknown counts"):
        await DailyCounts(redis_client, TEST_KEYS, NEW_YORK).add("english", "offred")
    with pytest.raises(ValueError, match="unknown counts"):
        DailyCounts(redis_client, TEST_KEYS, NEW_YORK).tally("english", "answerd")
