"""Languages: the browser's choice, the user's saved choice, and complete French catalogs."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import httpx
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from server import i18n
from server.i18n import DOMAIN, LOCALE_DIR
from server.settings import ROOT
from tests.conftest import Factory, login

PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]")


def catalog(locale: str) -> Catalog:
    with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as fh:
        return read_po(fh, locale=locale)


def message_ids(cat: Catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in cat if m.id}


# --- negotiation -----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/staff", "/portal"])
async def test_login_page_follows_a_french_browser(http: httpx.AsyncClient, prefix: str) -> None:
    page = await http.get(f"{prefix}/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert page.status_code == 200
    assert '<html lang="fr-FR">' in page.text
    assert "Mot de passe" in page.text
    assert "Se connecter" in page.text
    assert "Password" not in page.text


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        (None, "en"),
        ("en-GB,en;q=0.9", "en-GB"),
        ("de-DE,de;q=0.9", "en"),
        ("fr;q=0.2,en;q=0.8", "en"),
        ("de-CH,en-CA;q=0.8", "en-CA"),
    ],
)
async def test_login_page_is_english_otherwise(
    http: httpx.AsyncClient, accept: str | None, lang: str
) -> None:
    headers = {"Accept-Language": accept} if accept else {}
    page = await http.get("/staff/login", headers=headers)
    assert page.status_code == 200
    assert f'<html lang="{lang}">' in page.text
    assert "Password" in page.text
    assert "Mot de passe" not in page.text


async def test_a_failed_sign_in_is_explained_in_french(
    http: httpx.AsyncClient, make: Factory
) -> None:
    owner = await make.owner()
    page = await http.post(
        "/staff/login",
        data={"email": owner.email, "password": "not the password"},
        headers={"Accept-Language": "fr"},
    )
    assert "L’adresse e-mail ou le mot de passe est incorrect." in page.text


async def test_saved_preference_wins_over_the_browser(
    http: httpx.AsyncClient, make: Factory
) -> None:
    therapist = await make.therapist()
    await login(http, therapist)
    english_browser = {"Accept-Language": "en-US,en;q=0.9"}

    before = await http.get("/staff/account", headers=english_browser)
    assert "My account" in before.text

    saved = await http.post("/staff/account/locale", data={"locale": "fr"}, headers=english_browser)
    assert saved.status_code == 303

    after = await http.get("/staff/account", headers=english_browser)
    assert '<html lang="fr">' in after.text
    assert "Mon compte" in after.text
    home = await http.get("/staff/", headers=english_browser)
    assert "Accueil" in home.text


async def test_a_client_choosing_english_keeps_it_on_a_french_browser(
    http: httpx.AsyncClient, make: Factory
) -> None:
    client = await make.client(await make.therapist())
    await login(http, client)
    french_browser = {"Accept-Language": "fr-FR,fr;q=0.9"}

    assert "Mon compte" in (await http.get("/portal/account", headers=french_browser)).text
    saved = await http.post("/portal/account/locale", data={"locale": "en"}, headers=french_browser)
    assert saved.status_code == 303
    page = await http.get("/portal/account", headers=french_browser)
    assert '<html lang="en">' in page.text
    assert "My account" in page.text


# --- catalogs --------------------------------------------------------------------------------


def test_every_french_message_is_translated() -> None:
    fr = catalog("fr")
    untranslated = [
        m.id for m in fr if m.id and not (m.string if isinstance(m.string, str) else all(m.string))
    ]
    fuzzy = [m.id for m in fr if m.id and m.fuzzy]
    assert not untranslated, f"untranslated in fr/cabinet.po: {untranslated}"
    assert not fuzzy, f"fuzzy (unchecked) entries in fr/cabinet.po: {fuzzy}"


def test_french_translations_keep_their_placeholders() -> None:
    for message in catalog("fr"):
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        expected = sorted(PLACEHOLDER.findall(ids[0]))
        for translated in strings:
            assert sorted(PLACEHOLDER.findall(translated)) == expected, (message.id, translated)


def test_english_and_french_catalogs_hold_the_same_messages() -> None:
    assert message_ids(catalog("en")) == message_ids(catalog("fr"))


def test_every_string_in_the_code_is_in_the_french_catalog() -> None:
    """A string wrapped in _() but never extracted would show in English to French users."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    # The keywords of `make messages` (pybabel reads them from its command line, not babel.cfg).
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy": None}
    in_code = {
        msgid if isinstance(msgid, str) else msgid[0]
        for _file, _line, msgid, _comments, _context in extract_from_dir(
            ROOT, method_map, options_map, keywords=keywords
        )
    }
    missing = sorted(in_code - message_ids(catalog("fr")))
    assert not missing, f"run `make messages` and translate these in fr/cabinet.po: {missing}"


