"""ARI resources as typed, immutable objects (Asterisk 22 data models).

Only the fields the engine uses are declared; ``extra="ignore"`` lets newer
Asterisk versions add fields without breaking us. Fields that Asterisk
always sends are required, so a truncated object fails loudly at the
boundary instead of as a ``None`` deep inside a call flow.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ivr.ari.errors import AriError


class AriModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


M = TypeVar("M", bound=AriModel)


class CallerId(AriModel):
    name: str = ""
    number: str = ""


class DialplanCep(AriModel):
    """Where in the dialplan the channel is (context, extension, priority)."""

    context: str
    exten: str
    priority: int
    app_name: str | None = None
    app_data: str | None = None


class Channel(AriModel):
    id: str
    name: str
    # "Down", "Ring", "Ringing", "Up", "Busy", ... (kept as Asterisk spells them)
    state: str
    caller: CallerId
    connected: CallerId = CallerId()
    dialplan: DialplanCep
    creationtime: datetime
    language: str = "en"
    # Only present when ari.conf / the subscription asks for channel variables.
    channelvars: dict[str, str] | None = None


class Bridge(AriModel):
    id: str
    technology: str
    bridge_type: str
    channels: tuple[str, ...] = ()
    name: str = ""
    creator: str = ""
    bridge_class: str = ""


class Playback(AriModel):
    id: str
    media_uri: str
    # "channel:<id>" or "bridge:<id>"
    target_uri: str
    # "queued", "playing", "paused", "done", "failed", ...
    state: str
    language: str | None = None
    next_media_uri: str | None = None

    @property
    def target_channel_id(self) -> str | None:
        return target_ids(self.target_uri)[0]

    @property
    def target_bridge_id(self) -> str | None:
        return target_ids(self.target_uri)[1]


def target_ids(target_uri: str) -> tuple[str | None, str | None]:
    """(channel id, bridge id) named by a playback's ``target_uri``."""
    kind, _, target_id = target_uri.partition(":")
    if not target_id:
        return None, None
    if kind == "channel":
        return target_id, None
    if kind == "bridge":
        return None, target_id
    return None, None


def describe_validation_error(exc: ValidationError) -> str:
    """Which fields failed and why, without their values (caller numbers)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in error["loc"]) or "<root>"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def parse_model(model: type[M], data: object, what: str) -> M:
    """Parse a REST response body, translating pydantic's error to ours."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # from None: pydantic's own text quotes the input (a channel's caller number),
        # and a logged traceback prints the cause.
        raise AriError(f"unexpected {what} from ARI: {describe_validation_error(exc)}") from None
