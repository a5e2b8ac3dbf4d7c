"""Measurements start from an empty Redis key prefix of their own."""

from __future__ import annotations

import redis.asyncio as aioredis

from ivr.settings import Settings


async def clear_prefix(settings: Settings) -> None:
    # SCAN on the sandbox's Redis for the bench's own prefix; never on a live server.
    client = aioredis.Redis.from_url(settings.redis.url, decode_responses=True,
                                     password=settings.redis.password.get_secret_value()
                                     if settings.redis.password else None)
    try:
        keys = [key async for key in client.scan_iter(match=f"{settings.redis.key_prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
