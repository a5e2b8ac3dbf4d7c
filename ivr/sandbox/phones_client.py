"""Client of the sandbox phones' control API, for tests, demos and ``hotline call``.

``wait_for`` follows the phones' ordered event log by long-polling it, so a
caller waits on a condition ("phone 1001 rang") with a deadline, never on a
fixed sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

Event = dict[str, Any]


class PhonesError(Exception):
    pass


class PhonesClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self.seen: list[Event] = []
        self._after = 0

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._session.request(method, f"{self._base}{path}", **kwargs) as response:
            if response.status >= 400:
                raise PhonesError(f"{method} {path}: {response.status} {await response.text()}")
            return await response.json()

    async def script(self, number: str, *, answer_after_s: float = 0.3, never_answer: bool = False,
                     busy: bool = False, hangup_after_s: float | None = None,
                     answer_after_max_s: float | None = None, hangup_after_max_s: float | None = None,
                     miss_rate: float = 0.0) -> None:
        """How phone `number` behaves; the maxima draw each call's delays at random."""
        await self._call("PUT", f"/phones/{number}", json={
            "answer_after_s": answer_after_s, "never_answer": never_answer, "busy": busy,
            "hangup_after_s": hangup_after_s, "answer_after_max_s": answer_after_max_s,
            "hangup_after_max_s": hangup_after_max_s, "miss_rate": miss_rate})

    async def events(self, after: int, timeout_s: float) -> list[Event]:
        """The phones' events after sequence number `after`, waiting up to `timeout_s` for one."""
        return await self._call("GET", "/events", params={"after": after, "timeout": timeout_s})

    async def reset(self) -> None:
        await self._call("DELETE", "/phones")

    async def place_call(self, caller: str, to: str, *, dtmf: str = "", dtmf_delay_s: float = 1.0,
                         dtmf_gap_s: float = 0.8, hangup_after_s: float | None = None) -> Event:
        return await self._call("POST", "/calls", json={
            "from": caller, "to": to, "dtmf": dtmf, "dtmf_delay_s": dtmf_delay_s, "dtmf_gap_s": dtmf_gap_s,
            "hangup_after_s": hangup_after_s})

    async def call(self, call_id: str) -> Event:
        return await self._call("GET", f"/calls/{call_id}")

    async def hangup(self, call_id: str) -> None:
        await self._call("POST", f"/calls/{call_id}/hangup")

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        await self._call("POST", f"/calls/{call_id}/dtmf", json={"digits": digits})

    async def listen(self, call_id: str, seconds: int = 2) -> float:
        """RMS level (0..1) of what the phone hears over ``seconds``."""
        return (await self._call("POST", f"/calls/{call_id}/listen", json={"seconds": seconds}))["rms"]

    async def play(self, call_id: str, media: str) -> str:
        """Make the phone say ``media`` (``tone:440`` lasts until stopped); the playback id."""
        return (await self._call("POST", f"/calls/{call_id}/play", json={"media": media}))["playback"]

    async def stop_playback(self, playback_id: str) -> None:
        await self._call("DELETE", f"/playbacks/{playback_id}")

    async def mark(self) -> int:
        """Skip everything logged so far: later waits see only newer events."""
        events = await self._call("GET", "/events", params={"after": self._after, "timeout": 0})
        if events:
            self._after = events[-1]["seq"]
        self.seen = []
        return self._after

    async def seen_until_now(self) -> list[Event]:
        """Every event since the last ``mark``, up to now. ``seen`` holds only
        what the waits fetched: a check that something did *not* happen reads this."""
        while True:
            events = await self._call("GET", "/events", params={"after": self._after, "timeout": 0})
            if not events:
                return self.seen
            self._after = events[-1]["seq"]
            self.seen.extend(events)

    async def wait_for(self, predicate: Callable[[Event], bool], timeout_s: float, *, what: str = "") -> Event:
        """The first event since the last ``mark`` that satisfies ``predicate``."""
        return (await self.wait_for_count(predicate, 1, timeout_s, what=what))[0]

    async def wait_for_count(self, predicate: Callable[[Event], bool], count: int, timeout_s: float, *,
                             what: str = "") -> list[Event]:
        """The first ``count`` events since the last ``mark`` that satisfy ``predicate``."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [event for event in self.seen if predicate(event)]
            if len(found) >= count:
                return found[:count]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"phones: {len(found)} of {count} {what or 'matching events'} "
                                   f"within {timeout_s:.1f} s")
            events = await self._call("GET", "/events",
                                      params={"after": self._after, "timeout": min(remaining, 5.0)})
            if events:
                self._after = events[-1]["seq"]
                self.seen.extend(events)

    async def ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self._call("GET", "/events", params={"after": 0, "timeout": 0})
                return
            except (aiohttp.ClientError, PhonesError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
