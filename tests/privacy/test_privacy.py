"""The HMAC that stands in for a caller's number."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from ivr.privacy import CallerHasher

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
