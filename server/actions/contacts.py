"""Writes to the practice's contacts: people around clients who are not clients (parents,
guardians, teachers, lawyers, social workers, doctors, referring practitioners).

A contact is a plain record: no file, no tags, no status. Its accent-free ``search_name``
is kept in step with its name here, the one place that writes it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from models.clients import Contact, ContactKind, search_key
from server.actions import audit
from server.actions.client_file import EMAIL, _changed, changed_meanwhile, fingerprint, save_changed
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import NotFound, ValidationFailed
from server.i18n import gettext as _


class PracticeContactIn(BaseModel):
    kind: ContactKind = ContactKind.OTHER
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    organisation: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=254)
    phone: str = Field(default="", max_length=40)
    address: str = Field(default="", max_length=1000)
    notes: str = Field(default="", max_length=10_000)
    # ``contact_version`` of what the edit page showed: a save from a page opened before a
    # colleague's save is refused (409) instead of putting back what they changed. API
    # callers that leave it out replace the details.
    based_on: str | None = Field(default=None, max_length=64)


# The columns the contact's form shows and posts back whole.
FORM_COLUMNS = (
    "kind",
    "first_name",
    "last_name",
    "organisation",
    "email",
    "phone",
    "address",
    "notes",
)


def contact_version(contact: Contact) -> str:
    """What a contact's edit page was opened on, hashed: ``based_on`` sends it back."""
    return fingerprint([str(getattr(contact, k)) for k in FORM_COLUMNS])


def check_contact(data: PracticeContactIn) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kind": data.kind,
        "first_name": " ".join(data.first_name.split()),
        "last_name": " ".join(data.last_name.split()),
        "organisation": data.organisation.strip(),
        "email": data.email.strip().lower(),
        "phone": data.phone.strip(),
        "address": data.address.strip(),
        "notes": data.notes.strip(),
    }
    missing = {
        k: _("This field is required.") for k in ("first_name", "last_name") if not values[k]
    }
    if missing:
        raise ValidationFailed(_("Some fields are missing."), missing)
    if values["email"] and not EMAIL.match(values["email"]):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"email": _("Enter an email address such as name@example.org.")},
        )
    values["search_name"] = search_key(values["first_name"], values["last_name"])
    return values


async def do_create_contact(
    actor: Caller | None, practice_id: int, data: PracticeContactIn
) -> Contact:
    values = check_contact(data)
    async with atomic():
        contact = await Contact.create(practice_id=practice_id, **values)
        await audit.record(
            actor,
            "contact.created",
            object_type="contact",
            object_id=contact.id,
            practice_id=practice_id,
        )
    return contact


async def do_update_contact(
    actor: Caller | None, contact: Contact, data: PracticeContactIn
) -> Contact:
    """Replace the contact's details. Alternate contacts copied from it keep their own copy.
    With ``data.based_on``, refused (``DetailsChanged``, a 409) when the contact was saved
    since the page showed it."""
    values = check_contact(data)
    async with atomic():
        # The row as it is now, locked (PostgreSQL): the form is compared with it.
        current = await Contact.filter(id=contact.id).select_for_update().first()
        if current is None:
            raise NotFound()
        if data.based_on is not None and data.based_on != contact_version(current):
            raise changed_meanwhile()
        for name in ("deleted_at", *values):
            setattr(contact, name, getattr(current, name))
        changed = _changed(contact, values)
        if changed:
            await save_changed(contact, changed)
            await audit.record(
                actor,
                "contact.updated",
                object_type="contact",
                object_id=contact.id,
                practice_id=contact.practice_id,  # type: ignore[attr-defined]
                detail={"fields": sorted(set(changed) - {"search_name"})},
            )
    return contact


async def do_remove_contact(actor: Caller | None, contact: Contact) -> None:
    """Soft delete: the contact leaves the list and the pickers; circles that copied it keep
    their alternate contacts."""
    if contact.deleted_at is not None:
        return
    async with atomic():
        contact.deleted_at = datetime.now(UTC)
        await contact.save(update_fields=["deleted_at", "updated_at"])
        await audit.record(
            actor,
            "contact.removed",
            object_type="contact",
            object_id=contact.id,
            practice_id=contact.practice_id,  # type: ignore[attr-defined]
        )
