"""Translations (zh_CN and English) through gettext, loaded from the package's .po files.

The catalogues are compiled in memory at first use, so a fresh clone needs no build step.
The current locale lives in a context variable set per request.
"""

from __future__ import annotations

import gettext
import io
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
DOMAIN = "citygrid"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

_current_locale: ContextVar[str] = ContextVar("citygrid_locale", default=DEFAULT_LOCALE)


def po_path(locale: str) -> Path:
    """The .po file of a locale."""
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> gettext.NullTranslations:
    """The compiled catalogue of a locale (NullTranslations if it has none)."""
    path = po_path(locale)
    if locale not in LOCALES or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as po_file:
        catalog = read_po(po_file, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def set_locale(locale: str) -> None:
    """Set the locale of the current request or command."""
    _current_locale.set(locale if locale in LOCALES else DEFAULT_LOCALE)


def get_locale() -> str:
    """The locale of the current request or command."""
    return _current_locale.get()


def gettext_(message: str) -> str:
    """Translate a message into the current locale."""
    return translations(get_locale()).gettext(message)


def ngettext_(singular: str, plural: str, n: int) -> str:
    """Translate a message with a plural form into the current locale."""
    return translations(get_locale()).ngettext(singular, plural, n)


def localised(name_zh: str, name_en: str) -> str:
    """The name for the current locale, falling back to the other when it is empty."""
    if get_locale() == "zh_CN":
        return name_zh or name_en
    return name_en or name_zh


def negotiate_locale(accept_language: str | None, cookie: str | None) -> str:
    """Pick the locale from the user's choice (cookie), then Accept-Language."""
    if cookie in LOCALES:
        return cookie
    if accept_language:
        for part in accept_language.split(","):
            tag = part.split(";", 1)[0].strip().lower()
            if tag.startswith("zh"):
                return "zh_CN"
            if tag.startswith("en"):
                return "en"
    return DEFAULT_LOCALE


def fill_english_catalogue() -> int:
    """Copy each msgid into its empty msgstr in the English catalogue; returns how many.

    English msgids are the English text, so ``make i18n`` fills that catalogue itself and
    only the Chinese one needs a translator.
    """
    from babel.messages.pofile import write_po

    path = po_path("en")
    with path.open("rb") as po_file:
        catalog = read_po(po_file, locale="en")
    filled = 0
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            strings = message.string if isinstance(message.string, tuple) else ()
            if not strings or not all(strings):
                message.string = (message.id[0], message.id[1])
                filled += 1
        elif not message.string:
            message.string = message.id
            filled += 1
    if filled:
        with path.open("wb") as po_file:
            write_po(po_file, catalog, width=0)
    return filled


_ = gettext_
