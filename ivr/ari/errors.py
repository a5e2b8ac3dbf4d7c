"""What can go wrong when talking to Asterisk over ARI.

Every failure that leaves ``ivr.ari`` is one of these; aiohttp and pydantic
errors are translated where they enter our code (``raise ... from exc``), so
callers catch our names and never a transport library's.

    AriError
    ├── AriUnavailable   Asterisk unreachable, timed out, or answered 5xx
    ├── AriAuthFailed    401/403: wrong ARI user or password (a config error)
    ├── AriNotFound      404: the channel, bridge or playback is gone
    ├── AriConflict      409/412: the resource is in the wrong state for that
    ├── AriBadRequest    400/422: we sent something Asterisk will not take
    └── MalformedEvent   an event of a known type that does not parse

Messages carry the HTTP method, the path (ids only, never the query string,
which may hold a caller's number in an originate endpoint) and Asterisk's own
short message. They never carry the ARI password.
"""

from __future__ import annotations


class AriError(Exception):
    """Base of every ARI failure."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AriUnavailable(AriError):
    """Asterisk did not answer usefully: refused, reset, timed out, or 5xx.

    Transient by nature; the event stream retries, a REST caller decides.
    """


class AriAuthFailed(AriError):
    """Asterisk refused the ARI credentials (401/403): fix the settings."""


class AriNotFound(AriError):
    """The resource is gone (404).

    Normal in telephony: a caller may hang up between any two requests. Catch
    it where it happens, log it with the call's id, and move on.
    """


class AriConflict(AriError):
    """The resource exists but not in a state for that request (409, 412).

    E.g. a channel that has left Stasis, or a playback that already finished.
    """


class AriBadRequest(AriError):
    """Asterisk rejected the request's parameters (400, 422): our bug."""


class MalformedEvent(AriError):
    """An event of a known type whose fields do not match the ARI model.

    The message names the event type and the failing fields, never their
    values (they may hold caller numbers). The event stream logs and skips it.
    """

    def __init__(self, event_type: str, detail: str) -> None:
        super().__init__(f"malformed {event_type} event: {detail}")
        self.event_type = event_type


def error_for_status(status: int, message: str) -> AriError:
    """The exception for an ARI HTTP error status."""
    if status == 404:
        return AriNotFound(message, status=status)
    if status in (409, 412):
        return AriConflict(message, status=status)
    if status in (400, 422):
        return AriBadRequest(message, status=status)
    if status in (401, 403):
        return AriAuthFailed(message, status=status)
    if status >= 500:
        return AriUnavailable(message, status=status)
    return AriError(message, status=status)
