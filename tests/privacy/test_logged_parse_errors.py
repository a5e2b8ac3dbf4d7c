"""A channel or event from ARI that does not parse is logged with its
traceback by whoever meets it (reconciliation, the event stream): pydantic's
own error text quotes the input, caller numbers included, so it must not
ride along as the logged exception's cause."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ivr.ari.errors import AriError, MalformedEvent
from ivr.ari.events import parse_event
from ivr.ari.models import Channel, parse_model
from ivr.logs import LogfmtFormatter
from privacy.number_formats import occurrences

FIXTURES = Path(__file__).resolve().parents[1] / "ari" / "fixtures"
CALLER = "+15555550123"


def logged(exc: Exception) -> str:
    """The line LogfmtFormatter writes for log.exception of `exc` (raised, so with its traceback)."""
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "reconciliation failed", None,
                               exc_info=(type(exc), exc, exc.__traceback__))
    return LogfmtFormatter().format(record)


def stasis_start_with_a_bad_caller() -> dict:
    raw = json.loads((FIXTURES / "stasis_start.json").read_text())
    # A short number is shown whole by pydantic; a list where a string belongs fails validation.
    raw["channel"]["caller"]["number"] = [CALLER]
    del raw["channel"]["dialplan"]
    return raw


def test_a_channel_that_does_not_parse_is_logged_without_its_caller_number():
    channel = stasis_start_with_a_bad_caller()["channel"]
    with pytest.raises(AriError) as caught:
        parse_model(Channel, channel, "channel")

    line = logged(caught.value)
    assert "dialplan" in line and "caller.number" in line  # which fields failed, still said
    assert occurrences(line, [CALLER]) == []


def test_an_event_that_does_not_parse_is_logged_without_its_caller_number():
    with pytest.raises(MalformedEvent) as caught:
        parse_event(stasis_start_with_a_bad_caller())

    line = logged(caught.value)
    assert "StasisStart" in line and "caller.number" in line
    assert occurrences(line, [CALLER]) == []
