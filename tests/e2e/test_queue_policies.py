"""Queue policies over real SIP: the maximum wait overflows to the backup
destination, even when it falls due while an advocate's phone rings, and
comfort messages play at the configured period."""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr.sandbox.phones_client import PhonesClient

from .conftest import BACKUP_PHONE, PHONES, EngineApi, eventually, metric_value, sandbox_queues, settings_with
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at, rang

# The overflow test's maximum wait; the comfort test's caller must not reach
# its own before the second message (the first message alone takes about 10 s).
MAX_WAIT_S = 15
COMFORT_TEST_MAX_WAIT_S = 40
COMFORT_EVERY_S = 4
# A maximum wait that falls due in an advocate's ring.
DURING_RINGS_MAX_WAIT_S, RING_S = 9, 6


@pytest.fixture
def engine_settings(request: pytest.FixtureRequest):
    # param: the maximum wait, or the maximum wait and the advocates' ring.
    max_wait_s, *ring_s = getattr(request, "param", (COMFORT_TEST_MAX_WAIT_S,))
    english = {"max_wait_s": max_wait_s, "comfort_every_s": COMFORT_EVERY_S, "comfort_position": True}
    ring = {"advocate_ring_s": ring_s[0]} if ring_s else {}
    return settings_with(routing={"queues": sandbox_queues(english=english), **ring})


def comfort_messages(page: str) -> float:
    return metric_value(page, "hotline_comfort_messages_total", queue="english")


async def test_comfort_messages_play_every_period_with_the_callers_position(
        engine, api: EngineApi, phones: PhonesClient, caplog):
    caplog.set_level("INFO")
    await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    await eventually(lambda: engine.store.waiting("english"), ROUTE_S, "the call waiting")
    queued = time.monotonic()

    async def messages(n: int):
        return comfort_messages(await api.metrics()) >= n
    await eventually(lambda: messages(1), COMFORT_EVERY_S + 2, "the first comfort message")
    first = time.monotonic()
    await eventually(lambda: messages(2), 35, "the second comfort message")
    second = time.monotonic()

    # The period runs in music between messages: never sooner than it.
    assert first - queued >= COMFORT_EVERY_S - 0.5
    assert second - first >= COMFORT_EVERY_S
    said = [r.getMessage() for r in caplog.records if "comfort message" in r.getMessage()]
    assert said and all("position 1" in line for line in said)


@pytest.mark.parametrize("engine_settings", [(MAX_WAIT_S,)], indirect=True)
async def test_call_waiting_past_the_maximum_goes_to_the_backup_destination(
        engine, api: EngineApi, phones: PhonesClient):
    call = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    await eventually(lambda: engine.store.waiting("english"), ROUTE_S, "the call waiting")
    queued = time.monotonic()

    await phones.wait_for(answered_at(BACKUP_PHONE), MAX_WAIT_S + 20, what="the backup destination answering")

    assert time.monotonic() - queued >= MAX_WAIT_S - 0.5
    assert (await phones.call(call["id"]))["state"] == "answered"  # the caller is still on the line
    assert await engine.store.waiting("english") == []
    page = await api.metrics()
    assert metric_value(page, "hotline_max_wait_overflows_total", queue="english") == 1
    assert metric_value(page, "hotline_fallbacks_total", reason="max_wait") == 1


@pytest.mark.parametrize("engine_settings", [(DURING_RINGS_MAX_WAIT_S, RING_S)], indirect=True)
async def test_a_maximum_wait_that_falls_due_during_rings_missed_one_after_another_still_overflows(
        engine, api: EngineApi, phones: PhonesClient):
    # Ana's ring spans the maximum wait, which waits for it. Her miss offers the call to luis at once,
    # so the maximum finds an offer on its way, and waits for that ring too:
    # luis is busy, and then it is the backup destination.
    await phones.script(PHONES["ana"], never_answer=True)
    await phones.script(PHONES["luis"], busy=True)
    await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    await eventually(lambda: engine.store.waiting("english"), ROUTE_S, "the call waiting")
    queued = time.monotonic()
    await asyncio.sleep(DURING_RINGS_MAX_WAIT_S - RING_S / 2)
    await api.act("ana", "login")
    await phones.wait_for(rang(PHONES["ana"]), 5, what="ana's phone ringing")
    await api.act("luis", "login")  # after the offer to ana: she is the longest idle

    await phones.wait_for(rang(PHONES["luis"]), 15, what="the call offered to luis after ana's miss")
    await phones.wait_for(answered_at(BACKUP_PHONE), 10, what="the backup destination answering")
    assert time.monotonic() - queued >= DURING_RINGS_MAX_WAIT_S
    page = await api.metrics()
    assert metric_value(page, "hotline_max_wait_overflows_total", queue="english") == 1
