"""Measurements start from a quiet sandbox: no call left over, an empty Redis key prefix of their own."""

from __future__ import annotations

import redis.asyncio as aioredis

from ivr.ari.errors import AriNotFound
from ivr.ari.rest import AriRest
from ivr.settings import Settings

from tests.e2e.conftest import eventually


async def hang_up_everything(ari: AriRest, timeout_s: float = 30) -> None:
    """No call left over from an earlier run or round."""
    for channel in await ari.list_channels():
        try:
            await ari.hangup(channel.id)
        except AriNotFound:
            pass  # it ended meanwhile
    await eventually(lambda: no_channels(ari), timeout_s, "every channel gone")


async def no_channels(ari: AriRest) -> bool:
    return not await ari.list_channels()


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
