"""A caller's way through the hotline, over real SIP through the sandbox Asterisk."""

from __future__ import annotations

import aiohttp

from ivr.ari.rest import AriRest
from ivr.engine import EVENTS
from ivr.sandbox.phones_client import PhonesClient

from .conftest import BACKUP_PHONE, PHONES, EngineApi, eventually, metric_value

TOLL_FREE = "18883737888"
CALLER = "+15555550101"
ROUTE_S = 30
MUSIC_RMS = 0.01  # silence on a loopback RTP path measures 0.000  # greeting, two menu choices by DTMF barge-in, and the ring


def rang(number: str):
    return lambda e: e["direction"] == "in" and e["number"] == number and e["kind"] == "ringing"


def answered_at(number: str):
    return lambda e: e["direction"] == "in" and e["number"] == number and e["kind"] == "answered"


async def bridge_with(ari: AriRest, phones: PhonesClient, hotline_call: str, phone_call: str):
    """The bridge holding the hotline's caller channel and the leg that rang ``phone_call``.

    The two sides of the leg are one SIP dialog: the hotline's leg and the
    simulated phone's channel share its Call-ID.
    """
    sip_call_id = (await phones.call(phone_call))["sip_call_id"]

    async def probe():
        for bridge in await ari.list_bridges():
            if hotline_call in bridge.channels and len(bridge.channels) == 2:
                (leg,) = set(bridge.channels) - {hotline_call}
                if await ari.get_var(leg, "CHANNEL(pjsip,call-id)") == sip_call_id:
                    return bridge
        return None
    return await eventually(probe, 5, f"a bridge holding {hotline_call} and the leg to {phone_call}")


async def waiting_calls(engine, queue: str = "english") -> list[str]:
    return await engine.store.waiting(queue)


async def test_english_caller_reaches_the_available_advocate_in_one_bridge(engine, api: EngineApi,
                                                                             phones: PhonesClient, ari: AriRest,
                                                                             caplog):
    caplog.set_level("DEBUG")
    await api.act("ana", "login")
    call = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")

    ring = await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")
    await phones.wait_for(answered_at(PHONES["ana"]), 10, what="ana answering")

    hotline_call = next(iter(engine.engine.calls))
    await bridge_with(ari, phones, hotline_call, ring["call"])
    # The advocate's display shows the hotline, never the caller.
    assert "5555550101" not in ring["caller_id_seen"]
    # The engine records the answer just after bridging: wait for it, not the bridge.
    async def answer_recorded():
        record = await engine.store.get_call(hotline_call)
        return record if record and "answered_by" in record else None
    record = await eventually(answer_recorded, 5, "the answer recorded in Redis")
    assert record["answered_by"] == "ana"
    assert record["language"] == "en" and record["call_type"] == "tip"
    assert (await phones.call(call["id"]))["state"] == "answered"
    page = await api.metrics()
    assert metric_value(page, "hotline_calls_answered_total", queue="english", relay="false") == 1
    # Nothing the engine logged, stored or exposed carries the caller's number.
    for where, text in (("logs", caplog.text), ("metrics", page), ("call record", str(record))):
        assert "5555550101" not in text, where


async def test_caller_waits_with_music_and_is_connected_when_an_advocate_logs_in(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    call = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    waiting = await eventually(lambda: waiting_calls(engine), ROUTE_S, "the call waiting in the english queue")
    hotline_call = waiting[0]
    # What the caller's phone hears while waiting: music, not dead air.
    assert await phones.listen(call["id"], seconds=2) > MUSIC_RMS

    await api.act("luis", "login")

    ring = await phones.wait_for(rang(PHONES["luis"]), 10, what="luis's phone ringing")
    await phones.wait_for(answered_at(PHONES["luis"]), 10, what="luis answering")
    await bridge_with(ari, phones, hotline_call, ring["call"])
    assert await waiting_calls(engine) == []


async def test_caller_matched_at_once_hears_music_while_the_advocate_rings(
        engine, api: EngineApi, phones: PhonesClient):
    # The engine starts the music after the advocate's ring, not beside the enqueue.
    await phones.script(PHONES["ana"], never_answer=True)
    await api.act("ana", "login")
    call = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")
    assert await phones.listen(call["id"], seconds=2) > MUSIC_RMS


async def test_advocate_who_does_not_answer_goes_away_and_the_next_advocate_rings(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    await phones.script(PHONES["ana"], never_answer=True)
    await api.act("ana", "login")  # idle longest: offered first
    await api.act("luis", "login")
    await phones.place_call(CALLER, TOLL_FREE, dtmf="12")

    await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")
    ring = await phones.wait_for(rang(PHONES["luis"]), 10, what="luis's phone ringing after ana's timeout")
    await phones.wait_for(answered_at(PHONES["luis"]), 10, what="luis answering")

    _, ana = await api.request("GET", "/advocates/ana", "ana")
    assert ana["state"] == "away"
    hotline_call = next(iter(engine.engine.calls))
    await bridge_with(ari, phones, hotline_call, ring["call"])
    page = await api.metrics()
    assert metric_value(page, "hotline_advocate_missed_total", reason="no_answer") == 1


async def test_caller_who_hangs_up_while_waiting_is_counted_as_abandoned(
        engine, api: EngineApi, phones: PhonesClient):
    call = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    await eventually(lambda: waiting_calls(engine), ROUTE_S, "the call waiting")

    await phones.hangup(call["id"])

    await eventually(lambda: _empty(engine), 5, "the queue empty again")
    page = await api.metrics()
    assert metric_value(page, "hotline_calls_abandoned_total", queue="english", stage="queue", relay="false") == 1
    assert metric_value(page, "hotline_queue_depth", queue="english") == 0
    assert metric_value(page, "hotline_calls_answered_total", queue="english", relay="false") == 0


async def test_with_the_engine_stopped_the_dialplan_fallback_answers(phones: PhonesClient, ari: AriRest):
    # No engine fixture: nothing is registered as the hotline's Stasis app.
    call = await phones.place_call(CALLER, TOLL_FREE)

    await phones.wait_for(lambda e: e["call"] == call["id"] and e["kind"] == "answered", 10,
                          what="the hotline answering")
    await phones.wait_for(answered_at(BACKUP_PHONE), 20, what="the backup call centre answering")


async def _empty(engine) -> bool:
    return await waiting_calls(engine) == []



async def test_asterisk_sends_the_engine_only_the_events_it_acts_on(engine, http, settings):
    url = f"{settings.ari.url}/ari/applications/{settings.engine.app}"
    auth = aiohttp.encode_basic_auth(settings.ari.username, settings.ari.password.get_secret_value())
    async with http.get(url, headers={"Authorization": auth}) as response:
        application = await response.json()
    assert sorted(e["type"] for e in application["events_allowed"]) == sorted(EVENTS)
