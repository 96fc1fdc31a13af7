"""Every message in the code and templates is translated in both catalogues.

The messages are extracted the way `make i18n` does (babel.cfg, the same keywords), so a
failure here is fixed by running `make i18n` and filling in the new entries (docs/i18n.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from citygrid.kit import i18n

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "src" / "citygrid"
# The keywords of the Makefile's `pybabel extract -k _ -k gettext_ -k ngettext_:1,2`.
KEYWORDS = {**DEFAULT_KEYWORDS, "gettext_": None, "ngettext_": (1, 2)}

MsgId = str | tuple[str, ...]


def _extracted() -> dict[MsgId, list[str]]:
    """Every msgid in the source (singular, or (singular, plural)), with where it is."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[MsgId, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(SOURCE_DIR), method_map, options_map, keywords=KEYWORDS
    ):
        msgid: MsgId = message if isinstance(message, str) else tuple(message)
        found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


def _catalog(locale: str) -> Catalog:
    with i18n.po_path(locale).open("rb") as po_file:
        return read_po(po_file, locale=locale)


def _problems(catalog: Catalog, extracted: dict[MsgId, list[str]]) -> Iterator[str]:
    for msgid, places in sorted(extracted.items(), key=lambda item: str(item[0])):
        key = msgid if isinstance(msgid, str) else msgid[0]
        where = ", ".join(places[:3])
        message = catalog.get(key)
        if message is None:
            yield f"missing: {msgid!r} ({where})"
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            yield f"empty msgstr: {msgid!r} ({where})"
        if message.fuzzy:
            yield f"fuzzy: {msgid!r} ({where})"
    for message in catalog:
        if message.id and message.fuzzy and message.id not in extracted:
            yield f"fuzzy: {message.id!r}"


@pytest.fixture(scope="module")
def extracted() -> dict[MsgId, list[str]]:
    return _extracted()


def test_the_source_has_messages_to_translate(extracted: dict[MsgId, list[str]]) -> None:
    # Guards the extraction itself: a broken babel.cfg would make every check below pass.
    places = [place for where in extracted.values() for place in where]
    assert "Map" in extracted
    assert any(".html:" in place for place in places)
    assert any(".py:" in place for place in places)


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_every_message_is_translated(locale: str, extracted: dict[MsgId, list[str]]) -> None:
    problems = list(_problems(_catalog(locale), extracted))
    assert not problems, (
        f"{len(problems)} problem(s) in the {locale} catalogue; run `make i18n` and fill "
        "them in (docs/i18n.md):\n  " + "\n  ".join(problems)
    )


def test_the_english_catalogue_says_what_the_code_says(extracted: dict[MsgId, list[str]]) -> None:
    catalog = _catalog("en")
    differing = [
        msgid
        for msgid in extracted
        if isinstance(msgid, str)
        and (message := catalog.get(msgid)) is not None
        and message.string
        and message.string != msgid
    ]
    assert not differing, f"English msgstr differs from its msgid: {differing}"


def test_chinese_translations_are_chinese(extracted: dict[MsgId, list[str]]) -> None:
    # An untranslated copy of the English text is the usual slip: every zh_CN string with
    # letters in its msgid must hold at least one CJK character.
    catalog = _catalog("zh_CN")
    untranslated = []
    for msgid in extracted:
        key = msgid if isinstance(msgid, str) else msgid[0]
        message = catalog.get(key)
        if message is None or not message.string:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if any(c.isalpha() for c in key) and not any(
            "\u4e00" <= char <= "\u9fff" for text in strings for char in text
        ):
            untranslated.append(key)
    assert not untranslated, f"zh_CN msgstr without Chinese: {untranslated}"


def test_the_runtime_translates_with_the_catalogues() -> None:
    i18n.set_locale("zh_CN")
    try:
        assert i18n.gettext_("Map") == "地图"
        i18n.set_locale("en")
        assert i18n.gettext_("Map") == "Map"
    finally:
        i18n.set_locale(i18n.DEFAULT_LOCALE)


def test_make_i18n_fills_the_english_catalogue_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    po = tmp_path / "citygrid.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n'
        '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
        'msgid "Map"\nmsgstr "Map"\n\n'
        'msgid "New message"\nmsgstr ""\n\n'
        'msgid "%(n)s grid"\nmsgid_plural "%(n)s grids"\nmsgstr[0] ""\nmsgstr[1] ""\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(i18n, "po_path", lambda locale: po)
    assert i18n.fill_english_catalogue() == 2
    with po.open("rb") as po_file:
        catalog = read_po(po_file, locale="en")
    assert catalog.get("New message").string == "New message"
    assert catalog.get("%(n)s grid").string == ("%(n)s grid", "%(n)s grids")
    assert i18n.fill_english_catalogue() == 0  # a second run changes nothing
