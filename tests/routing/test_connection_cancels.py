"""A task cancelled while redis-py sends its command ends on that cancel
(routing.connection), on the session's real redis-server.

Each round starts a task that sets a key over and over, lets the loop turn
0 to 39 times so the cancel lands at every point of a command (taking a
connection, connecting, sending, reading the reply), cancels it once and
gives it a moment to end.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from routing.connection import keeping_cancels

ROUNDS = 80


async def _cancels_lost(pool: aioredis.ConnectionPool, moment_s: float) -> int:
    client = aioredis.Redis.from_pool(pool)

    async def writing() -> None:
        while True:
            await client.set("cancel-test", "x")

    lost = 0
    try:
        for i in range(ROUNDS):
            task = asyncio.create_task(writing())
            for _ in range(i % 40):
                await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=moment_s)
            if not done:
                lost += 1
                while not task.done():  # cancel again until it lands, to go on
                    task.cancel()
                    await asyncio.wait([task], timeout=0.05)
            assert task.cancelled(), "the task ended otherwise than on its cancel"
    finally:
        await client.aclose()
    return lost


def _pool(redis_url: str) -> aioredis.ConnectionPool:
    # A socket timeout, as the engine's (ivr.app.redis_for), is what makes
    # redis-py send under wait_for.
    return aioredis.ConnectionPool.from_url(redis_url, socket_timeout=1)


async def test_redis_py_as_shipped_loses_a_cancel_that_arrives_during_a_send(redis_url: str) -> None:
    # What routing.connection is for: if redis-py stops losing them, this
    # fails and the override can go.
    assert await _cancels_lost(_pool(redis_url), moment_s=0.2) > 0


async def test_the_engine_s_connections_lose_no_cancel(redis_url: str) -> None:
    # A cancel that lands ends the task within a loop turn: the long moment
    # costs nothing then, and keeps a stall of a loaded machine from counting as a loss.
    assert await _cancels_lost(keeping_cancels(_pool(redis_url)), moment_s=2.0) == 0


@pytest.mark.parametrize("url_scheme", ["redis", "unix"])
def test_every_kind_of_connection_keeps_its_kind(url_scheme: str) -> None:
    url = "redis://127.0.0.1:6390/0" if url_scheme == "redis" else "unix:///run/redis.sock"
    pool = aioredis.ConnectionPool.from_url(url)
    kind = pool.connection_class
    keeping_cancels(keeping_cancels(pool))
    assert issubclass(pool.connection_class, kind)
    assert pool.connection_class.__mro__[2] is kind  # made once, however often applied
