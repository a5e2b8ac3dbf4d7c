"""Fixtures of the API tests: the session's real redis-server (database 1,
flushed for each test), the roster of api_support.TOKENS registered in it,
a test client of the engine's API routes, and a Redis that is not there."""

from __future__ import annotations

from collections.abc import AsyncIterator

import socket

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api_support import KEYS, QUEUES, TOKENS, make_app, sha
from routing.store import RoutingStore


@pytest.fixture
async def db(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1", decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def store(db: aioredis.Redis) -> RoutingStore:
    store = RoutingStore(db, queues=QUEUES, keys=KEYS)
    for advocate in TOKENS:
        roles = {"advocate", "supervisor"} if advocate == "sam" else {"advocate"}
        await store.upsert_advocate(advocate, advocate.title(), f"PJSIP/{advocate}@carrier",
                                    frozenset({"en"}), frozenset(roles), sha(TOKENS[advocate]))
    return store


@pytest.fixture
async def client(db: aioredis.Redis, store: RoutingStore) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(db))) as test_client:
        yield test_client


@pytest.fixture
async def unreachable_redis() -> AsyncIterator[aioredis.Redis]:
    """A client of a Redis that is not there."""
    # A port we bound and released: nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # No retries: redis-py would otherwise back off for seconds before giving up.
    dead = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_connect_timeout=0.5,
                          retry=Retry(NoBackoff(), 0))
    yield dead
    await dead.aclose()
