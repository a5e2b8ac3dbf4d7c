"""RelayDetector: relay calls recognised by the caller's number or the line
called, whatever way the number is written."""

import pytest

from ivr.relay import RelayDetector

PROVIDER = "+1 800 555 0711"
RELAY_DID = "+1 (888) 555-0199"
SPELLINGS = ["+1 800 555 0711", "18005550711", "8005550711", "(800) 555-0711", "+1-800-555-0711",
             "1.800.555.0711"]
OTHER_NUMBERS = ["+1 800 555 0712", "8005550710", "800555071", "28005550711", "+44 800 555 0711",
                 "5550711", ""]


@pytest.fixture
def is_relay() -> RelayDetector:
    return RelayDetector(numbers=[PROVIDER], dids=[RELAY_DID])


@pytest.mark.parametrize("caller", SPELLINGS)
def test_relay_provider_number_matches_however_it_is_written(is_relay, caller):
    assert is_relay(caller, "+1 202 555 0100")


@pytest.mark.parametrize("configured", SPELLINGS)
def test_configured_number_matches_however_it_is_written(configured):
    assert RelayDetector(numbers=[configured], dids=[])("18005550711", "")


@pytest.mark.parametrize("did", ["+1 (888) 555-0199", "18885550199", "8885550199", "888 555 0199"])
def test_call_on_a_relay_only_line_matches_whoever_calls(is_relay, did):
    assert is_relay("+1 202 555 0123", did)


@pytest.mark.parametrize("caller", OTHER_NUMBERS)
def test_other_callers_on_other_lines_do_not_match(is_relay, caller):
    assert not is_relay(caller, "+1 202 555 0100")


def test_numbers_and_lines_are_not_mixed_up(is_relay):
    # The provider calling is relay on any line; a line number calling is not.
    assert not is_relay(RELAY_DID, "+1 202 555 0100")
    assert not is_relay("+1 202 555 0123", PROVIDER)


@pytest.mark.parametrize("caller", [*SPELLINGS, *OTHER_NUMBERS, "anonymous"])
def test_empty_lists_match_nothing(caller):
    assert not RelayDetector(numbers=[], dids=[])(caller, caller)


def test_configured_entries_without_digits_match_nothing():
    is_relay = RelayDetector(numbers=["", "anonymous"], dids=[" "])
    assert not is_relay("", "")
    assert not is_relay("anonymous", "anonymous")
