"""Waiting on conditions with a timeout, never a bare sleep."""

from __future__ import annotations

import asyncio
from typing import Any

TIMEOUT_S = 3.0


class Journal:
    """An append-only record that tests can wait on."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_len(self, count: int, timeout_s: float = TIMEOUT_S) -> list[Any]:
        """Wait until at least ``count`` items are recorded; a copy of them."""
        async def reached() -> None:
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(reached(), timeout_s)
        return list(self.items)

    async def wait_for(self, item: Any, timeout_s: float = TIMEOUT_S) -> list[Any]:
        async def present() -> None:
            while item not in self.items:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(present(), timeout_s)
        return list(self.items)
