"""Per-call, ordered delivery of ARI events and internal messages.

Each call is an ``Actor`` with its own mailbox and worker task: its events
reach it in the order Asterisk sent them, and its state is only ever touched
by its own worker, so it needs no locks. Calls are independent: an actor
waiting for DTMF, a slow REST request or a crash in one call never delays or
breaks another.

Routing is by resource id. An actor's key is itself routed (the app keys a
call by its caller's channel id); ``route`` adds the other resources the call
owns: the advocate leg it originates, the bridge it creates, a snoop channel.
Route them *before* the REST request that creates them: Asterisk may send
the new resource's first event before the request returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ivr.tasks import TaskSet

log = logging.getLogger(__name__)


class Routable(Protocol):
    """What the dispatcher needs of an event (every ``ivr.ari.events`` event)."""

    @property
    def type(self) -> str: ...

    def channel_ids(self) -> tuple[str, ...]: ...

    def bridge_id(self) -> str | None: ...


E = TypeVar("E", bound=Routable)


class Actor(Protocol):
    @property
    def key(self) -> str: ...

    async def handle(self, item: object) -> None:
        """Handle one ARI event or one item ``post``ed to this actor."""


# Queued behind everything else by ``unregister``: the worker drains, then stops.
_STOP = object()


@dataclass
class _Mailbox:
    actor: Actor
    queue: asyncio.Queue[object]
    worker: asyncio.Task[None]


class Dispatcher(Generic[E]):
    """Routes events to actors' mailboxes; one worker task per actor.

    ``on_unrouted`` receives events that concern no registered actor. It is
    called synchronously from ``deliver``, so an actor it registers for a new
    call (and posts the StasisStart to) is in place before the call's next
    event is delivered.
    """

    def __init__(self, tasks: TaskSet, *, on_unrouted: Callable[[E], None] | None = None) -> None:
        self._tasks = tasks
        self._on_unrouted = on_unrouted
        self._mailboxes: dict[str, _Mailbox] = {}
        self._routes: dict[str, str] = {}

    def __contains__(self, actor_key: str) -> bool:
        return actor_key in self._mailboxes

    def register(self, actor: Actor) -> None:
        key = actor.key
        if key in self._mailboxes:
            raise ValueError(f"actor {key!r} is already registered")
        queue: asyncio.Queue[object] = asyncio.Queue()
        worker = self._tasks.spawn(self._work(actor, queue), name=f"actor:{key}")
        self._mailboxes[key] = _Mailbox(actor, queue, worker)
        self._routes[key] = key

    def route(self, resource_id: str, actor_key: str) -> None:
        """Send events about ``resource_id`` (a channel or bridge id) to the actor."""
        if actor_key not in self._mailboxes:
            raise KeyError(f"no actor {actor_key!r} to route {resource_id!r} to")
        previous = self._routes.get(resource_id)
        if previous is not None and previous != actor_key:
            log.warning("dispatch: %s moves from actor %s to %s", resource_id, previous, actor_key)
        self._routes[resource_id] = actor_key

    def unroute(self, resource_id: str) -> None:
        self._routes.pop(resource_id, None)

    def actor_for(self, resource_id: str) -> str | None:
        return self._routes.get(resource_id)

    async def unregister(self, actor_key: str) -> None:
        """Stop routing to the actor; its worker handles what is queued, then ends.

        From the actor's own ``handle`` this returns at once (awaiting its own
        worker would deadlock); the worker ends after the current item and
        whatever is queued before the stop.
        """
        mailbox = self._mailboxes.pop(actor_key, None)
        if mailbox is None:
            return
        for resource_id in [rid for rid, key in self._routes.items() if key == actor_key]:
            del self._routes[resource_id]
        mailbox.queue.put_nowait(_STOP)
        if asyncio.current_task() is not mailbox.worker:
            await asyncio.shield(mailbox.worker)

    def deliver(self, event: E) -> None:
        """Enqueue ``event`` for each actor owning a resource it concerns.

        Never blocks. An event concerning resources of two actors (a Dial
        between two calls' channels) reaches each of them, once.
        """
        keys: list[str] = []
        for resource_id in (*event.channel_ids(), event.bridge_id()):
            key = self._routes.get(resource_id) if resource_id is not None else None
            if key is not None and key not in keys:
                keys.append(key)
        if not keys:
            self._unrouted(event)
            return
        for key in keys:
            self._mailboxes[key].queue.put_nowait(event)

    def post(self, actor_key: str, item: object) -> bool:
        """Enqueue an internal item (timer, routing offer); False if no such actor."""
        mailbox = self._mailboxes.get(actor_key)
        if mailbox is None:
            log.debug("dispatch: dropping %s for gone actor %s", type(item).__name__, actor_key)
            return False
        mailbox.queue.put_nowait(item)
        return True

    def _unrouted(self, event: E) -> None:
        if self._on_unrouted is None:
            log.debug("dispatch: no actor for %s on %s", event.type, event.channel_ids())
            return
        try:
            self._on_unrouted(event)
        except Exception:
            log.exception("dispatch: on_unrouted failed for %s on %s", event.type, event.channel_ids())

    @staticmethod
    async def _work(actor: Actor, queue: asyncio.Queue[object]) -> None:
        key = actor.key
        while True:
            item = await queue.get()
            if item is _STOP:
                return
            what = getattr(item, "type", type(item).__name__)
            try:
                await actor.handle(item)
            except asyncio.CancelledError:
                # A stray CancelledError (e.g. from a cancelled playback wait)
                # is a bug in the actor; only a cancel of this worker ends it.
                current = asyncio.current_task()
                if current is None or current.cancelling():
                    raise
                log.error("actor %s leaked a CancelledError handling %s", key, what)
            except Exception:
                log.exception("actor %s failed handling %s", key, what)
