"""The wallboard and the advocate console in a real headless Chromium, against
a running engine and the sandbox: simulated callers over real SIP, advocates'
phones that answer by themselves."""

from __future__ import annotations

import logging
import re

import pytest

from ivr.sandbox.phones_client import PhonesClient

from .browser import Browser
from .conftest import PHONES, TOKENS, EngineApi, eventually, metric_value, settings_with
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at, rang
from .test_relay import RELAY_PROVIDER

log = logging.getLogger(__name__)

SHOWN_WITHIN_S = 1.0  # the promise: a waiting call is on the board within a second


@pytest.fixture
def engine_settings():
    # Long enough that wrap-up is ended from the console, not by the timer.
    return settings_with(routing={"wrap_up_s": 120})


ROWS_SHOWN_AT = """
window.rowsShownAt = {};
new MutationObserver(() => {
  for (const tr of document.querySelectorAll("tr[data-call]")) {
    if (!(tr.dataset.call in window.rowsShownAt)) window.rowsShownAt[tr.dataset.call] = Date.now();
  }
}).observe(document.body, {childList: true, subtree: true});
"""


def row(call_id: str) -> str:
    return f'tr[data-call="{call_id}"]'


async def waiting_call(engine, queue: str) -> str:
    (call_id,) = await eventually(lambda: engine.store.waiting(queue), ROUTE_S, f"a call waiting in {queue}")
    return call_id


async def test_a_waiting_call_is_on_the_wallboard_within_a_second_and_leaves_it_when_answered(
        engine, api: EngineApi, phones: PhonesClient, browser: Browser):
    await api.act("mei", "away")  # the relay-skilled advocate: the relay call keeps waiting
    await browser.open(f"{api.base}/wallboard")
    await browser.fill("#token", TOKENS["sam"])
    await browser.click("#signin button")
    await browser.visible(".connection.live", 5, "the board live")
    assert "token" not in await browser.url()

    # The page notes when each row appears: timed by the test's own polling,
    # the browser's round trips would count against the board.
    await browser.script(ROWS_SHOWN_AT)
    await phones.place_call(CALLER, TOLL_FREE, dtmf="12")  # English, a tip
    call_id = await waiting_call(engine, "english")
    arrival_s = int((await engine.store.get_call(call_id))["arrival_ms"]) / 1000
    await browser.visible(row(call_id), 5, "the call on the board")
    shown_after_s = await browser.script("return window.rowsShownAt[arguments[0]]", call_id) / 1000 - arrival_s
    log.info("call on the wallboard %.3f s after entering the queue", shown_after_s)
    assert shown_after_s < SHOWN_WITHIN_S, f"on the board {shown_after_s:.2f} s after entering the queue"
    cells = await browser.text(row(call_id))
    assert "English" in cells and "Tip" in cells and "Relay" not in cells

    await phones.place_call(RELAY_PROVIDER, TOLL_FREE, dtmf="1")  # a relay caller in crisis
    relay_call = await waiting_call(engine, "relay")
    await browser.visible(row(relay_call) + ".crisis", 5, "the relay crisis call on the board")
    assert "Relay" in await browser.text(row(relay_call))

    await api.act("luis", "login")  # takes the English call; his phone answers by itself
    await phones.wait_for(answered_at(PHONES["luis"]), 10, what="luis answering")
    await browser.gone(row(call_id), 5, "the answered call off the board")
    await browser.text_is('[data-today="english"] [data-count="answered"] .value', "1", 5)
    await browser.text_is('[data-advocate="luis"] .state', "On a call", 5)
    assert await browser.text('[data-today="english"] [data-count="offered"] .value') == "1"
    assert await browser.text('[data-today="relay"] [data-count="offered"] .value') == "1"
    assert await browser.text('[data-advocate="mei"] .state') == "Away"
    await browser.screenshot("wallboard")
    # The page shows no caller number, whatever it holds.
    source = await browser.page_source()
    assert "5555550101" not in source and "5550711" not in source


async def test_an_advocate_takes_a_call_on_the_console_and_ends_wrap_up_with_a_disposition(
        engine, api: EngineApi, phones: PhonesClient, browser: Browser):
    await browser.open(f"{api.base}/console")
    await browser.fill("#advocate", "ana")
    await browser.fill("#token", TOKENS["ana"])
    await browser.click("#signin button")
    await browser.visible("#desk", 5, "the console")
    await browser.text_is("#state", "Offline", 5)
    await browser.click("#go-available")
    await browser.text_is("#state", "Available", 5)

    call = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing")
    await phones.wait_for(answered_at(PHONES["ana"]), 10, what="ana answering")
    await browser.text_is("#call-title", "On the call", 5)
    assert await browser.text("#call-language") == "English"
    assert await browser.text("#call-type") == "Tip"
    assert await browser.text("#call-relay") == "No"
    assert re.fullmatch(r"\d+:\d\d", await browser.text("#call-waited"))

    await browser.fill("#language-filter", "viet")
    await browser.click('#language option[value="vie"]')
    await browser.click("#add-interpreter")
    await browser.text_has("#message", "Vietnamese interpreter joining", 5)
    await browser.screenshot("console")

    await phones.hangup(call["id"])
    await browser.visible("#wrapup", 5, "the after-call work form")
    await browser.text_is("#state", "Wrap-up", 5)
    await browser.click('input[name="disposition"][value="referral"]')
    await browser.screenshot("console-wrap-up")
    await browser.click("#end-wrap-up")
    await browser.text_has("#message", "Recorded as Referral", 5)
    await browser.text_is("#state", "Available", 5)

    page = await api.metrics()
    assert metric_value(page, "hotline_dispositions_total", call_type="tip", disposition="referral") == 1
    assert metric_value(page, "hotline_after_call_work_seconds_count") == 1
    assert metric_value(page, "hotline_handle_seconds_count", queue="english") == 1
    hotline_call = (await phones.call(call["id"]))  # the caller's side: gone
    assert hotline_call["state"] != "answered"
