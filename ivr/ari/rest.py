"""A thin, typed client for the ARI REST resources the engine uses.

One method per ARI operation, no caching and no retries: a call flow knows
whether a retry makes sense, this module does not. Responses are parsed into
``ivr.ari.models`` objects; failures are ``ivr.ari.errors`` exceptions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from ivr.ari.errors import AriError, AriUnavailable, error_for_status
from ivr.ari.models import Bridge, Channel, Playback, parse_model
from ivr.ari.socket_requests import NotConnected, SocketRequests, SocketResponse

log = logging.getLogger(__name__)

Params = Mapping[str, str | int | None]

# Asterisk closes an HTTP connection idle for session_keep_alive (15 s, its
# default, in deploy/asterisk/http.conf), and aiohttp keeps an idle one for
# 15 s too: a request sent just as Asterisk closes the connection fails with
# ServerDisconnectedError. The bench met it (GET /channels after a quiet
# spell); an originate meeting it would ring nobody. The client lets go first.
ARI_KEEPALIVE_S = 10.0


def ari_session(*, limit: int = 100) -> aiohttp.ClientSession:
    """An HTTP session for ARI, whose idle connections close before Asterisk closes them."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=ARI_KEEPALIVE_S))


def _seg(resource_id: str) -> str:
    """A resource id as one URL path segment (ids may hold '.', '@', ';')."""
    return quote(resource_id, safe="")


