"""Writes to a client's circle of care: alternate contacts and links to other clients.

An alternate contact is a person around the client who is not a client (a parent, a partner,
a family doctor). It may point to the practice's contact record for that person; picking one
copies the record's details in, and the copy is then the alternate contact's own.

A linked account is another client of the practice. A link is stored twice, once per file;
each row says what ``linked_client`` is to ``client`` (row A→B "parent": B is A's parent),
and the other row carries the inverse ("child": A is B's child).

As on the rest of the file, the audit trail records which fields changed, never their values.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator
from tortoise.expressions import Q

from models.accounts import PortalAccount
from models.clients import (
    AlternateContact,
    Client,
    Contact,
    ContactKind,
    LinkedAccount,
    PhoneNumber,
)
from server.actions import audit, messaging, reminders
from server.actions.client_file import (
    EMAIL,
    PhoneIn,
    _changed,
    _check_phones,
    _reminder,
    blank_to_none,
    changed_meanwhile,
    fingerprint,
    save_changed,
)
from server.actions.retries import once_per_key
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import NotFound, ValidationFailed
from server.i18n import gettext as _
from server.i18n import lazy
from server.phones import practice_region

# Ids are 32-bit integers in every table (see server.web.parse_id).
MAX_ID = 2**31 - 1

# What an alternate contact picked from a contact record is to the client, as a first guess
# the person filling the form can change (the relationship is free text).
KIND_RELATIONSHIP = {
    ContactKind.PARENT: lazy("Parent"),
    ContactKind.GUARDIAN: lazy("Guardian"),
    ContactKind.TEACHER: lazy("Teacher"),
    ContactKind.LAWYER: lazy("Lawyer"),
    ContactKind.SOCIAL_WORKER: lazy("Social worker"),
    ContactKind.DOCTOR: lazy("Doctor"),
    ContactKind.REFERRER: lazy("Referring practitioner"),
    ContactKind.OTHER: "",
}

# The fields copied as they are from a CircleContactIn onto an AlternateContact.
PLAIN_FIELDS = (
    "first_name",
    "middle_name",
    "last_name",
    "relationship",
    "date_of_birth",
    "is_emergency",
    "reminder_email_hours",
    "reminder_sms_hours",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
)


class CircleContactIn(BaseModel):
    # A contact record of the practice to copy the person's details from (blanks only).
    contact_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    # Required once the contact record, if any, has filled the blanks.
    first_name: str = Field(default="", max_length=100)
    middle_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    relationship: str = Field(default="", max_length=60)
    date_of_birth: date | None = None
    email: str = Field(default="", max_length=254)
    phones: list[PhoneIn] = Field(default_factory=list, max_length=10)
    # Hours before a session, or None for off (the default).
    reminder_email_hours: int | None = None
    reminder_sms_hours: int | None = None
    is_emergency: bool = False
    address_line1: str = Field(default="", max_length=200)
    address_line2: str = Field(default="", max_length=200)
    postal_code: str = Field(default="", max_length=20)
    city: str = Field(default="", max_length=100)
    country: str = Field(default="", max_length=100)
    # ``circle_version`` of what the edit form showed (as ClinicalIn's ``based_on``): a save
    # from a page opened before someone else's save of this person is refused instead of
    # putting back what they changed. API callers that leave it out replace the details.
    based_on: str | None = Field(default=None, max_length=64)
    # Adding: the form's own key; sent again with it, the person is not added twice.
    request_key: str = Field(default="", max_length=64)

    _blanks = field_validator(
        "contact_id", "date_of_birth", "reminder_email_hours", "reminder_sms_hours", mode="before"
    )(blank_to_none)


def _fitted(text: str, field: str) -> str:
    """``text`` cut to what ``field`` of a CircleContactIn holds. A contact record's address
    is one free text of up to 1,000 characters; the circle has two lines of 200 (the record
    keeps the whole of it, and the form shows the copy to check)."""
    limit = next(
        m.max_length
        for m in CircleContactIn.model_fields[field].metadata
        if hasattr(m, "max_length")
    )
    return text if len(text) <= limit else text[:limit].rstrip(" ,")


def prefill_from_contact(contact: Contact) -> dict[str, Any]:
    """An alternate contact's fields as the contact record gives them (a CircleContactIn body)."""
    lines = [line.strip() for line in contact.address.splitlines() if line.strip()]
    guess = KIND_RELATIONSHIP.get(contact.kind, "")
    return {
        "contact_id": contact.id,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "relationship": _(guess) if guess else "",
        "email": contact.email,
        "phones": (
            [{"number": contact.phone, "label": "", "is_primary": True, "for_sms": False}]
            if contact.phone.strip()
            else []
        ),
        "address_line1": _fitted(lines[0], "address_line1") if lines else "",
        "address_line2": _fitted(", ".join(lines[1:]), "address_line2"),
    }


