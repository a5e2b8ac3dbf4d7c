"""The languages a caller may speak: ISO 639-3, from pycountry (not typed by hand).

The catalog holds every living language of individual scope in ISO 639-3
(about 7,000) plus the living macrolanguages (Arabic, Chinese, Persian,
Swahili, Malay, Quechua...), because interpreter providers quote those rather
than, say, Egyptian Arabic or Mandarin. All of them, not a hand-picked few: a
hand-kept list would silently lack the next provider's choice. Historical,
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


class UnknownLanguage(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(f"{code!r} is not an ISO 639-3 (or 639-1) language code in the catalog")
        self.code = code


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-3
    name: str  # English
    native: str | None


class LanguageCatalog:
    def __init__(self, languages: dict[str, Language], two_letter: dict[str, str]) -> None:
        self._languages = languages
        self._two_letter = two_letter

    @classmethod
    def load(cls) -> LanguageCatalog:
        languages: dict[str, Language] = {}
        two_letter: dict[str, str] = {}
        for entry in pycountry.languages:
            living = getattr(entry, "type", "") == "L"
            if not (living and getattr(entry, "scope", "") in ("I", "M")):
                continue
            code = entry.alpha_3
            languages[code] = Language(code, entry.name, NATIVE_NAMES.get(code))
            if hasattr(entry, "alpha_2"):
                two_letter[entry.alpha_2] = code
        return cls(languages, two_letter)

    def get(self, code: str) -> Language:
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
        return iter(sorted(self._languages.values(), key=lambda language: language.name))
