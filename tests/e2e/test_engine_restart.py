"""An engine killed with SIGKILL, replaced by a new one: Asterisk kept the calls,
the new engine adopts them from where Redis says they were."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ivr.adoption import GHOST_SWEEP_S, HEARTBEAT_TTL_S
from ivr.app import running_engine
from ivr.ari.errors import AriNotFound
from ivr.ari.rest import AriRest
from ivr.call_states import InMenu
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.phones_client import PhonesClient

from .ari_proxy import AriProxy
from .conftest import (
    BACKUP_PHONE,
    PHONES,
    TEST_PREFIX,
    EngineApi,
    eventually,
    sandbox_queues,
    settings_with,
)
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at, rang
from .test_relay import RELAY_PROVIDER



def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Not a fixed number: several sandboxes run these tests on one machine, and
# a fixed port let one run's health check reach another run's engine.
DOOMED_PORT = _free_port()
# The maximum wait of a call adopted while ringing: past the ring's end.
ADOPTED_MAX_WAIT_S = 14


async def start_doomed_engine() -> asyncio.subprocess.Process:
    env = {**os.environ, "HOTLINE_REDIS__KEY_PREFIX": TEST_PREFIX, "HOTLINE_ENGINE__INSTANCE_ID": "doomed",
           "HOTLINE_ENGINE__HTTP_PORT": str(DOOMED_PORT), "HOTLINE_ENGINE__LOG_LEVEL": "WARNING",
           "HOTLINE_ROUTING__ADVOCATE_RING_S": "3", "HOTLINE_ROUTING__WRAP_UP_S": "1"}
    hotline = os.path.join(os.path.dirname(sys.executable), "hotline")  # the console script
    return await asyncio.create_subprocess_exec(
        hotline, "--config", str(SANDBOX_CONFIG), "run", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


@contextlib.asynccontextmanager
async def doomed_engine(http: aiohttp.ClientSession) -> AsyncIterator[EngineApi]:
    """An engine in a process of its own, SIGKILLed when the block ends."""
    doomed = await start_doomed_engine()
    try:
        await eventually(lambda: healthy(http, DOOMED_PORT), 20, "the first engine up")
        yield EngineApi(http, DOOMED_PORT)
    finally:
        if doomed.returncode is None:
            doomed.send_signal(signal.SIGKILL)
        await doomed.wait()


async def healthy(http: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def test_killed_engine_leaves_no_call_behind_the_next_one_adopts_them_in_place(
        phones: PhonesClient, ari: AriRest, http: aiohttp.ClientSession, redis_client):
    async with doomed_engine(http) as first:
        await first.act("ana", "login")
        connected = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
        await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering")
        await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
        await asyncio.sleep(0.5)  # two waiting callers with distinct arrivals
        await phones.place_call(CALLER, TOLL_FREE, dtmf="11")  # a crisis: goes first
        await phones.place_call(CALLER, TOLL_FREE, dtmf="12")

        async def three_waiting_for_the_first_engine():
            return await redis_client.zcard(f"{TEST_PREFIX}q:english:waiting") == 3
        await eventually(three_waiting_for_the_first_engine, ROUTE_S, "three callers waiting")

    async with running_engine(settings_with()) as engine:
        async def three_waiting():
            waiting = await engine.store.waiting("english")
            return waiting if len(waiting) == 3 else None
        order = await eventually(three_waiting, 5, "the three callers still waiting")

        await eventually(lambda: _holds_calls(engine, 4), 10, "the new engine holding all four calls")
        records = {c: await engine.store.get_call(c) for c in order}
        assert [records[c]["call_type"] for c in order] == ["crisis", "tip", "tip"]
        assert {r["owner"] for r in records.values()} == {engine.engine.services.config.owner}
        # The connected call is still bridged: Asterisk held it while no engine ran.
        assert (await phones.call(connected["id"]))["state"] == "answered"

        api = EngineApi(http, engine.http_port)
        for advocate in ("luis", "mei", "sam"):
            await api.act(advocate, "login")
        for number in (PHONES["luis"], PHONES["mei"], PHONES["sam"]):
            await phones.wait_for(answered_at(number), 10, what=f"{number} answering an adopted call")

        # The advocate of the adopted connected call hangs up: the new engine
        # ends it and puts her in wrap-up, as if it had connected her itself.
        ana_call = next(e for e in phones.seen if answered_at(PHONES["ana"])(e))
        await phones.hangup(ana_call["call"])
        await phones.wait_for(lambda e: e["call"] == connected["id"] and e["kind"] == "ended", 10,
                              what="the connected caller's call ended with it")

        async def ana_after_the_call():
            _, ana = await api.request("GET", "/advocates/ana", "ana")
            return ana["state"] in ("wrap_up", "available")
        await eventually(ana_after_the_call, 10, "ana in wrap-up, then available")
        assert await engine.store.waiting("english") == []

    rings = Counter(e["number"] for e in phones.seen if e["kind"] == "ringing" and e["direction"] == "in")
    assert all(n == 1 for n in rings.values()), rings  # nobody rang twice


async def test_caller_who_hangs_up_while_no_engine_runs_is_cleared_and_holds_no_place(
        phones: PhonesClient, http: aiohttp.ClientSession, redis_client):
    async with doomed_engine(http):
        call = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")

        async def waiting_for_the_first_engine():
            return await redis_client.zcard(f"{TEST_PREFIX}q:english:waiting") == 1
        await eventually(waiting_for_the_first_engine, ROUTE_S, "the caller waiting")
    await phones.hangup(call["id"])  # nobody is listening for this

    async with running_engine(settings_with()) as engine:
        async def cleared():
            return await engine.store.waiting("english") == []
        # After the dead engine's heartbeat runs out, a sweep clears the call.
        await eventually(cleared, HEARTBEAT_TTL_S + GHOST_SWEEP_S + 5, "the ghost call cleared")
        api = EngineApi(http, engine.http_port)
        await api.act("luis", "login")
        await asyncio.sleep(1)  # a ghost offer would ring luis within this
        _, luis = await api.request("GET", "/advocates/luis", "luis")
        assert luis["state"] == "available"
        assert not [e for e in await phones.seen_until_now() if e["kind"] == "ringing" and e["number"] == PHONES["luis"]]


async def test_a_caller_adopted_in_the_menu_is_heard_at_once_the_dead_engines_prompt_stopped(
        phones: PhonesClient, ari: AriRest, http: aiohttp.ClientSession, caplog):
    async with doomed_engine(http):
        # Spanish chosen: the dead engine's last prompt is the call-type menu
        # (23 s), its second playback on the call; the new engine's own
        # numbering starts again, so stopping its own does not stop that one.
        call = await phones.place_call(CALLER, TOLL_FREE, dtmf="2")
        await eventually(lambda: _playing(ari, 2), 10, "the first engine playing the call-type menu")

    async with running_engine(settings_with()) as engine:
        actor = await eventually(lambda: _in_the_menu(engine), 10, "the call adopted in the menu")
        # The menu starts again where their channel's language says: the
        # Spanish greeting and call-type menu, no language menu. Its prompt
        # plays at once, not queued behind the dead engine's.
        assert actor.language == "es"

        async def own_prompt_playing():
            playback = actor.state.playback
            try:
                return playback is not None and (await ari.get_playback(playback)).state == "playing"
            except AriNotFound:
                return False  # its id is chosen before Asterisk has the request
        await eventually(own_prompt_playing, 3, "the new engine's prompt playing")
        await phones.send_dtmf(call["id"], "1")  # crisis, chosen in the Spanish menu

        async def waiting_in_spanish():
            return actor.key in await engine.store.waiting("spanish") or None
        await eventually(waiting_in_spanish, 10, "the caller waiting in the Spanish line")
        record = await engine.store.get_call(actor.key)
        assert (record["call_type"], record["path"].split()[0]) == ("crisis", "entry:spanish")
        # Kept as on any call: the caller's HMAC (never the number) and the SIP Call-ID.
        assert record["caller_ref"] and record["sip_call_id"]
        assert "AriUnavailable" not in caplog.text and "holds up" not in caplog.text


@pytest.mark.parametrize("number, dtmf, playback, playing", [
    (RELAY_PROVIDER, "", 1, "the relay greeting"),  # relay known by the number: the relay entry
    (CALLER, "4", 2, "the call-type menu"),  # "I am calling through a relay service"
], ids=["known-by-number", "chosen-in-the-menu"])
async def test_a_relay_caller_adopted_in_the_menu_keeps_the_relay_menu_and_line(
        number, dtmf, playback, playing, phones: PhonesClient, ari: AriRest, http: aiohttp.ClientSession):
    async with doomed_engine(http):
        call = await phones.place_call(number, TOLL_FREE, dtmf=dtmf)
        await eventually(lambda: _playing(ari, playback), 10, f"the first engine playing {playing}")

    async with running_engine(settings_with()) as engine:
        actor = await eventually(lambda: _in_the_menu(engine), 10, "the call adopted in the menu")
        assert actor.relay
        await phones.send_dtmf(call["id"], "2")  # a tip

        async def waiting_in_the_relay_line():
            return actor.key in await engine.store.waiting("relay") or None
        await eventually(waiting_in_the_relay_line, 15, "the caller waiting in the relay line")
        record = await engine.store.get_call(actor.key)
        # The relay entry (relay menu timeouts, no language menu) and the relay line.
        assert (record["relay"], record["path"].split()[0]) == ("1", "entry:relay")


async def _playing(ari: AriRest, number: int) -> bool:
    """Whether the toll-free caller's `number`th playback is playing."""
    hotline = [c.id for c in await ari.list_channels() if c.dialplan.app_data.startswith(f"hotline,{TOLL_FREE},")]
    try:
        return bool(hotline) and (await ari.get_playback(f"{hotline[0]}-pb{number}")).state == "playing"
    except AriNotFound:
        return False


