"""Tele-interpreters over real SIP: the simulated interpreter service on the PSTN
side answers, records the DTMF it receives, and joins caller and advocate."""

from __future__ import annotations

import pytest

from ivr.ari.rest import AriRest
from ivr.sandbox.phones_client import PhonesClient

from .conftest import PHONES, EngineApi, eventually, metric_value, sandbox_queues, settings_with
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at, rang

PRIMARY, SECOND = "1800", "1801"  # the sandbox's interpreter providers
ACCOUNT, PIN = "4321", "9876"
JOIN_S = 15


@pytest.fixture
def engine_settings():
    spanish = {"widen": [{"to": "english", "after_s": 2, "interpreter": "spa", "say": "spanish_overflow"}]}
    return settings_with(routing={"queues": sandbox_queues(spanish=spanish)})


async def connected_call(engine, api: EngineApi, phones: PhonesClient, advocate: str = "ana",
                         dtmf: str = "12") -> tuple[str, dict]:
    await api.act(advocate, "login")
    await phones.place_call(CALLER, TOLL_FREE, dtmf=dtmf)
    ring = await phones.wait_for(rang(PHONES[advocate]), ROUTE_S, what=f"{advocate}'s phone ringing")
    await phones.wait_for(answered_at(PHONES[advocate]), 10, what=f"{advocate} answering")
    hotline_call = next(iter(engine.engine.calls))

    async def bridged():
        return (await engine.store.get_call(hotline_call) or {}).get("state") == "bridged"
    await eventually(bridged, 5, "the call recorded as connected")
    return hotline_call, ring


async def three_party_bridge(ari: AriRest, hotline_call: str):
    async def probe():
        for bridge in await ari.list_bridges():
            if hotline_call in bridge.channels and len(bridge.channels) == 3:
                return bridge
        return None
    return await eventually(probe, JOIN_S, "caller, advocate and interpreter in one bridge")


async def digits_heard_by(phones: PhonesClient, number: str, expected: str) -> str:
    """The DTMF the interpreter service received, once it has all of ``expected``."""
    call = await phones.wait_for(answered_at(number), JOIN_S, what=f"{number} answering")

    async def probe():
        got = (await phones.call(call["call"]))["dtmf_received"]
        return got if len(got) >= len(expected) else None
    return await eventually(probe, JOIN_S, f"{number} receiving {expected}")


async def test_other_languages_caller_gets_advocate_and_the_interpreter_operator(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    hotline_call, _ = await connected_call(engine, api, phones, dtmf="32")

    assert await digits_heard_by(phones, PRIMARY, f"{ACCOUNT}#{PIN}#") == f"{ACCOUNT}#{PIN}#"
    await three_party_bridge(ari, hotline_call)


async def test_spanish_caller_overflows_to_an_english_advocate_with_an_interpreter(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    await api.act("luis", "login")  # English only
    await phones.place_call(CALLER, TOLL_FREE, dtmf="21")

    await phones.wait_for(answered_at(PHONES["luis"]), ROUTE_S + 5, what="luis answering after the overflow")
    hotline_call = next(iter(engine.engine.calls))
    assert await digits_heard_by(phones, PRIMARY, f"{ACCOUNT}#{PIN}#11#") == f"{ACCOUNT}#{PIN}#11#"
    await three_party_bridge(ari, hotline_call)
    record = await engine.store.get_call(hotline_call)
    assert (record["language"], record["queue"]) == ("es", "english")
    assert metric_value(await api.metrics(), "hotline_queue_widenings_total",
                        from_queue="spanish", to_queue="english") == 1


async def test_advocate_adds_a_vietnamese_interpreter_through_the_api(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    hotline_call, _ = await connected_call(engine, api, phones)

    status, body = await api.request("POST", f"/calls/{hotline_call}/interpreter", "ana", json={"language": "vi"})
    assert status == 202, body

    assert await digits_heard_by(phones, PRIMARY, f"{ACCOUNT}#{PIN}#22#") == f"{ACCOUNT}#{PIN}#22#"
    await three_party_bridge(ari, hotline_call)
    status, body = await api.request("POST", f"/calls/{hotline_call}/interpreter", "luis", json={"language": "vi"})
    assert status == 403, body  # not luis's call


async def test_another_call_goes_on_while_the_interpreter_keys_in(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    # The interpreter's line joins after its digits (6.5 s), and Asterisk
    # holds the join until then: sent on the events WebSocket, it held every
    # other call's requests that long (ivr.ari.socket_requests).
    hotline_call, _ = await connected_call(engine, api, phones)
    status, body = await api.request("POST", f"/calls/{hotline_call}/interpreter", "ana", json={"language": "vi"})
    assert status == 202, body
    await phones.wait_for(answered_at(PRIMARY), JOIN_S, what="the interpreter service answering")
    await api.act("luis", "login")
    await phones.place_call("+15555550177", TOLL_FREE, dtmf="12")  # its menu's prompts: requests meanwhile

    await phones.wait_for(rang(PHONES["luis"]), ROUTE_S, what="luis's phone ringing for the second caller")
    await three_party_bridge(ari, hotline_call)
    assert metric_value(await api.metrics(), "hotline_ari_socket_held_up_total") == 0


async def test_advocate_adds_a_vietnamese_interpreter_with_a_feature_code(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    hotline_call, ring = await connected_call(engine, api, phones)

    await phones.send_dtmf(ring["call"], "*2")  # dialled on ana's phone

    assert await digits_heard_by(phones, PRIMARY, f"{ACCOUNT}#{PIN}#22#") == f"{ACCOUNT}#{PIN}#22#"
    await three_party_bridge(ari, hotline_call)


async def test_interpreter_never_answering_leaves_caller_and_advocate_connected(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    await phones.script(PRIMARY, never_answer=True)
    await phones.script(SECOND, busy=True)
    hotline_call, ring = await connected_call(engine, api, phones)

    await api.request("POST", f"/calls/{hotline_call}/interpreter", "ana", json={"language": "vie"})

    async def gave_up():
        page = await api.metrics()
        return metric_value(page, "hotline_interpreter_failures_total", reason="exhausted", language="vie")
    await eventually(gave_up, JOIN_S * 2, "the engine giving up on the interpreter")
    page = await api.metrics()
    assert metric_value(page, "hotline_interpreter_failures_total", reason="no_answer", language="vie") == 2
    assert metric_value(page, "hotline_interpreter_failures_total", reason="busy", language="vie") == 1
    bridge = next(b for b in await ari.list_bridges() if hotline_call in b.channels)
    assert len(bridge.channels) == 2  # caller and advocate, still together
    assert (await phones.call(ring["call"]))["state"] == "answered"


async def test_interpreter_leaving_does_not_drop_caller_and_advocate(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest):
    hotline_call, ring = await connected_call(engine, api, phones)
    await api.request("POST", f"/calls/{hotline_call}/interpreter", "ana", json={"language": "spa"})
    interpreter = await phones.wait_for(answered_at(PRIMARY), JOIN_S, what="the interpreter answering")
    await three_party_bridge(ari, hotline_call)

    await phones.hangup(interpreter["call"])

    async def two_left():
        bridge = next((b for b in await ari.list_bridges() if hotline_call in b.channels), None)
        return bridge is not None and len(bridge.channels) == 2
    await eventually(two_left, 5, "the bridge back to caller and advocate")
    assert (await phones.call(ring["call"]))["state"] == "answered"
