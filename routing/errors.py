"""The exceptions routing raises; callers catch these, never redis ones.

    RoutingError
    ├── UnknownAdvocate      the advocate id is not registered
    ├── InvalidTransition    the advocate's current state forbids the move
    ├── StaleOffer           an offer event names a call/advocate pair that
    │                        is no longer ringing or bridged (late or repeated
    │                        event: log it with the ids and move on)
    ├── Conflict             the request clashes with stored state (call id
    │                        already enqueued, token hash owned by another)
    └── RoutingUnavailable   Redis cannot be reached, or refused the command
                             (out of memory, read-only, ...): nothing to route with
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from redis import exceptions as redis_exceptions

if TYPE_CHECKING:
    from routing.advocates import AdvocateState


class RoutingError(Exception):
    """Base of every error raised by the routing package."""


class UnknownAdvocate(RoutingError):
    def __init__(self, advocate_id: str) -> None:
        super().__init__(f"unknown advocate {advocate_id!r}")
        self.advocate_id = advocate_id


class InvalidTransition(RoutingError):
    def __init__(self, advocate_id: str, old: AdvocateState, new: AdvocateState) -> None:
        super().__init__(f"advocate {advocate_id!r} cannot go from {old} to {new}")
        self.advocate_id = advocate_id
        self.old = old
        self.new = new


class StaleOffer(RoutingError):
    def __init__(self, call_id: str, advocate_id: str) -> None:
        super().__init__(
            f"call {call_id!r} is not in the expected offer state with advocate {advocate_id!r}"
        )
        self.call_id = call_id
        self.advocate_id = advocate_id


class Conflict(RoutingError):
    pass


class RoutingUnavailable(RoutingError):
    pass


@contextmanager
def redis_errors() -> Iterator[None]:
    """Where redis enters routing: a lost server becomes RoutingUnavailable."""
    try:
        yield
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
        raise RoutingUnavailable(f"Redis unreachable: {exc}") from exc
    except redis_exceptions.RedisError as exc:
        # Redis answered but refused: out of memory (OOM), a replica after a
        # failover (READONLY), a failed snapshot (MISCONF), a script running
        # too long (BUSY), or a script's own error. To a caller that is a lost
        # Redis: the fallback, not an error nobody handles. Only redis-py's
        # class for it (OutOfMemoryError, ReadOnlyError...): the text may
        # quote a script's arguments, and so would a logged traceback's cause.
        raise RoutingUnavailable(f"Redis refused the command ({type(exc).__name__})") from None
