"""A request Asterisk holds up must not hold up the other calls' requests.

Asterisk carries out one WebSocket's REST requests one after another, and a
request on a channel waits for that channel's thread: a variable set on a
channel playing a prompt the engine did not start (a dead engine's, found on
adoption) waits for the prompt's end. Here the test plays such a prompt on a
caller's channel, behind the engine's greeting; the caller's choice of
Spanish stops the greeting, the foreign prompt starts, and the engine's
language change waits behind it. A second caller calls meanwhile and must
reach an advocate while it still waits (ivr.ari.socket_requests).

Asterisk answers no WebSocket ping while it holds a request, so a hold past
the heartbeat drops the socket: it must be the request socket alone, never
the events socket and the application with it (ivr.ari.stream).
"""

from __future__ import annotations

import pytest

from ivr.ari.rest import AriRest
from ivr.ari.socket_requests import STALL_AFTER_S
from ivr.call_states import InMenu
from ivr.sandbox.phones_client import PhonesClient

from .conftest import PHONES, EngineApi, eventually, metric_value, settings_with, until
from .test_call_flow import BACKUP_PHONE, ROUTE_S, TOLL_FREE, answered_at, rang

FIRST, SECOND = "+15555550141", "+15555550142"
FOREIGN = "test-foreign-prompt"  # a tone: it plays until the test stops it


@pytest.fixture
def engine_settings():
    # The held request must outlive the test's look at the second caller, not time out first.
    return settings_with(ari={"request_timeout_s": 30})


async def test_a_request_held_behind_a_prompt_holds_up_no_other_call(engine, api: EngineApi,
                                                                       phones: PhonesClient, ari: AriRest, caplog):
    first, actor = await _language_change_held(engine, phones, ari)

    # The language change is held behind the tone. Requests sent within the
    # socket's first second of it wait too; the next one finds it held up:
    # the engine tells a held request by its age.
    await until(lambda: engine.socket_requests.oldest_wait_s > STALL_AFTER_S + 0.2, 10,
                "the language change held past the stall")
    await api.act("ana", "login")
    await phones.place_call(SECOND, TOLL_FREE, dtmf="21")
    ring = await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing for the second caller")
    assert ring["caller_id_seen"]  # the second caller's ring, with the first still held:
    assert actor.language != "es"  # its language change has not been answered
    assert "holds up the ones behind it" in caplog.text
    assert metric_value(await api.metrics(), "hotline_ari_socket_held_up_total") == 1

    # The prompt over, the held request is answered and the socket serves again.
    await ari.stop_playback(FOREIGN)
    await until(lambda: actor.language == "es", 5, "the first caller's language set")
    await until(lambda: "answering again after" in caplog.text, 5, "the socket answering again")
    await phones.send_dtmf(first["id"], "1")  # crisis, in the Spanish menu

    async def first_queued():
        return actor.key in await engine.store.waiting("spanish") or None
    await eventually(first_queued, 15, "the first caller in the Spanish line")


async def test_a_hold_past_the_heartbeat_drops_the_request_socket_only(engine, api: EngineApi,
                                                                      phones: PhonesClient, ari: AriRest, caplog):
    _, actor = await _language_change_held(engine, phones, ari)

    # Nothing answers on the request socket, not even the heartbeat's ping
    # (10 s, then 5 s for the pong): it is dropped, and the held request with it.
    await until(lambda: "ARI requests: connection closed" in caplog.text, 25, "the request socket dropped")
    await until(lambda: engine.socket_requests.attached, 10, "requests back on a new socket")

    assert engine.stream.connected
    assert "ARI events: connection closed" not in caplog.text  # the events never stopped
    assert metric_value(await api.metrics(), "hotline_ari_connected") == 1
    await api.act("ana", "login")
    await phones.place_call(SECOND, TOLL_FREE, dtmf="21")
    ring = await phones.wait_for(rang(PHONES["ana"]), ROUTE_S, what="ana's phone ringing for the second caller")
    assert ring["caller_id_seen"]

    # The caller whose request failed is not left in the menu: handed to the
    # backup, whom they reach when the prompt in their way ends.
    assert actor.language != "es"
    await ari.stop_playback(FOREIGN)
    await phones.wait_for(answered_at(BACKUP_PHONE), 20, what="the backup destination answering the first caller")


async def _language_change_held(engine, phones: PhonesClient, ari: AriRest):
    """A first caller whose language change Asterisk holds behind a tone
    the test plays: the call as placed, and its actor."""
    first = await phones.place_call(FIRST, TOLL_FREE)  # no digit yet: the greeting and language menu play

    async def greeting_playing():
        actors = list(engine.engine.calls.values())
        return actors[0] if actors and isinstance(actors[0].state, InMenu) and actors[0].state.playback else None
    actor = await eventually(greeting_playing, 10, "the first caller's greeting playing")
    # Queued behind the greeting: it starts when the engine stops the greeting.
    await ari.play(actor.key, "tone:440", playback_id=FOREIGN)
    await phones.send_dtmf(first["id"], "2")  # Spanish: the engine sets the channel's language
    return first, actor