def _fill_blanks(data: CircleContactIn, contact: Contact) -> CircleContactIn:
    """What the form left blank, taken from the contact record."""
    filled = data.model_dump()
    for key, value in prefill_from_contact(contact).items():
        if not filled.get(key):
            filled[key] = value
    return CircleContactIn.model_validate(filled)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(_("Some fields are not valid."), {field: message})


def check_circle_contact(
    data: CircleContactIn, region: str | None
) -> tuple[dict[str, Any], list[PhoneIn]]:
    """The alternate contact's values and phones, or ValidationFailed naming the field
    (numbers for texts read in ``region``, the practice's country)."""
    values: dict[str, Any] = {
        k: getattr(data, k).strip() if isinstance(getattr(data, k), str) else getattr(data, k)
        for k in PLAIN_FIELDS
    }
    missing = {
        k: _("This field is required.") for k in ("first_name", "last_name") if not values[k]
    }
    if missing:
        raise ValidationFailed(_("Some fields are missing."), missing)
    _reminder(data.reminder_email_hours, "reminder_email_hours")
    _reminder(data.reminder_sms_hours, "reminder_sms_hours")
    phones = _check_phones(data.phones, region)
    for phone in phones:
        phone.number = phone.number.strip()
        phone.label = phone.label.strip()
    email = data.email.strip().lower()
    if email and not EMAIL.match(email):
        raise _invalid("email", _("Enter an email address such as name@example.org."))
    values["email"] = email
    if data.reminder_sms_hours is not None and not any(p.for_sms for p in phones):
        raise _invalid("reminder_sms_hours", _("Mark a phone number for SMS reminders first."))
    if data.reminder_email_hours is not None and not email:
        raise _invalid("reminder_email_hours", _("Add an email address first."))
    if data.is_emergency and not phones:
        raise _invalid("is_emergency", _("An emergency contact needs a phone number."))
    return values, phones


def _phone_rows(phones: list[PhoneIn]) -> list[tuple[str, str, bool, bool]]:
    return [(p.number, p.label, p.is_primary, p.for_sms) for p in phones]


def circle_version(alternate: AlternateContact, phones: list[PhoneNumber]) -> str:
    """What an alternate contact's edit form was opened on (its fields and ``phones``, in id
    order), hashed: ``based_on`` sends it back."""
    values: list[Any] = [getattr(alternate, k) for k in PLAIN_FIELDS]
    values += [
        alternate.email,
        alternate.contact_id,  # type: ignore[attr-defined]
        [(p.number, p.label, p.is_primary, p.for_sms) for p in phones],
    ]
    return fingerprint([v if v is not None else "" for v in values])


async def phones_of(alternate: AlternateContact) -> list[PhoneNumber]:
    return await PhoneNumber.filter(alternate_contact_id=alternate.id).order_by("id")


async def _replace_phones(
    alternate: AlternateContact, rows: list[tuple[str, str, bool, bool]]
) -> None:
    await PhoneNumber.filter(alternate_contact_id=alternate.id).delete()
    await PhoneNumber.bulk_create(
        [
            PhoneNumber(alternate_contact=alternate, number=n, label=lb, is_primary=pr, for_sms=sms)
            for n, lb, pr, sms in rows
        ]
    )


def _same_practice(client: Client, contact: Contact | None) -> None:
    # Handlers fetch the contact through access_contact; this guards scripts and tests.
    if contact is not None and contact.practice_id != client.practice_id:  # type: ignore[attr-defined]
        raise NotFound()