async def _in_the_menu(engine):
    actors = list(engine.engine.calls.values())
    return actors[0] if actors and isinstance(actors[0].state, InMenu) else None


async def test_a_call_adopted_ringing_keeps_its_maximum_wait_after_the_ring_is_missed(
        phones: PhonesClient, http: aiohttp.ClientSession, caplog):
    await phones.script(PHONES["ana"], never_answer=True)
    async with doomed_engine(http) as first:
        await first.act("ana", "login")
        await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
        await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")

    english = {"max_wait_s": ADOPTED_MAX_WAIT_S}
    async with running_engine(settings_with(routing={"queues": sandbox_queues(english=english)})) as engine:
        await eventually(lambda: _holds_calls(engine, 1), 10, "the new engine holding the call")
        # Ana's ring ends unanswered; the call is back in line, with its plan:
        # at its maximum wait, the backup destination.
        await phones.wait_for(answered_at(BACKUP_PHONE), ADOPTED_MAX_WAIT_S + 10,
                              what="the backup destination answering")
    # Ana's ringing leg was adopted as the call's ring, not as a caller of its own.
    adopted = [r.getMessage() for r in caplog.records if "adopted" in r.getMessage()]
    assert len(adopted) == 1 and adopted[0].endswith("adopted in state offered"), adopted
    assert len([e for e in phones.seen if rang(PHONES["ana"])(e)]) == 1


