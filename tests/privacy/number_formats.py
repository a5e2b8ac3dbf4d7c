"""Every common way a phone number may be written, to search text for it.

A leak rarely keeps the carrier's format: a log line may hold the national
number with dashes, a URL the E.164 form percent-encoded, a display the last
seven digits. ``spellings`` gives each of them for one number, so that a
confidentiality test can say "none of these anywhere".
"""

from __future__ import annotations

import re


def spellings(number: str) -> frozenset[str]:
    """The spellings of ``number`` (North American or not) worth searching for.

    Digits alone and with the usual separators (dashes, dots, spaces,
    parentheses), with and without the country code, the last ten and last
    seven digits, and the digits reversed. Shorter tails (the last four) are
    left out: they occur by chance in ids and timestamps.
    """
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7:
        raise ValueError(f"too few digits to search for: {number!r}")
    # Ten digits, or eleven after a 1: a North American number, with or without its country code.
    north_american = len(digits) == 10 or (len(digits) == 11 and digits.startswith("1"))
    national = digits[-10:] if north_american else digits
    full = "1" + national if north_american else digits
    found = {full, national, "+" + full, "%2B" + full, national[-10:], national[-7:], full[::-1], national[::-1]}
    if north_american:
        area, exchange, line = national[:3], national[3:6], national[6:]
        for sep in ("-", ".", " ", ""):
            plain = f"{area}{sep}{exchange}{sep}{line}"
            found |= {plain, f"1{sep}{plain}", f"+1{sep}{plain}", f"({area}){sep}{exchange}{sep}{line}",
                      f"({area}) {exchange}{sep}{line}", f"({area}){exchange}{sep}{line}",
                      f"+1 ({area}) {exchange}{sep}{line}",
                      f"{exchange}{sep}{line}"}
        found |= {"011" + full, "00" + full}  # dialled from abroad
    return frozenset(s for s in found if len(re.sub(r"\D", "", s)) >= 7)


def occurrences(text: str, numbers: list[str]) -> list[str]:
    """Each spelling of any of ``numbers`` found in ``text``, with a little context."""
    hits = []
    for number in numbers:
        for spelling in sorted(spellings(number), key=len, reverse=True):
            at = text.find(spelling)
            if at >= 0:
                hits.append(f"{spelling!r} (of {number}) in ...{text[max(0, at - 60):at + len(spelling) + 60]!r}...")
    return hits
