"""The supervisors' audit trail in Redis: who listened to, whispered to or
barged into which call, and when.

An entry names ids only (the supervisor, the call's channel id, the engine)
and never a caller's number: the entry type has no field that could hold
one. The list is shared by every engine on the Redis, newest first, capped
and expiring (see ``Keys.supervisor_audit``), so a quiet hotline does not
keep a year-old trail forever and a busy one cannot grow it without bound.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from redis.asyncio import Redis

# The package's one translation of redis errors into RoutingUnavailable.
from routing.errors import redis_errors
from routing.keys import Keys


@dataclass(frozen=True)
class AuditEntry:
    at_ms: int  # epoch milliseconds
    call: str  # the call's id (the caller channel's Asterisk id), never its number
    supervisor: str  # whose monitoring session this is
    by: str  # who did it: that supervisor, another supervisor, or "engine" for an automatic end
    action: str  # start | switch | stop | ended
    mode: str  # listen | whisper | barge: the mode started, switched to, stopped or ended
    reason: str = ""  # for "ended": call_ended, supervisor_hung_up, supervisor_unreachable, failed
    from_mode: str = ""  # for "switch": the mode left
    engine: str = ""  # the engine instance that carried it out

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AuditEntry:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class SupervisorAudit:
    def __init__(self, redis: Redis, keys: Keys, *, max_entries: int, retention_s: int) -> None:
        """`redis` must use decode_responses=True."""
        if max_entries < 1 or retention_s < 1:
            raise ValueError("the audit keeps at least one entry for at least one second")
        self._redis = redis
        self._key = keys.supervisor_audit()
        self._max_entries = max_entries
        self._retention_s = retention_s

    async def append(self, entry: AuditEntry) -> None:
        """Push one entry; RoutingUnavailable if Redis is gone (the caller
        still has the log line)."""
        with redis_errors():
            # One key, three commands in a MULTI: no reader ever sees the list
            # past its cap or without its expiry.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(self._key, entry.to_json())
                pipe.ltrim(self._key, 0, self._max_entries - 1)
                pipe.expire(self._key, self._retention_s)
                await pipe.execute()

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        with redis_errors():
            raw = await self._redis.lrange(self._key, 0, limit - 1)
        return [AuditEntry.from_json(item) for item in raw]