# --- regional formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "language", "locale"),
    [
        ("en-GB,en;q=0.9", "en", "en_GB"),
        ("fr-CA,fr;q=0.9", "fr", "fr_CA"),
        ("en-US,en;q=0.9", "fr", "fr"),  # French chosen on an American browser
        ("fr-BE,en-GB;q=0.5", "en", "en_GB"),
        ("es-419,en;q=0.5", "en", "en"),
        ("zh-Hant-TW,en;q=0.5", "en", "en"),
        ("en-ZZ", "en", "en"),  # no such region
        (None, "en", "en"),
    ],
)
def test_the_region_comes_from_the_browser_for_the_chosen_language(
    accept: str | None, language: str, locale: str
) -> None:
    assert i18n.regional(accept, language) == locale


def test_dates_and_amounts_follow_the_region_until_the_language_is_set_again() -> None:
    day = date(2026, 12, 7)
    try:
        i18n.set_locale("en")
        assert i18n.format_date(day, "short") == "12/7/26"
        i18n.set_format_locale(i18n.regional("en-GB", "en"))
        assert i18n.format_date(day, "short") == "07/12/2026"
        assert i18n.html_lang() == "en-GB"
        i18n.set_locale("fr")
        assert i18n.format_money(Decimal("1234.5")) == "1\u202f234,50\u00a0€"
        i18n.set_format_locale(i18n.regional("fr-CH", "fr"))
        assert i18n.format_money(Decimal("1234.5")) == "1'234,50\u00a0€"  # Swiss grouping
        # An email for someone else: their language, its default way of writing.
        i18n.set_locale("en")
        assert i18n.format_date(day, "short") == "12/7/26"
    finally:
        i18n.set_locale("en")


def test_french_uses_curly_apostrophes() -> None:
    # The French pages mixed "Boîte d'envoi" with "Journal d’audit".
    straight = [
        m.id
        for m in catalog("fr")
        if m.id
        and any("'" in s for s in (m.string if isinstance(m.string, tuple) else (m.string,)))
    ]
    assert straight == []


def test_writing_for_someone_else_leaves_the_readers_language_formats_and_zone() -> None:
    """An email written in its reader's language in the middle of a request (a client's
    request, a measure sent) set the page's language back afterwards but not its regional
    formats: a British clinician's page went on in American dates (12/7/26)."""
    from server import i18n

    i18n.set_locale("en")
    i18n.set_format_locale("en_GB")
    i18n.set_time_zone("Europe/London")
    with i18n.writing_in("fr", "America/Toronto"):
        assert i18n.gettext("Save") == "Enregistrer"
        assert i18n.format_date(date(2026, 12, 7), "short") == "07/12/2026"
        assert i18n.current_time_zone().key == "America/Toronto"
    assert i18n.gettext("Save") == "Save" and i18n.html_lang() == "en-GB"
    assert i18n.format_date(date(2026, 12, 7), "short") == "07/12/2026"
    assert i18n.current_time_zone().key == "Europe/London"
    with i18n.writing_in(None):  # no language known: the current one
        assert i18n.html_lang() == "en-GB"
