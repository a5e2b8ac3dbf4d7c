"""Parsing ARI events recorded in the Asterisk 22 wire shape."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ivr.ari.errors import AriError, MalformedEvent
from ivr.ari.events import (
    BridgeDestroyed, ChannelDestroyed, ChannelDtmfReceived, ChannelEnteredBridge, Dial, PlaybackFinished,
    StasisStart, UnknownEvent, parse_event,
)

FIXTURES = Path(__file__).parent / "fixtures"
CALLER_NUMBER = "+15555550123"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_stasis_start_carries_the_call_and_its_args() -> None:
    event = parse_event(fixture("stasis_start"))

    assert isinstance(event, StasisStart)
    assert event.application == "hotline"
    assert event.timestamp == datetime(2025, 3, 14, 9, 26, 53, 589000, tzinfo=timezone.utc)
    assert event.args == ("inbound", "lang=en")
    assert event.replace_channel is None
    channel = event.channel
    assert (channel.id, channel.state, channel.language) == ("1741944413.42", "Ring", "en")
    assert channel.caller.number == CALLER_NUMBER
    assert (channel.dialplan.context, channel.dialplan.exten, channel.dialplan.priority) == (
        "from-pstn", "18005550100", 3)
    assert channel.channelvars == {"HOTLINE_LINE": "main"}
    assert event.channel_ids() == ("1741944413.42",)
    assert event.bridge_id() is None


def test_events_are_immutable() -> None:
    event = parse_event(fixture("stasis_start"))
    assert isinstance(event, StasisStart)

    with pytest.raises(ValidationError):
        event.channel = None  # type: ignore[misc, assignment]


def test_dtmf_has_digit_and_duration() -> None:
    event = parse_event(fixture("channel_dtmf_received"))

    assert isinstance(event, ChannelDtmfReceived)
    assert (event.digit, event.duration_ms) == ("2", 120)
    assert event.channel.channelvars is None


def test_playback_event_concerns_the_channel_in_its_target_uri() -> None:
    event = parse_event(fixture("playback_finished"))

    assert isinstance(event, PlaybackFinished)
    assert event.playback.state == "done"
    assert event.channel_ids() == ("1741944413.42",)
    assert event.bridge_id() is None


def test_playback_on_a_bridge_concerns_the_bridge() -> None:
    raw = fixture("playback_finished")
    raw["playback"]["target_uri"] = "bridge:call-1"

    event = parse_event(raw)

    assert event.channel_ids() == ()
    assert event.bridge_id() == "call-1"


def test_dial_from_an_originate_has_no_caller() -> None:
    event = parse_event(fixture("dial"))

    assert isinstance(event, Dial)
    assert event.dialstatus == "ANSWER"
    assert event.caller is None
    assert event.channel_ids() == ("adv-1741944413.42-1",)


def test_dial_with_a_caller_concerns_both_legs() -> None:
    raw = fixture("dial")
    raw["caller"] = fixture("stasis_start")["channel"]

    event = parse_event(raw)

    assert event.channel_ids() == ("adv-1741944413.42-1", "1741944413.42")


def test_bridge_events_concern_channel_and_bridge() -> None:
    entered = parse_event(fixture("channel_entered_bridge"))
    destroyed = parse_event(fixture("bridge_destroyed"))

    assert isinstance(entered, ChannelEnteredBridge)
    assert entered.bridge.channels == ("1741944413.42", "adv-1741944413.42-1")
    assert entered.channel_ids() == ("adv-1741944413.42-1",)
    assert entered.bridge_id() == "call-1741944413.42"
    assert isinstance(destroyed, BridgeDestroyed)
    assert destroyed.channel_ids() == ()
    assert destroyed.bridge_id() == "call-1741944413.42"


def test_channel_destroyed_has_the_hangup_cause() -> None:
    event = parse_event(fixture("channel_destroyed"))

    assert isinstance(event, ChannelDestroyed)
    assert (event.cause, event.cause_txt) == (16, "Normal Clearing")


def test_unknown_type_is_kept_raw_and_still_routable() -> None:
    raw = fixture("channel_talking_started")

    event = parse_event(raw)

    assert isinstance(event, UnknownEvent)
    assert event.type == "ChannelTalkingStarted"
    assert event.raw is raw
    assert event.channel_ids() == ("1741944413.42",)
    assert event.bridge_id() is None


def test_unknown_type_without_resources_concerns_nothing() -> None:
    event = parse_event({"type": "DeviceStateChanged", "device_state": {"name": "PJSIP/x", "state": "INUSE"}})

    assert isinstance(event, UnknownEvent)
    assert event.channel_ids() == ()
    assert event.bridge_id() is None


def test_malformed_known_event_names_fields_but_not_values() -> None:
    raw = fixture("stasis_start")
    raw["channel"]["caller"]["number"] = {"not": CALLER_NUMBER}
    del raw["channel"]["id"]

    with pytest.raises(MalformedEvent) as caught:
        parse_event(raw)

    message = str(caught.value)
    assert "StasisStart" in message
    assert "channel.id" in message
    assert "channel.caller.number" in message
    assert CALLER_NUMBER not in message
    assert caught.value.event_type == "StasisStart"
    assert isinstance(caught.value, AriError)


@pytest.mark.parametrize("raw", [{}, {"type": 7}, [], "StasisStart"])
def test_message_without_a_type_is_malformed(raw: Any) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(raw)
