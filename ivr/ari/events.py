"""ARI WebSocket events, parsed once at the boundary into typed objects.

Each class is named exactly as ARI names the event's ``type``. Every event
answers ``channel_ids()`` and ``bridge_id()``, the resources it concerns, so
the dispatcher can route it to the call that owns them without knowing each
event's shape. Types we do not model arrive as ``UnknownEvent`` rather than
failing: Asterisk adds event types between versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from ivr.ari.errors import MalformedEvent
from ivr.ari.models import AriModel, Bridge, Channel, Playback, describe_validation_error, target_ids


class AriEvent(AriModel):
    type: str
    timestamp: datetime
    application: str
    asterisk_id: str | None = None

    def channel_ids(self) -> tuple[str, ...]:
        """Ids of the channels this event concerns, most specific first."""
        return ()

    def bridge_id(self) -> str | None:
        """Id of the bridge this event concerns, if any."""
        return None


class _ChannelEvent(AriEvent):
    channel: Channel

    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel.id,)


class StasisStart(_ChannelEvent):
    """A channel entered our application (a new call, or a leg we originated)."""

    type: Literal["StasisStart"]
    args: tuple[str, ...] = ()
    # Set when the channel replaced another one in Stasis (masquerade).
    replace_channel: Channel | None = None


class StasisEnd(_ChannelEvent):
    type: Literal["StasisEnd"]


class ChannelStateChange(_ChannelEvent):
    type: Literal["ChannelStateChange"]


class ChannelDtmfReceived(_ChannelEvent):
    type: Literal["ChannelDtmfReceived"]
    digit: str
    duration_ms: int


class ChannelHangupRequest(_ChannelEvent):
    type: Literal["ChannelHangupRequest"]
    cause: int | None = None
    soft: bool | None = None


class ChannelDestroyed(_ChannelEvent):
    type: Literal["ChannelDestroyed"]
    cause: int
    cause_txt: str


class ChannelVarset(AriEvent):
    type: Literal["ChannelVarset"]
    variable: str
    value: str
    # Absent for global variables.
    channel: Channel | None = None

    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel.id,) if self.channel else ()


class _BridgeChannelEvent(_ChannelEvent):
    bridge: Bridge

    def bridge_id(self) -> str | None:
        return self.bridge.id


class ChannelEnteredBridge(_BridgeChannelEvent):
    type: Literal["ChannelEnteredBridge"]


class ChannelLeftBridge(_BridgeChannelEvent):
    type: Literal["ChannelLeftBridge"]


class BridgeDestroyed(AriEvent):
    type: Literal["BridgeDestroyed"]
    bridge: Bridge

    def bridge_id(self) -> str | None:
        return self.bridge.id


class _PlaybackEvent(AriEvent):
    playback: Playback

    def channel_ids(self) -> tuple[str, ...]:
        channel_id = self.playback.target_channel_id
        return (channel_id,) if channel_id else ()

    def bridge_id(self) -> str | None:
        return self.playback.target_bridge_id


class PlaybackStarted(_PlaybackEvent):
    type: Literal["PlaybackStarted"]


class PlaybackFinished(_PlaybackEvent):
    type: Literal["PlaybackFinished"]


class Dial(AriEvent):
    """Progress of a dial; ``dialstatus`` is "" while ringing, then ANSWER etc."""

    type: Literal["Dial"]
    peer: Channel
    # Absent when the dial was an ARI originate rather than a Dial() app.
    caller: Channel | None = None
    dialstatus: str
    dialstring: str | None = None
    forward: str | None = None

    def channel_ids(self) -> tuple[str, ...]:
        if self.caller is None:
            return (self.peer.id,)
        return (self.peer.id, self.caller.id)


class ApplicationReplaced(AriEvent):
    """Another WebSocket subscribed to our application and took its events."""

    type: Literal["ApplicationReplaced"]


@dataclass(frozen=True)
class UnknownEvent:
    """An event type we do not model, kept raw; routed by its obvious ids."""

    type: str
    raw: dict[str, Any] = field(repr=False)

    def channel_ids(self) -> tuple[str, ...]:
        channel = self.raw.get("channel")
        if isinstance(channel, dict) and isinstance(channel.get("id"), str):
            return (channel["id"],)
        playback = self.raw.get("playback")
        if isinstance(playback, dict) and isinstance(playback.get("target_uri"), str):
            channel_id = target_ids(playback["target_uri"])[0]
            return (channel_id,) if channel_id else ()
        return ()

    def bridge_id(self) -> str | None:
        bridge = self.raw.get("bridge")
        bridge_id = bridge.get("id") if isinstance(bridge, dict) else None
        return bridge_id if isinstance(bridge_id, str) else None


KnownEvent = (
    StasisStart | StasisEnd | ChannelStateChange | ChannelDtmfReceived | ChannelHangupRequest
    | ChannelDestroyed | ChannelVarset | ChannelEnteredBridge | ChannelLeftBridge | BridgeDestroyed
    | PlaybackStarted | PlaybackFinished | Dial | ApplicationReplaced
)
Event = KnownEvent | UnknownEvent

# What Asterisk's event type names look like (ChannelDtmfReceived, ...).
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

_EVENT_TYPES: dict[str, type[AriEvent]] = {
    cls.__name__: cls
    for cls in (
        StasisStart, StasisEnd, ChannelStateChange, ChannelDtmfReceived, ChannelHangupRequest,
        ChannelDestroyed, ChannelVarset, ChannelEnteredBridge, ChannelLeftBridge, BridgeDestroyed,
        PlaybackStarted, PlaybackFinished, Dial, ApplicationReplaced,
    )
}


def parse_event(raw: dict[str, Any]) -> Event:
    """The typed event for one decoded ARI WebSocket message.

    Unknown types become ``UnknownEvent``; a known type that does not match
    its model raises ``MalformedEvent`` naming the fields, not their values.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise MalformedEvent("<untyped>", "message is not an object with a string 'type'")
    if not _TYPE_NAME.fullmatch(raw["type"]):
        # Logged and counted downstream: only a name like Asterisk's goes that far.
        raise MalformedEvent("<untyped>", "'type' is not an event type name")
    event_type = raw["type"]
    model = _EVENT_TYPES.get(event_type)
    if model is None:
        return UnknownEvent(type=event_type, raw=raw)
    try:
        return model.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        # from None: pydantic's own text quotes the input, which may hold a caller's number,
        # and a logged traceback prints the cause.
        raise MalformedEvent(event_type, describe_validation_error(exc)) from None
