"""Who takes which call: advocates, queues and waiting calls kept in Redis.

Every decision that touches more than one key is an atomic Lua script
(``routing/lua``); the Python side validates input, builds the script
arguments and turns replies into typed values. This package knows nothing of
Asterisk or ARI: it hands out :class:`Offer` values and is told, through
:class:`RoutingStore` methods, what became of them.
"""

from routing.advocates import Advocate, AdvocateState, check_transition, hash_token
from routing.errors import (
    Conflict,
    InvalidTransition,
    RoutingError,
    RoutingUnavailable,
    StaleOffer,
    UnknownAdvocate,
)
from routing.keys import Keys
from routing.queues import Offer, QueueSpec, WaitingCall, queues_for, waiting_score
from routing.snapshot import QueueDepth, RoutingSnapshot
from routing.store import RoutingStore

__all__ = [
    "Advocate",
    "AdvocateState",
    "Conflict",
    "InvalidTransition",
    "Keys",
    "Offer",
    "QueueDepth",
    "QueueSpec",
    "RoutingError",
    "RoutingSnapshot",
    "RoutingStore",
    "RoutingUnavailable",
    "StaleOffer",
    "UnknownAdvocate",
    "WaitingCall",
    "check_transition",
    "hash_token",
    "queues_for",
    "waiting_score",
]
