"""What stands in for a caller's number.

The number itself never leaves the channel: not in logs, Redis, metrics, the
API or an advocate's display. Where one call must be related to another
(repeat callers), a keyed HMAC of the normalised number is used; without the
key, which lives only in settings, it cannot be turned back into the number
by trying every possible phone number.
"""

from __future__ import annotations

import hashlib
import hmac
import re


class CallerHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 8:
            raise ValueError("privacy.hmac_key: too short (8 bytes at least)")
        self._key = key

    def __call__(self, number: str) -> str:
        digits = normalise(number)
        if not digits:
            return ""
        return hmac.new(self._key, digits.encode(), hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:  # never show the key
        return "CallerHasher(<key>)"


def normalise(number: str) -> str:
    """Digits only, without a North American trunk prefix: +1 555..., 1555..., 555... are one caller."""
    digits = re.sub(r"\D", "", number)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits


# How much of a number identifies a caller: the subscriber number, without
# area or country code. Seven given digits, either way round, turn up by
# chance among the twenty-odd digits of a random 32-hex-digit token about
# three times in a million: a Call-ID dropped for nothing, now and then.
TAIL_DIGITS = 7


def number_tail(number: str) -> str:
    """The last seven digits of `number`, or "" for a shorter or withheld one."""
    digits = normalise(number)
    return digits[-TAIL_DIGITS:] if len(digits) >= TAIL_DIGITS else ""


def holds_number(text: str, tail: str) -> bool:
    """Whether `text` carries the number whose ``number_tail`` is `tail`,
    however written: its digits in order (or reversed, as in an ENUM name),
    whatever separates them."""
    if not tail:
        return False
    digits = re.sub(r"\D", "", text)
    return tail in digits or tail[::-1] in digits


def call_id_unsafe(call_id: str, tail: str) -> str:
    """Why the SIP Call-ID `call_id` must not be kept, or "" if it may be.

    Some carriers' equipment builds it from the calling number, so it is
    kept only when the caller's number is known (`tail`, its ``number_tail``)
    and it does not carry it. A number withheld from us, or too short to
    compare, may still be in it: the network knows it, and a caller who
    withheld it asked most plainly not to be known."""
    if not call_id:
        return ""
    if not tail:
        return "the caller's number is withheld, so nothing tells whether it carries it"
    if holds_number(call_id, tail):
        return "it carries the caller's number"
    return ""
