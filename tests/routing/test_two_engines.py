"""Two engines on one Redis, under a storm of simultaneous events.

Each simulated engine has what a real one has on the routing side: its own
Redis client, a RoutingStore, and the real OffersListener (pub/sub plus the
sweep after a resubscription). Its calls are reduced to what routing sees of
a call actor: one call's events handled one at a time, in order. Callers
arrive and hang up, advocates answer, miss or end calls and go away and back
through either engine's API, all at once; twice during the storm Redis drops
every pub/sub connection, so offers are lost and re-delivered by the sweeps.

What must hold: an offer reaches only the engine holding its call; an
advocate is never offered a call while holding another; and when the storm
is over every call is in exactly one place (ended, since all are served) and
Redis passes the routing invariants.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from ivr.offers import OffersListener
from ivr.tasks import TaskSet
from routing import AdvocateState, InvalidTransition, Offer, RoutingStore, WaitingCall, hash_token
from routing_support import QUEUES, TEST_KEYS, assert_routing_invariants, until

ADVOCATES = 24
CALLS = 400
S = AdvocateState


@dataclass
class World:
    """What the two engines know together, to check each offer as it arrives."""

    rng: random.Random
    holding: dict[str, str] = field(default_factory=dict)  # advocate -> the call they ring for or talk to
    owner_of: dict[str, str] = field(default_factory=dict)  # call -> engine
    violations: list[str] = field(default_factory=list)
    offers: Counter = field(default_factory=Counter)  # engine -> offers received

    def take(self, engine: str, offer: Offer) -> None:
        self.offers[engine] += 1
        if offer.owner != engine or self.owner_of.get(offer.call_id) != engine:
            self.violations.append(f"offer for {offer.call_id} of {self.owner_of.get(offer.call_id)} "
                                   f"published to {offer.owner}, reached {engine}")
        other = self.holding.get(offer.advocate_id)
        if other is not None and other != offer.call_id:
            self.violations.append(f"{offer.advocate_id} offered {offer.call_id} while holding {other}")
        self.holding[offer.advocate_id] = offer.call_id

    async def guarded(self, what: str, coro) -> None:
        """Run one event; a routing error it meets (a stale offer...) is a violation too."""
        try:
            await coro
        except Exception as exc:
            self.violations.append(f"{what}: {type(exc).__name__}: {exc}")

    def release(self, advocate_id: str, call_id: str) -> None:
        """Called before the script that frees the advocate: once it ran, they
        may be offered again before its reply is read."""
        if self.holding.get(advocate_id) == call_id:
            del self.holding[advocate_id]


class Engine:
    def __init__(self, name: str, client: aioredis.Redis, world: World, tasks: TaskSet) -> None:
        self.name = name
        self.store = RoutingStore(client, QUEUES, TEST_KEYS)
        self.world = world
        self.tasks = tasks
        self.calls: dict[str, str] = {}  # waiting | ringing | connected | ended
        self.advocate: dict[str, str] = {}  # call -> advocate ringing or connected
        self._locks: dict[str, asyncio.Lock] = {}
        self.taken: set[Offer] = set()  # as each call actor keeps its own
        self.listener = OffersListener(self.store, name, self.on_offer)

    def spawn(self, coro, name: str) -> None:
        self.tasks.spawn(self.world.guarded(name, coro), name=name)

    def lock(self, call_id: str) -> asyncio.Lock:
        return self._locks.setdefault(call_id, asyncio.Lock())

    async def arrive(self, call_id: str) -> None:
        rng = self.world.rng
        self.world.owner_of[call_id] = self.name
        self.calls[call_id] = "waiting"
        async with self.lock(call_id):
            self.take_offers(await self.store.enqueue(
                WaitingCall(call_id, rng.choice(["english", "spanish", "relay"]), rng.choice([0, 5, 9]),
                            rng.randint(1, 10**9), self.name), {}, 600))
        if rng.random() < 0.2:
            self.spawn(self.hang_up_later(call_id), f"hangup-{call_id}")

    def take_offers(self, offers: list[Offer]) -> None:
        # As ivr.engine.Engine.take_offers: this engine's offers from a
        # script's reply, before their pub/sub copies.
        for offer in offers:
            if offer.owner == self.name:
                self.spawn(self.offered(offer), f"offer-{offer.call_id}")

    async def on_offer(self, offer: Offer, swept: bool = False) -> None:
        # As the dispatcher does: hand the offer to the call, never block the listener.
        self.spawn(self.offered(offer, swept), f"offer-{offer.call_id}")

    async def offered(self, offer: Offer, swept: bool = False) -> None:
        call_id, advocate_id = offer.call_id, offer.advocate_id
        async with self.lock(call_id):
            state = self.calls.get(call_id)
            if offer in self.taken or state in ("ringing", "connected") and self.advocate[call_id] == advocate_id:
                return  # a copy: pub/sub after the reply, or a sweep
            self.taken.add(offer)
            if swept and not await self.store.offer_current(offer):
                return  # re-delivered by a sweep, settled since
            self.world.take(self.name, offer)
            if state != "waiting":  # the caller left first
                self.world.release(advocate_id, call_id)
                self.take_offers(await self.store.offer_cancelled(call_id, advocate_id))
                return
            self.calls[call_id], self.advocate[call_id] = "ringing", advocate_id
        await asyncio.sleep(self.world.rng.random() * 0.01)  # the advocate's phone rings
        fate = self.world.rng.random()
        async with self.lock(call_id):
            if self.calls[call_id] != "ringing" or self.advocate[call_id] != advocate_id:
                return
            if fate < 0.65:
                await self.store.offer_answered(call_id, advocate_id, waited_ms=0)
                self.calls[call_id] = "connected"
                self.spawn(self.talk(call_id, advocate_id), f"talk-{call_id}")
            elif fate < 0.85:  # no answer: the advocate goes away, the call is first in line again
                self.calls[call_id] = "waiting"
                self.world.release(advocate_id, call_id)
                self.take_offers(await self.store.offer_failed(call_id, advocate_id))
                self.spawn(back_later(self.world, advocate_id, self.store), f"back-{advocate_id}")
            else:  # the caller hangs up while it rings: the advocate is available at once
                self.calls[call_id] = "ended"
                self.world.release(advocate_id, call_id)
                self.take_offers(await self.store.offer_cancelled(call_id, advocate_id))

    async def talk(self, call_id: str, advocate_id: str) -> None:
        await asyncio.sleep(self.world.rng.random() * 0.02)
        async with self.lock(call_id):
            self.calls[call_id] = "ended"
            self.world.release(advocate_id, call_id)
            await self.store.call_ended(call_id, advocate_id)
        await back_later(self.world, advocate_id, self.store)  # the end of wrap-up

    async def hang_up_later(self, call_id: str) -> None:
        await asyncio.sleep(self.world.rng.random() * 0.05)
        async with self.lock(call_id):
            if self.calls[call_id] == "waiting":
                self.calls[call_id] = "ended"
                # False: an offer is on its way; offered() releases the advocate.
                await self.store.abandon(call_id)


async def back_later(world: World, advocate_id: str, store: RoutingStore) -> None:
    """The advocate makes themselves available again, through whichever engine."""
    await asyncio.sleep(world.rng.random() * 0.02)
    try:
        await store.set_state(advocate_id, S.AVAILABLE)
    except InvalidTransition:
        pass  # ringing or on a call again already


async def test_two_engines_under_a_storm_of_events_never_double_offer_lose_or_duplicate_a_call(
        redis_url: str, redis_client: aioredis.Redis):
    world = World(random.Random(11))
    # Pools like the engine's (ivr.app): a burst waits for a connection rather than failing.
    clients = [aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
        redis_url, decode_responses=True, max_connections=50, timeout=5)) for _ in range(2)]
    tasks = TaskSet("storm")
    engines = [Engine(f"engine-{n}", client, world, tasks) for n, client in enumerate(clients)]
    try:
        for n in range(ADVOCATES):
            skills = [frozenset({"en"}), frozenset({"en", "es"}), frozenset({"en", "relay"})][n % 3]
            await engines[0].store.upsert_advocate(f"a{n}", f"A{n}", f"PJSIP/{n}@phones", skills,
                                                   frozenset({"advocate"}), hash_token(f"t{n}"))
        for engine in engines:
            tasks.spawn(engine.listener.run(), name=f"listener-{engine.name}")
            await asyncio.wait_for(engine.listener.subscribed.wait(), 5)

        # The storm: arrivals on both engines, logins and toggles through both
        # APIs, and the pub/sub connections dropped twice.
        events = [engines[n % 2].arrive(f"c{n}") for n in range(CALLS)]
        events += [back_later(world, f"a{n}", engines[n % 2].store) for n in range(ADVOCATES)]
        events += [away_and_back(world, f"a{world.rng.randrange(ADVOCATES)}", engines[n % 2].store)
                   for n in range(60)]
        world.rng.shuffle(events)
        await asyncio.gather(*(staggered(world, event) for event in events),
                             *(drop_pubsub(redis_client, at_s) for at_s in (0.3, 0.7)))

        # After the storm every advocate is brought back until all calls are served.
        async def all_served() -> bool:
            assert world.violations == []
            for n in range(ADVOCATES):
                await back_later(world, f"a{n}", engines[n % 2].store)
            return all(state == "ended" for engine in engines for state in engine.calls.values())
        await until(all_served, 30, "every call served or abandoned")
        await until(lambda: quiet(engines[0].store), 10, "no advocate ringing or on a call")

        assert world.violations == []
        assert world.offers["engine-0"] > 0 and world.offers["engine-1"] > 0
        await assert_routing_invariants(redis_client, TEST_KEYS, set(world.owner_of))
        for call_id in world.owner_of:
            assert (await redis_client.hget(TEST_KEYS.call(call_id), "state")) == "ended", call_id
        for queue in QUEUES:
            assert await redis_client.zcard(TEST_KEYS.waiting(queue.name)) == 0
    finally:
        await tasks.close()
        for client in clients:
            await client.aclose()


async def away_and_back(world: World, advocate_id: str, store: RoutingStore) -> None:
    try:
        await store.set_state(advocate_id, S.AWAY)
    except InvalidTransition:
        return  # ringing or on a call: the API refuses
    await back_later(world, advocate_id, store)


async def drop_pubsub(client: aioredis.Redis, at_s: float) -> None:
    await asyncio.sleep(at_s)
    await client.client_kill_filter(_type="pubsub")


async def staggered(world: World, event) -> None:
    await asyncio.sleep(world.rng.random())
    await event


async def quiet(store: RoutingStore) -> bool:
    return all(a.state not in (S.RINGING, S.ON_CALL) for a in await store.list_advocates())
