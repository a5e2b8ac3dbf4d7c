"""Today's calls per queue, shared by every engine on the Redis.

Supervisors read "today" on the wallboard: offered, answered, abandoned and
the service level since midnight. Each engine counts only its own calls, so
the counts live in Redis, one hash per queue and day, and every engine adds
to the same hash. The day is the calendar date in one configured time zone
(not each engine's local time), so two engines never disagree on which day
a call belongs to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from routing.errors import redis_errors
from routing.keys import Keys

# Counted at the same points as the hotline_calls_* metrics (ivr/call.py).
COUNTS = ("offered", "answered", "answered_within_target", "abandoned")
# Long enough to read yesterday's hash after midnight, short enough that
# nothing about past days piles up in Redis.
DAY_TTL_S = 2 * 86400


def day_of(epoch_s: float, zone: ZoneInfo) -> str:
    """The calendar date (YYYY-MM-DD) of an instant in `zone`."""
    return datetime.fromtimestamp(epoch_s, zone).date().isoformat()


@dataclass(frozen=True)
class DayCounts:
    offered: int = 0
    answered: int = 0
    answered_within_target: int = 0
    abandoned: int = 0

    @property
    def service_level(self) -> float | None:
        """Share of answered calls answered within the queue's target (the
        dashboard's definition); None before the first answer."""
        return self.answered_within_target / self.answered if self.answered else None

    @classmethod
    def from_hash(cls, fields: Mapping[str, str]) -> DayCounts:
        return cls(**{name: int(fields.get(name, 0)) for name in COUNTS})


@dataclass(frozen=True)
class Tally:
    """Counts to add to a queue's hash for `day`, passed to the routing
    script that makes the change they count (count_today in match.lib.lua),
    so the change and its count land together."""

    day: str
    queue: str
    counts: tuple[str, ...]

    def arg(self) -> str:
        return " ".join((self.day, self.queue, str(DAY_TTL_S), *self.counts))


def tally_arg(tally: Tally | None) -> str:
    """A routing script's tally argument: empty counts nothing."""
    return tally.arg() if tally is not None else ""


class DailyCounts:
    def __init__(self, redis: Redis, keys: Keys, zone: ZoneInfo, clock: Callable[[], float] = time.time) -> None:
        """`redis` with decode_responses=True; `clock` in epoch seconds."""
        self._redis = redis
        self._keys = keys
        self._zone = zone
        self._clock = clock

    def today(self) -> str:
        return day_of(self._clock(), self._zone)

    def tally(self, queue: str, *counts: str) -> Tally:
        """One call in each of `counts` for `queue`, today: for a routing script to add."""
        unknown = set(counts) - set(COUNTS)
        if unknown:
            raise ValueError(f"unknown counts {sorted(unknown)}; known: {COUNTS}")
        return Tally(self.today(), queue, counts)

    async def add(self, queue: str, *counts: str) -> None:
        """Count one call in each of `counts` for `queue`, today, where no
        routing script changes the call (RoutingStore methods take a tally).

        One MULTI (count_today in match.lib.lua is its twin inside a script):
        the increments and the expiry land together or not at all, and
        HINCRBY adds atomically whatever the other engines do meanwhile.
        """
        tally = self.tally(queue, *counts)
        key = self._keys.day(tally.day, queue)
        with redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                for name in counts:
                    pipe.hincrby(key, name, 1)
                pipe.expire(key, DAY_TTL_S)
                await pipe.execute()

    async def read(self, queues: Sequence[str]) -> tuple[str, dict[str, DayCounts]]:
        """Today's date and each queue's counts so far (zeros for a quiet queue)."""
        day = self.today()
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.hgetall(self._keys.day(day, queue))
                hashes = await pipe.execute()
        return day, {queue: DayCounts.from_hash(fields) for queue, fields in zip(queues, hashes)}
