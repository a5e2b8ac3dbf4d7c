"""Two engines (two RoutingStores, two Redis clients) racing on one Redis."""

from __future__ import annotations

import asyncio
import functools
import random
from collections import Counter

import redis.asyncio as aioredis

from routing import AdvocateState, Offer, RoutingStore, StaleOffer, WaitingCall, hash_token
from routing_support import QUEUES, TEST_KEYS, ManualClock, assert_routing_invariants

ADVOCATES = 20
CALLS = 40


async def test_two_engines_never_double_offer(redis_url, redis_client):
    rng = random.Random(7)
    clock = ManualClock()
    clients = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in range(2)]
    engines = [RoutingStore(c, QUEUES, TEST_KEYS, clock=clock) for c in clients]
    call_ids: set[str] = set()
    try:
        for n in range(ADVOCATES):
            skills = frozenset({"en", "es"}) if n % 2 else frozenset({"en"})
            await engines[0].upsert_advocate(f"a{n}", f"A{n}", f"PJSIP/{n}@phones", skills,
                                             frozenset({"advocate"}), hash_token(f"t{n}"))

        # Round 1: advocates log in while calls arrive, spread over both engines.
        ops = [engines[n % 2].set_state(f"a{n}", AdvocateState.AVAILABLE) for n in range(ADVOCATES)]
        for n in range(CALLS):
            owner = n % 2
            call_ids.add(f"c{n}")
            ops.append(engines[owner].enqueue(
                WaitingCall(f"c{n}", rng.choice(["english", "spanish"]), rng.randint(0, 9),
                            1_000 + n, f"engine-{owner}"), {}, 600))
        rng.shuffle(ops)
        first = [o for offers in await asyncio.gather(*ops) for o in offers]
        assert len(first) >= ADVOCATES // 2
        assert_distinct(first)
        await assert_routing_invariants(redis_client, TEST_KEYS, call_ids)

        # Round 2: each offer's outcome is reported by BOTH engines at once (a
        # duplicated event), while more calls arrive. Exactly one report of a
        # failure or cancel wins; the loser sees StaleOffer.
        outcome = {o.call_id: ("offer_answered", "offer_failed", "offer_cancelled")[i % 3]
                   for i, o in enumerate(first)}
        ops, kinds = [], []
        for o in first:
            for engine in engines:
                report = getattr(engine, outcome[o.call_id])
                if outcome[o.call_id] == "offer_answered":
                    report = functools.partial(report, waited_ms=0)
                ops.append(report(o.call_id, o.advocate_id))
                kinds.append(outcome[o.call_id])
        for n in range(CALLS, CALLS + 10):
            call_ids.add(f"c{n}")
            ops.append(engines[n % 2].enqueue(
                WaitingCall(f"c{n}", "english", 5, 1_000 + n, f"engine-{n % 2}"), {}, 600))
            kinds.append("enqueue")
        results = await asyncio.gather(*ops, return_exceptions=True)

        errors = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(e, StaleOffer) for e in errors), errors
        stale_by_kind = Counter(k for k, r in zip(kinds, results) if isinstance(r, StaleOffer))
        assert stale_by_kind["offer_answered"] == 0  # repeating an answer is harmless
        for kind in ("offer_failed", "offer_cancelled"):
            assert stale_by_kind[kind] == sum(1 for v in outcome.values() if v == kind)

        second = [o for r in results if isinstance(r, list) for o in r]
        assert_distinct(second)
        answered_or_away = {o.advocate_id for o in first if outcome[o.call_id] != "offer_cancelled"}
        assert not answered_or_away & {o.advocate_id for o in second}
        await assert_routing_invariants(redis_client, TEST_KEYS, call_ids)
    finally:
        for client in clients:
            await client.aclose()


def assert_distinct(offers: list[Offer]) -> None:
    """Within one burst where nobody is released twice, an advocate gets at
    most one offer and a call is offered at most once."""
    advocates = Counter(o.advocate_id for o in offers)
    calls = Counter(o.call_id for o in offers)
    assert max(advocates.values(), default=0) == 1, advocates
    assert max(calls.values(), default=0) == 1, calls
