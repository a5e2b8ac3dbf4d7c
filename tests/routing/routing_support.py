"""Shared helpers of the routing tests (a unique module name, so it cannot
collide with other test folders' helpers on sys.path)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from routing import AdvocateState, Keys, QueueSpec, RoutingStore, WaitingCall

QUEUES = (
    QueueSpec("english", frozenset({"en"})),
    QueueSpec("spanish", frozenset({"es"})),
    QueueSpec("relay", frozenset({"en", "relay"})),
)
TEST_KEYS = Keys(prefix="hl:test:")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ManualClock:
    """Epoch seconds that only move when a test says so."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: int) -> None:
        self.now += ms / 1000


async def drive_to(store: RoutingStore, clock: ManualClock, advocate_id: str, state: AdvocateState) -> None:
    """Bring an offline advocate serving english to `state`. For ringing,
    on_call and wrap_up they must be the only available english advocate:
    they take a call of their own, "before-<advocate>"."""
    if state is AdvocateState.OFFLINE:
        return
    if state is AdvocateState.AWAY:
        await store.set_state(advocate_id, AdvocateState.AWAY)
        return
    await store.set_state(advocate_id, AdvocateState.AVAILABLE)
    if state is AdvocateState.AVAILABLE:
        return
    call_id = f"before-{advocate_id}"
    clock.advance_ms(1_000)
    offers = await store.enqueue(WaitingCall(call_id, "english", 5, int(clock.now * 1000), "e1"), {}, 3600)
    assert [(o.call_id, o.advocate_id) for o in offers] == [(call_id, advocate_id)]
    if state is AdvocateState.RINGING:
        return
    await store.offer_answered(call_id, advocate_id, waited_ms=0)
    if state is AdvocateState.WRAP_UP:
        await store.call_ended(call_id, advocate_id)


async def assert_routing_invariants(
    client: aioredis.Redis, keys: Keys, call_ids: set[str]
) -> None:
    """Check, from the raw Redis state, what must hold between any two
    routing operations. `call_ids`: every call the test ever enqueued."""
    advocate_ids = sorted(await client.smembers(keys.advocates()))
    advocates = {a: await client.hgetall(keys.advocate(a)) for a in advocate_ids}
    queue_names = [q.name for q in QUEUES]
    waiting = {q: await client.zrange(keys.waiting(q), 0, -1) for q in queue_names}
    available = {
        q: dict(await client.zrange(keys.available(q), 0, -1, withscores=True)) for q in queue_names
    }
    calls = {c: await client.hgetall(keys.call(c)) for c in call_ids}
    ringing = set(await client.zrange(keys.ringing(), 0, -1))

    for q in queue_names:
        assert not (waiting[q] and available[q]), f"queue {q} has a waiting call and a free advocate"
        assert len(waiting[q]) == len(set(waiting[q]))

    for advocate_id, adv in advocates.items():
        serves = set(adv["queues"].split(",")) - {""}
        in_sets = {q for q in queue_names if advocate_id in available[q]}
        if adv["state"] == "available":
            assert in_sets == serves, advocate_id
            # Their place in every line is the moment they became idle.
            assert {available[q][advocate_id] for q in in_sets} <= {float(adv["idle_since"])}
        else:
            assert in_sets == set(), f"{advocate_id} is {adv['state']} but in available {in_sets}"
        if adv["state"] in ("ringing", "on_call"):
            call = calls[adv["call"]]
            expected = "offered" if adv["state"] == "ringing" else "bridged"
            assert (call["state"], call["advocate"]) == (expected, advocate_id)

    holders: dict[str, str] = {}
    for call_id, call in calls.items():
        assert call, f"call {call_id} was lost"
        state = call["state"]
        assert state in ("waiting", "offered", "bridged", "ended")
        where = [q for q in queue_names if call_id in waiting[q]]
        assert where == ([call["queue"]] if state == "waiting" else []), call_id
        assert (call_id in ringing) == (state == "offered"), call_id
        if state in ("offered", "bridged"):
            advocate_id = call["advocate"]
            assert advocate_id not in holders, f"{advocate_id} holds {holders.get(advocate_id)} and {call_id}"
            holders[advocate_id] = call_id
            adv = advocates[advocate_id]
            expected = "ringing" if state == "offered" else "on_call"
            assert (adv["state"], adv["call"]) == (expected, call_id)


async def until(probe: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Wait for `probe` to hold, polling; TimeoutError naming `what` after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)
