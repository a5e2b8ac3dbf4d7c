"""AriRest: request shapes and error mapping against a stand-in HTTP peer."""

from __future__ import annotations

import base64
import socket

import aiohttp
import pytest

from ivr.ari.errors import (
    AriAuthFailed, AriBadRequest, AriConflict, AriError, AriNotFound, AriUnavailable,
)
from ivr.ari.rest import AriRest

from .conftest import PASSWORD, USERNAME, FakeAri, load_fixture

CHANNEL = load_fixture("stasis_start")["channel"]
BRIDGE = load_fixture("channel_entered_bridge")["bridge"]
PLAYBACK = load_fixture("playback_finished")["playback"]


async def test_answer_posts_with_basic_auth(rest: AriRest, fake: FakeAri) -> None:
    await rest.answer("1741944413.42")

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/ari/channels/1741944413.42/answer")
    expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert request.authorization == f"Basic {expected}"


async def test_hangup_deletes_the_channel_with_a_reason(rest: AriRest, fake: FakeAri) -> None:
    await rest.hangup("c1", reason="busy")

    [request] = fake.requests
    assert (request.method, request.path, request.query) == ("DELETE", "/ari/channels/c1", {"reason": "busy"})


async def test_event_filter_lists_the_allowed_event_types(rest: AriRest, fake: FakeAri) -> None:
    await rest.set_event_filter("hotline", ["StasisStart", "StasisEnd"])

    [request] = fake.requests
    assert (request.method, request.path) == ("PUT", "/ari/applications/hotline/eventFilter")
    assert request.body == {"allowed": [{"type": "StasisStart"}, {"type": "StasisEnd"}]}


async def test_continue_in_dialplan_names_only_the_given_place(rest: AriRest, fake: FakeAri) -> None:
    await rest.continue_in_dialplan("c1", context="hotline-fallback", extension="s", priority=1)
    await rest.continue_in_dialplan("c2")

    assert [(r.method, r.path, r.query) for r in fake.requests] == [
        ("POST", "/ari/channels/c1/continue", {"context": "hotline-fallback", "extension": "s", "priority": "1"}),
        ("POST", "/ari/channels/c2/continue", {}),
    ]


async def test_play_a_list_of_media_with_our_playback_id(rest: AriRest, fake: FakeAri) -> None:
    fake.answer("POST", "/ari/channels/c1/play/pb-1", 201, PLAYBACK)

    playback = await rest.play("c1", ["sound:hotline/en/welcome", "sound:hotline/en/main-menu"],
                               playback_id="pb-1", lang="en")

    [request] = fake.requests
    assert request.query == {"media": "sound:hotline/en/welcome,sound:hotline/en/main-menu", "lang": "en"}
    assert playback.id == PLAYBACK["id"]
    assert playback.target_channel_id == "1741944413.42"


async def test_play_without_an_id_lets_asterisk_choose(rest: AriRest, fake: FakeAri) -> None:
    fake.answer("POST", "/ari/channels/c1/play", 201, PLAYBACK)

    await rest.play("c1", "sound:beep")

    assert fake.requests[0].query == {"media": "sound:beep"}


async def test_originate_sends_variables_in_the_body(rest: AriRest, fake: FakeAri) -> None:
    fake.answer("POST", "/ari/channels", 200, CHANNEL)

    channel = await rest.originate("PJSIP/advocate-07", app="hotline", app_args="advocate,c1",
                                   channel_id="adv-c1-1", caller_id="Hotline <18005550100>", timeout_s=20,
                                   variables={"HOTLINE_CALL": "c1"})

    [request] = fake.requests
    assert request.query == {
        "endpoint": "PJSIP/advocate-07", "app": "hotline", "appArgs": "advocate,c1",
        "channelId": "adv-c1-1", "callerId": "Hotline <18005550100>", "timeout": "20",
    }
    assert request.body == {"variables": {"HOTLINE_CALL": "c1"}}
    assert channel.id == CHANNEL["id"]


async def test_channel_variables_round_trip(rest: AriRest, fake: FakeAri) -> None:
    fake.answer("GET", "/ari/channels/c1/variable", 200, {"value": "es"})

    await rest.set_var("c1", "CHANNEL(language)", "es")
    value = await rest.get_var("c1", "CHANNEL(language)")

    assert value == "es"
    assert [r.query for r in fake.requests] == [
        {"variable": "CHANNEL(language)", "value": "es"}, {"variable": "CHANNEL(language)"}]


