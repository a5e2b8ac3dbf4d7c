"""The engine's Redis client under a burst, on the session's real redis-server."""

import asyncio

from ivr.app import REDIS_CONNECTIONS, redis_for
from ivr.cli import SANDBOX_CONFIG
from ivr.settings import RedisSettings, load_settings


async def test_a_burst_beyond_the_pool_waits_for_a_connection_instead_of_failing(redis_url):
    # The session's own redis-server, whatever HOTLINE_REDIS__* the environment sets.
    settings = load_settings(SANDBOX_CONFIG).model_copy(update={"redis": RedisSettings(url=redis_url)})
    client = redis_for(settings)
    try:
        # Each BLPOP holds its connection for 0.2 s: three times the pool's
        # size in flight at once, as 150 callers finishing the menu together.
        replies = await asyncio.gather(*(client.blpop(["hl:wiring:nothing"], timeout=0.2)
                                         for _ in range(3 * REDIS_CONNECTIONS)))
    finally:
        await client.aclose()
    assert replies == [None] * (3 * REDIS_CONNECTIONS)
