"""RoutingStore: the Redis edge of routing.

Every method validates its input in Python, runs one Lua script (or one
pipelined read) and turns the reply into typed values or routing errors.
The decisions themselves live in the scripts so that two engine processes
sharing the Redis can never both act on the same advocate or call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from routing.advocates import (
    API_TARGETS,
    Advocate,
    AdvocateState,
    WrapUpEnded,
    advocate_from_hash,
    allowed_sources,
)
from routing.daily import Tally, tally_arg
from routing.errors import (
    Conflict,
    InvalidTransition,
    RoutingUnavailable,
    StaleOffer,
    UnknownAdvocate,
    redis_errors,
)
from routing.keys import Keys
from routing.queues import (
    MAX_PRIORITY,
    Offer,
    QueueSpec,
    WaitingCall,
    check_metadata,
    offer_from_json,
    priority_band,
    queues_for,
)
from routing.scripts import Scripts
from routing.snapshot import (
    RoutingSnapshot,
    count_states,
    count_states_by_skill,
    queue_depth,
)

# How long subscribe_offers waits for Redis to confirm the subscription.
SUBSCRIBE_TIMEOUT_S = 5.0
# Times the enqueue is sent again after its reply was late (the client's
# socket timeout, 1 s in the engine): a caller waits about three seconds on a
# stalled Redis before the fallback, as on every command before.
ENQUEUE_LATE_REPLY_RETRIES = 2


def _csv(values: Sequence[str] | frozenset[str], what: str) -> str:
    for value in values:
        if not value or "," in value:
            raise ValueError(f"{what} must be non-empty and contain no comma: {value!r}")
    return ",".join(sorted(values) if isinstance(values, (set, frozenset)) else values)


def _offers(reply: list[str]) -> list[Offer]:
    """Offers from a {'ok', json...} script reply."""
    return [offer_from_json(payload) for payload in reply[1:]]


class RoutingStore:
    def __init__(
        self,
        redis: Redis,
        queues: Sequence[QueueSpec],
        keys: Keys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`redis` must use decode_responses=True. `clock` returns epoch
        seconds; every script gets its time from here, not from Redis, so
        tests can drive it."""
        self._redis = redis
        self._queues = tuple(queues)
        self._queue_names = frozenset(q.name for q in self._queues)
        self._keys = keys
        self._clock = clock
        self._scripts = Scripts.register(redis)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def queues(self) -> tuple[QueueSpec, ...]:
        return self._queues

    # -- advocates ---------------------------------------------------------

    async def upsert_advocate(
        self,
        advocate_id: str,
        name: str,
        endpoint: str,
        skills: frozenset[str],
        roles: frozenset[str],
        token_hash: str,
    ) -> list[Offer]:
        """Create an advocate (offline) or update their profile, keeping their
        state. Their queues are derived here from `skills` and the configured
        queues. May return offers if an available advocate gained a queue."""
        if not advocate_id or not token_hash:
            raise ValueError("advocate id and token hash are required")
        k = self._keys
        with redis_errors():
            reply = await self._scripts.upsert_advocate(
                keys=[k.advocate(advocate_id), k.advocates(), k.tokens()],
                args=[
                    k.prefix, advocate_id, name, endpoint,
                    _csv(frozenset(skills), "skill"), _csv(frozenset(roles), "role"),
                    _csv(queues_for(skills, self._queues), "queue"),
                    token_hash, self._now_ms(),
                ],
            )
        if reply[0] == "token_in_use":
            raise Conflict(f"token hash of advocate {advocate_id!r} belongs to another advocate")
        return _offers(reply)

    async def remove_advocate(self, advocate_id: str) -> bool:
        """Unregister; False if unknown. InvalidTransition while ringing/on_call."""
        k = self._keys
        with redis_errors():
            reply = await self._scripts.remove_advocate(
                keys=[k.advocate(advocate_id), k.advocates(), k.tokens()],
                args=[k.prefix, advocate_id],
            )
        if reply[0] == "invalid":
            raise InvalidTransition(advocate_id, AdvocateState(reply[1]), AdvocateState.OFFLINE)
        return reply[0] == "ok"

    async def get_advocate(self, advocate_id: str) -> Advocate | None:
        with redis_errors():
            fields = await self._redis.hgetall(self._keys.advocate(advocate_id))
        return advocate_from_hash(advocate_id, fields) if fields else None

    async def list_advocates(self) -> list[Advocate]:
        with redis_errors():
            ids = sorted(await self._redis.smembers(self._keys.advocates()))
            async with self._redis.pipeline(transaction=False) as pipe:
                for advocate_id in ids:
                    pipe.hgetall(self._keys.advocate(advocate_id))
                hashes = await pipe.execute()
        return [advocate_from_hash(i, h) for i, h in zip(ids, hashes) if h]

    async def advocate_for_token_hash(self, token_hash: str) -> str | None:
        with redis_errors():
            return await self._redis.hget(self._keys.tokens(), token_hash)

    async def set_state(self, advocate_id: str, state: AdvocateState) -> list[Offer]:
        """API-driven move (available, away, offline). Entering available may
        immediately produce offers, returned here and published."""
        state = AdvocateState(state)
        with redis_errors():
            reply = await self._scripts.set_state(
                keys=[self._keys.advocate(advocate_id)],
                args=[
                    self._keys.prefix, advocate_id, state,
                    ",".join(sorted(allowed_sources(state))), self._now_ms(),
                ],
            )
        if reply[0] == "unknown_advocate":
            raise UnknownAdvocate(advocate_id)
        if reply[0] == "invalid":
            raise InvalidTransition(advocate_id, AdvocateState(reply[1]), state)
        return _offers(reply)

    async def end_wrap_up(self, advocate_id: str, state: AdvocateState = AdvocateState.AVAILABLE, *,
                          disposition: str | None = None, call_id: str | None = None) -> WrapUpEnded | None:
        """End the advocate's wrap-up, moving them to `state` and writing
        `disposition` on the call it was for. None if they are not in
        wrap-up (already ended by the API or a timer), or, with `call_id`,
        if their wrap-up is for another call. UnknownAdvocate."""
        state = AdvocateState(state)
        if state not in API_TARGETS:
            raise ValueError(f"wrap-up ends in one of {sorted(API_TARGETS)}, not {state}")
        with redis_errors():
            reply = await self._scripts.end_wrap_up(
                keys=[self._keys.advocate(advocate_id)],
                args=[self._keys.prefix, advocate_id, state, disposition or "", call_id or "", self._now_ms()],
            )
        if reply[0] == "unknown_advocate":
            raise UnknownAdvocate(advocate_id)
        if reply[0] != "ok":
            return None
        return WrapUpEnded(call_id=reply[1] or None, since_ms=int(reply[2]), call_type=reply[3] or None,
                           offers=tuple(offer_from_json(payload) for payload in reply[4:]))

    # -- calls -------------------------------------------------------------

    async def enqueue(
        self, call: WaitingCall, fields: Mapping[str, str], ttl_s: int, tally: Tally | None = None
    ) -> list[Offer]:
        """Queue a call (with free metadata `fields`); the call hash expires
        `ttl_s` after its last routing change. Conflict if the id is known
        for another call; the same call again (queue, priority, arrival and
        owner alike: a retry after a late reply) changes nothing and returns
        no offer, those of the first run having been published.
        A non-empty `sip_call_id` field makes the call findable by that
        Call-ID (call_for_sip_id) for `ttl_s`, in the same step; so are
        today's counts in `tally` (not when the call is known already)."""
        if call.queue not in self._queue_names:
            raise ValueError(f"unknown queue {call.queue!r}")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        check_metadata(dict(fields))
        k = self._keys
        args: list[str | int] = [
            k.prefix, self._now_ms(), call.call_id, call.queue, call.priority,
            call.arrival_ms, call.score, call.owner, ttl_s, tally_arg(tally),
        ]
        for field, value in fields.items():
            args += [field, value]
        keys = [k.call(call.call_id), k.waiting(call.queue)]
        if fields.get("sip_call_id"):
            keys.append(k.sip_call(fields["sip_call_id"]))  # findable by it as soon as it waits
        with redis_errors():
            # The one script sent again after a late reply (the client sends
            # none again: routing.connection.retry_lost): a caller waits on
            # it, and its repeat changes nothing.
            for attempt in range(1 + ENQUEUE_LATE_REPLY_RETRIES):
                try:
                    reply = await self._scripts.enqueue(keys=keys, args=args)
                    break
                except redis_exceptions.TimeoutError:
                    if attempt == ENQUEUE_LATE_REPLY_RETRIES:
                        raise
        if reply[0] == "duplicate_call":
            raise Conflict(f"call {call.call_id!r} is already known")
        return _offers(reply)

    async def _offer_event(self, script, call_id: str, advocate_id: str, *more: str | int) -> list[str]:
        k = self._keys
        with redis_errors():
            reply = await script(
                keys=[k.advocate(advocate_id), k.call(call_id), k.ringing()],
                args=[k.prefix, call_id, advocate_id, self._now_ms(), *more],
            )
        if reply[0] == "stale":
            raise StaleOffer(call_id, advocate_id)
        return reply

    async def offer_answered(self, call_id: str, advocate_id: str, *, waited_ms: int,
                             tally: Tally | None = None) -> None:
        """The advocate answered: ringing -> on_call, offered -> bridged; the
        call's record gets answered_by and waited_ms, today's counts `tally`.
        StaleOffer if that offer is no longer ringing (e.g. cancelled)."""
        await self._offer_event(self._scripts.offer_answered, call_id, advocate_id, waited_ms, tally_arg(tally))

    async def offer_failed(self, call_id: str, advocate_id: str) -> list[Offer]:
        """No answer: the advocate goes away, the call is first in line again."""
        return _offers(await self._offer_event(self._scripts.offer_failed, call_id, advocate_id))

    async def offer_cancelled(self, call_id: str, advocate_id: str) -> list[Offer]:
        """The caller hung up while ringing: the call ends, the advocate is
        available again with their previous place in line."""
        return _offers(
            await self._offer_event(self._scripts.offer_cancelled, call_id, advocate_id)
        )

    async def call_ended(self, call_id: str, advocate_id: str) -> None:
        """A bridged call is over: the advocate enters wrap_up."""
        k = self._keys
        with redis_errors():
            reply = await self._scripts.call_ended(
                keys=[k.advocate(advocate_id), k.call(call_id)],
                args=[k.prefix, call_id, advocate_id, self._now_ms()],
            )
        if reply[0] == "stale":
            raise StaleOffer(call_id, advocate_id)

    async def move_queue(self, call_id: str, from_queue: str, to_queue: str) -> list[Offer] | None:
        """Widen a waiting call to `to_queue`, keeping its place; None if it
        was no longer waiting in `from_queue` (offered meanwhile, say)."""
        if to_queue not in self._queue_names:
            raise ValueError(f"unknown queue {to_queue!r}")
        with redis_errors():
            try:
                reply = await self._scripts.move_queue(
                    keys=[self._keys.call(call_id)],
                    args=[self._keys.prefix, self._now_ms(), call_id, from_queue, to_queue])
            except redis_exceptions.TimeoutError:
                # A late reply: the script may have run, and is not sent again
                # (a repeat would find the call moved: "not waiting"). Its
                # record tells. Taken for not moved, a call that was would
                # widen from the wrong queue next, refused each time, and its
                # maximum wait, behind that step, would never come.
                if await self._redis.hget(self._keys.call(call_id), "queue") == to_queue:
                    return []  # moved; an offer it made went out on pub/sub
                raise
        if reply[0] == "not_waiting":
            return None
        return _offers(reply)

    async def escalate(self, call_id: str) -> list[tuple[str, str]] | None:
        """Take a waiting crisis call out of its queue and claim the on-call
        supervisors for it: [(advocate id, endpoint)], possibly empty. None if
        the call was no longer waiting (offered meanwhile)."""
        with redis_errors():
            reply = await self._scripts.escalate(
                keys=[self._keys.call(call_id)], args=[self._keys.prefix, self._now_ms(), call_id])
        if reply[0] == "not_waiting":
            return None
        return list(zip(reply[1::2], reply[2::2]))

    async def escalation_settled(self, call_id: str, answered_by: str | None,
                                 rung: Sequence[str]) -> list[Offer]:
        """The escalation is over: `answered_by` takes the call (StaleOffer if
        too late), every other supervisor in `rung` returns to their state."""
        with redis_errors():
            reply = await self._scripts.escalation_settled(
                keys=[self._keys.call(call_id)],
                args=[self._keys.prefix, self._now_ms(), call_id, answered_by or "", *rung])
        if reply[0] == "stale":
            raise StaleOffer(call_id, answered_by or "")
        return _offers(reply)

    async def position(self, call_id: str, queue: str) -> int | None:
        """1 for the next call to be offered in `queue`; None if not waiting there."""
        with redis_errors():
            rank = await self._redis.zrank(self._keys.waiting(queue), call_id)
        return None if rank is None else rank + 1

    async def recent_answers(self, queue: str) -> list[int]:
        """Epoch ms of the queue's latest answers, newest first."""
        with redis_errors():
            return [int(t) for t in await self._redis.lrange(self._keys.answered(queue), 0, -1)]

    async def adopt_call(self, call_id: str, owner: str) -> dict[str, str] | None:
        """Make `owner` the engine holding the call; its record as of then, or None if unknown."""
        with redis_errors():
            reply = await self._scripts.adopt_call(keys=[self._keys.call(call_id)],
                                                   args=[self._keys.prefix, owner])
        return dict(zip(reply[::2], reply[1::2])) if reply else None

    async def heartbeat(self, owner: str, ttl_s: int) -> None:
        with redis_errors():
            await self._redis.set(self._keys.engine(owner), self._now_ms(), ex=ttl_s)

    async def alive(self, owners: Sequence[str]) -> set[str]:
        """Which of `owners` have a live heartbeat."""
        owners = list(dict.fromkeys(owners))
        if not owners:
            return set()
        with redis_errors():
            beats = await self._redis.mget([self._keys.engine(o) for o in owners])
        return {o for o, beat in zip(owners, beats) if beat is not None}

    async def live_calls(self) -> dict[str, dict[str, str]]:
        """Every call some engine should be holding: waiting in a queue,
        ringing an advocate, or on a call with one, with its record. Read
        from the queues, the ringing set and the advocates (no KEYS scan)."""
        k = self._keys
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for queue in self._queue_names:
                    pipe.zrange(k.waiting(queue), 0, -1)
                pipe.zrange(k.ringing(), 0, -1)
                ids = [i for reply in await pipe.execute() for i in reply]
            for advocate in await self.list_advocates():
                if advocate.call_id and advocate.state in (AdvocateState.ON_CALL, AdvocateState.RINGING):
                    ids.append(advocate.call_id)
            ids = list(dict.fromkeys(ids))
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_id in ids:
                    pipe.hgetall(k.call(call_id))
                records = await pipe.execute()
        return {i: r for i, r in zip(ids, records) if r}

    async def abandon(self, call_id: str) -> bool:
        """The caller hung up while waiting; False if the call was not waiting."""
        with redis_errors():
            removed = await self._scripts.abandon(
                keys=[self._keys.call(call_id)], args=[self._keys.prefix, call_id]
            )
        return removed == 1

    async def update_call(self, call_id: str, fields: Mapping[str, str]) -> bool:
        """Add metadata to a known call; False if it is unknown or expired."""
        check_metadata(dict(fields))
        args: list[str] = [self._keys.prefix]
        for field, value in fields.items():
            args += [field, value]
        with redis_errors():
            updated = await self._scripts.update_call(keys=[self._keys.call(call_id)], args=args)
        return updated == 1

    async def get_call(self, call_id: str) -> dict[str, str] | None:
        with redis_errors():
            fields = await self._redis.hgetall(self._keys.call(call_id))
        return fields or None

    async def index_sip_call_id(self, call_id: str, sip_call_id: str, ttl_s: int) -> None:
        """Make the call findable by its SIP Call-ID (a random token, not the caller)."""
        with redis_errors():
            await self._redis.set(self._keys.sip_call(sip_call_id), call_id, ex=ttl_s)

    async def call_for_sip_id(self, sip_call_id: str) -> str | None:
        with redis_errors():
            return await self._redis.get(self._keys.sip_call(sip_call_id))

    async def waiting(self, queue: str) -> list[str]:
        """Ids of the calls waiting in `queue`, next to be offered first."""
        with redis_errors():
            return await self._redis.zrange(self._keys.waiting(queue), 0, -1)

    async def waiting_calls(self, fields: Sequence[str]) -> dict[str, list[tuple[str, dict[str, str]]]]:
        """Every queue's waiting calls, next to be offered first, each with
        the call-hash `fields` asked for and no other (the wallboard must
        never read the caller reference). Two pipelined round trips."""
        k = self._keys
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for queue in self._queues:
                    pipe.zrange(k.waiting(queue.name), 0, -1)
                ids = await pipe.execute()
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_ids in ids:
                    for call_id in call_ids:
                        pipe.hmget(k.call(call_id), list(fields))
                values = iter(await pipe.execute())
        calls: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for queue, call_ids in zip(self._queues, ids):
            rows = [(call_id, dict(zip(fields, next(values)))) for call_id in call_ids]
            # An expired call hash is gone; the matcher drops its id later.
            calls[queue.name] = [(call_id, {f: v for f, v in row.items() if v is not None})
                                 for call_id, row in rows if any(v is not None for v in row.values())]
        return calls

    async def offer_current(self, offer: Offer) -> bool:
        """Whether Redis still has this very offer ringing: this call, offered
        to this advocate at this time. An offer re-delivered by the sweep after
        a resubscription may have been settled since it was read, and the same
        advocate offered the same call again."""
        with redis_errors():
            state, advocate, offered_ms = await self._redis.hmget(
                self._keys.call(offer.call_id), ["state", "advocate", "offered_ms"])
        return state == "offered" and advocate == offer.advocate_id and int(offered_ms or 0) == offer.offered_ms

    async def stale_offers(self, older_than_s: float) -> list[Offer]:
        """Offers still ringing after `older_than_s`. Pub/sub delivers at most
        once: an engine that was disconnected when its offer was published
        never rings the advocate, so it sweeps these and reports them failed."""
        cutoff = self._now_ms() - int(older_than_s * 1000)
        k = self._keys
        with redis_errors():
            call_ids = await self._redis.zrangebyscore(k.ringing(), "-inf", cutoff)
            # The offer is read from the call's hash, in one HMGET: between
            # these reads the ringing offer may be settled and the call offered
            # again, and an advocate from the new offer stamped with the time
            # of the old one would pass for another offer than the one ringing.
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_id in call_ids:
                    pipe.hmget(k.call(call_id), ["state", "advocate", "queue", "owner", "offered_ms"])
                calls = await pipe.execute()
            async with self._redis.pipeline(transaction=False) as pipe:
                for _, advocate_id, _, _, _ in calls:
                    pipe.hget(k.advocate(advocate_id or ""), "endpoint")
                endpoints = await pipe.execute()
        return [
            Offer(call_id, advocate_id, endpoint or "", queue, owner, int(offered_ms or 0))
            for call_id, (state, advocate_id, queue, owner, offered_ms), endpoint
            in zip(call_ids, calls, endpoints)
            if state == "offered"
        ]

    # -- observation ---------------------------------------------------------

    async def snapshot(self) -> RoutingSnapshot:
        """Queue depths, oldest waiting arrival and advocate counts by state
        and by skill, read in one pipelined round trip."""
        k = self._keys
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for queue in self._queues:
                    pipe.zcard(k.waiting(queue.name))
                    pipe.zcard(k.available(queue.name))
                    for priority in range(MAX_PRIORITY + 1):
                        low, high = priority_band(priority)
                        pipe.zrangebyscore(
                            k.waiting(queue.name), low, high, start=0, num=1, withscores=True
                        )
                # SORT ... GET reads every advocate's hash fields in one command, without
                # KEYS; (None, None) for an id whose hash is gone.
                pipe.sort(k.advocates(), by="nosort", groups=True,
                          get=[k.advocate_state_pattern(), k.advocate_skills_pattern()])
                replies = await pipe.execute()
        per_queue = 2 + MAX_PRIORITY + 1
        depths = {
            queue.name: queue_depth(
                replies[i * per_queue],
                replies[i * per_queue + 1],
                replies[i * per_queue + 2 : (i + 1) * per_queue],
            )
            for i, queue in enumerate(self._queues)
        }
        advocates = replies[-1]
        return RoutingSnapshot(
            queues=depths,
            advocates=count_states(state for state, _ in advocates),
            advocates_by_skill=count_states_by_skill(advocates),
        )

    # -- offers for one engine -------------------------------------------------

    @asynccontextmanager
    async def subscribe_offers(self, owner: str) -> AsyncIterator[AsyncIterator[Offer]]:
        """Subscribe to the offers for engine `owner`.

        The subscription is confirmed by Redis before the block is entered,
        so calls enqueued inside it cannot have their offers published to
        nobody. Yields an async iterator of Offers.
        """
        pubsub = self._redis.pubsub()
        try:
            with redis_errors():
                await pubsub.subscribe(self._keys.offers(owner))
                await self._confirmed(pubsub)
            yield self._receive(pubsub)
        finally:
            with redis_errors():
                await pubsub.aclose()

    async def offers(self, owner: str) -> AsyncIterator[Offer]:
        """Offers for `owner`. The subscription starts at the first
        iteration; use subscribe_offers to subscribe before enqueueing."""
        async with self.subscribe_offers(owner) as offers:
            async for offer in offers:
                yield offer

    @staticmethod
    async def _confirmed(pubsub: PubSub) -> None:
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message and message["type"] == "subscribe":
                        return
        except TimeoutError as exc:
            raise RoutingUnavailable("Redis did not confirm the offers subscription") from exc

    @staticmethod
    async def _receive(pubsub: PubSub) -> AsyncIterator[Offer]:
        while True:
            with redis_errors():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message and message["type"] == "message":
                yield offer_from_json(message["data"])
