"""The spellings a confidentiality search looks for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .number_formats import occurrences, spellings

EXPECTED = {
    "+15555550123", "15555550123", "5555550123", "5550123", "555-0123",
    "555-555-0123", "555.555.0123", "555 555 0123", "(555) 555-0123", "(555)555-0123",
    "+1 555 555 0123", "+1-555-555-0123", "1-555-555-0123", "+1 (555) 555-0123", "1.555.555.0123",
    "%2B15555550123", "01115555550123", "32105555551", "3210555555",
}


@pytest.mark.parametrize("delivered", ["+15555550123", "15555550123", "5555550123", "+1 (555) 555-0123"])
def test_every_delivery_format_of_one_number_gives_the_same_spellings(delivered):
    assert spellings(delivered) >= EXPECTED
    assert spellings(delivered) == spellings("+15555550123")


def test_a_number_outside_north_america_is_searched_whole_tail_and_reversed():
    found = spellings("+44 20 7946 0018")
    assert {"442079460018", "+442079460018", "2079460018", "9460018", "810064970244"} <= found
    assert not any(s.startswith("(") for s in found)


def test_tails_shorter_than_seven_digits_are_not_searched():
    assert "0123" not in spellings("+15555550123")


def test_too_short_a_number_is_refused():
    with pytest.raises(ValueError):
        spellings("911")


@given(st.text(alphabet="0123456789", min_size=10, max_size=10), st.sampled_from(["+1", "1", ""]),
       st.sampled_from(["-", ".", " "]))
def test_any_separated_national_number_in_text_is_found(national, prefix, sep):
    written = f"{national[:3]}{sep}{national[3:6]}{sep}{national[6:]}"
    text = f"ts=... msg='call from {written} waiting'"
    assert occurrences(text, [prefix + national])


def test_text_without_the_number_has_no_occurrences():
    assert occurrences("call 1732871234.12 waiting in english (priority 5)", ["+15555550123"]) == []
