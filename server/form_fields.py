"""A form's fields: checking a field as staff define it, and a client's answers against a
version's fields (strictly when they submit, leniently for a draft).

Answers are stored by field key: text as a string, a single choice as the chosen text, a
multiple choice as a list of texts, a date as ISO text, a number as decimal text, yes/no as
"yes" or "no", a signature as {"name", "date"} (the date is the day it was signed).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, Field, field_validator

from models.forms import FieldKind
from server.db import unstorable_text
from server.errors import ValidationFailed
from server.i18n import format_date
from server.i18n import gettext as _

MAX_SHORT = 300
MAX_LONG = 10_000
MAX_CHOICES = 30

Values = dict[str, str | list[str]]


class FieldIn(BaseModel):
    """A field as the builder defines it."""

    kind: FieldKind
    label: str = Field(min_length=1, max_length=500)
    help: str = Field(default="", max_length=1000)
    required: bool = False
    # One per line in the builder; only for single and multiple choice.
    choices: list[str] = Field(default_factory=list, max_length=MAX_CHOICES)

    # Before the length checks: a label of spaces is no label (min_length saw "   ").
    @field_validator("label", "help", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("choices")
    @classmethod
    def _clean_choices(cls, value: list[str]) -> list[str]:
        seen: list[str] = []
        for choice in value:
            choice = choice.strip()[:200]
            if choice and choice not in seen:
                seen.append(choice)
        return seen

    def spec(self, key: str) -> dict[str, Any]:
        has_choices = self.kind in (FieldKind.SINGLE_CHOICE, FieldKind.MULTIPLE_CHOICE)
        if has_choices and len(self.choices) < 2:
            raise ValidationFailed(
                _("Some fields are not valid."), {"choices": _("Give at least two choices.")}
            )
        return {
            "key": key,
            "kind": self.kind.value,
            "label": self.label,
            "help": self.help,
            # A section asks nothing, so it cannot be required.
            "required": self.required and self.kind is not FieldKind.SECTION,
            "choices": self.choices if has_choices else [],
        }


def asks(spec: dict[str, Any]) -> bool:
    return bool(spec["kind"] != FieldKind.SECTION.value)


def _one(raw: str | list[str] | None) -> str:
    if isinstance(raw, list):
        return raw[0].strip() if raw else ""
    return (raw or "").strip()


def check_answers(
    specs: list[dict[str, Any]], values: Values, *, final: bool, today: date
) -> tuple[dict[str, Any], dict[str, str]]:
    """The answers to store and the errors by field key. ``final``: required fields must be
    answered (a draft may leave anything empty, but nothing malformed is kept)."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        if not asks(spec):
            continue
        key, kind = spec["key"], FieldKind(spec["kind"])
        raw = values.get(key)
        value: Any = None
        if any(unstorable_text(t) for t in (raw if isinstance(raw, list) else [raw or ""])):
            # Every way in (a page's form, the API) comes through here.
            errors[key] = _("This answer holds a character that cannot be kept.")
            continue
        if kind is FieldKind.MULTIPLE_CHOICE:
            chosen = raw if isinstance(raw, list) else ([raw] if raw else [])
            picked = [c for c in spec["choices"] if c in chosen]
            if len(picked) != len(set(c for c in chosen if c)):
                errors[key] = _("Choose among the options.")
            value = picked or None
        else:
            text = _one(raw)
            if not text:
                value = None
            elif kind is FieldKind.SHORT_TEXT:
                value = text[:MAX_SHORT] if len(text) <= MAX_SHORT else None
                if value is None:
                    errors[key] = _("At most %(num)s characters.") % {"num": MAX_SHORT}
            elif kind is FieldKind.LONG_TEXT:
                value = text if len(text) <= MAX_LONG else None
                if value is None:
                    errors[key] = _("At most %(num)s characters.") % {"num": MAX_LONG}
            elif kind is FieldKind.SINGLE_CHOICE:
                value = text if text in spec["choices"] else None
                if value is None:
                    errors[key] = _("Choose one of the options.")
            elif kind is FieldKind.DATE:
                try:
                    value = date.fromisoformat(text).isoformat()
                except ValueError:
                    errors[key] = _("Enter a valid date.")
            elif kind is FieldKind.NUMBER:
                try:
                    number = Decimal(text.replace(",", ".").replace(" ", ""))
                    if not number.is_finite() or abs(number) >= Decimal(10) ** 12:
                        raise InvalidOperation
                    value = str(number)
                except InvalidOperation:
                    errors[key] = _("Enter a number.")
            elif kind is FieldKind.YES_NO:
                value = text if text in ("yes", "no") else None
                if value is None:
                    errors[key] = _("Choose one of the options.")
            elif kind is FieldKind.SIGNATURE:
                value = (
                    {"name": text[:MAX_SHORT], "date": today.isoformat()}
                    if len(text) <= MAX_SHORT
                    else None
                )
                if value is None:
                    errors[key] = _("At most %(num)s characters.") % {"num": MAX_SHORT}
        if value is None:
            if final and spec["required"] and key not in errors:
                errors[key] = (
                    _("Type your full name to sign.")
                    if kind is FieldKind.SIGNATURE
                    else _("This field is required.")
                )
            continue
        answers[key] = value
    return answers, errors


def shown(spec: dict[str, Any], value: Any) -> str:
    """An answer as a person reads it (on the file, in the PDF)."""
    if value is None or value == [] or value == "":
        return "—"
    kind = FieldKind(spec["kind"])
    if kind is FieldKind.MULTIPLE_CHOICE:
        return ", ".join(value)
    if kind is FieldKind.YES_NO:
        return _("Yes") if value == "yes" else _("No")
    if kind is FieldKind.DATE:
        return format_date(date.fromisoformat(value))
    if kind is FieldKind.SIGNATURE:
        return _("Signed by %(name)s on %(date)s") % {
            "name": value["name"],
            "date": format_date(date.fromisoformat(value["date"])),
        }
    return str(value)
