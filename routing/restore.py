"""RestoreStore: writing back into Redis what it lost, from what the engines know.

Redis may come back from a restart empty (the sandbox runs it without
persistence; production may lose its last writes), or come back from being
unreachable having missed what the engines could not write meanwhile. The
engines hold the truth about calls (their channels are real) and a recent
copy of every advocate's state. These are the Redis operations with which
``ivr.recovery`` and the call actors put routing back together; like
``RoutingStore``, each is one Lua script or one pipelined read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from routing.advocates import AdvocateState
from routing.keys import Keys
from routing.queues import Offer, QueueSpec, WaitingCall, check_metadata
from routing.scripts import script_source
from routing.errors import UnknownAdvocate, redis_errors
from routing.store import _offers


@dataclass(frozen=True)
class AdvocateMark:
    """An advocate's state as an engine last read it."""

    advocate_id: str
    state: AdvocateState
    state_since: int  # epoch ms
    idle_since: int | None  # epoch ms: their place in the available line


class RestoreStore:
    def __init__(self, redis: Redis, queues: Sequence[QueueSpec], keys: Keys,
                 clock: Callable[[], float] = time.time) -> None:
        """`redis` must use decode_responses=True; `clock` returns epoch seconds."""
        self._redis = redis
        self._queues = tuple(q.name for q in queues)
        self._keys = keys
        self._clock = clock
        self._restore_call = redis.register_script(script_source("restore_call"))
        self._restore_advocate = redis.register_script(script_source("restore_advocate"))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- has Redis lost its data? ---------------------------------------------

    async def presence(self) -> tuple[str | None, list[AdvocateMark]]:
        """The epoch token (None: Redis lost its data, or is new) and every
        advocate's state, read in one transaction so that a copy of the
        advocates can never come from a Redis that lost them unnoticed."""
        k = self._keys
        fields = ("state", "state_since", "idle_since")
        with redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(k.epoch())
                pipe.sort(k.advocates(), by="nosort", groups=True,
                          get=["#", *(k.advocate_field_pattern(f) for f in fields)])
                epoch, rows = await pipe.execute()
        marks = [AdvocateMark(advocate_id, AdvocateState(state), int(since or 0), int(idle) if idle else None)
                 for advocate_id, state, since, idle in rows if state]
        return epoch, marks

    async def claim_epoch(self, token: str) -> str:
        """Set the epoch to `token` unless another engine set one first; the epoch now."""
        with redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._keys.epoch(), token, nx=True)
                pipe.get(self._keys.epoch())
                _, epoch = await pipe.execute()
        return epoch

    # -- putting state back ---------------------------------------------------

    async def restore_advocate(self, mark: AdvocateMark) -> list[Offer]:
        """Put an advocate the roster sync just re-created back in `mark.state`
        (available, away or wrap_up). Does nothing to one who is not offline
        or has a call. Becoming available may make offers."""
        if mark.state not in (AdvocateState.AVAILABLE, AdvocateState.AWAY, AdvocateState.WRAP_UP):
            raise ValueError(f"an advocate is not restored as {mark.state}")
        k = self._keys
        with redis_errors():
            reply = await self._restore_advocate(
                keys=[k.advocate(mark.advocate_id)],
                args=[k.prefix, mark.advocate_id, str(mark.state), mark.state_since,
                      "" if mark.idle_since is None else mark.idle_since, self._now_ms()])
        if reply[0] == "skipped":
            if not reply[1]:
                raise UnknownAdvocate(mark.advocate_id)
            return []
        return _offers(reply)

    async def restore_call(self, call: WaitingCall, state: str, advocates: Sequence[str],
                           fields: Mapping[str, str], ttl_s: int) -> list[str]:
        """Record that `call` is `state` (offered, bridged or escalating) with
        `advocates` (one, or the supervisors still ringing). Returns the
        advocates left alone because Redis has them with another call."""
        if state not in ("offered", "bridged", "escalating"):
            raise ValueError(f"a call is not restored as {state!r}")
        if state != "escalating" and len(advocates) != 1:
            raise ValueError(f"an {state} call has one advocate, not {len(advocates)}")
        if call.queue not in self._queues:
            raise ValueError(f"unknown queue {call.queue!r}")
        check_metadata(dict(fields))
        k = self._keys
        args: list[str | int] = [k.prefix, self._now_ms(), call.call_id, state, call.queue, call.priority,
                                 call.arrival_ms, call.score, call.owner, ttl_s, len(advocates), *advocates]
        for field, value in fields.items():
            args += [field, value]
        with redis_errors():
            reply = await self._restore_call(keys=[k.call(call.call_id)], args=args)
        return list(reply[1:])
