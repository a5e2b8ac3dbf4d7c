"""Redis restarted (its data gone) or out of reach (its data kept), with calls
bridged and waiting, over real SIP through the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

import ivr.call
from ivr.app import Running, running_engine
from ivr.ari.rest import AriRest
from ivr.sandbox.control import Sandbox
from ivr.sandbox.phones_client import PhonesClient
from ivr.sandbox.proxy import TcpProxy
from ivr.settings import Settings
from routing import Keys
from routing.scripts import script_source

from .conftest import (
    BACKUP_PHONE,
    PHONES,
    TEST_PREFIX,
    EngineApi,
    eventually,
    metric_value,
    sandbox_queues,
    settings_with,
)
from .test_call_flow import ROUTE_S, TOLL_FREE, answered_at, rang

TIP = "12"
CALLERS = ["+15555550111", "+15555550112", "+15555550113"]
MUSIC_RMS = 0.01
OUTAGE_HOLD_S = 6
RING_ACROSS_RESTART_S = 6


async def a_call_in_state(engine: Running, state: str) -> str | None:
    """A call the engine holds that Redis has in `state`."""
    for key in list(engine.engine.calls):
        record = await engine.store.get_call(key)
        if record and record.get("state") == state:
            return key
    return None


async def the_bridged_call(engine: Running) -> str | None:
    return await a_call_in_state(engine, "bridged")


async def waiting_count(engine: Running, n: int) -> bool:
    return len(await engine.store.waiting("english")) == n


async def bridge_of(ari: AriRest, call_key: str):
    for bridge in await ari.list_bridges():
        if call_key in bridge.channels and len(bridge.channels) == 2:
            return bridge
    return None


async def advocate_state(engine: Running, advocate_id: str, *states: str) -> bool:
    advocate = await engine.store.get_advocate(advocate_id)
    return advocate is not None and str(advocate.state) in states


def backup_rang_for(number: str):
    # The backup call centre is the one phone that sees the caller's number:
    # the dialplan fallback dials it from the caller's own channel.
    digits = number.lstrip("+")
    return lambda e: e["number"] == BACKUP_PHONE and e["kind"] == "ringing" and digits in e["caller_id_seen"]


async def at_backup(phones: PhonesClient, number: str, timeout_s: float, what: str) -> None:
    ring = await phones.wait_for(backup_rang_for(number), timeout_s, what=f"{what} ringing the backup")
    await phones.wait_for(lambda e: e["call"] == ring["call"] and e["kind"] == "answered", 5,
                          what=f"the backup answering {what}")


async def test_redis_restart_keeps_the_bridged_call_and_the_waiting_callers_places(
        sandbox: Sandbox, engine: Running, api: EngineApi, phones: PhonesClient, ari: AriRest):
    await api.act("ana", "login")
    await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
    ana_ring = await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")
    await phones.wait_for(answered_at(PHONES["ana"]), 10, what="ana answering")
    bridged = await eventually(lambda: the_bridged_call(engine), 5, "the first call bridged")
    for n, caller in enumerate(CALLERS[1:], start=1):
        await phones.place_call(caller, TOLL_FREE, dtmf=TIP)
        await eventually(lambda: waiting_count(engine, n), ROUTE_S, f"{n} calls waiting")
    line = await engine.store.waiting("english")
    await api.act("luis", "away")  # on shift, not taking calls yet
    await eventually(lambda: _seen(engine, "luis", "away"), 5, "the engine's copy of luis away")

    await asyncio.to_thread(sandbox.restart_redis)

    await eventually(lambda: _rebuilt(engine), 10, "the engine rebuilding routing")
    # Asterisk kept the bridge; Redis has everything back as the engine knew it.
    assert await bridge_of(ari, bridged) is not None
    await eventually(lambda: _line_is(engine, line), 5, "the waiting calls back in their order")
    ana = await engine.store.get_advocate("ana")
    assert (ana.state, ana.call_id) == ("on_call", bridged)
    assert (await engine.store.get_call(bridged))["state"] == "bridged"
    assert await advocate_state(engine, "luis", "away")

    # Routing goes on: the older waiting caller goes first, to luis.
    await api.act("luis", "available")
    await phones.wait_for(answered_at(PHONES["luis"]), 10, what="luis answering")
    assert (await engine.store.get_call(line[0]))["advocate"] == "luis"
    # Ana ends her call, which Redis recorded before the restart: after her
    # wrap-up she takes the last caller.
    await phones.mark()
    await phones.hangup(ana_ring["call"])
    await phones.wait_for(answered_at(PHONES["ana"]), 15, what="ana answering the last caller")
    assert (await engine.store.get_call(line[1]))["advocate"] == "ana"


# The rebuild comes well within the ring: a probe every 0.2 s.
@pytest.mark.parametrize("engine_settings", [{"redis": {"probe_s": 0.2},
                                              "routing": {"advocate_ring_s": RING_ACROSS_RESTART_S + 5}}],
                         indirect=True)
async def test_a_redis_restart_while_the_advocate_rings_keeps_that_ring(
        sandbox: Sandbox, engine: Running, api: EngineApi, phones: PhonesClient, redis_client: aioredis.Redis):
    # Recovery writes the ringing call back without its offer's time, and
    # the offers sweep after a resubscription re-delivers the offer stamped
    # otherwise. It is the ring in progress, not another offer to decline:
    # declining it would cancel the ring in Redis while ana's phone rings.
    await phones.script(PHONES["ana"], answer_after_s=RING_ACROSS_RESTART_S)
    await api.act("ana", "login")
    await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
    await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")

    await asyncio.to_thread(sandbox.restart_redis)

    await eventually(lambda: _rebuilt(engine), 10, "the engine rebuilding routing")
    await eventually(lambda: a_call_in_state(engine, "offered"), 5, "the ringing call written back")
    # The engine resubscribes once Redis is back, before or after the call is
    # written back; a second resubscription sweeps it for certain.
    await redis_client.connection_pool.disconnect()  # the test's own connections died with Redis
    await eventually(lambda: _subscribed(redis_client), 5, "the engine subscribed")
    assert await redis_client.client_kill_filter(_type="pubsub") >= 1
    await eventually(lambda: _subscribed(redis_client), 5, "the engine subscribed again")
    await phones.wait_for(answered_at(PHONES["ana"]), RING_ACROSS_RESTART_S + 5, what="ana answering")
    call = await eventually(lambda: the_bridged_call(engine), 5, "the call bridged")
    ana = await engine.store.get_advocate("ana")
    assert (ana.state, ana.call_id) == ("on_call", call)
    assert len([e for e in await phones.seen_until_now() if rang(PHONES["ana"])(e)]) == 1


# The test probes Redis itself: the engine's own probe waits a minute.
@pytest.mark.parametrize("engine_settings", [{"redis": {"probe_s": 60},
                                              "routing": {"queues": sandbox_queues(english={"max_wait_s": 3})}}],
                         indirect=True)
async def test_a_maximum_wait_due_while_redis_had_lost_the_call_comes_once_the_call_is_back(
        engine: Running, phones: PhonesClient, redis_client: aioredis.Redis):
    # Redis lost its data (as in a restart without persistence) and the
    # engine has not noticed yet: the maximum wait falls due, and Redis
    # answers that the call is not waiting. The call is written back at the
    # rebuild; its maximum wait must then come, not wait for a ring.
    await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
    await eventually(lambda: waiting_count(engine, 1), ROUTE_S, "the call waiting")
    (call,) = await engine.store.waiting("english")
    arrival_s = int((await engine.store.get_call(call))["arrival_ms"]) / 1000
    await redis_client.flushdb()
    # A clock, not a condition: the maximum wait is a time.
    await asyncio.sleep(max(0.0, arrival_s + 3 + 0.5 - time.time()))
    assert not any(backup_rang_for(CALLERS[0])(e) for e in await phones.seen_until_now())

    await engine.recovery.probe()  # Redis's data lost: the rebuild
    assert engine.recovery.rebuilds == 1
    await at_backup(phones, CALLERS[0], 10, "the caller past the maximum wait")


@pytest.mark.parametrize("engine_settings", [{"routing": {"queues": sandbox_queues(english={"max_wait_s": 2})}}],
                         indirect=True)
async def test_a_waiting_call_redis_lost_alone_goes_to_the_backup_rather_than_music_without_end(
        engine: Running, phones: PhonesClient, redis_client: aioredis.Redis, http: aiohttp.ClientSession,
        ari: AriRest, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ivr.call, "OFFER_LOST_S", 1.0)  # how long a refused step waits for its ring
    await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
    await eventually(lambda: waiting_count(engine, 1), ROUTE_S, "the call waiting")
    (call,) = await engine.store.waiting("english")
    # The call alone is lost (a failover to a replica that never had it):
    # Redis keeps its epoch, so no rebuild puts it back. Its maximum wait is
    # refused as "not waiting", as for a call whose offer is on its way.
    keys = Keys(TEST_PREFIX)
    await redis_client.delete(keys.call(call))
    await redis_client.zrem(keys.waiting("english"), call)

    # Handed to the dialplan fallback, which other tests follow to the backup
    # phone (after its bilingual "stay on the line", 8 s more here).
    async def in_the_fallback():
        return (await ari.get_channel(call)).dialplan.context == "hotline-fallback"
    await eventually(in_the_fallback, 2 + 2 * 1.0 + 5, "the caller Redis lost handed to the fallback")
    assert engine.recovery.rebuilds == 0
    page = await EngineApi(http, engine.http_port).metrics()
    assert metric_value(page, "hotline_fallbacks_total", reason="routing_lost") == 1


@pytest.fixture
def engine_settings(request: pytest.FixtureRequest) -> Settings:
    # param: more settings for one test, section by section.
    more = getattr(request, "param", {})
    return settings_with(**{**more, "redis": {"outage_hold_s": OUTAGE_HOLD_S, **more.get("redis", {})}})


async def test_while_redis_is_down_new_callers_reach_the_backup_and_waiting_callers_are_held_then_sent_there(
        sandbox: Sandbox, engine: Running, api: EngineApi, phones: PhonesClient):
    waiting = await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
    await eventually(lambda: waiting_count(engine, 1), ROUTE_S, "a call waiting")

    await asyncio.to_thread(sandbox.stop_redis)
    try:
        await eventually(lambda: _redis_down(engine), 5, "the engine noticing Redis gone")
        await phones.place_call(CALLERS[1], TOLL_FREE, dtmf=TIP)
        await at_backup(phones, CALLERS[1], ROUTE_S, "the new caller")
        # The waiting caller is still on hold, hearing music, not dead air...
        assert (await phones.call(waiting["id"]))["state"] == "answered"
        assert not any(backup_rang_for(CALLERS[0])(e) for e in phones.seen)
        assert await phones.listen(waiting["id"], seconds=1) > MUSIC_RMS
        # ...until the outage outlasts the hold: then the backup destination too.
        await at_backup(phones, CALLERS[0], OUTAGE_HOLD_S + 10, "the held caller")
    finally:
        await asyncio.to_thread(sandbox.start_redis)

    await eventually(lambda: _rebuilt(engine), 10, "the engine rebuilding routing")
    await api.act("ana", "login")
    await phones.place_call(CALLERS[2], TOLL_FREE, dtmf=TIP)
    await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering a call after the outage")


@contextlib.asynccontextmanager
async def engine_behind(proxy: TcpProxy, http: aiohttp.ClientSession) -> AsyncIterator[tuple[Running, EngineApi]]:
    # Copied, not overridden: the environment (a sandbox on other ports) wins over overrides.
    base = settings_with()
    settings = base.model_copy(update={"redis": base.redis.model_copy(update={"url": f"redis://{proxy.url_host}/0"})})
    async with running_engine(settings) as running:
        await eventually(lambda: _ari_up(running), 10, "engine connected to ARI")
        yield running, EngineApi(http, running.http_port)


async def test_redis_out_of_reach_and_back_ends_in_redis_the_calls_that_ended_meanwhile(
        settings: Settings, phones: PhonesClient, http: aiohttp.ClientSession):
    async with TcpProxy("127.0.0.1", settings.sandbox.redis_port) as proxy, \
            engine_behind(proxy, http) as (engine, api):
        await api.act("ana", "login")
        await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
        ana_ring = await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")
        await phones.wait_for(answered_at(PHONES["ana"]), 10, what="ana answering")
        bridged = await eventually(lambda: the_bridged_call(engine), 5, "the call bridged")
        left = await phones.place_call(CALLERS[1], TOLL_FREE, dtmf=TIP)
        await eventually(lambda: waiting_count(engine, 1), ROUTE_S, "a call waiting")
        gone = (await engine.store.waiting("english"))[0]

        await proxy.block()
        await eventually(lambda: _redis_down(engine), 5, "the engine noticing Redis out of reach")
        # Both calls end while nothing can be written to Redis.
        await phones.hangup(ana_ring["call"])
        await phones.hangup(left["id"])
        await eventually(lambda: _holds_nothing(engine), 10, "both calls over in the engine")
        proxy.unblock()

        await eventually(lambda: _rebuilt(engine), 10, "the engine back on Redis")
        assert (await eventually(lambda: _ended(engine, bridged), 5, "the bridged call ended in Redis"))
        assert (await engine.store.get_call(gone))["state"] == "ended"
        assert await engine.store.waiting("english") == []
        await eventually(lambda: advocate_state(engine, "ana", "available"), 5, "ana available after wrap-up")

        await phones.mark()
        await phones.place_call(CALLERS[2], TOLL_FREE, dtmf=TIP)
        await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering the next call")


async def test_a_late_reply_to_the_enqueue_rings_the_advocate_once(
        settings: Settings, phones: PhonesClient, http: aiohttp.ClientSession):
    # The engine's Redis client gives up on a reply after a second
    # (socket_timeout), and the store sends the enqueue, alone of the
    # scripts, again. Its second run finds the call queued and makes no
    # offer; the first run's offer comes by pub/sub. The caller must be
    # neither sent to the fallback nor rung twice.
    async with TcpProxy("127.0.0.1", settings.sandbox.redis_port) as proxy, \
            engine_behind(proxy, http) as (engine, api):
        await api.act("ana", "login")
        await phones.mark()
        # EVALSHA names its script by the SHA-1 of the source: the enqueue's request, no other.
        proxy.delay_reply(hashlib.sha1(script_source("enqueue").encode()).hexdigest().encode(), 1.5)
        await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
        await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S + 5, what="ana answering")
        call = await eventually(lambda: the_bridged_call(engine), 5, "the call bridged")
        assert proxy.delayed == 1, "the enqueue's reply was not held back"

        seen = await phones.seen_until_now()
        assert len([e for e in seen if rang(PHONES["ana"])(e)]) == 1
        assert not [e for e in seen if backup_rang_for(CALLERS[0])(e)]
        assert await engine.store.waiting("english") == []
        assert (await engine.store.get_call(call))["advocate"] == "ana"


async def _subscribed(redis_client: aioredis.Redis) -> bool:
    return bool(await redis_client.client_list(_type="pubsub"))


async def _seen(engine: Running, advocate_id: str, state: str) -> bool:
    return engine.recovery.advocates_seen.get(advocate_id) == state


async def _rebuilt(engine: Running) -> bool:
    return engine.recovery.rebuilds >= 1 and engine.recovery.redis_up


async def _redis_down(engine: Running) -> bool:
    return not engine.recovery.redis_up


async def _ari_up(engine: Running) -> bool:
    return engine.stream.connected


async def _line_is(engine: Running, line: list[str]) -> bool:
    return await engine.store.waiting("english") == line


async def _holds_nothing(engine: Running) -> bool:
    return not engine.engine.calls


async def _ended(engine: Running, call_key: str) -> bool:
    record = await engine.store.get_call(call_key)
    return record is not None and record["state"] == "ended"
