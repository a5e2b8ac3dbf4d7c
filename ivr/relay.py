"""Recognising TRS/711 relay calls before the caller says anything.

A relay call reaches the hotline from a relay provider's number, or on a line
that only relay calls use. Numbers are compared by their digits, so
"+1 (800) 555-0100", "18005550100" and "8005550100" are one number (NANP:
the country code 1 is dropped from 11-digit numbers). The caller's number is
only compared here, never kept.
"""

from __future__ import annotations

from collections.abc import Iterable


def _digits(number: str) -> str:
    digits = "".join(c for c in number if c.isdigit())
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


class RelayDetector:
    def __init__(self, numbers: Iterable[str], dids: Iterable[str]) -> None:
        self._numbers = frozenset(d for d in map(_digits, numbers) if d)
        self._dids = frozenset(d for d in map(_digits, dids) if d)

    def __call__(self, caller_number: str, did: str) -> bool:
        """Whether the call is a relay call, by who calls or which line they called."""
        return _digits(caller_number) in self._numbers or _digits(did) in self._dids
