"""Crisis calls over real SIP: served before every waiting call, and escalated to
the on-call supervisors, then the backup destination, when nobody answers."""

from __future__ import annotations

import pytest

from ivr.sandbox.phones_client import PhonesClient

from .conftest import BACKUP_PHONE, PHONES, EngineApi, eventually, metric_value, settings_with
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at, rang

ESCALATE_S = 8
SUPERVISOR_RING_S = 4
CRISIS, TIP = "11", "12"  # English, then "help right now" or "report a tip"


@pytest.fixture
def engine_settings():
    return settings_with(routing={"crisis": {"escalate_after_s": ESCALATE_S,
                                             "supervisor_ring_s": SUPERVISOR_RING_S}})


async def calls_in_state(engine, state: str) -> list[dict[str, str]]:
    records = [await engine.store.get_call(key) for key in list(engine.engine.calls)]
    return [r for r in records if r and r.get("state") == state]


async def test_crisis_call_behind_three_waiting_calls_is_answered_first(
        engine, api: EngineApi, phones: PhonesClient):
    for _ in range(3):
        await phones.place_call(CALLER, TOLL_FREE, dtmf=TIP)

    async def waiting(n: int):
        return len(await engine.store.waiting("english")) == n
    await eventually(lambda: waiting(3), ROUTE_S, "three tips waiting")
    await phones.place_call(CALLER, TOLL_FREE, dtmf=CRISIS)
    await eventually(lambda: waiting(4), ROUTE_S, "the crisis call waiting behind them")

    await phones.script(PHONES["luis"], never_answer=True)  # the call stays offered while the test reads it
    await api.act("luis", "login")

    await phones.wait_for(rang(PHONES["luis"]), 5, what="luis's phone ringing")
    offered = await eventually(lambda: calls_in_state(engine, "offered"), 5, "the call offered to luis")
    assert [r["call_type"] for r in offered] == ["crisis"]
    still_waiting = await calls_in_state(engine, "waiting")
    assert sorted(r["call_type"] for r in still_waiting) == ["tip", "tip", "tip"]


async def test_unanswered_crisis_call_rings_the_supervisor_then_the_backup(
        engine, api: EngineApi, phones: PhonesClient):
    await phones.script(PHONES["sam"], never_answer=True)
    await api.act("sam", "login")
    await api.act("sam", "away")  # a supervisor is rung whatever their state, unless on a call
    await phones.place_call(CALLER, TOLL_FREE, dtmf=CRISIS)

    supervisor = await phones.wait_for(rang(PHONES["sam"]), ROUTE_S + ESCALATE_S, what="sam's phone ringing")
    _, sam = await api.request("GET", "/advocates/sam", "sam")
    assert sam["state"] == "ringing"
    backup = await phones.wait_for(answered_at(BACKUP_PHONE), SUPERVISOR_RING_S + 15,
                                   what="the backup destination answering")

    assert supervisor["seq"] < backup["seq"]
    assert backup["time"] - supervisor["time"] >= SUPERVISOR_RING_S - 0.5
    _, sam = await api.request("GET", "/advocates/sam", "sam")
    assert sam["state"] == "away"  # back where they were
    page = await api.metrics()
    assert metric_value(page, "hotline_escalations_total", outcome="backup") == 1
    assert metric_value(page, "hotline_fallbacks_total", reason="crisis_escalation") == 1


async def test_supervisor_who_answers_the_escalation_takes_the_crisis_call(
        engine, api: EngineApi, phones: PhonesClient):
    await phones.script(PHONES["luis"], never_answer=True)
    await api.act("luis", "login")  # rings, but nobody picks up
    await api.act("sam", "login")
    await api.act("sam", "away")
    await phones.place_call(CALLER, TOLL_FREE, dtmf=CRISIS)

    await phones.wait_for(rang(PHONES["luis"]), ROUTE_S, what="luis's phone ringing")
    await phones.wait_for(answered_at(PHONES["sam"]), ESCALATE_S + 10, what="sam answering the escalation")

    async def bridged():
        records = await calls_in_state(engine, "bridged")
        return records[0] if records else None
    record = await eventually(bridged, 5, "the crisis call connected")
    assert (record["advocate"], record["call_type"]) == ("sam", "crisis")
    _, sam = await api.request("GET", "/advocates/sam", "sam")
    assert sam["state"] == "on_call"
    assert not [e for e in await phones.seen_until_now() if answered_at(BACKUP_PHONE)(e)]

    # Redis says "bridged" as soon as sam's answer is recorded; the engine
    # counts the answer once Asterisk has bridged them, a few requests later.
    async def counted():
        page = await api.metrics()
        answered = metric_value(page, "hotline_calls_answered_total", queue="english", relay="false")
        return page if answered == 1 else None
    page = await eventually(counted, 5, "the answer counted")
    assert metric_value(page, "hotline_escalations_total", outcome="supervisor") == 1
