"""Fixtures for the routing tests, on the session's real redis-server
(tests/conftest.py): each test gets a flushed database 0, a fresh client
and a RoutingStore driven by a manual clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from routing import RoutingStore
from routing_support import QUEUES, TEST_KEYS, ManualClock


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(redis_client: aioredis.Redis, clock: ManualClock) -> RoutingStore:
    return RoutingStore(redis_client, QUEUES, TEST_KEYS, clock=clock)