async def _holds_calls(engine, count: int) -> bool:
    return len(engine.engine.calls) == count


async def a_dead_engines_connected_and_waiting_callers(http: aiohttp.ClientSession, phones: PhonesClient,
                                                      redis_client) -> tuple[dict, str]:
    """An engine SIGKILLed while ana talks with one caller and another waits:
    the connected caller's call (the phones' view) and the waiting call's id."""
    async with doomed_engine(http) as first:
        await first.act("ana", "login")
        connected = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
        await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering")
        await phones.place_call(CALLER, TOLL_FREE, dtmf="12")

        async def waiting_for_the_first_engine():
            return await redis_client.zcard(f"{TEST_PREFIX}q:english:waiting") == 1
        await eventually(waiting_for_the_first_engine, ROUTE_S, "the second caller waiting")
        (waiting,) = await redis_client.zrange(f"{TEST_PREFIX}q:english:waiting", 0, -1)
    return connected, waiting


async def test_calls_adopted_waiting_and_connected_are_written_back_when_redis_loses_its_data(
        phones: PhonesClient, http: aiohttp.ClientSession, redis_client):
    connected, _ = await a_dead_engines_connected_and_waiting_callers(http, phones, redis_client)

    # The test probes Redis itself: the engine's own probe waits a minute.
    async with running_engine(settings_with(redis={"probe_s": 60})) as engine:
        await eventually(lambda: _holds_calls(engine, 2), 10, "the new engine holding both calls")
        (waiting,) = await engine.store.waiting("english")
        arrival_ms = (await engine.store.get_call(waiting))["arrival_ms"]
        await redis_client.flushdb()  # Redis restarted without its data
        await engine.recovery.probe()
        assert engine.recovery.rebuilds == 1

        # Both calls are back as the adopting engine holds them: the waiting
        # caller in line with their arrival and call type, ana still on hers.
        assert await engine.store.waiting("english") == [waiting]
        record = await engine.store.get_call(waiting)
        assert (record["arrival_ms"], record["call_type"], record["state"]) == (arrival_ms, "tip", "waiting")
        api = EngineApi(http, engine.http_port)
        _, ana = await api.request("GET", "/advocates/ana", "ana")
        assert ana["state"] == "on_call"
        await api.act("luis", "login")
        await phones.wait_for(answered_at(PHONES["luis"]), 10, what="luis answering the adopted caller")
    assert (await phones.call(connected["id"]))["state"] == "answered"


