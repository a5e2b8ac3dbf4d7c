"""An ARI events stream that keeps failing to connect, run for a few attempts:
how the tests read what the engine logs about a refused or unreachable ARI."""

from __future__ import annotations

import asyncio

import aiohttp

from ivr.ari.stream import Backoff, EventStream


async def attempt_events_stream(base_url: str, username: str, password: str, *, attempts: int,
                                app: str = "hotline", timeout_s: float = 10) -> None:
    """Run an EventStream at ``base_url`` (…/ari) until it has failed and backed off ``attempts`` times."""
    backed_off = asyncio.Event()
    count = 0

    async def sleep(_: float) -> None:
        nonlocal count
        count += 1
        if count >= attempts:
            backed_off.set()
        await asyncio.sleep(0)

    async def handler(_: object) -> None:
        pass

    async with aiohttp.ClientSession() as session:
        stream = EventStream(session, base_url, username, password, app, handler,
                             backoff=Backoff(0.01, 0.01), sleep=sleep, connect_timeout_s=1)
        task = asyncio.create_task(stream.run())
        try:
            await asyncio.wait_for(backed_off.wait(), timeout_s)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
