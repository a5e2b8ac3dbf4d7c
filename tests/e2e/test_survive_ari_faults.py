"""Asterisk refusing the engine's requests mid-call, over real SIP: a proxy on
the engine's ARI path answers chosen requests with a 503, as a busy or
restarting Asterisk does. Whatever step fails, the caller is not left in
silence: a waiting caller keeps the music and their place in line, and one
the engine cannot move on reaches the backup destination."""

from __future__ import annotations

import pytest

from ivr.ari.rest import AriRest
from ivr.call import FALLBACK_RETRIES_S, FALLBACK_RETRY_EVERY_S, MUSIC_RETRY_S
from ivr.sandbox.phones_client import PhonesClient

from .ari_proxy import AriProxy
from .conftest import (
    BACKUP_PHONE,
    PHONES,
    EngineApi,
    eventually,
    metric_value,
    sandbox_queues,
    settings_with,
)
from .test_call_flow import CALLER, MUSIC_RMS, ROUTE_S, TOLL_FREE, answered_at, rang
from .test_interpreter import JOIN_S, PRIMARY, connected_call, three_party_bridge

COMFORT_EVERY_S = 3
ESCALATE_S = 6
CRISIS, TIP = "11", "12"  # English, then "help right now" or "report a tip"
PLAY = r"^/ari/channels/[^/]+/play"


@pytest.fixture
def engine_settings(ari_proxy, monkeypatch, request: pytest.FixtureRequest):
    # The environment wins over the file and its overrides, and the sandbox's may name ARI.
    monkeypatch.setenv("HOTLINE_ARI__URL", ari_proxy.url)
    # param: the English queue's settings a test changes.
    english = {"comfort_every_s": COMFORT_EVERY_S, "comfort_position": False, **getattr(request, "param", {})}
    return settings_with(routing={"queues": sandbox_queues(english=english),
                                  "crisis": {"escalate_after_s": ESCALATE_S, "supervisor_ring_s": 10}})


async def test_a_menu_prompt_asterisk_refuses_sends_the_caller_to_the_backup(
        engine, api: EngineApi, phones: PhonesClient, ari_proxy: AriProxy):
    ari_proxy.fail("POST", PLAY)  # the greeting
    ari_proxy.fail("POST", r"^/ari/channels/[^/]+/continue")  # and the first hand-over: tried again

    await phones.place_call(CALLER, TOLL_FREE)

    await phones.wait_for(answered_at(BACKUP_PHONE), ROUTE_S + 10, what="the backup destination answering")
    play, hand_over = ari_proxy.faulted
    assert "/play/" in play and hand_over.endswith("/continue")
    page = await api.metrics()
    assert metric_value(page, "hotline_fallbacks_total", reason="engine_error") == 1


async def test_a_prompt_for_a_caller_just_gone_is_their_hang_up_not_an_engine_error(
        engine, api: EngineApi, phones: PhonesClient, ari_proxy: AriProxy):
    # As Asterisk answers when the caller hung up as the greeting was sent:
    # no such channel, for the prompt and for the engine's look at it.
    ari_proxy.fail("POST", PLAY, status=404)
    ari_proxy.fail("GET", r"^/ari/channels/[^/]+$", status=404)
    call = await phones.place_call(CALLER, TOLL_FREE)

    async def both_refused_and_counted():
        # The proxy counts a fault before its reply; the engine counts the
        # hang-up once it has read the reply.
        abandoned = metric_value(await api.metrics(), "hotline_calls_abandoned_total", queue="", stage="menu",
                                 relay="false")
        return len(ari_proxy.faulted) == 2 and abandoned == 1
    await eventually(both_refused_and_counted, ROUTE_S, "the prompt and the look at the channel refused")
    page = await api.metrics()
    assert metric_value(page, "hotline_calls_abandoned_total", queue="", stage="menu", relay="false") == 1
    assert metric_value(page, "hotline_fallbacks_total", reason="engine_error") == 0
    await phones.hangup(call["id"])  # the phone never left: only the engine was told so


async def test_a_comfort_message_asterisk_refuses_leaves_the_caller_on_music_in_line(
        engine, api: EngineApi, phones: PhonesClient, ari_proxy: AriProxy):
    call = await phones.place_call(CALLER, TOLL_FREE, dtmf=TIP)
    await eventually(lambda: engine.store.waiting("english"), ROUTE_S, "the call waiting")
    ari_proxy.fail("POST", PLAY)  # the first comfort message

    async def refused():
        return ari_proxy.faulted
    await eventually(refused, COMFORT_EVERY_S + 3, "the comfort message refused")

    assert await phones.listen(call["id"], seconds=2) > MUSIC_RMS
    async def said_again():
        return metric_value(await api.metrics(), "hotline_comfort_messages_total", queue="english") >= 2
    await eventually(said_again, COMFORT_EVERY_S + 3, "the next comfort message")
    await api.act("ana", "login")
    await phones.wait_for(rang(PHONES["ana"]), 5, what="ana's phone ringing for the caller still in line")


