"""Malformed ARI events fed to the running engine through its real events
WebSocket (a proxy slips them in among Asterisk's own) while a caller waits
in line: each is logged and skipped, the skip counter moves, the connection
stays up, and the waiting caller still reaches an advocate."""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ivr.ari.errors import MalformedEvent
from ivr.ari.events import UnknownEvent, parse_event
from ivr.engine import QUIET
from ivr.sandbox.phones_client import PhonesClient
from privacy.number_formats import occurrences

from .ari_proxy import AriProxy
from .conftest import PHONES, EngineApi, eventually, metric_value, settings_with
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at, rang

RECORDED = Path(__file__).resolve().parents[1] / "ari" / "fixtures"
SENTINEL = "HotlineFuzzSentinel"
RANDOM_MESSAGES = 150


@pytest.fixture
def engine_settings(ari_proxy, monkeypatch):
    # The environment wins over the file and its overrides, and the sandbox's may name ARI.
    monkeypatch.setenv("HOTLINE_ARI__URL", ari_proxy.url)
    return settings_with()


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"{name}.json").read_text())


def on_channel(raw: dict[str, Any], channel_id: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for key in ("channel", "peer", "caller"):
        if isinstance(raw.get(key), dict):
            raw[key]["id"] = channel_id
    if isinstance(raw.get("playback"), dict):
        raw["playback"]["target_uri"] = f"channel:{channel_id}"
    return raw


def without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return raw


def replaced(raw: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return raw


def aimed_at(call: str) -> list[tuple[str, str | None]]:
    """(message, the skip it must cause, if any): every one concerns the
    waiting call's channel, and none is a valid event a live call would act on."""
    dtmf = on_channel(recorded("channel_dtmf_received"), call)
    destroyed = on_channel(recorded("channel_destroyed"), call)
    huge = "x" * 200_000
    messages: list[tuple[Any, str | None]] = [
        ("{not json", "not_json"), ("", "not_json"), ("\x00\xff", "not_json"),
        ("[" * 50_000 + "]" * 50_000, "not_json"), (huge, "not_json"),
        ("null", "malformed"), ("42", "malformed"), ('"StasisEnd"', "malformed"), ("[]", "malformed"),
        ({}, "malformed"), ({"type": None}, "malformed"), ({"type": 5}, "malformed"),
        ({"type": huge}, "malformed"), ({"type": "Channel Destroyed"}, "malformed"),
        # Events that would end the call, were they well formed.
        (without(destroyed, "cause"), "malformed"), (without(destroyed, "timestamp"), "malformed"),
        (replaced(destroyed, "not a channel", "channel"), "malformed"),
        (replaced(destroyed, {"id": call}, "channel"), "malformed"),
        ({**without(destroyed, "cause"), "type": "StasisEnd", "channel": {"id": call}}, "malformed"),
        (replaced(dtmf, {"digit": "1"}, "digit"), "malformed"), (replaced(dtmf, "long", "duration_ms"), "malformed"),
        (replaced(dtmf, 12, "channel", "id"), "malformed"),
        (replaced(on_channel(recorded("playback_finished"), call), None, "playback"), "malformed"),
        # Well formed but odd: the waiting call has nothing to do with them.
        (replaced(dtmf, "9" * 10_000, "digit"), None),
        (replaced(on_channel(recorded("playback_finished"), call), "no-such-playback", "playback", "id"), None),
        # The caller's StasisStart again, as one that waited behind the
        # reconciliation that adopted the call: carried on, not answered again.
        (on_channel(recorded("stasis_start"), call), None),
        # Types nobody models, about the call, one of them huge.
        ({"type": "ChannelFrobnicated", "channel": {"id": call}, "application": "hotline"}, "unknown_type"),
        ({"type": "ChannelUserevent", "channel": {"id": call}, "eventname": huge, "userevent": {"a": [[[]]]}},
         "unknown_type"),
    ]
    return [(m if isinstance(m, str) else json.dumps(m), reason) for m, reason in messages]


def random_messages(rng: random.Random, count: int) -> list[str]:
    """Recorded events with a field deleted or replaced, about channels that
    are no call's (a valid one among them is merely an event for nobody)."""
    junk: list[Any] = [None, True, -1, 2**70, 1e308, "", "x" * 5000, [], {}, [{}], {"id": None}, "\u202e\n\""]
    names = sorted(p.stem for p in RECORDED.glob("*.json"))
    messages = []
    for n in range(count):
        raw = on_channel(recorded(rng.choice(names)), f"fuzz-{n}")
        key = rng.choice(sorted(raw))
        target = raw[key] if isinstance(raw[key], dict) and rng.random() < 0.5 else raw
        field = rng.choice(sorted(target))
        if rng.random() < 0.4:
            del target[field]
        else:
            target[field] = rng.choice(junk)
        messages.append(json.dumps(raw))
    return messages


def expected_skip(message: str) -> str | None:
    """The skip reason the engine should report for a message of the random set."""
    try:
        raw = json.loads(message)
    except (ValueError, RecursionError):
        return "not_json"
    try:
        event = parse_event(raw)
    except MalformedEvent:
        return "malformed"
    if isinstance(event, UnknownEvent) and event.type not in QUIET:
        return "unknown_type"
    return None


async def test_malformed_events_are_skipped_and_counted_and_the_waiting_caller_is_still_answered(
        engine, api: EngineApi, phones: PhonesClient, ari_proxy: AriProxy, caplog):
    caplog.set_level("DEBUG")
    caller = await phones.place_call(CALLER, TOLL_FREE, dtmf="12")
    waiting = await eventually(lambda: engine.store.waiting("english"), ROUTE_S, "the caller waiting in line")
    call = waiting[0]

    aimed = aimed_at(call)
    noise = random_messages(random.Random(6), RANDOM_MESSAGES)
    sentinel = json.dumps({"type": SENTINEL, "application": "hotline"})
    await ari_proxy.inject([m for m, _ in aimed] + noise + [sentinel])
    await eventually(lambda: _logged(caplog, SENTINEL), 30, "the engine reading past every injected message")

    expected = Counter(filter(None, [reason for _, reason in aimed] + [expected_skip(m) for m in noise]))
    expected["unknown_type"] += 1  # the sentinel
    page = await api.metrics()
    for reason in ("not_json", "malformed", "unknown_type", "handler_error"):
        assert metric_value(page, "hotline_ari_events_skipped_total", reason=reason) == expected[reason], reason
    assert engine.stream.connected and ari_proxy.opened == {"hotline": 1, "hotline-requests": 1}
    # Calls started by well-formed StasisStarts for channels that do not exist end at once.
    await eventually(lambda: _only(engine, call), 10, "no call but the waiting caller's")
    assert await engine.store.waiting("english") == [call]

    await api.act("ana", "login")
    await phones.wait_for(rang(PHONES["ana"]), 10, what="ana's phone ringing")
    await phones.wait_for(answered_at(PHONES["ana"]), 10, what="ana answering")
    await eventually(lambda: _state(engine, call, "bridged"), 5, "the caller connected to ana")
    # The engine's REST requests went on its request socket, beside the one the junk came down.
    assert ari_proxy.socket_requests > 1
    assert (await phones.call(caller["id"]))["state"] == "answered"
    assert "x" * 1000 not in caplog.text
    assert occurrences(caplog.text, [CALLER]) == []


async def _logged(caplog, text: str) -> bool:
    return text in caplog.text


async def _only(engine, call: str) -> bool:
    return set(engine.engine.calls) == {call}


async def _state(engine, call: str, state: str) -> bool:
    return (await engine.store.get_call(call) or {}).get("state") == state
