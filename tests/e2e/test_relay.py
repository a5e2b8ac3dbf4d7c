"""TRS/711 relay calls over real SIP: recognised by the relay provider's number or
the relay line, routed to relay-skilled advocates first, never dropped for silence."""

from __future__ import annotations

import asyncio

from ivr.sandbox.phones_client import PhonesClient

from .conftest import PHONES, EngineApi, eventually, metric_value
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at, rang

RELAY_PROVIDER = "+1 800 555 0711"  # listed in the sandbox's routing.relay.numbers, written differently
RELAY_LINE = "18883737711"  # routing.relay.dids


async def test_relay_call_goes_to_the_relay_skilled_advocate_before_one_idle_longer(
        engine, api: EngineApi, phones: PhonesClient):
    await api.act("luis", "login")  # English only, idle longest
    await asyncio.sleep(0.05)
    await api.act("mei", "login")  # English and relay
    await phones.place_call(RELAY_PROVIDER, TOLL_FREE, dtmf="2")  # a tip, chosen during the greeting

    await phones.wait_for(rang(PHONES["mei"]), ROUTE_S, what="mei's phone ringing")
    await phones.wait_for(answered_at(PHONES["mei"]), 10, what="mei answering")

    assert not [e for e in phones.seen if rang(PHONES["luis"])(e)]
    hotline_call = next(iter(engine.engine.calls))

    async def answered_call():
        status, body = await api.request("GET", f"/calls/{hotline_call}", "mei")
        return body if status == 200 and "answered_by" in body else None
    body = await eventually(answered_call, 5, "mei reading her call through the API")
    assert (body["relay"], body["entry_queue"], body["answered_by"]) == ("1", "relay", "mei")
    assert body["path"].startswith("entry:relay")  # the language menu was skipped
    page = await api.metrics()
    assert metric_value(page, "hotline_calls_offered_total", queue="relay", relay="true") == 1
    assert metric_value(page, "hotline_calls_answered_total", queue="relay", relay="true") == 1


async def test_silent_relay_caller_is_never_disconnected_and_reaches_an_advocate(
        engine, api: EngineApi, phones: PhonesClient):
    await api.act("mei", "login")
    call = await phones.place_call(CALLER, RELAY_LINE)  # not a single digit, ever

    # Well past every menu timeout a hearing caller would get: still connected.
    await asyncio.sleep(90)
    assert (await phones.call(call["id"]))["state"] == "answered"
    assert not [e for e in await phones.seen_until_now() if e.get("call") == call["id"] and e["kind"] == "ended"]

    await phones.wait_for(answered_at(PHONES["mei"]), 120, what="mei answering the silent relay call")
    hotline_call = next(iter(engine.engine.calls))
    record = await engine.store.get_call(hotline_call)
    assert (record["relay"], record["no_input"], record["did_kind"]) == ("1", "1", "other")