# No comfort messages: the end of one would start the music again anyway.
@pytest.mark.parametrize("engine_settings", [{"comfort_every_s": None}], indirect=True)
async def test_hold_music_asterisk_refuses_is_asked_for_again_within_seconds(
        engine, phones: PhonesClient, ari_proxy: AriProxy):
    ari_proxy.fail("POST", r"^/ari/channels/[^/]+/moh$")  # as the caller joins the line
    call = await phones.place_call(CALLER, TOLL_FREE, dtmf=TIP)
    await eventually(lambda: engine.store.waiting("english"), ROUTE_S, "the call waiting")
    async def refused():
        return ari_proxy.faulted
    await eventually(refused, 5, "the music refused")

    # Due again MUSIC_RETRY_S after the refusal (the next comfort message would be never).
    async def hearing_music():
        return await phones.listen(call["id"], seconds=1) > MUSIC_RMS
    await eventually(hearing_music, MUSIC_RETRY_S + 4, "the hold music asked for again")


async def test_a_supervisor_asterisk_cannot_connect_leaves_the_crisis_caller_with_the_backup(
        engine, api: EngineApi, phones: PhonesClient, ari_proxy: AriProxy):
    await api.act("sam", "login")
    await api.act("sam", "away")  # a supervisor is rung whatever their state, unless on a call
    ari_proxy.fail("POST", r"^/ari/bridges/[^/]+/addChannel")

    await phones.place_call(CALLER, TOLL_FREE, dtmf=CRISIS)

    await phones.wait_for(answered_at(PHONES["sam"]), ROUTE_S + ESCALATE_S + 5, what="sam answering")
    await phones.wait_for(answered_at(BACKUP_PHONE), 10, what="the backup destination answering")
    assert len(ari_proxy.faulted) == 1
    _, sam = await api.request("GET", "/advocates/sam", "sam")
    assert sam["state"] != "on_call"  # the call they could not join ended for them too
    page = await api.metrics()
    assert metric_value(page, "hotline_fallbacks_total", reason="crisis_escalation") == 1


async def test_an_interpreter_asterisk_cannot_join_is_dialled_again(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest, ari_proxy: AriProxy):
    hotline_call, _ = await connected_call(engine, api, phones)
    ari_proxy.fail("POST", r"^/ari/bridges/[^/]+/addChannel")  # the first provider's join, over HTTP

    status, body = await api.request("POST", f"/calls/{hotline_call}/interpreter", "ana", json={"language": "vi"})
    assert status == 202, body

    # Hung up and tried again (the provider's next attempt), not left out of the call.
    await phones.wait_for_count(answered_at(PRIMARY), 2, JOIN_S * 2, what="the provider answering twice")
    await three_party_bridge(ari, hotline_call)
    assert ari_proxy.faulted == [f"POST /ari/bridges/{hotline_call}-bridge/addChannel"]
    page = await api.metrics()
    assert metric_value(page, "hotline_interpreter_failures_total", reason="join_failed", language="vie") == 1


async def test_a_hand_over_asterisk_keeps_refusing_plays_music_and_is_tried_until_it_takes(
        engine, api: EngineApi, phones: PhonesClient, ari_proxy: AriProxy):
    ari_proxy.fail("POST", PLAY)  # the greeting
    # The hand-over, past its quick retries: then the caller hears music until the next.
    ari_proxy.fail("POST", r"^/ari/channels/[^/]+/continue", times=len(FALLBACK_RETRIES_S) + 1)

    call = await phones.place_call(CALLER, TOLL_FREE)
    await eventually(lambda: _refused(ari_proxy, len(FALLBACK_RETRIES_S) + 2), ROUTE_S, "every quick try refused")
    assert await phones.listen(call["id"], seconds=2) > MUSIC_RMS

    await phones.wait_for(answered_at(BACKUP_PHONE), FALLBACK_RETRY_EVERY_S + 10,
                          what="the backup destination answering")


async def _refused(ari_proxy: AriProxy, count: int) -> bool:
    return len(ari_proxy.faulted) >= count