async def test_an_adoption_asterisk_cannot_serve_is_tried_again_not_given_up(
        phones: PhonesClient, http: aiohttp.ClientSession, ari_proxy: AriProxy, redis_client,
        monkeypatch: pytest.MonkeyPatch):
    async with doomed_engine(http):
        await phones.place_call(CALLER, TOLL_FREE, dtmf="12")

        async def waiting_for_the_first_engine():
            return await redis_client.zcard(f"{TEST_PREFIX}q:english:waiting") == 1
        await eventually(waiting_for_the_first_engine, ROUTE_S, "the caller waiting")

    # The new engine's first look at its application is refused, as by a busy Asterisk.
    ari_proxy.fail("GET", r"^/ari/applications/hotline$")
    monkeypatch.setenv("HOTLINE_ARI__URL", ari_proxy.url)  # the environment wins over the file
    async with running_engine(settings_with()) as engine:
        await eventually(lambda: _holds_calls(engine, 1), 10, "the caller adopted at the next connection")
        assert ari_proxy.faulted == ["GET /ari/applications/hotline"]
        await EngineApi(http, engine.http_port).act("luis", "login")
        await phones.wait_for(answered_at(PHONES["luis"]), 10, what="luis answering the adopted caller")


async def test_an_engine_that_cannot_start_hands_the_dead_engines_waiting_caller_to_the_backup(
        sandbox, phones: PhonesClient, ari: AriRest, http: aiohttp.ClientSession, redis_client):
    connected, waiting = await a_dead_engines_connected_and_waiting_callers(http, phones, redis_client)

    # The next engine finds Redis down, and gives up after the outage hold.
    await asyncio.to_thread(sandbox.stop_redis)
    try:
        with pytest.raises(SystemExit, match="unavailable at start-up"):
            async with running_engine(settings_with(redis={"outage_hold_s": 1.0, "probe_s": 0.5})):
                pass
        # The dead engine's waiting caller is not left on music with nobody to
        # move them: handed to the dialplan fallback, which other tests follow
        # to the backup phone (after its bilingual "stay on the line")...
        assert (await ari.get_channel(waiting)).dialplan.context == "hotline-fallback"
        # ...and the caller talking with ana still is.
        assert (await phones.call(connected["id"]))["state"] == "answered"
        assert not [e for e in await phones.seen_until_now()
                    if e["call"] == connected["id"] and e["kind"] == "ended"]
    finally:
        await asyncio.to_thread(sandbox.start_redis)
