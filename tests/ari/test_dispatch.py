"""Dispatcher: per-call order, independence between calls, isolation of failures."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from ivr.ari.events import parse_event
from ivr.dispatch import Dispatcher, Routable
from ivr.tasks import TaskSet

from .conftest import load_fixture
from .waiting import TIMEOUT_S, Journal


@dataclass(frozen=True)
class Ev:
    """A minimal routable event: enough for the dispatcher, nothing more."""

    type: str
    channel: str | None = None
    bridge: str | None = None
    seq: int = 0

    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel,) if self.channel else ()

    def bridge_id(self) -> str | None:
        return self.bridge


@dataclass
class RecordingActor:
    key: str
    seen: Journal = field(default_factory=Journal)
    on_item: Callable[[object], Awaitable[None]] | None = None

    async def handle(self, item: object) -> None:
        self.seen.add(item)
        if self.on_item is not None:
            await self.on_item(item)


@dataclass
class Setup:
    dispatcher: Dispatcher
    unrouted: Journal


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    tasks = TaskSet("test")
    unrouted = Journal()
    yield Setup(Dispatcher(tasks, on_unrouted=unrouted.add), unrouted)
    await asyncio.wait_for(tasks.close(), TIMEOUT_S)


async def test_each_actor_sees_its_events_in_order_under_load(setup: Setup) -> None:
    rng = random.Random(1234)

    async def jitter(_: object) -> None:
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)

    actors = [RecordingActor(f"call-{n}", on_item=jitter) for n in range(5)]
    for actor in actors:
        setup.dispatcher.register(actor)
    per_actor = 400

    for seq in range(per_actor):
        for actor in rng.sample(actors, len(actors)):
            setup.dispatcher.deliver(Ev("ChannelDtmfReceived", channel=actor.key, seq=seq))

    for actor in actors:
        seen = await actor.seen.wait_len(per_actor)
        assert [event.seq for event in seen] == list(range(per_actor))
        assert {event.channel for event in seen} == {actor.key}
    assert setup.unrouted.items == []


async def test_an_actor_waiting_does_not_delay_another(setup: Setup) -> None:
    # Call A waits for something only call B's later event can provide: if
    # delivery were serial, this would deadlock and time out.
    b_handled = asyncio.Event()

    async def wait_for_b(item: object) -> None:
        if getattr(item, "seq", None) == 1:
            await b_handled.wait()

    async def signal(_: object) -> None:
        b_handled.set()

    a = RecordingActor("call-a", on_item=wait_for_b)
    b = RecordingActor("call-b", on_item=signal)
    setup.dispatcher.register(a)
    setup.dispatcher.register(b)

    setup.dispatcher.deliver(Ev("StasisStart", channel="call-a", seq=1))
    setup.dispatcher.deliver(Ev("StasisStart", channel="call-b", seq=1))
    setup.dispatcher.deliver(Ev("ChannelDtmfReceived", channel="call-a", seq=2))

    assert [e.seq for e in await a.seen.wait_len(2)] == [1, 2]
    assert len(b.seen.items) == 1


async def test_a_failing_actor_keeps_its_worker_and_spares_others(
        setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    async def explode_on_first(item: object) -> None:
        if getattr(item, "seq", None) == 1:
            raise KeyError("bug in one call's flow")

    faulty = RecordingActor("call-faulty", on_item=explode_on_first)
    healthy = RecordingActor("call-healthy")
    setup.dispatcher.register(faulty)
    setup.dispatcher.register(healthy)

    for seq in (1, 2, 3):
        setup.dispatcher.deliver(Ev("ChannelDtmfReceived", channel="call-faulty", seq=seq))
        setup.dispatcher.deliver(Ev("ChannelDtmfReceived", channel="call-healthy", seq=seq))

    assert [e.seq for e in await faulty.seen.wait_len(3)] == [1, 2, 3]
    assert [e.seq for e in await healthy.seen.wait_len(3)] == [1, 2, 3]
    failures = [r for r in caplog.records if r.name == "ivr.dispatch" and r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "call-faulty" in failures[0].getMessage()
    assert "ChannelDtmfReceived" in failures[0].getMessage()


async def test_a_stray_cancelled_error_does_not_end_the_worker(setup: Setup) -> None:
    async def leak_cancel(item: object) -> None:
        if getattr(item, "seq", None) == 1:
            raise asyncio.CancelledError()

    actor = RecordingActor("call-a", on_item=leak_cancel)
    setup.dispatcher.register(actor)

    setup.dispatcher.deliver(Ev("PlaybackFinished", channel="call-a", seq=1))
    setup.dispatcher.deliver(Ev("ChannelDtmfReceived", channel="call-a", seq=2))

    assert [e.seq for e in await actor.seen.wait_len(2)] == [1, 2]


async def test_unrouted_events_go_to_the_callback(setup: Setup) -> None:
    setup.dispatcher.register(RecordingActor("call-a"))
    stray = Ev("ChannelDestroyed", channel="gone")
    global_var = Ev("ChannelVarset")

    setup.dispatcher.deliver(stray)
    setup.dispatcher.deliver(global_var)

    assert setup.unrouted.items == [stray, global_var]


async def test_an_actor_registered_by_on_unrouted_gets_the_calls_next_events_in_order() -> None:
    tasks = TaskSet("test")
    actors: dict[str, RecordingActor] = {}

    def new_call(event: Routable) -> None:
        if event.type == "StasisStart":
            actor = RecordingActor(event.channel_ids()[0])
            actors[actor.key] = actor
            dispatcher.register(actor)
            dispatcher.post(actor.key, event)

    dispatcher = Dispatcher(tasks, on_unrouted=new_call)
    try:
        dispatcher.deliver(Ev("StasisStart", channel="c1", seq=1))
        dispatcher.deliver(Ev("ChannelDtmfReceived", channel="c1", seq=2))

        seen = await actors["c1"].seen.wait_len(2)
        assert [(e.type, e.seq) for e in seen] == [("StasisStart", 1), ("ChannelDtmfReceived", 2)]
    finally:
        await tasks.close()


async def test_routed_legs_and_bridge_reach_the_owning_call(setup: Setup) -> None:
    # Real parsed events: the advocate leg and bridge the call created.
    call = RecordingActor("1741944413.42")
    setup.dispatcher.register(call)
    setup.dispatcher.route("adv-1741944413.42-1", call.key)
    setup.dispatcher.route("call-1741944413.42", call.key)
    events = [parse_event(load_fixture(name)) for name in
              ("dial", "channel_entered_bridge", "playback_finished", "bridge_destroyed")]

    for event in events:
        setup.dispatcher.deliver(event)

    assert await call.seen.wait_len(4) == events
    assert setup.unrouted.items == []


async def test_an_event_between_two_calls_reaches_each_once(setup: Setup) -> None:
    a, b = RecordingActor("call-a"), RecordingActor("call-b")
    setup.dispatcher.register(a)
    setup.dispatcher.register(b)
    setup.dispatcher.route("bridge-a", "call-a")
    enters = Ev("ChannelEnteredBridge", channel="call-b", bridge="bridge-a")
    marker = Ev("Marker", channel="call-a")

    setup.dispatcher.deliver(enters)
    setup.dispatcher.deliver(Ev("ChannelEnteredBridge", channel="call-a", bridge="bridge-a"))
    setup.dispatcher.deliver(marker)
    setup.dispatcher.deliver(Ev("Marker", channel="call-b"))

    assert (await a.seen.wait_len(3))[0] == enters
    assert (await b.seen.wait_len(2))[0] == enters
    assert len(a.seen.items) == 3  # the second ChannelEnteredBridge came once, not twice


async def test_posted_items_share_the_mailbox_order_with_events(setup: Setup) -> None:
    actor = RecordingActor("call-a")
    setup.dispatcher.register(actor)

    setup.dispatcher.deliver(Ev("StasisStart", channel="call-a"))
    assert setup.dispatcher.post("call-a", "menu-timeout")
    setup.dispatcher.deliver(Ev("ChannelDtmfReceived", channel="call-a"))

    seen = await actor.seen.wait_len(3)
    assert [getattr(item, "type", item) for item in seen] == ["StasisStart", "menu-timeout",
                                                              "ChannelDtmfReceived"]
    assert not setup.dispatcher.post("call-gone", "offer")


async def test_unregister_drains_the_mailbox_then_stops_routing(setup: Setup) -> None:
    release = asyncio.Event()

    async def slow(item: object) -> None:
        await release.wait()

    actor = RecordingActor("call-a", on_item=slow)
    setup.dispatcher.register(actor)
    setup.dispatcher.route("adv-a", "call-a")
    for seq in (1, 2, 3):
        setup.dispatcher.deliver(Ev("ChannelDtmfReceived", channel="call-a", seq=seq))

    unregistering = asyncio.ensure_future(setup.dispatcher.unregister("call-a"))
    try:
        await actor.seen.wait_len(1)
        late = Ev("ChannelDestroyed", channel="adv-a")
        setup.dispatcher.deliver(late)
        release.set()
        await asyncio.wait_for(unregistering, TIMEOUT_S)
    finally:
        unregistering.cancel()

    assert [e.seq for e in actor.seen.items] == [1, 2, 3]
    assert setup.unrouted.items == [late]
    assert "call-a" not in setup.dispatcher
    assert setup.dispatcher.actor_for("adv-a") is None


async def test_an_actor_can_unregister_itself(setup: Setup) -> None:
    done = asyncio.Event()

    async def finish_on_stasis_end(item: object) -> None:
        if getattr(item, "type", None) == "StasisEnd":
            await setup.dispatcher.unregister("call-a")
            done.set()

    actor = RecordingActor("call-a", on_item=finish_on_stasis_end)
    setup.dispatcher.register(actor)

    setup.dispatcher.deliver(Ev("StasisEnd", channel="call-a"))

    await asyncio.wait_for(done.wait(), TIMEOUT_S)
    assert "call-a" not in setup.dispatcher


async def test_registration_mistakes_are_refused(setup: Setup) -> None:
    setup.dispatcher.register(RecordingActor("call-a"))

    with pytest.raises(ValueError):
        setup.dispatcher.register(RecordingActor("call-a"))
    with pytest.raises(KeyError):
        setup.dispatcher.route("adv-x", "call-unknown")
