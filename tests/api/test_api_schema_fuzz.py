"""Schema-driven fuzz of the HTTP API: schemathesis generates requests from the
OpenAPI document (valid and invalid ones), sends each with a supervisor's
token, an advocate's, an unknown one and none, to the real aiohttp app over
a real Redis; every answer must be a documented 4xx or 2xx whose body
matches the schema. No 5xx.

The app runs in this process on a loopback port, on its own event loop in a
thread: schemathesis calls it synchronously. CI runs 10 examples per
operation (and schemathesis' coverage cases); FUZZ_EXAMPLES=200 digs deeper.
"""

from __future__ import annotations

import asyncio
import copy
import os
import hashlib
import threading
import tomllib
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
import schemathesis
from aiohttp import web
from schemathesis.config import SchemathesisConfig

from ivr.api import Api, Authenticator, RosterEntry
from ivr.cli import SANDBOX_CONFIG
from ivr.interpreters.catalog import LanguageCatalog
from ivr.interpreters.provider import InterpreterSettings, validate_interpreters
from ivr.interpreting import InterpreterDesk
from ivr.openapi import OPENAPI
from ivr.throttle import BadTokenThrottle
from metrics.hotline import HotlineMetrics
from ivr.wallboard import Wallboard
from routing.advocates import AdvocateState
from routing.daily import DailyCounts
from routing.keys import Keys
from routing.policy import QueuePolicy
from routing.queues import QueueSpec, WaitingCall
from routing.store import RoutingStore

TOKENS = {"ana": "fuzz-token-ana", "sam": "fuzz-token-sam"}
# The call id the OpenAPI document gives as its example, seeded as ana's
# connected call, so that generated requests reach a real record too.
CONNECTED_CALL = "1732871240.15"
AS = {"supervisor": {"Authorization": f"Bearer {TOKENS['sam']}"},
      "advocate": {"Authorization": f"Bearer {TOKENS['ana']}"},
      "unknown token": {"Authorization": "Bearer not-a-token"}}

CONFIG = SchemathesisConfig.from_dict({"generation": {"max-examples": int(os.environ.get("FUZZ_EXAMPLES", 10)),
                                                      "mode": "all"}})
schema = schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI), config=CONFIG)


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiInThread:
    """The API app on a loopback port, served by an event loop in a thread."""

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api-under-fuzz", daemon=True)
        self.base_url = ""

    def __enter__(self) -> ApiInThread:
        self._thread.start()
        self.base_url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> str:
        self._redis = aioredis.Redis.from_url(self._redis_url.rsplit("/", 1)[0] + "/4", decode_responses=True)
        await self._redis.flushdb()
        keys = Keys("fuzz:")
        store = RoutingStore(self._redis, queues=(QueueSpec("english", frozenset({"en"})),), keys=keys)
        for advocate, token in TOKENS.items():
            roles = {"advocate", "supervisor"} if advocate == "sam" else {"advocate"}
            await store.upsert_advocate(advocate, advocate.title(), f"PJSIP/{advocate}@carrier", frozenset({"en"}),
                                        frozenset(roles), sha(token))
        await store.set_state("ana", AdvocateState.AVAILABLE)
        await store.enqueue(WaitingCall(CONNECTED_CALL, "english", 5, 1_000, "e1"), {"language": "en"}, 600)
        await store.offer_answered(CONNECTED_CALL, "ana", waited_ms=0)
        catalog = LanguageCatalog.load()
        raw = tomllib.loads(SANDBOX_CONFIG.read_text())["interpreters"]
        providers = validate_interpreters(InterpreterSettings(**raw), catalog).providers
        desk = InterpreterDesk(catalog, providers, post=lambda call_id, request: call_id == CONNECTED_CALL)
        roster = [RosterEntry(a, sha(t), a == "sam") for a, t in TOKENS.items()]
        # A small limit: the unknown token is soon answered 429, which must conform too.
        auth = Authenticator(roster, BadTokenThrottle(5, 3600, 100))
        api = Api(store, auth, HotlineMetrics(), ["english"], health=lambda: {"ari": True}, interpreters=desk)
        app = api.app()
        wallboard = Wallboard(store, DailyCounts(self._redis, keys, ZoneInfo("UTC")), auth,
                              [QueuePolicy("english", max_wait_s=600, service_level_s=30)], refresh_s=0.05)
        # Closed from the start: /wallboard/events answers (after the same
        # checks) but ends at once instead of streaming for ever to the fuzzer.
        await wallboard.close()
        app.add_routes(wallboard.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        await self._runner.cleanup()
        await self._redis.aclose()


@pytest.fixture(scope="module")
def served_api(redis_url: str) -> Iterator[ApiInThread]:
    with ApiInThread(redis_url) as served:
        yield served


@schema.parametrize()
def test_every_generated_request_gets_a_documented_answer_and_never_a_5xx(case, served_api):
    for who, headers in AS.items():
        case.call_and_validate(base_url=served_api.base_url, headers=headers)
    case.call_and_validate(base_url=served_api.base_url)  # whatever schemathesis sends, or no token
