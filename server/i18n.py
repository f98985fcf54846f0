"""Translations (gettext catalogs for fr and en) and locale-aware formatting.

Catalogs live as .po files under server/locale and are compiled in memory at start-up, so
there is no build step. The current locale is a context variable set per request (user
preference, else the browser's Accept-Language, else the practice default) so that actions
rendering emails translate for the right person too.
"""

from __future__ import annotations

import contextvars
import gettext as _gettext
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.dates import format_time as _format_time
from babel.dates import get_timezone_location
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

LOCALES = ("en", "fr")
LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "cabinet"

_locale: contextvars.ContextVar[str] = contextvars.ContextVar("cabinet_locale", default="en")
# How dates, times and numbers are written: the language above, with the reader's region
# when their browser names one ("en_GB" writes 07/12/2026 where "en" writes 12/7/26).
_format_locale: contextvars.ContextVar[str] = contextvars.ContextVar(
    "cabinet_format_locale", default="en"
)
_time_zone: contextvars.ContextVar[str] = contextvars.ContextVar(
    "cabinet_time_zone", default="Europe/Paris"
)


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> _gettext.NullTranslations:
    po = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.exists():
        return _gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def set_locale(locale: str) -> contextvars.Token[str]:
    """The language of what follows, its dates and numbers written as that language's
    default region writes them (an email to someone whose browser we do not see)."""
    language = _language(locale)
    _format_locale.set(language)
    return _locale.set(language)


def _language(locale: str) -> str:
    return locale if locale in LOCALES else "en"


def current_locale() -> str:
    return _locale.get()


def set_format_locale(locale: str) -> None:
    """Dates and numbers as this Babel locale writes them (``regional``'s answer)."""
    _format_locale.set(locale)


def html_lang() -> str:
    """The page's language tag, region included ("en-GB"): the browser's own date and
    number formatting (Intl, in the scripts) follows it too."""
    return _format_locale.get().replace("_", "-")


def regional(accept_language: str | None, language: str) -> str:
    """``language`` with the region of the browser's first tag in that language, when
    Babel knows it ("en-GB,en;q=0.9" and "en" give "en_GB"); else ``language`` alone."""
    for tag in _weighted_tags(accept_language):
        parts = tag.replace("_", "-").split("-")
        if parts[0] != language or len(parts) < 2:
            continue
        region = parts[-1].upper()
        if len(region) != 2 or not region.isalpha():
            continue  # a script or a UN M.49 area ("zh-Hant", "es-419"): no region of ours
        try:
            return str(Locale(language, region))
        except (UnknownLocaleError, ValueError):
            continue
    return language


def set_time_zone(name: str) -> None:
    _time_zone.set(name)


@contextmanager
def writing_in(locale: str | None, time_zone: str | None = None) -> Iterator[None]:
    """Write for a reader other than the request's (an email, an SMS, an invoice line): in
    ``locale``'s language (the current one if None) and ``time_zone`` if given; afterwards
    the request's language, its regional formats and its zone are as they were."""
    tokens = (
        _locale.set(_locale.get() if locale is None else _language(locale)),
        _format_locale.set(_format_locale.get() if locale is None else _language(locale)),
        _time_zone.set(time_zone or _time_zone.get()),
    )
    try:
        yield
    finally:
        _locale.reset(tokens[0])
        _format_locale.reset(tokens[1])
        _time_zone.reset(tokens[2])


def current_time_zone() -> ZoneInfo:
    return ZoneInfo(_time_zone.get())


def gettext(message: str) -> str:
    return translations(_locale.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_locale.get()).ngettext(singular, plural, n)


def lazy(message: str) -> str:
    """Mark a string for extraction where it is defined; translate it where it is shown."""
    return message


def negotiate(accept_language: str | None, preferred: str | None, default: str) -> str:
    """The user's own choice, else the browser's first supported language, else the default."""
    if preferred in LOCALES:
        return preferred  # type: ignore[return-value]
    for tag in _weighted_tags(accept_language):
        lang = tag.split("-")[0]
        if lang in LOCALES:
            return lang
    return default if default in LOCALES else "en"


def _weighted_tags(accept_language: str | None) -> list[str]:
    """An Accept-Language header's tags, lower case, the most wanted first."""
    weighted: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        piece = part.strip().split(";q=")
        tag = piece[0].strip().lower()
        if not tag:
            continue
        try:
            q = float(piece[1]) if len(piece) > 1 else 1.0
        except ValueError:
            q = 0.0
        weighted.append((q, tag))
    return [tag for _q, tag in sorted(weighted, key=lambda x: -x[0])]


def _babel_locale() -> Locale:
    return _parsed(_format_locale.get())


@lru_cache(maxsize=64)
def _parsed(locale: str) -> Locale:
    try:
        return Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


NAMED_FORMATS = ("full", "long", "medium", "short")


def format_datetime(value: datetime | None, fmt: str = "medium", tz: ZoneInfo | None = None) -> str:
    """A UTC datetime shown in the practice's time zone (or ``tz``) and the user's locale.

    The named formats set how the date is written; the time is always hours and minutes
    ("lundi 7 décembre 2026, 09:00", "Monday, December 7, 2026, 9:00 AM"): CLDR's own full and medium
    times add seconds and the zone's long name, which no appointment needs. Any other
    ``fmt`` is a CLDR pattern, used as it is."""
    if value is None:
        return ""
    locale = _babel_locale()
    tz = tz or current_time_zone()
    if fmt not in NAMED_FORMATS:
        return _format_datetime(value, fmt, tzinfo=tz, locale=locale)
    local = value.astimezone(tz)
    # How Babel itself joins a date and a time: the locale's pattern for this length.
    joined = locale.datetime_formats[fmt].replace("'", "")
    return joined.replace("{0}", _format_time(local, "short", locale=locale)).replace(
        "{1}", _format_date(local.date(), fmt, locale=locale)
    )


def format_time(value: datetime | None, fmt: str = "short") -> str:
    if value is None:
        return ""
    return _format_time(value, fmt, tzinfo=current_time_zone(), locale=_babel_locale())


def weekday_name(weekday: int) -> str:
    """The day's name as it is written inside a sentence (0 is Monday): "Monday" in English,
    "lundi" in French, where day names take no capital."""
    return str(_babel_locale().days["format"]["wide"][weekday])


def zone_city(name: str) -> str:
    """A time zone as people name it, by its city in the reader's language ("Europe/Paris"
    -> "Paris", "Europe/London" -> "Londres" in French); the name itself if unknown."""
    try:
        return str(get_timezone_location(name, locale=_babel_locale(), return_city=True))
    except LookupError:
        return name


def format_date(value: date | datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(current_time_zone()).date()
    return _format_date(value, fmt, locale=_babel_locale())


def format_money(amount: Decimal, currency: str = "EUR") -> str:
    return format_currency(amount, currency, locale=_babel_locale())


def format_amount(amount: Decimal | None) -> str:
    """An amount to prefill a form field: the reader's decimal mark, two places, no
    grouping and no currency ("20,00" in French), so that it posts back as it reads."""
    if amount is None:
        return ""
    return format_decimal(amount, format="0.00", locale=_babel_locale())
