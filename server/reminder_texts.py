"""The words of reminders and confirmations: built-in texts, the practice's own, rendering.

A template is plain text with a fixed set of ``{placeholders}``; anything else in braces is
refused when the template is saved, so rendering can never reach an attribute or run code
(a safe ``str.format_map``, not a template language). Email gets a text and an HTML part,
the HTML built by escaping the text and each value.
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time

from models.reminders import Channel
from server.errors import ValidationFailed
from server.i18n import gettext as _
from server.i18n import lazy

LOCALES = ("en", "fr")

PLACEHOLDERS: dict[str, str] = {
    "first_name": lazy("the client's first name"),
    "date": lazy("the date of the session"),
    "time": lazy("its time, in the practice's time zone"),
    "practitioner": lazy("the practitioner's name"),
    "place": lazy("the location, the home-visit address or the video link"),
    "portal_link": lazy("the link to the client portal"),
}


@dataclass(frozen=True)
class Text:
    subject: str
    body: str


DEFAULT_REMINDERS: dict[tuple[Channel, str], Text] = {
    (Channel.EMAIL, "en"): Text(
        "Reminder: appointment on {date} at {time}",
        "Hello,\n\nThis is a reminder of the appointment for {first_name} with {practitioner} "
        "on {date} at {time}.\n{place}\n\nTo see or cancel your appointments: {portal_link}\n",
    ),
    (Channel.EMAIL, "fr"): Text(
        "Rappel : rendez-vous le {date} à {time}",
        "Bonjour,\n\nNous vous rappelons le rendez-vous de {first_name} avec {practitioner} "
        "le {date} à {time}.\n{place}\n\nPour voir ou annuler vos rendez-vous : {portal_link}\n",
    ),
    (Channel.SMS, "en"): Text(
        "", "Reminder: {first_name}, appointment with {practitioner} on {date} at {time}. {place}"
    ),
    (Channel.SMS, "fr"): Text(
        "", "Rappel : {first_name}, rendez-vous avec {practitioner} le {date} à {time}. {place}"
    ),
}

DEFAULT_CONFIRMATION: dict[str, str] = {
    "en": "Your appointment with {practitioner} on {date} at {time} is booked. {place}",
    "fr": "Votre rendez-vous avec {practitioner} le {date} à {time} est confirmé. {place}",
}

# Notices never carry the message: it is health information.
UNREAD_NOTICE: dict[str, Text] = {
    "en": Text(
        "A new secure message is waiting for you",
        "Hello,\n\nA new secure message is waiting for you. Sign in to read it: {link}\n",
    ),
    "fr": Text(
        "Un nouveau message sécurisé vous attend",
        "Bonjour,\n\nUn nouveau message sécurisé vous attend. Connectez-vous pour le lire : "
        "{link}\n",
    ),
}

PRACTITIONER_BOOKING_SMS: dict[str, str] = {
    "en": "New online booking on {date} at {time}.",
    "fr": "Nouvelle réservation en ligne le {date} à {time}.",
}


def language(*choices: str | None) -> str:
    """The first of the choices that is one of our languages (``fr-CA`` counts as ``fr``)."""
    for choice in choices:
        if choice:
            short = choice.split("-")[0].split("_")[0].lower()
            if short in LOCALES:
                return short
    return "en"


def check_template(text: str, field: str) -> str:
    """Refuse unknown placeholders, formats and stray braces (422 on ``field``)."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {field: _("A brace is not closed: write placeholders like {first_name}.")},
        ) from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise ValidationFailed(
                _("Some fields are not valid."),
                {field: _("Unknown placeholder {%(name)s}.") % {"name": name}},
            )
    return text


def render(text: str, values: dict[str, str]) -> str:
    """Fill the placeholders of a checked template. An unknown one (a template saved
    before the placeholder set changed) is left as written rather than failing a reminder."""
    out: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(text):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, "{" + name + "}"))
    return "".join(out)


def render_html(text: str, values: dict[str, str]) -> str:
    """The HTML part: every piece escaped, links made clickable, lines kept."""
    escaped = {k: _linkify(v) for k, v in values.items()}
    out: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(text):
        out.append(html.escape(literal))
        if name is not None:
            out.append(escaped.get(name, html.escape("{" + name + "}")))
    body = "".join(out).replace("\n", "<br>\n")
    return (
        '<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">'
        f"<p>{body}</p></body></html>"
    )


def _linkify(value: str) -> str:
    if value.startswith(("https://", "http://")) and " " not in value:
        safe = html.escape(value, quote=True)
        return f'<a href="{safe}">{safe}</a>'
    return html.escape(value)


def when_values(starts_at: datetime, tz: ZoneInfo, locale: str) -> dict[str, str]:
    local = starts_at.astimezone(tz)
    return {
        "date": format_date(local.date(), "full", locale=locale),
        "time": format_time(local, "short", tzinfo=tz, locale=locale),
    }


SAMPLE: dict[str, str] = {
    "first_name": "Camille",
    "practitioner": "Dr Alex Martin",
    "place": "Cabinet Martin, 12 rue des Lilas, Lyon",
    "portal_link": "https://cabinet.example.org/portal/",
}
