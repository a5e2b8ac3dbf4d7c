"""The supervisors' wallboard: queues, waiting calls, advocates and today's counts, live.

What the board shows is read from Redis, never from this engine's own
calls: every engine sharing the Redis shows the same board. ``build_view``
is the pure part (a snapshot in, the JSON the page draws out); ``Wallboard``
reads the snapshot and serves it once (``/wallboard/state``) or as
server-sent events (``/wallboard/events``) that the page reads with fetch()
and its Authorization header, so the token never appears in a URL.

A waiting call is shown by its wait, language, call type and relay flag:
the board reads only those fields of the call record, never the caller
reference, and has no number to show.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from ivr.api import Authenticator, json_error
from routing.advocates import Advocate, AdvocateState
from routing.daily import DailyCounts, DayCounts
from routing.errors import RoutingError
from routing.policy import QueuePolicy
from routing.queues import MAX_PRIORITY
from routing.store import RoutingStore

log = logging.getLogger(__name__)

# The only call-record fields the board reads.
WAITING_FIELDS = ("arrival_ms", "priority", "language", "call_type", "relay")
# Advocates listed in this order of state, then longest in that state first.
STATE_ORDER = (AdvocateState.AVAILABLE, AdvocateState.RINGING, AdvocateState.ON_CALL, AdvocateState.WRAP_UP,
               AdvocateState.AWAY, AdvocateState.OFFLINE)
# An unchanged board is sent again this often anyway: the page learns the
# server's clock from it (waits are counted in the browser) and proxies see
# traffic on the stream.
RESEND_S = 15.0


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _waiting_call(call_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    return {"id": call_id, "arrival_ms": _int(fields.get("arrival_ms")),
            "language": fields.get("language", ""), "call_type": fields.get("call_type", ""),
            "relay": fields.get("relay") == "1", "crisis": _int(fields.get("priority")) == MAX_PRIORITY}


def _counts(counts: DayCounts) -> dict[str, Any]:
    return {"offered": counts.offered, "answered": counts.answered, "abandoned": counts.abandoned,
            "answered_within_target": counts.answered_within_target, "service_level": counts.service_level}


def build_view(*, now_ms: int, day: str, queues: Sequence[QueuePolicy],
               waiting: Mapping[str, Sequence[tuple[str, Mapping[str, str]]]], advocates: Sequence[Advocate],
               today: Mapping[str, DayCounts]) -> dict[str, Any]:
    """The board as the page draws it. Times are epoch ms; the page counts
    waits and time in state from them against ``now_ms``."""
    board_queues = []
    for policy in queues:
        calls = [_waiting_call(call_id, fields) for call_id, fields in waiting.get(policy.name, ())]
        # Oldest first, as a supervisor scans for who has waited longest
        # (the queue's own order puts crisis calls first, whatever their age).
        calls.sort(key=lambda call: (call["arrival_ms"], call["id"]))
        available = sum(1 for a in advocates if a.state is AdvocateState.AVAILABLE and policy.name in a.queues)
        board_queues.append({"name": policy.name, "target_s": policy.service_level_s, "available": available,
                             "waiting": calls, "today": _counts(today.get(policy.name, DayCounts()))})
    order = {state: i for i, state in enumerate(STATE_ORDER)}
    people = sorted(advocates, key=lambda a: (order[a.state], a.state_since, a.id))
    total = DayCounts(**{field: sum(getattr(c, field) for c in today.values())
                         for field in ("offered", "answered", "answered_within_target", "abandoned")})
    return {
        "now_ms": now_ms, "day": day, "queues": board_queues, "today": _counts(total),
        "states": {str(state): sum(1 for a in advocates if a.state is state) for state in STATE_ORDER},
        "advocates": [{"id": a.id, "name": a.name, "state": str(a.state), "since_ms": a.state_since,
                       "skills": sorted(a.skills)} for a in people],
    }


def sse_event(event: str, data: object) -> bytes:
    """One server-sent event; JSON has no raw newline, so one data line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Wallboard:
    def __init__(self, store: RoutingStore, daily: DailyCounts, auth: Authenticator,
                 queues: Sequence[QueuePolicy], refresh_s: float, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._daily = daily
        self._auth = auth
        self._queues = tuple(queues)
        self._refresh_s = refresh_s
        self._clock = clock
        self._closing = asyncio.Event()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/wallboard/state", self.state), web.get("/wallboard/events", self.events)]

    async def close(self, app: web.Application | None = None) -> None:
        """Engine stopping: end the open streams now rather than make shutdown wait for them."""
        self._closing.set()

    async def view(self) -> dict[str, Any]:
        waiting = await self._store.waiting_calls(WAITING_FIELDS)
        advocates = await self._store.list_advocates()
        day, today = await self._daily.read([q.name for q in self._queues])
        return build_view(now_ms=int(self._clock() * 1000), day=day, queues=self._queues, waiting=waiting,
                          advocates=advocates, today=today)

    async def state(self, request: web.Request) -> web.Response:
        self._auth.supervisor(request)
        try:
            return web.json_response(await self.view())
        except RoutingError:
            raise json_error(web.HTTPServiceUnavailable, "routing store unavailable; try again") from None

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The board, sent whenever it changes (read every refresh_s)."""
        principal = self._auth.supervisor(request)  # a refusal is a JSON 401/403, before any stream
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        log.info("wallboard: stream opened by %s", principal.advocate_id)
        last: str | None = None
        sent_at = 0.0
        try:
            while not self._closing.is_set() and request.transport is not None \
                    and not request.transport.is_closing():
                try:
                    view = await self.view()
                except RoutingError:
                    # Say so rather than show the last board as if current.
                    if last != "unavailable":
                        await response.write(sse_event("unavailable", {"error": "routing store unavailable"}))
                        last = "unavailable"
                else:
                    board = json.dumps({k: v for k, v in view.items() if k != "now_ms"}, sort_keys=True)
                    if board != last or time.monotonic() - sent_at >= RESEND_S:
                        await response.write(sse_event("board", view))
                        last, sent_at = board, time.monotonic()
                # Paced by refresh_s, cut short when the engine stops.
                try:
                    async with asyncio.timeout(self._refresh_s):
                        await self._closing.wait()
                except TimeoutError:
                    pass
        except ConnectionResetError:
            pass  # the page went away
        log.info("wallboard: stream closed for %s", principal.advocate_id)
        return response
