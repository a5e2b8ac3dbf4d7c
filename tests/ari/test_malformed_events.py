"""Malformed ARI events: whatever arrives on the WebSocket is parsed into an
event or refused with MalformedEvent, never another exception, and the
stream skips and counts it and goes on with the next message."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.ari.errors import MalformedEvent
from ivr.ari.events import Event, parse_event
from ivr.ari.stream import Backoff, EventStream

from nested_edits import parent_of, paths

from .conftest import FIXTURES, PASSWORD, USERNAME, load_fixture
from .test_stream import Script, base_url, events_server  # noqa: F401 (a fixture)
from .waiting import Journal

FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)
type_names = st.sampled_from(["StasisStart", "ChannelDtmfReceived", "PlaybackFinished", "Dial", "BridgeDestroyed",
                              "ChannelVarset", "ChannelUserevent", "", "x" * 70, "Stasis Start", "\n", "Ünïcode"])


def routed_or_refused(raw: Any) -> Event | None:
    """parse_event's answer, checked: an event whose resources can be asked for, or MalformedEvent."""
    try:
        event = parse_event(raw)
    except MalformedEvent as exc:
        assert len(str(exc)) < 100_000
        return None
    ids = event.channel_ids()
    assert isinstance(ids, tuple) and all(isinstance(i, str) for i in ids)
    bridge = event.bridge_id()
    assert bridge is None or isinstance(bridge, str)
    return event


@given(json_values)
def test_any_json_value_is_an_event_or_malformed(raw):
    routed_or_refused(raw)


@given(type_names, st.dictionaries(st.sampled_from(["channel", "playback", "bridge", "peer", "caller", "digit",
                                                     "timestamp", "application", "args"]), json_values, max_size=5))
def test_any_fields_under_any_type_are_an_event_or_malformed(event_type, fields):
    routed_or_refused({"type": event_type, **fields})


@st.composite
def mutated_fixtures(draw) -> dict[str, Any]:
    """A recorded event with one field deleted, or replaced by any JSON value."""
    raw = copy.deepcopy(load_fixture(draw(st.sampled_from(FIXTURE_NAMES))))
    path = draw(st.sampled_from(paths(raw)))
    parent = parent_of(raw, path)
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return raw


@settings(max_examples=200)
@given(mutated_fixtures())
def test_a_recorded_event_with_any_field_broken_is_an_event_or_malformed(raw):
    routed_or_refused(raw)


def test_a_type_that_is_not_an_event_name_is_malformed_not_unknown():
    for bad in ("", "x" * 65, "Channel Dtmf", "<script>", "Stasis\nStart"):
        with pytest.raises(MalformedEvent):
            parse_event({"type": bad})


# -- the stream: skip, count, go on ---------------------------------------------------------

DTMF = json.dumps(load_fixture("channel_dtmf_received"))
TALKING = json.dumps(load_fixture("channel_talking_started"))


def broken_dtmf() -> str:
    raw = load_fixture("channel_dtmf_received")
    raw["digit"] = {"not": "a digit"}
    return json.dumps(raw)


async def test_each_bad_message_is_skipped_and_counted_and_the_next_one_delivered(events_server, caplog):
    fake, server = events_server
    huge = json.dumps({"type": "ChannelUserevent", "eventname": "x" * 500_000, "application": "hotline"})
    fake.scripts = [Script([
        "[" * 100_000 + "]" * 100_000,      # deeper than the JSON parser recurses
        "{not json",
        "null", "[1, 2]", '{"type": 7}', '{"type": "Stasis Start"}',
        broken_dtmf(),
        huge,                               # an unknown type: delivered raw, for the engine to skip
        TALKING,                            # raises in the handler below
        DTMF,
    ])]
    delivered, skipped = Journal(), Journal()

    async def handler(event: Event) -> None:
        if event.type == "ChannelTalkingStarted":
            raise ValueError("bug in the app")
        delivered.add(event.type)

    async def sleep(_: float) -> None:
        await asyncio.sleep(0)

    async with aiohttp.ClientSession() as session:
        stream = EventStream(session, base_url(server), USERNAME, PASSWORD, "hotline", handler,
                             on_skipped=skipped.add, backoff=Backoff(0.01, 0.01), sleep=sleep)
        task = asyncio.create_task(stream.run())
        try:
            events = await delivered.wait_len(2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert events == ["ChannelUserevent", "ChannelDtmfReceived"]
    assert skipped.items == ["not_json", "not_json", "malformed", "malformed", "malformed", "malformed",
                             "malformed", "handler_error"]
    assert len(fake.connections.items) == 1  # nothing of it cost the connection
    assert "x" * 1000 not in caplog.text and "+15555550123" not in caplog.text