async def do_add_circle_contact(
    actor: Caller | None,
    client: Client,
    data: CircleContactIn,
    contact: Contact | None = None,
    *,
    fill_blanks: bool = True,
) -> AlternateContact:
    """Add a person to the client's circle of care; blanks are filled from ``contact``,
    unless ``fill_blanks`` is false: the tab's form already came filled from the record,
    so a blank there is a field the person cleared (the doctor's email the client does not
    want used), not one to fill again. ``data.request_key``: sent again with the same key
    (a double click), the person added the first time is returned, not added twice (each
    would have had the session's reminders). Call outside any transaction."""
    _same_practice(client, contact)
    if contact is not None and fill_blanks:
        data = _fill_blanks(data, contact)
    values, phones = check_circle_contact(data, await practice_region(client.practice_id))  # type: ignore[attr-defined]

    async def write(request_key: str | None) -> AlternateContact:
        async with atomic():
            alternate = await AlternateContact.create(
                client=client, contact=contact, request_key=request_key, **values
            )
            await _replace_phones(alternate, _phone_rows(phones))
            await audit.record(
                actor,
                "circle.contact_added",
                object_type="alternate_contact",
                object_id=alternate.id,
                client_id=client.id,
                practice_id=client.practice_id,  # type: ignore[attr-defined]
            )
            await reminders.sync_client(client)
        return alternate

    return await once_per_key(AlternateContact, data.request_key, write, client_id=client.id)


async def do_update_circle_contact(
    actor: Caller | None,
    alternate: AlternateContact,
    data: CircleContactIn,
    contact: Contact | None = None,
) -> AlternateContact:
    """Replace an alternate contact's details (phones as a whole list). A contact record
    newly pointed to fills the blanks, as when adding; one already pointed to does not, so
    a field can still be cleared. With ``data.based_on``, refused (``DetailsChanged``, a
    409) when the person was changed since the form showed them."""
    client = await Client.get(id=alternate.client_id)  # type: ignore[attr-defined]
    _same_practice(client, contact)
    if contact is not None and contact.id != alternate.contact_id:  # type: ignore[attr-defined]
        data = _fill_blanks(data, contact)
    values, phones = check_circle_contact(data, await practice_region(client.practice_id))  # type: ignore[attr-defined]
    values["contact_id"] = contact.id if contact else None
    async with atomic():
        # The row as it is now, locked (PostgreSQL): the form is compared with it, not with
        # the row read before the transaction.
        current = await AlternateContact.filter(id=alternate.id).select_for_update().first()
        if current is None:
            raise NotFound()
        old_phones = await phones_of(current)
        if data.based_on is not None and data.based_on != circle_version(current, old_phones):
            raise changed_meanwhile()
        for name in ("deleted_at", *values):
            setattr(alternate, name, getattr(current, name))
        changed = _changed(alternate, values)
        await save_changed(alternate, changed)
        old = [(p.number, p.label, p.is_primary, p.for_sms) for p in old_phones]
        if old != _phone_rows(phones):
            changed.append("phones")
            await _replace_phones(alternate, _phone_rows(phones))
        if changed:
            await audit.record(
                actor,
                "circle.contact_updated",
                object_type="alternate_contact",
                object_id=alternate.id,
                client_id=client.id,
                practice_id=client.practice_id,  # type: ignore[attr-defined]
                detail={"fields": sorted(changed)},
            )
        await reminders.sync_client(client)
    return alternate


async def do_remove_circle_contact(actor: Caller | None, alternate: AlternateContact) -> None:
    """Take a person out of the circle of care. The row stays (files are never hard-deleted)."""
    if alternate.deleted_at is not None:
        return
    async with atomic():
        alternate.deleted_at = datetime.now(UTC)
        await alternate.save(update_fields=["deleted_at", "updated_at"])
        await audit.record(
            actor,
            "circle.contact_removed",
            object_type="alternate_contact",
            object_id=alternate.id,
            client_id=alternate.client_id,  # type: ignore[attr-defined]
        )
        await reminders.sync_client_of(alternate)


async def do_unlink_clients(actor: Caller | None, client: Client, other: Client) -> None:
    """Remove the link between two clients from both files (soft: the rows stay).

    Each leaves the other's conversations they took part in as a linked account: a parent
    unlinked from a child's file after a custody change reads no more of the child's
    messages, and is told of none (their earlier messages keep their name)."""
    now = datetime.now(UTC)
    async with atomic():
        removed = await LinkedAccount.filter(
            Q(client_id=client.id, linked_client_id=other.id)
            | Q(client_id=other.id, linked_client_id=client.id),
            deleted_at=None,
        ).update(deleted_at=now)
        if removed:
            left = 0
            for owner, linked in ((client, other), (other, client)):
                account = await PortalAccount.get_or_none(client_id=linked.id)
                if account is not None:
                    left += await messaging.leave_client_conversations(account, owner)
            await audit.record(
                actor,
                "client.unlinked",
                object_type="client",
                object_id=client.id,
                client_id=client.id,
                practice_id=client.practice_id,  # type: ignore[attr-defined]
                detail={"linked_client_id": other.id, "conversations_left": left},
            )
