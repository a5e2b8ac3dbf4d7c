"""A line whose menu entry finishes at once (lines.entries): the caller joins
the line at once, over real SIP through the sandbox; and one whose dialplan
leaves the answer and the SIP Call-ID to the engine; and a caller who
withholds their number, whose Call-ID is kept nowhere."""

from __future__ import annotations

import pytest

from ivr.sandbox.phones_client import PhonesClient
from ivr.settings import Settings

from .conftest import PHONES, TEST_PREFIX, EngineApi, eventually, settings_with
from .test_call_flow import rang

DIRECT_LINE = "18883737997"
PLAIN_LINE = "18883737996"  # deploy/asterisk/extensions_plain.conf: no Answer, no Call-ID
CALLER = "+15555550177"
DIRECT_ENTRY = '\n[entries.direct]\nlanguage = "en"\ncall_type = "crisis"\nfinish = true\n'


@pytest.fixture
def engine_settings(tmp_path_factory) -> Settings:
    base = settings_with()
    menu = tmp_path_factory.mktemp("menu") / "menu.toml"
    menu.write_text(base.menu.path.read_text() + DIRECT_ENTRY)
    return settings_with(lines={"entries": {DIRECT_LINE: "direct", PLAIN_LINE: "direct"}},
                         menu={"path": str(menu)})


async def test_caller_on_a_line_without_menu_is_answered_routed_and_findable(engine, api: EngineApi,
                                                                           phones: PhonesClient):
    await phones.script(PHONES["ana"], never_answer=True)  # the call stays offered while the test reads it
    await api.act("ana", "login")
    placed = await phones.place_call(CALLER, DIRECT_LINE)
    await phones.wait_for(rang(PHONES["ana"]), 10, what="ana's phone ringing")
    await phones.wait_for(lambda e: e["call"] == placed["id"] and e["kind"] == "answered", 5,
                          what="the caller answered by the hotline")

    # Joined the line at once: the SIP Call-ID reaches both its index and the call's record.
    sip_call_id = (await phones.call(placed["id"]))["sip_call_id"]
    call_id = await eventually(lambda: engine.store.call_for_sip_id(sip_call_id), 5, "the Call-ID indexed")
    record = await eventually(lambda: _with_call_id(engine, call_id), 5, "the Call-ID in the call's record")
    assert (record["call_type"], record["state"]) == ("crisis", "offered")


async def test_a_dialplan_that_neither_answers_nor_passes_the_call_id_leaves_both_to_the_engine(
        engine, api: EngineApi, phones: PhonesClient):
    await api.act("ana", "login")
    placed = await phones.place_call(CALLER, PLAIN_LINE)
    await phones.wait_for(lambda e: e["call"] == placed["id"] and e["kind"] == "answered", 5,
                          what="the caller answered by the hotline")
    await phones.wait_for(rang(PHONES["ana"]), 10, what="ana's phone ringing")
    sip_call_id = (await phones.call(placed["id"]))["sip_call_id"]
    assert sip_call_id
    call_id = await eventually(lambda: engine.store.call_for_sip_id(sip_call_id), 5, "the Call-ID indexed")
    assert (await engine.store.get_call(call_id))["sip_call_id"] == sip_call_id


@pytest.mark.parametrize("line", [DIRECT_LINE, PLAIN_LINE])
async def test_a_withheld_number_keeps_the_sip_call_id_out_of_redis(engine, api: EngineApi, phones: PhonesClient,
                                                                    redis_client, line):
    # The carrier may have built the Call-ID from the number it withheld from
    # us (ivr.privacy.call_id_unsafe); whether the dialplan passes it or not.
    await phones.script(PHONES["ana"], never_answer=True)  # the call stays offered while the test reads it
    await api.act("ana", "login")
    placed = await phones.place_call("anonymous", line)
    await phones.wait_for(rang(PHONES["ana"]), 10, what="ana's phone ringing")
    sip_call_id = (await phones.call(placed["id"]))["sip_call_id"]
    assert sip_call_id
    call_id = (await engine.store.get_advocate("ana")).call_id
    record = await engine.store.get_call(call_id)
    assert (record["state"], record["sip_call_id"], record["caller_ref"]) == ("offered", "", "")
    assert await engine.store.call_for_sip_id(sip_call_id) is None
    indexed = [key async for key in redis_client.scan_iter(match=f"{TEST_PREFIX}sip:*")]
    assert call_id not in [await redis_client.get(key) for key in indexed]


async def _with_call_id(engine, call_id: str):
    record = await engine.store.get_call(call_id)
    return record if record and record.get("sip_call_id") else None
