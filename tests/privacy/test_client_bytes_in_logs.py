"""A request the engine's HTTP server cannot parse is logged by aiohttp with
the parser's error, which quotes the client's bytes: with ivr.logs' filter
only the error's kind is left, whatever the bytes held."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.logs import ClientInputErrors, LogfmtFormatter, configure
from privacy.number_formats import occurrences

CALLER = "+15555550123"
# A header value with a control byte: aiohttp answers 400 and logs the line it refused.
BAD_REQUEST = f"GET /calls HTTP/1.1\r\nHost: x\r\nX-Note: caller {CALLER}\x01\r\n\r\n".encode()


async def send_raw(server: TestServer, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read(200)
    writer.close()
    return answer


def refused(answer: bytes) -> bool:
    return answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"400"


def server_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [LogfmtFormatter().format(r) for r in caplog.records if r.name == "aiohttp.server"]
    caplog.clear()
    return lines


async def test_a_request_that_does_not_parse_is_logged_without_what_the_client_sent(caplog):
    server = TestServer(web.Application())
    await server.start_server()
    logger, only = logging.getLogger("aiohttp.server"), ClientInputErrors()
    try:
        # Unfiltered, aiohttp's line quotes the number: what the filter is for.
        assert refused(await send_raw(server, BAD_REQUEST))
        assert any(occurrences(line, [CALLER]) for line in server_lines(caplog))

        logger.addFilter(only)
        assert refused(await send_raw(server, BAD_REQUEST))
        [line] = server_lines(caplog)
        assert "BadHttpMessage (HTTP 400)" in line
        assert occurrences(line, [CALLER]) == []
    finally:
        logger.removeFilter(only)
        await server.close()


def test_an_error_in_a_handler_keeps_its_traceback():
    try:
        raise RuntimeError("bug in a handler")
    except RuntimeError as exc:
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", None,
                                   exc_info=(type(exc), exc, exc.__traceback__))
    assert ClientInputErrors().filter(record)
    assert "bug in a handler" in LogfmtFormatter().format(record)


def test_the_engines_logging_filters_aiohttps_server_log_once():
    root, server = logging.getLogger(), logging.getLogger("aiohttp.server")
    handlers, level, filters = root.handlers[:], root.level, server.filters[:]
    try:
        configure("INFO")
        configure("INFO")  # again, as a test or a restart in one process may
        assert sum(isinstance(f, ClientInputErrors) for f in server.filters) == 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        server.filters[:] = filters
