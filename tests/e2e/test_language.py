"""Language access over real SIP: Spanish callers reach Spanish-speaking advocates."""

from __future__ import annotations

from ivr.ari.rest import AriRest
from ivr.sandbox.phones_client import PhonesClient

from .conftest import PHONES, EngineApi
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at, bridge_with, rang

SPANISH_LINE = "18883737889"


async def test_spanish_caller_reaches_the_spanish_speaking_advocate(engine, api: EngineApi,
                                                                     phones: PhonesClient, ari: AriRest):
    await api.act("luis", "login")  # idle longest, but speaks English only
    await api.act("ana", "login")  # speaks Spanish
    await phones.place_call(CALLER, TOLL_FREE, dtmf="21")

    ring = await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")
    await phones.wait_for(answered_at(PHONES["ana"]), 10, what="ana answering")
    hotline_call = next(iter(engine.engine.calls))
    await bridge_with(ari, phones, hotline_call, ring["call"])
    record = await engine.store.get_call(hotline_call)
    assert (record["queue"], record["language"], record["call_type"]) == ("spanish", "es", "crisis")
    assert not any(rang(PHONES["luis"])(e) for e in phones.seen)


async def test_the_spanish_line_skips_the_language_menu(engine, api: EngineApi, phones: PhonesClient):
    await api.act("ana", "login")
    # One digit: the Spanish line starts at the call-type menu, in Spanish.
    await phones.place_call(CALLER, SPANISH_LINE, dtmf="3")

    await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering")
    hotline_call = next(iter(engine.engine.calls))
    record = await engine.store.get_call(hotline_call)
    assert record["did_kind"] == "spanish"
    assert (record["queue"], record["language"], record["call_type"]) == ("spanish", "es", "referral")
    assert record["path"] == "entry:spanish call_type:3"
