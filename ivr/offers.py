"""Receives the matcher's offers for this engine's calls, and never stops.

The Lua matcher publishes each offer to the engine holding the call's
channel. Pub/sub delivers at most once: while this engine's subscription is
down (Redis restarted, a network fault) offers to it are lost. So after every
(re)subscription the listener sweeps Redis for offers to this engine still
marked as ringing and hands them over again; the call actor ignores one it
already acted on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ivr.ari.stream import Backoff
from routing.errors import RoutingError
from routing.queues import Offer
from routing.store import RoutingStore

log = logging.getLogger(__name__)


class OffersListener:
    def __init__(self, store: RoutingStore, owner: str, deliver: Callable[[Offer, bool], Awaitable[None]],
                 backoff: Backoff | None = None) -> None:
        self._store = store
        self._owner = owner
        self._deliver = deliver
        self._backoff = backoff or Backoff()
        # Set while subscribed; the first time, before any call may be queued.
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with self._store.subscribe_offers(self._owner) as offers:
                    self.subscribed.set()
                    self._backoff.reset()
                    await self._sweep()
                    async for offer in offers:
                        await self._deliver(offer, False)
            except RoutingError as exc:
                delay = self._backoff.next_delay()
                # Said once per outage: Redis may stay away for a while.
                level = logging.ERROR if self.subscribed.is_set() else logging.DEBUG
                self.subscribed.clear()
                log.log(level, "offers subscription lost (%s); resubscribing in %.2f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)

    async def _sweep(self) -> None:
        missed = [offer for offer in await self._store.stale_offers(0) if offer.owner == self._owner]
        if missed:
            log.warning("re-delivering %d offers published while unsubscribed", len(missed))
        for offer in missed:
            await self._deliver(offer, True)
