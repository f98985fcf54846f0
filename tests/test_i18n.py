"""Languages: the browser's choice, the user's saved choice, and complete French catalogs."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser

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


# --- templates ------------------------------------------------------------------------------

# What a template may print outside a translation call: the product's name, each language's
# own name in the language menu, the French registration numbers' names, and the words some
# pages put in their <body class> through a block.
NOT_WORDS = {"English", "Français", "SIRET, ADELI, RPPS…"}
NAMES = re.compile(r"\b(Cabinet|auth|portal|wide)\b")
SHOWN_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "data-confirm", "aria-description"}


class _VisibleText(HTMLParser):
    """The text and the read-out attributes of a template whose Jinja tags were blanked."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.found: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self.hidden += 1
        for name, value in attrs:
            if name in SHOWN_ATTRIBUTES and value and re.search(r"[A-Za-z]{2}", value):
                if value.strip() not in NOT_WORDS:
                    self.found.append((self.getpos()[0], f'{name}="{value.strip()}"'))

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if self.hidden or text in NOT_WORDS or not re.search(r"[A-Za-z]{2}", NAMES.sub("", text)):
            return
        self.found.append((self.getpos()[0], text))


@pytest.mark.parametrize("app", ["server", "staff", "portal"])
def test_templates_show_no_words_outside_a_translation_call(app: str) -> None:
    """Words typed straight into a template reach a French reader in English, and nothing
    catches them: they are never extracted. Every visible word (and every title, placeholder,
    aria-label, alt and confirmation) goes through _() or comes from the data."""
    jinja = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
    untranslated = []
    for template in sorted((ROOT / app / "templates").glob("*.html")):
        # Each tag blanked to a space, its lines kept, so the line numbers stay true.
        source = jinja.sub(lambda m: " " + "\n" * m.group(0).count("\n"), template.read_text())
        parser = _VisibleText()
        parser.feed(source)
        untranslated += [f"{template.name}:{line}: {text}" for line, text in parser.found]
    assert not untranslated, "wrap these in _():\n" + "\n".join(untranslated)


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


# --- what a French user is told when something is refused ---------------------------------


async def test_a_mistyped_price_or_time_is_explained_in_french(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """pydantic's own English ("Input should be a valid decimal", "Decimal input should have
    no more than 2 decimal places", "Input should be in a valid time format…") reached a
    French clinician setting up a service or hours: only some error kinds were translated."""
    owner = await make.owner()
    therapist = await make.therapist()
    await login(http, owner)
    french = {"Accept-Language": "fr-FR,fr;q=0.9"}
    service = {"name": "Séance", "duration_minutes": 50}
    for price in ("soixante", "70,555"):
        r = await http.post("/api/setup/services", json={**service, "price": price}, headers=french)
        assert r.status_code == 422
        said = r.json()["error"]["fields"]["price"]
        assert said in {"Saisissez un nombre.", "Au plus 2 décimales."}, said
    hours = {"practitioner_id": therapist.id, "weekday": 0, "end_time": "12:00", "service_ids": []}
    r = await http.post(
        "/api/setup/availability", json={**hours, "start_time": "25:00"}, headers=french
    )
    assert r.status_code == 422
    assert r.json()["error"]["fields"]["start_time"] == "Saisissez une heure, par exemple 21:00."


def test_no_kind_of_bad_input_is_explained_in_pydantics_english() -> None:
    """Whatever pydantic refuses, the field's message comes from our catalog."""
    from datetime import time

    from pydantic import BaseModel, Field

    from server.errors import ValidationFailed
    from server.numbers import TypedDecimal
    from server.web import validate

    class Everything(BaseModel):
        amount: TypedDecimal = Field(ge=0, le=1000, decimal_places=2)
        big: TypedDecimal = Field(max_digits=4)
        at: time
        ratio: float
        on: bool
        ids: list[int]
        tags: list[str] = Field(max_length=2)
        name: str

    english = re.compile(r"\b(Input|should|valid|Decimal|Field|List|Value)\b")
    # The catalog's French, with the numbers these fields' limits fill in.
    ours = {
        m.string % {"num": 2} if "%(num)s" in m.string else m.string
        for m in catalog("fr")
        if isinstance(m.string, str) and "%(" not in m.string.replace("%(num)s", "")
    }
    bad = [
        {"amount": "abc", "big": "12345", "at": "25:00", "ratio": "x", "on": "maybe",
         "ids": "x", "tags": ["a", "b", "c"], "name": 3},
        {"amount": "1.234", "big": "x", "at": "x", "ratio": [1], "on": [], "ids": ["a"],
         "tags": "x", "name": ["x"]},
    ]  # fmt: skip
    i18n.set_locale("fr")
    try:
        for data in bad:
            with pytest.raises(ValidationFailed) as refused:
                validate(Everything, data)
            for field, message in refused.value.fields.items():
                assert not english.search(message), (field, message)
                assert message in ours, (field, message)
    finally:
        i18n.set_locale("en")


async def test_a_missing_record_is_explained_in_french_to_the_pages_scripts(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """The agenda's and the messages' scripts show the error's message: a 404 said "Not
    found" in English on a French page (an appointment or a conversation removed meanwhile)."""
    await login(http, await make.therapist())
    r = await http.get("/api/conversations/424242", headers={"Accept-Language": "fr-FR"})
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert message != "Not found"
    i18n.set_locale("fr")
    try:
        assert message == i18n.gettext("It no longer exists, or you do not have access to it.")
    finally:
        i18n.set_locale("en")
