"""The languages a caller may speak: ISO 639-3, from pycountry (not typed by hand).

The catalog holds every living language of individual scope in ISO 639-3
(about 7,000) plus the living macrolanguages (Arabic, Chinese, Persian,
Swahili, Malay, Quechua...), because interpreter providers quote those rather
than, say, Egyptian Arabic or Mandarin, and because ISO 639-3 files some
languages callers name plainly (Albanian, Hmong, Latvian, Uzbek) only as
macrolanguages. All 62 of them, not a hand-picked few: a hand-kept list would
silently lack the next provider's choice. Historical,
extinct, ancient and constructed languages are left out (nobody calls in
Sanskrit). Codes are ISO 639-3; ISO 639-1 codes ("vi") are accepted and
mapped ("vie").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pycountry

# The one hand-kept part: how the languages a US hotline most often needs
# name themselves, for the advocate console's picker. ISO 639 gives only
# English names. Mayan languages matter for labor trafficking survivors
# from Guatemala; their autonyms are their usual names.
NATIVE_NAMES = {
    "spa": "Español", "vie": "Tiếng Việt", "zho": "中文", "kor": "한국어", "tgl": "Tagalog",
    "rus": "Русский", "ara": "العربية", "hat": "Kreyòl ayisyen", "por": "Português", "fra": "Français",
    "hin": "हिन्दी", "tha": "ไทย", "khm": "ខ្មែរ", "mam": "Mam", "quc": "K'iche'", "kjb": "Q'anjob'al",
}


# ISO 639-3 tells "Swahili (macrolanguage)" from "Swahili (individual
# language)"; the console shows the macrolanguage, which providers quote,
# as plain "Swahili". The individual language keeps its qualifier, so no
# two names clash.
_MACRO_SUFFIX = " (macrolanguage)"


class UnknownLanguage(ValueError):
    """A code that names no language in the catalog (a ValueError, so API input errors read alike)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"{code!r} is not an ISO 639-3 (or 639-1) language code in the catalog")
        self.code = code


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-3
    name: str  # English
    native: str | None


class LanguageCatalog:
    """Built once at start-up (``load``) and passed to whoever needs it."""

    def __init__(self, languages: dict[str, Language], two_letter: dict[str, str]) -> None:
        self._languages = languages
        self._two_letter = two_letter
        # Sorted once here rather than on every iteration over ~7,000 languages.
        self._by_name = tuple(sorted(languages.values(), key=lambda language: (language.name, language.code)))

    @classmethod
    def load(cls) -> LanguageCatalog:
        languages: dict[str, Language] = {}
        two_letter: dict[str, str] = {}
        for entry in pycountry.languages:
            living = getattr(entry, "type", "") == "L"
            if not (living and getattr(entry, "scope", "") in ("I", "M")):
                continue
            code = entry.alpha_3
            name = entry.name.removesuffix(_MACRO_SUFFIX)
            languages[code] = Language(code, name, NATIVE_NAMES.get(code))
            if hasattr(entry, "alpha_2"):
                two_letter[entry.alpha_2] = code
        return cls(languages, two_letter)

    def get(self, code: str) -> Language:
        """The language for an ISO 639-3 or 639-1 code, any case; UnknownLanguage otherwise."""
        key = code.strip().lower()
        key = self._two_letter.get(key, key)
        try:
            return self._languages[key]
        except KeyError:
            raise UnknownLanguage(code) from None

    def __contains__(self, code: object) -> bool:
        if not isinstance(code, str):
            return False
        try:
            self.get(code)
        except UnknownLanguage:
            return False
        return True

    def __len__(self) -> int:
        return len(self._languages)

    def __iter__(self) -> Iterator[Language]:
        return iter(self._by_name)