class AriRest:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, username: str, password: str,
                 timeout_s: float = 5.0, socket: SocketRequests | None = None) -> None:
        self._session = session
        # The request WebSocket, when it is up: requests go there, else over HTTP.
        self._socket = socket
        self._timeout_s = timeout_s
        self._base_url = base_url.rstrip("/")
        self._username = username
        self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        return f"AriRest({self._base_url!r}, user={self._username!r})"

    async def _request(self, method: str, path: str, params: Params | None = None,
                       json: Mapping[str, Any] | None = None, timeout_s: float | None = None,
                       over_socket: bool = True) -> Any:
        """Send one request; the decoded JSON body, or None for 204.

        Error messages name the method and path but not the query string:
        an originate's endpoint or caller id may be a phone number.
        """
        query = {key: str(value) for key, value in (params or {}).items() if value is not None}
        where = f"{method} {path}"
        if self._socket is not None and over_socket:
            try:
                response = await self._socket.request(method, path, query, json,
                                                      self._timeout_s if timeout_s is None else timeout_s, where)
            except NotConnected:
                pass  # not sent: over HTTP below
            else:
                return _socket_body(response, where)
        try:
            async with self._session.request(method, self._base_url + path, params=query, json=json,
                                             headers=self._headers,
                                             timeout=self._timeout if timeout_s is None
                                             else aiohttp.ClientTimeout(total=timeout_s)) as response:
                if response.status == 204:
                    return None
                if response.status >= 400:
                    detail = await _error_detail(response)
                    raise error_for_status(response.status, f"{where}: {response.status} {detail}")
                try:
                    return await response.json(content_type=None)
                except ValueError as exc:
                    raise AriError(f"{where}: response is not JSON") from exc
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise AriUnavailable(f"{where}: {type(exc).__name__}") from exc

    # Channels

    async def answer(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._request("DELETE", f"/channels/{_seg(channel_id)}", {"reason": reason})

    async def ring(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/ring")

    async def continue_in_dialplan(self, channel_id: str, *, context: str | None = None,
                                   extension: str | None = None, priority: int | None = None,
                                   label: str | None = None) -> None:
        """Leave Stasis and resume the dialplan (where it was, or at the given place)."""
        await self._request("POST", f"/channels/{_seg(channel_id)}/continue", {
            "context": context, "extension": extension, "priority": priority, "label": label,
        })

    async def play(self, channel_id: str, media: str | Sequence[str], *, playback_id: str | None = None,
                   lang: str | None = None) -> Playback:
        """Queue media on the channel; a list plays as one playback, in order."""
        media_param = media if isinstance(media, str) else ",".join(media)
        path = f"/channels/{_seg(channel_id)}/play"
        if playback_id is not None:
            path += f"/{_seg(playback_id)}"
        body = await self._request("POST", path, {"media": media_param, "lang": lang})
        return parse_model(Playback, body, "playback")

    async def get_playback(self, playback_id: str) -> Playback:
        return parse_model(Playback, await self._request("GET", f"/playbacks/{_seg(playback_id)}"), "playback")

    async def stop_playback(self, playback_id: str) -> None:
        await self._request("DELETE", f"/playbacks/{_seg(playback_id)}")

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/moh", {"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{_seg(channel_id)}/moh")

    async def set_var(self, channel_id: str, variable: str, value: str) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/variable",
                            {"variable": variable, "value": value})

    async def get_var(self, channel_id: str, variable: str) -> str:
        """The variable's value; AriNotFound if the channel or variable is unset."""
        body = await self._request("GET", f"/channels/{_seg(channel_id)}/variable", {"variable": variable})
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, str):
            raise AriError("unexpected variable response from ARI")
        return value

    async def record(self, channel_id: str, name: str, *, max_duration_s: int, fmt: str = "wav") -> None:
        """Record what the channel hears into the spool (sandbox test phones only:
        the hotline itself records nothing)."""
        await self._request("POST", f"/channels/{_seg(channel_id)}/record", {
            "name": name, "format": fmt, "maxDurationSeconds": max_duration_s, "ifExists": "overwrite",
            "beep": "false", "terminateOn": "none"})

    async def send_dtmf(self, channel_id: str, dtmf: str, *, before_ms: int = 0, between_ms: int = 100,
                        duration_ms: int = 100, after_ms: int = 0) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/dtmf", {
            "dtmf": dtmf, "before": before_ms, "between": between_ms,
            "duration": duration_ms, "after": after_ms,
        })

    async def originate(self, endpoint: str, *, app: str, app_args: str = "", channel_id: str | None = None,
                        other_channel_id: str | None = None, caller_id: str | None = None,
                        timeout_s: int = 30, variables: Mapping[str, str] | None = None) -> Channel:
        """Dial ``endpoint`` into our Stasis ``app``.

        Pass ``channel_id`` and route it to the call's actor first: Asterisk
        may send the new channel's first events before this request returns.
        """
        params: dict[str, str | int | None] = {
            "endpoint": endpoint, "app": app, "appArgs": app_args or None, "channelId": channel_id,
            "otherChannelId": other_channel_id, "callerId": caller_id, "timeout": timeout_s,
        }
        # Over HTTP even while the request socket carries requests: Asterisk
        # runs a socket's requests one after another, and an advocate's ring
        # must not wait behind other calls' answers and music.
        body = await self._request("POST", "/channels", params, json={"variables": dict(variables or {})},
                                   over_socket=False)
        return parse_model(Channel, body, "channel")

    async def get_channel(self, channel_id: str) -> Channel:
        return parse_model(Channel, await self._request("GET", f"/channels/{_seg(channel_id)}"), "channel")

    async def set_event_filter(self, app: str, allowed: Sequence[str]) -> None:
        """Ask Asterisk to send application ``app`` only events of these types."""
        await self._request("PUT", f"/applications/{_seg(app)}/eventFilter",
                            json={"allowed": [{"type": event_type} for event_type in allowed]})

    async def list_channels(self) -> list[Channel]:
        body = await self._request("GET", "/channels")
        return [parse_model(Channel, item, "channel") for item in _as_list(body)]

    async def snoop(self, channel_id: str, *, app: str, spy: str = "none", whisper: str = "none",
                    snoop_id: str | None = None, app_args: str = "") -> Channel:
        params = {"app": app, "spy": spy, "whisper": whisper, "snoopId": snoop_id, "appArgs": app_args or None}
        body = await self._request("POST", f"/channels/{_seg(channel_id)}/snoop", params)
        return parse_model(Channel, body, "channel")

    # Bridges

    async def create_bridge(self, bridge_id: str | None = None, *, bridge_type: str = "mixing",
                            name: str | None = None) -> Bridge:
        params = {"type": bridge_type, "bridgeId": bridge_id, "name": name}
        return parse_model(Bridge, await self._request("POST", "/bridges", params), "bridge")

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return parse_model(Bridge, await self._request("GET", f"/bridges/{_seg(bridge_id)}"), "bridge")

    async def list_bridges(self) -> list[Bridge]:
        body = await self._request("GET", "/bridges")
        return [parse_model(Bridge, item, "bridge") for item in _as_list(body)]

    async def add_to_bridge(self, bridge_id: str, channel_ids: str | Sequence[str], *,
                            role: str | None = None, waits_s: float | None = None) -> None:
        """Asterisk answers once the channel is in. A channel still sending
        DTMF joins only after its digits, and Asterisk holds the request
        until then: pass ``waits_s`` covering them. Such a request goes over
        HTTP: on the request WebSocket, whose requests Asterisk runs one after
        another, an interpreter's 6.5 s of keying held every call's requests
        (ivr.ari.socket_requests)."""
        await self._request("POST", f"/bridges/{_seg(bridge_id)}/addChannel",
                            {"channel": _id_list(channel_ids), "role": role}, timeout_s=waits_s,
                            over_socket=waits_s is None)

    async def remove_from_bridge(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        await self._request("POST", f"/bridges/{_seg(bridge_id)}/removeChannel",
                            {"channel": _id_list(channel_ids)})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._request("DELETE", f"/bridges/{_seg(bridge_id)}")

    # Asterisk and applications

    async def get_application(self, name: str) -> dict[str, Any]:
        return _as_dict(await self._request("GET", f"/applications/{_seg(name)}"))

    async def asterisk_info(self) -> dict[str, Any]:
        return _as_dict(await self._request("GET", "/asterisk/info"))


def _id_list(ids: str | Sequence[str]) -> str:
    return ids if isinstance(ids, str) else ",".join(ids)


def _as_list(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise AriError("unexpected response from ARI: expected a list")
    return body


def _as_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AriError("unexpected response from ARI: expected an object")
    return body


def _socket_body(response: SocketResponse, where: str) -> Any:
    """A RESTResponse as _request returns an HTTP response: its JSON body, or an error."""
    try:
        body = response.json()
    except ValueError:
        if response.status < 400:
            raise AriError(f"{where}: response is not JSON") from None
        body = None
    if response.status >= 400:
        raise error_for_status(response.status, f"{where}: {response.status} {_detail(body, response.reason)}")
    return body


async def _error_detail(response: aiohttp.ClientResponse) -> str:
    """ARI's short error message ({"message": ...}), bounded in length."""
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return response.reason or ""
    return _detail(body, response.reason)


def _detail(body: Any, reason: str | None) -> str:
    """ARI's error message from a decoded body, bounded in length; else the reason phrase."""
    message = body.get("message") if isinstance(body, dict) else None
    return message[:200] if isinstance(message, str) else reason or ""