async def test_send_dtmf_and_moh_parameters(rest: AriRest, fake: FakeAri) -> None:
    await rest.send_dtmf("c1", "12#", between_ms=80)
    await rest.start_moh("c1", "hotline")
    await rest.stop_moh("c1")
    await rest.ring("c1")
    await rest.stop_playback("pb-1")

    assert [(r.method, r.path, r.query) for r in fake.requests] == [
        ("POST", "/ari/channels/c1/dtmf",
         {"dtmf": "12#", "before": "0", "between": "80", "duration": "100", "after": "0"}),
        ("POST", "/ari/channels/c1/moh", {"mohClass": "hotline"}),
        ("DELETE", "/ari/channels/c1/moh", {}),
        ("POST", "/ari/channels/c1/ring", {}),
        ("DELETE", "/ari/playbacks/pb-1", {}),
    ]


async def test_bridge_lifecycle_requests(rest: AriRest, fake: FakeAri) -> None:
    fake.answer("POST", "/ari/bridges", 200, BRIDGE)
    fake.answer("GET", "/ari/bridges", 200, [BRIDGE])

    bridge = await rest.create_bridge("call-c1", name="hotline-call")
    await rest.add_to_bridge("call-c1", ["c1", "adv-c1-1"], role="participant")
    await rest.remove_from_bridge("call-c1", "adv-c1-1")
    bridges = await rest.list_bridges()
    await rest.destroy_bridge("call-c1")

    assert bridge.channels == tuple(BRIDGE["channels"])
    assert [b.id for b in bridges] == [BRIDGE["id"]]
    assert [(r.method, r.path, r.query) for r in fake.requests] == [
        ("POST", "/ari/bridges", {"type": "mixing", "bridgeId": "call-c1", "name": "hotline-call"}),
        ("POST", "/ari/bridges/call-c1/addChannel", {"channel": "c1,adv-c1-1", "role": "participant"}),
        ("POST", "/ari/bridges/call-c1/removeChannel", {"channel": "adv-c1-1"}),
        ("GET", "/ari/bridges", {}),
        ("DELETE", "/ari/bridges/call-c1", {}),
    ]


async def test_snoop_and_channel_listing(rest: AriRest, fake: FakeAri) -> None:
    fake.answer("POST", "/ari/channels/c1/snoop", 200, CHANNEL)
    fake.answer("GET", "/ari/channels", 200, [CHANNEL, CHANNEL])

    snoop = await rest.snoop("c1", app="hotline", spy="both", snoop_id="snoop-c1")
    channels = await rest.list_channels()

    assert fake.requests[0].query == {"app": "hotline", "spy": "both", "whisper": "none", "snoopId": "snoop-c1"}
    assert snoop.id == CHANNEL["id"]
    assert len(channels) == 2


async def test_ids_are_escaped_as_one_path_segment(rest: AriRest, fake: FakeAri) -> None:
    await rest.answer("odd/id")

    assert fake.requests[0].raw_path == "/ari/channels/odd%2Fid/answer"


@pytest.mark.parametrize(("status", "error"), [
    (400, AriBadRequest), (422, AriBadRequest), (401, AriAuthFailed), (404, AriNotFound),
    (409, AriConflict), (412, AriConflict), (500, AriUnavailable), (503, AriUnavailable),
])
async def test_error_statuses_map_to_the_exception_tree(rest: AriRest, fake: FakeAri, status: int,
                                                        error: type[AriError]) -> None:
    fake.answer("POST", "/ari/channels/c1/answer", status, {"message": "Channel not in Stasis application"})

    with pytest.raises(error) as caught:
        await rest.answer("c1")

    assert caught.value.status == status
    assert "Channel not in Stasis application" in str(caught.value)
    assert PASSWORD not in str(caught.value)


async def test_error_message_omits_the_query_with_the_dialled_number(rest: AriRest, fake: FakeAri) -> None:
    fake.answer("POST", "/ari/channels", 400, {"message": "Invalid endpoint"})

    with pytest.raises(AriBadRequest) as caught:
        await rest.originate("PJSIP/+15555550199@pstn", app="hotline")

    assert "+15555550199" not in str(caught.value)
    assert "POST /channels" in str(caught.value)


async def test_response_of_the_wrong_shape_is_an_ari_error(rest: AriRest, fake: FakeAri) -> None:
    fake.answer("GET", "/ari/channels/c1", 200, {"id": "c1"})

    with pytest.raises(AriError) as caught:
        await rest.get_channel("c1")

    assert type(caught.value) is AriError


async def test_timeout_is_unavailable(rest: AriRest, fake: FakeAri) -> None:
    fake.stall.add("/ari/asterisk/info")

    with pytest.raises(AriUnavailable) as caught:
        await rest.asterisk_info()

    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_connection_refused_is_unavailable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rest = AriRest(session, f"http://127.0.0.1:{port}/ari", USERNAME, PASSWORD, timeout_s=1.0)

    with pytest.raises(AriUnavailable) as caught:
        await rest.asterisk_info()

    assert isinstance(caught.value.__cause__, aiohttp.ClientError)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(rest)
