"""Queue policies over real SIP: the maximum wait overflows to the backup
destination, and comfort messages play at the configured period."""

from __future__ import annotations

import time

import pytest

from ivr.sandbox.phones_client import PhonesClient

from .conftest import BACKUP_PHONE, EngineApi, eventually, metric_value, sandbox_queues, settings_with
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at

# The overflow test's maximum wait; the comfort test's caller must not reach
# its own before the second message (the first message alone takes about 10 s).
MAX_WAIT_S = 15
COMFORT_TEST_MAX_WAIT_S = 40
COMFORT_EVERY_S = 4


@pytest.fixture
def engine_settings(request: pytest.FixtureRequest):
    max_wait_s = getattr(request, "param", COMFORT_TEST_MAX_WAIT_S)
    english = {"max_wait_s": max_wait_s, "comfort_every_s": COMFORT_EVERY_S, "comfort_position": True}
    return settings_with(routing={"queues": sandbox_queues(english=english)})


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


@pytest.mark.parametrize("engine_settings", [MAX_WAIT_S], indirect=True)
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
