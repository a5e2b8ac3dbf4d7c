"""The HMAC that stands in for a caller's number."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.privacy import CallerHasher, normalise

KEY = b"a key of the hotline"


def test_one_caller_in_any_format_has_one_reference():
    hasher = CallerHasher(KEY)
    assert len({hasher(n) for n in ("+1 555-555-0101", "15555550101", "(555) 555-0101")}) == 1


def test_another_key_gives_another_reference_and_the_key_stays_hidden():
    assert CallerHasher(KEY)("5555550101") != CallerHasher(b"another key here")("5555550101")
    assert "hotline" not in repr(CallerHasher(KEY))


@given(st.text(alphabet="0123456789", min_size=1, max_size=15))
def test_a_reference_is_32_hex_digits_that_do_not_contain_the_number(number):
    reference = CallerHasher(KEY)(number)
    assert re.fullmatch(r"[0-9a-f]{32}", reference)
    if len(number) >= 7:
        assert number not in reference


def test_the_reference_for_a_real_looking_number_does_not_contain_its_digits():
    reference = CallerHasher(KEY)("+1 555-555-0101")
    assert not any(part in reference for part in ("5555550101", "5550101", "555555"))


def test_repr_and_str_show_no_part_of_the_key():
    hasher = CallerHasher(KEY)
    for text in (repr(hasher), str(hasher)):
        assert KEY.decode() not in text and repr(KEY) not in text and KEY.hex() not in text


def test_a_short_key_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="privacy.hmac_key"):
        CallerHasher(b"short")


@pytest.mark.parametrize("number, digits", [
    ("+1 555-555-0101", "5555550101"),
    ("15555550101", "5555550101"),
    ("(555) 555-0101", "5555550101"),
    ("+44 20 7946 0018", "442079460018"),   # not a North American number: kept whole
    ("25555550101", "25555550101"),         # 11 digits without the trunk 1: kept whole
    ("anonymous", ""),
])
def test_normalise_keeps_digits_and_drops_only_the_north_american_trunk_prefix(number, digits):
    assert normalise(number) == digits


def test_a_withheld_number_has_no_reference():
    # No reference rather than one that every anonymous caller would share.
    assert CallerHasher(KEY)("anonymous") == ""
