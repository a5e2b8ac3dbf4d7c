"""Supervisors listening, whispering and barging in, over real SIP.

The simulated phones prove who hears whom: one phone says a 440 Hz tone
(played on its own channel, so it reaches the hotline as that person's
voice) while the others record what they hear. The engine's monitor record
says which snoop directions it asked Asterisk for; ARI shows the snoop
channel and who it is bridged with.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from ivr.app import running_engine
from ivr.ari.errors import AriNotFound
from ivr.ari.rest import AriRest
from ivr.monitoring import Mode, MonitorRecord
from ivr.sandbox.phones_client import PhonesClient
from routing.audit import AuditEntry

from .conftest import PHONES, EngineApi, eventually, metric_value, settings_with
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at
from .test_engine_restart import doomed_engine

SUPERVISOR = "sam"
TONE = "tone:440"
HEARD_RMS = 0.02  # the tone measures about 0.1..0.2 wherever it is heard
SILENT_RMS = 0.005  # silence on a loopback RTP path measures 0.000
ARRANGE_S = 10  # POST to the supervisor's phone answered and bridged


@dataclass(frozen=True)
class LiveCall:
    hotline: str  # the engine's call id (the caller's channel on the hotline side)
    caller: str  # the caller's phone (phones app channel)
    advocate: str  # the advocate's phone


@dataclass(frozen=True)
class Supervised:
    record: MonitorRecord
    phone: str  # the supervisor's phone


async def connected(engine, api: EngineApi, phones: PhonesClient, advocate: str = "ana") -> LiveCall:
    await api.act(advocate, "login")
    caller = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    answered = await phones.wait_for(answered_at(PHONES[advocate]), ROUTE_S, what=f"{advocate} answering")
    hotline_call = next(iter(engine.engine.calls))

    async def bridged():
        return (await engine.store.get_call(hotline_call) or {}).get("state") == "bridged"
    await eventually(bridged, 5, "the call recorded as connected")
    return LiveCall(hotline_call, caller["id"], answered["call"])


def record_of(engine, call: LiveCall) -> MonitorRecord | None:
    actor = engine.engine.calls.get(call.hotline)
    return actor.monitor_record if actor is not None else None


async def arranged(engine, ari: AriRest, call: LiveCall, mode: Mode) -> MonitorRecord:
    """The monitor record once ARI shows the supervisor placed for ``mode``."""
    async def probe():
        record = record_of(engine, call)
        if record is None or record.mode != mode or not record.answered or record.bridge is None:
            return None
        try:
            bridge = await ari.get_bridge(record.bridge)
        except AriNotFound:
            return None
        if mode is Mode.BARGE:
            return record if record.leg in bridge.channels and call.hotline in bridge.channels else None
        if record.snoop is None or set(bridge.channels) != {record.leg, record.snoop}:
            return None
        snoop = await ari.get_channel(record.snoop)  # the snoop channel exists in Asterisk...
        # ...created by the request that asked for the record's directions.
        assert snoop.dialplan.app_data == f"hotline,snoop,{call.hotline},{record.spy},{record.whisper}"
        return record
    return await eventually(probe, ARRANGE_S, f"the supervisor placed to {mode}")


async def monitor(engine, api: EngineApi, phones: PhonesClient, ari: AriRest, call: LiveCall,
                  mode: Mode) -> Supervised:
    status, body = await api.request("POST", f"/calls/{call.hotline}/monitor", SUPERVISOR, json={"mode": mode})
    assert status == 202, body
    phone = await phones.wait_for(answered_at(PHONES[SUPERVISOR]), ARRANGE_S, what="the supervisor answering")
    return Supervised(await arranged(engine, ari, call, mode), phone["call"])


async def levels_while(phones: PhonesClient, speaker: str, listeners: dict[str, str]) -> dict[str, float]:
    """What each listener hears (RMS) while ``speaker`` says the tone."""
    playback = await phones.play(speaker, TONE)
    try:
        heard = await asyncio.gather(*(phones.listen(channel, 2) for channel in listeners.values()))
    finally:
        await phones.stop_playback(playback)
    return dict(zip(listeners, heard))


async def snoop_gone(ari: AriRest, phones: PhonesClient, call: LiveCall, snoop: str) -> None:
    """Wait for Asterisk to destroy a hung-up snoop channel.

    A snoop leaves its bridge and the app at once, but Asterisk frees it only
    when its audiohook is next run, i.e. when audio passes the advocate's leg.
    Real phones send audio all the time; the simulated ones are silent, so
    the caller says the tone meanwhile.
    """
    async def gone():
        return snoop not in {c.id for c in await ari.list_channels()}
    playback = await phones.play(call.caller, TONE)
    try:
        await eventually(gone, 5, f"snoop {snoop} destroyed")
    finally:
        await phones.stop_playback(playback)


async def audit(engine) -> list[AuditEntry]:
    return list(reversed(await engine.audit.recent()))  # oldest first


async def test_listening_supervisor_hears_caller_and_advocate_and_nobody_hears_them(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await connected(engine, api, phones)

    supervised = await monitor(engine, api, phones, ari, call, Mode.LISTEN)

    record = supervised.record
    assert (record.supervisor, record.spy, record.whisper) == (SUPERVISOR, "both", "none")
    assert record.bridge != f"{call.hotline}-bridge"  # a bridge of their own, not the call's
    levels = await levels_while(phones, supervised.phone, {"caller": call.caller, "advocate": call.advocate})
    assert levels["caller"] < SILENT_RMS and levels["advocate"] < SILENT_RMS, levels
    assert (await levels_while(phones, call.caller, {"supervisor": supervised.phone}))["supervisor"] > HEARD_RMS
    assert (await levels_while(phones, call.advocate, {"supervisor": supervised.phone}))["supervisor"] > HEARD_RMS
    (entry,) = await audit(engine)
    assert (entry.supervisor, entry.by, entry.call, entry.action, entry.mode) == (
        SUPERVISOR, SUPERVISOR, call.hotline, "start", "listen")
    assert metric_value(await api.metrics(), "hotline_supervisor_actions_total", mode="listen") == 1


async def test_whispering_supervisor_is_heard_by_the_advocate_only(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await connected(engine, api, phones)

    supervised = await monitor(engine, api, phones, ari, call, Mode.WHISPER)

    assert (supervised.record.spy, supervised.record.whisper) == ("both", "out")
    levels = await levels_while(phones, supervised.phone, {"caller": call.caller, "advocate": call.advocate})
    assert levels["advocate"] > HEARD_RMS and levels["caller"] < SILENT_RMS, levels
    assert (await levels_while(phones, call.caller, {"supervisor": supervised.phone}))["supervisor"] > HEARD_RMS


async def test_barging_supervisor_joins_the_calls_bridge_and_everyone_hears_everyone(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await connected(engine, api, phones)

    supervised = await monitor(engine, api, phones, ari, call, Mode.BARGE)

    record = supervised.record
    assert (record.bridge, record.snoop, record.spy, record.whisper) == (f"{call.hotline}-bridge", None, None, None)
    assert len((await ari.get_bridge(record.bridge)).channels) == 3
    levels = await levels_while(phones, supervised.phone, {"caller": call.caller, "advocate": call.advocate})
    assert levels["caller"] > HEARD_RMS and levels["advocate"] > HEARD_RMS, levels
    assert (await levels_while(phones, call.caller, {"supervisor": supervised.phone}))["supervisor"] > HEARD_RMS


async def test_switching_modes_keeps_the_supervisors_phone_and_replaces_the_snoop(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await connected(engine, api, phones)
    supervised = await monitor(engine, api, phones, ari, call, Mode.WHISPER)
    whisper_snoop = supervised.record.snoop

    for mode in (Mode.BARGE, Mode.LISTEN):
        status, body = await api.request("POST", f"/calls/{call.hotline}/monitor", SUPERVISOR, json={"mode": mode})
        assert (status, body["status"]) == (202, "switching"), body
        record = await arranged(engine, ari, call, mode)
        assert record.leg == supervised.record.leg  # the same phone call, not dialled again

    # Back from whisper (through barge) to listen: the advocate no longer hears the supervisor.
    assert (record.spy, record.whisper) == ("both", "none")
    levels = await levels_while(phones, supervised.phone, {"caller": call.caller, "advocate": call.advocate})
    assert levels["caller"] < SILENT_RMS and levels["advocate"] < SILENT_RMS, levels
    await snoop_gone(ari, phones, call, whisper_snoop)
    assert len((await ari.get_bridge(f"{call.hotline}-bridge")).channels) == 2
    status, body = await api.request("POST", f"/calls/{call.hotline}/monitor", SUPERVISOR, json={"mode": "listen"})
    assert (status, body["status"]) == (200, "unchanged")
    assert [(e.action, e.from_mode, e.mode) for e in await audit(engine)] == [
        ("start", "", "whisper"), ("switch", "whisper", "barge"), ("switch", "barge", "listen")]
    page = await api.metrics()
    assert [metric_value(page, "hotline_supervisor_actions_total", mode=m) for m in Mode] == [1, 1, 1]
    assert (await phones.call(supervised.phone))["state"] == "answered"


async def test_supervisor_hanging_up_leaves_caller_and_advocate_connected(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await connected(engine, api, phones)
    supervised = await monitor(engine, api, phones, ari, call, Mode.LISTEN)

    await phones.hangup(supervised.phone)

    async def session_over():
        return record_of(engine, call) is None and supervised.record.bridge not in {
            b.id for b in await ari.list_bridges()}
    await eventually(session_over, 5, "the session over and the supervisor's bridge gone")
    await snoop_gone(ari, phones, call, supervised.record.snoop)
    assert len((await ari.get_bridge(f"{call.hotline}-bridge")).channels) == 2
    assert (await phones.call(call.caller))["state"] == "answered"
    assert (await phones.call(call.advocate))["state"] == "answered"
    last = (await audit(engine))[-1]
    assert (last.action, last.reason, last.by) == ("ended", "supervisor_hung_up", "engine")
    # And the supervisor may come back.
    await phones.mark()
    await monitor(engine, api, phones, ari, call, Mode.LISTEN)


async def test_call_ending_takes_the_supervisor_snoop_and_bridges_with_it(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await connected(engine, api, phones)
    supervised = await monitor(engine, api, phones, ari, call, Mode.WHISPER)

    await phones.hangup(call.caller)

    async def nothing_left():
        bridges = {b.id for b in await ari.list_bridges()}
        return not await ari.list_channels() and not {f"{call.hotline}-bridge", supervised.record.bridge} & bridges
    await eventually(nothing_left, 5, "every channel and bridge of the call gone")
    assert (await phones.call(supervised.phone))["state"] == "ended"
    last = (await audit(engine))[-1]
    assert (last.action, last.reason, last.by, last.mode) == ("ended", "call_ended", "engine", "whisper")


async def test_stopping_hangs_up_the_supervisor_and_is_audited(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await connected(engine, api, phones)
    supervised = await monitor(engine, api, phones, ari, call, Mode.BARGE)

    status, body = await api.request("DELETE", f"/calls/{call.hotline}/monitor", SUPERVISOR)

    assert (status, body["status"]) == (202, "stopping"), body
    await phones.wait_for(lambda e: e["call"] == supervised.phone and e["kind"] == "ended", 5,
                          what="the supervisor's phone hung up")
    assert len((await ari.get_bridge(f"{call.hotline}-bridge")).channels) == 2
    assert record_of(engine, call) is None
    assert [(e.action, e.mode, e.by) for e in await audit(engine)] == [
        ("start", "barge", SUPERVISOR), ("stop", "barge", SUPERVISOR)]
    assert metric_value(await api.metrics(), "hotline_supervisor_actions_total", mode="stop") == 1
    status, body = await api.request("DELETE", f"/calls/{call.hotline}/monitor", SUPERVISOR)
    assert status == 409 and "nobody is monitoring" in body["error"]


async def test_monitor_requests_the_engine_refuses_say_why(engine, api: EngineApi, phones: PhonesClient):
    waiting = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")  # nobody logged in: it waits
    await eventually(lambda: _waiting(engine), ROUTE_S, "the call waiting")
    hotline_call = next(iter(engine.engine.calls))
    path = f"/calls/{hotline_call}/monitor"

    assert (await api.request("POST", path, "ana", json={"mode": "listen"}))[0] == 403
    assert (await api.request("POST", "/calls/no-such-call/monitor", SUPERVISOR, json={"mode": "listen"}))[0] == 404
    status, body = await api.request("POST", path, SUPERVISOR, json={"mode": "eavesdrop"})
    assert status == 422 and "listen, whisper, barge" in body["error"]
    status, body = await api.request("POST", path, SUPERVISOR, json={"mode": "listen"})
    assert status == 409 and "not connected" in body["error"]
    await phones.hangup(waiting["id"])
    assert await audit(engine) == []


async def _waiting(engine) -> bool:
    return bool(await engine.store.waiting("english"))


async def test_a_supervisor_cannot_monitor_the_call_they_are_taking(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await connected(engine, api, phones, advocate=SUPERVISOR)

    status, body = await api.request("POST", f"/calls/{call.hotline}/monitor", SUPERVISOR, json={"mode": "listen"})

    assert status == 409 and "is the advocate on this call" in body["error"]
    assert record_of(engine, call) is None


async def test_a_new_engine_adopts_the_call_but_not_a_dead_engines_monitoring(
        phones: PhonesClient, ari: AriRest, http: aiohttp.ClientSession):
    async with doomed_engine(http) as first:
        await first.act("ana", "login")
        caller = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
        advocate = await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering")
        (hotline_call,) = [c.id for c in await ari.list_channels()
                           if c.dialplan.app_data.startswith(f"hotline,{TOLL_FREE},")]

        async def bridged():
            return (await first.request("GET", f"/calls/{hotline_call}", SUPERVISOR))[1].get("state") == "bridged"
        await eventually(bridged, 5, "the call connected")
        status, body = await first.request("POST", f"/calls/{hotline_call}/monitor", SUPERVISOR,
                                           json={"mode": "whisper"})
        assert status == 202, body
        supervisor = await phones.wait_for(answered_at(PHONES[SUPERVISOR]), ARRANGE_S, what="sam answering")

        async def snooping():
            return any(c.id.startswith(f"{hotline_call}-mon-") and "-snoop" in c.id for c in await ari.list_channels())
        await eventually(snooping, ARRANGE_S, "the snoop in place")

    async with running_engine(settings_with()) as engine:
        await phones.wait_for(lambda e: e["call"] == supervisor["call"] and e["kind"] == "ended", 10,
                              what="the dead engine's supervisor leg hung up")
        async def adopted():
            return hotline_call in engine.engine.calls
        await eventually(adopted, 10, "the new engine holding the call")
        assert (await phones.call(caller["id"]))["state"] == "answered"
        assert (await phones.call(advocate["call"]))["state"] == "answered"
        # The supervisor may ask the new engine.
        await phones.mark()
        api = EngineApi(http, engine.http_port)
        call = LiveCall(hotline_call, caller["id"], advocate["call"])
        await monitor(engine, api, phones, ari, call, Mode.LISTEN)
