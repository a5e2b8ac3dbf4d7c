"""Structured log lines (logfmt), one event a line, with ids and never a caller number.

Modules log the call's channel id, advocate id and queue; the caller's
number is not in any object that reaches a log call (the call actor keeps
only its HMAC), so no filter has to catch it after the fact.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage().replace('"', "'")
        line = f'ts={stamp}.{int(record.msecs):03d}Z level={record.levelname.lower()} ' \
               f'logger={record.name} msg="{message}"'
        # An audit line carries its fields as keys of their own (extra={"fields": {...}}),
        # so a log shipper can index "supervisor=sam" without parsing the message.
        for key, value in getattr(record, "fields", {}).items():
            text = str(value).replace('"', "'")
            line += f' {key}="{text}"' if not text or " " in text or "=" in text else f" {key}={text}"
        if record.exc_info:
            line += f' exc="{self.formatException(record.exc_info)!r}"'
        return line


class ClientInputErrors(logging.Filter):
    """For aiohttp's server logger: a request it could not parse is logged
    with the parser's error, which quotes what the client sent (a bad header
    line, whole). Bytes from a client may hold anything, a caller's number
    too, so only the error's kind is kept. An error in one of our handlers
    keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: {type(exc).__name__} (HTTP {exc.code})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def redact_url(url: str) -> str:
    """``url`` fit for a log or an error: a password in it (redis://:pw@host,
    ?password=pw) becomes ``***``. Unparseable text is not shown at all."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "<unparseable URL>"
    if parsed.password is not None:
        parsed = parsed.with_password("***")
    if "password" in parsed.query:
        parsed = parsed.update_query(password="***")
    return str(parsed)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would carry nothing sensitive, but is noise at INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientInputErrors) for f in server.filters):
        server.addFilter(ClientInputErrors())
