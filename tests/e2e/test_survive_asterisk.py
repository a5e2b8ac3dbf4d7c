"""Asterisk restarted, or the ARI events WebSocket cut, while the engine runs
with calls bridged, ringing and waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ivr.app import Running, running_engine
from ivr.ari.errors import AriNotFound
from ivr.ari.rest import AriRest
from ivr.sandbox.control import Sandbox
from ivr.sandbox.phones_client import PhonesClient
from ivr.sandbox.proxy import TcpProxy

from .conftest import PHONES, EngineApi, eventually, metric_value, sandbox_queues, settings_with
from .test_call_flow import MUSIC_RMS, ROUTE_S, TOLL_FREE, answered_at, rang
from .test_survive_redis import the_bridged_call, waiting_count

TIP = "12"
CALLERS = ["+15555550121", "+15555550122", "+15555550123", "+15555550124"]


async def test_asterisk_crash_ends_the_calls_it_held_in_redis_and_the_next_call_routes(
        sandbox: Sandbox, engine: Running, api: EngineApi, phones: PhonesClient, ari: AriRest):
    await api.act("ana", "login")
    await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
    await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering")
    bridged = await eventually(lambda: the_bridged_call(engine), 5, "a call bridged")
    await phones.script(PHONES["luis"], never_answer=True)
    await api.act("luis", "login")
    await phones.place_call(CALLERS[1], TOLL_FREE, dtmf=TIP)
    await phones.wait_for(rang(PHONES["luis"]), ROUTE_S, what="luis's phone ringing")
    await phones.place_call(CALLERS[2], TOLL_FREE, dtmf=TIP)
    await eventually(lambda: waiting_count(engine, 1), ROUTE_S, "a call waiting")
    held = list(engine.engine.calls)
    assert len(held) == 3

    # SIGKILL: Asterisk tells nobody; every channel and bridge dies with it.
    await asyncio.to_thread(sandbox.restart_asterisk, crash=True)

    await eventually(lambda: _reconnected_and_idle(engine), 20, "the engine reconnected, holding no call")
    for key in held:
        assert (await engine.store.get_call(key))["state"] == "ended", key
    assert await engine.store.waiting("english") == []
    # Luis's phone rang when Asterisk died: available again, or away if his
    # ring timed out before the engine was back; never left ringing.
    await eventually(lambda: _advocate_in(engine, "luis", "available", "away"), 5, "luis no longer ringing")
    await eventually(lambda: _advocate_in(engine, "ana", "available"), 5, "ana available after wrap-up")
    assert (await engine.store.get_advocate("ana")).call_id is None
    page = await api.metrics()
    assert metric_value(page, "hotline_ari_connected") == 1

    await phones.mark()
    await phones.place_call(CALLERS[3], TOLL_FREE, dtmf=TIP)
    await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering a call after the restart")
    assert await eventually(lambda: the_bridged_call(engine), 5, "the new call bridged") != bridged
    assert len(await ari.list_bridges()) == 1


async def test_cut_event_socket_reconnects_and_ends_the_call_that_hung_up_meanwhile(
        phones: PhonesClient, http: aiohttp.ClientSession):
    async with engine_behind_a_relay() as (proxy, engine):
        api = EngineApi(http, engine.http_port)
        caller = await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
        await eventually(lambda: waiting_count(engine, 1), ROUTE_S, "a call waiting")
        (key,) = engine.engine.calls

        assert await proxy.block(b"/ari/events") == 2  # the events socket, and the requests'
        await eventually(lambda: _disconnected(engine), 5, "the engine noticing the cut")
        await phones.hangup(caller["id"])
        await phones.wait_for(lambda e: e["call"] == caller["id"] and e["kind"] == "ended", 5,
                              what="the caller gone")
        assert key in engine.engine.calls  # the engine heard nothing of it
        proxy.unblock()

        await eventually(lambda: _reconnected_and_idle(engine), 10, "the engine reconnected, holding no call")
        assert (await engine.store.get_call(key))["state"] == "ended"
        assert await engine.store.waiting("english") == []
        page = await api.metrics()
        assert metric_value(page, "hotline_calls_abandoned_total", queue="english", stage="queue",
                            relay="false") == 1
        await api.act("ana", "login")
        await phones.place_call(CALLERS[1], TOLL_FREE, dtmf=TIP)
        await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering the next call")


async def test_cut_event_socket_reconnects_and_ends_the_call_whose_advocate_hung_up_meanwhile(
        phones: PhonesClient, http: aiohttp.ClientSession):
    async with engine_behind_a_relay() as (proxy, engine):
        api = EngineApi(http, engine.http_port)
        await api.act("ana", "login")
        caller = await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
        ana = await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering")
        key = await eventually(lambda: the_bridged_call(engine), 5, "the call bridged")

        assert await proxy.block(b"/ari/events") == 2
        await eventually(lambda: _disconnected(engine), 5, "the engine noticing the cut")
        await phones.hangup(ana["call"])
        await phones.wait_for(lambda e: e["call"] == ana["call"] and e["kind"] == "ended", 5,
                              what="ana's phone hung up")
        proxy.unblock()

        # The caller is not left alone in the bridge: their call ends as
        # when an advocate hangs up, and ana goes through her wrap-up.
        await phones.wait_for(lambda e: e["call"] == caller["id"] and e["kind"] == "ended", 10,
                              what="the caller's call ended")
        await eventually(lambda: _reconnected_and_idle(engine), 5, "the engine holding no call")
        assert (await engine.store.get_call(key))["state"] == "ended"
        await eventually(lambda: _advocate_in(engine, "ana", "available"), 5, "ana available after wrap-up")


async def test_cut_event_socket_reconnects_and_the_music_follows_a_message_that_ended_meanwhile(
        phones: PhonesClient, ari: AriRest):
    english = {"comfort_every_s": 2, "comfort_position": False}
    async with engine_behind_a_relay(routing={"queues": sandbox_queues(english=english)}) as (proxy, engine):
        caller = await phones.place_call(CALLERS[0], TOLL_FREE, dtmf=TIP)
        await eventually(lambda: waiting_count(engine, 1), ROUTE_S, "a call waiting")
        (actor,) = engine.engine.calls.values()
        message = await eventually(lambda: _saying(actor), 10, "a comfort message being said")

        assert await proxy.block(b"/ari/events") == 2
        await eventually(lambda: _disconnected(engine), 5, "the engine noticing the cut")
        await eventually(lambda: _over(ari, message), 20, "the message over, unheard")
        proxy.unblock()

        # Not left in the silence after it: the music, within moments.
        await eventually(lambda: _connected(engine), 10, "the engine reconnected")
        await eventually(lambda: _hears_music(phones, caller["id"]), 5, "the caller hearing music again")


async def _saying(actor) -> str | None:
    return actor.hold.message


async def _over(ari: AriRest, playback_id: str) -> bool:
    try:
        await ari.get_playback(playback_id)
    except AriNotFound:
        return True
    return False


async def _hears_music(phones: PhonesClient, call_id: str) -> bool:
    return await phones.listen(call_id, seconds=1) > MUSIC_RMS


@contextlib.asynccontextmanager
async def engine_behind_a_relay(**overrides: Any) -> AsyncIterator[tuple[TcpProxy, Running]]:
    """An engine connected to ARI through a TCP relay the test can cut."""
    base = settings_with(ari={"reconnect_max_s": 1}, **overrides)
    ari_port = int(base.ari.url.rsplit(":", 1)[1])
    async with TcpProxy("127.0.0.1", ari_port) as proxy:
        # Copied, not overridden: the environment (a sandbox on other ports) wins over overrides.
        config = base.model_copy(update={"ari": base.ari.model_copy(update={"url": f"http://{proxy.url_host}"})})
        async with running_engine(config) as engine:
            await eventually(lambda: _connected(engine), 10, "the engine connected to ARI")
            yield proxy, engine


async def _connected(engine: Running) -> bool:
    return engine.stream.connected and engine.socket_requests.attached


async def _disconnected(engine: Running) -> bool:
    return not engine.stream.connected


async def _reconnected_and_idle(engine: Running) -> bool:
    return engine.stream.connected and not engine.engine.calls


async def _advocate_in(engine: Running, advocate_id: str, *states: str) -> bool:
    advocate = await engine.store.get_advocate(advocate_id)
    return advocate is not None and advocate.state in states
