"""Shared helpers of the API tests (a unique module name, so it cannot collide
with other test folders' helpers on sys.path)."""

from __future__ import annotations

import hashlib
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from aiohttp import web

from ivr.api import Api, Authenticator, InterpreterControl, RosterEntry
from ivr.throttle import BadTokenThrottle
from ivr.wallboard import Wallboard
from metrics.hotline import HotlineMetrics
from routing.daily import DailyCounts
from routing.keys import Keys
from routing.policy import QueuePolicy
from routing.queues import QueueSpec
from routing.store import RoutingStore

QUEUES = (QueueSpec("english", frozenset({"en"})),)
POLICY = QueuePolicy("english", max_wait_s=600, service_level_s=30)
TOKENS = {"ana": "token-ana", "luis": "token-luis", "sam": "token-sam"}
KEYS = Keys("api:")
ZONE = ZoneInfo("UTC")


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def authenticator() -> Authenticator:
    # Generous: the fuzz-like tests present many unknown tokens from one address.
    roster = [RosterEntry(a, sha(t), a == "sam") for a, t in TOKENS.items()]
    return Authenticator(roster, BadTokenThrottle(10_000, 60, 100))


def make_app(redis: aioredis.Redis, keys: Keys = KEYS, metrics: HotlineMetrics | None = None,
             interpreters: InterpreterControl | None = None) -> web.Application:
    """The engine's API routes as ivr/app.py serves them (the pages aside)."""
    auth = authenticator()
    store = RoutingStore(redis, queues=QUEUES, keys=keys)
    app = Api(store, auth, metrics or HotlineMetrics(), ["english"], health=lambda: {"ari": True},
              interpreters=interpreters).app()
    app.add_routes(Wallboard(store, DailyCounts(redis, keys, ZONE), auth, [POLICY], refresh_s=0.05).routes())
    return app
