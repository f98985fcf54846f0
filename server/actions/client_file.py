"""Writes to the client file's tabs: contact, clinical and account details, payment methods.

Every change records which fields changed (not their values: the audit trail is read by
the owner, and clinical values do not belong in it).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from models.accounts import StaffUser
from models.agenda import DiscountKind, Service, ServiceDiscount
from models.clients import (
    Client,
    ClientStatus,
    EmailAddress,
    PaymentMethod,
    PaymentMethodKind,
    PaymentTerms,
    PhoneNumber,
    Tag,
    search_key,
)
from models.tasks import Task
from server.actions import audit, messaging, reminders, tasks
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _
from server.phones import practice_region, sms_problem

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_KEYWORDS = 4
# Off, or between these many hours before a session.
REMINDER_MIN, REMINDER_MAX = 2, 72


def blank_to_none(value: object) -> object:
    return None if value == "" else value


def _reminder(value: int | None, field: str) -> int | None:
    if value is not None and not REMINDER_MIN <= value <= REMINDER_MAX:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {field: _("Off, or between 2 and 72 hours before the session.")},
        )
    return value


class PhoneIn(BaseModel):
    number: str = Field(max_length=40)
    label: str = Field(default="", max_length=40)
    is_primary: bool = False
    for_sms: bool = False


class EmailIn(BaseModel):
    address: str = Field(max_length=254)
    label: str = Field(default="", max_length=40)
    is_primary: bool = False


class ContactIn(BaseModel):
    first_name: str = Field(min_length=1, max_length=100)
    middle_name: str = Field(default="", max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    preferred_name: str = Field(default="", max_length=100)
    date_of_birth: date | None = None
    address_line1: str = Field(default="", max_length=200)
    address_line2: str = Field(default="", max_length=200)
    postal_code: str = Field(default="", max_length=20)
    city: str = Field(default="", max_length=100)
    country: str = Field(default="", max_length=100)
    reminder_email_hours: int | None = None
    reminder_sms_hours: int | None = None
    phones: list[PhoneIn] = Field(default_factory=list, max_length=10)
    emails: list[EmailIn] = Field(default_factory=list, max_length=10)
    status: ClientStatus | None = None
    tag_ids: list[int] | None = Field(default=None, max_length=50)
    based_on: str | None = Field(default=None, max_length=64)  # as ClinicalIn's

    _blanks = field_validator(
        "date_of_birth", "reminder_email_hours", "reminder_sms_hours", "status", mode="before"
    )(blank_to_none)


class ClinicalIn(BaseModel):
    referral: str = Field(default="", max_length=300)
    diagnosis_keywords: list[str] = Field(default_factory=list)
    clinical_comments: str = Field(default="", max_length=10_000)
    # ``tab_version`` of what the page showed: a save from a page opened before someone
    # else's save is refused instead of putting back what they changed. API callers that
    # leave it out replace the details whatever they hold.
    based_on: str | None = Field(default=None, max_length=64)


class AccountIn(BaseModel):
    payment_terms: PaymentTerms = PaymentTerms.PER_SESSION
    health_id: str = Field(default="", max_length=60)
    insurance_company: str = Field(default="", max_length=200)
    account_comments: str = Field(default="", max_length=10_000)
    based_on: str | None = Field(default=None, max_length=64)  # as ClinicalIn's


# The columns each tab's form shows and posts back whole (the contact tab also its phones,
# emails and tags).
TAB_FIELDS = {
    "clinical": ("referral", "diagnosis_keywords", "clinical_comments"),
    "account": ("payment_terms", "health_id", "insurance_company", "account_comments"),
    "contact": (
        "first_name",
        "middle_name",
        "last_name",
        "preferred_name",
        "date_of_birth",
        "address_line1",
        "address_line2",
        "postal_code",
        "city",
        "country",
        "reminder_email_hours",
        "reminder_sms_hours",
        "status",
    ),
}


async def tab_version(client: Client, tab: str) -> str:
    """What a tab's form was opened on: what it shows, hashed."""
    values: list[Any] = [getattr(client, name) for name in TAB_FIELDS[tab]]
    if tab == "contact":
        values += [
            [(p.number, p.label, p.is_primary, p.for_sms) for p in await _phones(client)],
            [(e.address, e.label, e.is_primary) for e in await _emails(client)],
            sorted(t.id for t in await client.tags.all()),
        ]
    return fingerprint([v.value if isinstance(v, Enum) else v or "" for v in values])


def fingerprint(shown: list[Any]) -> str:
    """What a form was opened on (``shown``: its values, JSON-able or written as text),
    hashed short: the form sends it back as ``based_on``, and a save is refused
    (``changed_meanwhile``) when the record no longer gives the same."""
    content = json.dumps(shown, sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


async def _phones(client: Client) -> list[PhoneNumber]:
    return await PhoneNumber.filter(client_id=client.id).order_by("id")


async def _emails(client: Client) -> list[EmailAddress]:
    return await EmailAddress.filter(client_id=client.id).order_by("id")


class DetailsChanged(Conflict):
    """A tab of the file was saved from another window since this page showed it."""


async def _current(client: Client, tab: str, based_on: str | None) -> Client:
    """The client's row as it is now, locked for the rest of the transaction (PostgreSQL):
    the form's values are compared with it, not with the row read before the transaction.
    Refused when the page showed other values than these (``based_on``): the form posts
    every field of its tab, and would put back what someone else just saved. Call inside
    ``atomic()``."""
    current = await Client.filter(id=client.id).select_for_update().first()
    if current is None:
        raise DetailsChanged(_("This client file was removed meanwhile."))
    if based_on is not None and based_on != await tab_version(current, tab):
        raise changed_meanwhile()
    return current


def changed_meanwhile() -> DetailsChanged:
    """The refusal of a form opened before someone else saved what it shows."""
    return DetailsChanged(
        _(
            "These details were saved from another window since you opened this page. "
            "Your text is kept below, beside the details as they are now: compare them, "
            "then save again."
        )
    )


class PaymentMethodIn(BaseModel):
    kind: PaymentMethodKind
    description: str = Field(min_length=1, max_length=200)


# --- contact details -------------------------------------------------------------------------


def _check_phones(phones: list[PhoneIn], region: str | None) -> list[PhoneIn]:
    """The numbers kept (blank rows dropped, the first primary if none is), or a 422: more
    than one primary or for texts, or one for texts that texts cannot reach (read in
    ``region``, the practice's country: server/phones.py)."""
    phones = [p for p in phones if p.number.strip()]
    if sum(p.is_primary for p in phones) > 1:
        raise ValidationFailed(
            _("Some fields are not valid."), {"phones": _("Only one number can be primary.")}
        )
    if sum(p.for_sms for p in phones) > 1:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"phones": _("Only one number can receive SMS reminders.")},
        )
    for p in phones:
        if p.for_sms and (problem := sms_problem(p.number, region)):
            raise ValidationFailed(_("Some fields are not valid."), {"phones": problem})
    if phones and not any(p.is_primary for p in phones):
        phones[0].is_primary = True
    return phones


def _check_emails(emails: list[EmailIn]) -> list[EmailIn]:
    emails = [e for e in emails if e.address.strip()]
    for i, e in enumerate(emails):
        e.address = e.address.strip().lower()
        if not EMAIL.match(e.address):
            raise ValidationFailed(
                _("Some fields are not valid."),
                {f"emails.{i}.address": _("Enter an email address such as name@example.org.")},
            )
    if sum(e.is_primary for e in emails) > 1:
        raise ValidationFailed(
            _("Some fields are not valid."), {"emails": _("Only one address can be primary.")}
        )
    if emails and not any(e.is_primary for e in emails):
        emails[0].is_primary = True
    return emails


async def save_changed(obj: Any, changed: list[str]) -> None:
    """Write only the columns this action changed. A plain ``save()`` writes every column as
    this request read it, undoing what another request changed meanwhile: a therapist
    reassigned (who may see the file), clinical notes saved from the other tab, a circle
    contact removed (brought back, reminders and all)."""
    if changed:
        await obj.save(update_fields=[*changed, "updated_at"])


def _changed(obj: Any, values: dict[str, Any]) -> list[str]:
    changed = [k for k, v in values.items() if getattr(obj, k) != v]
    for k in changed:
        setattr(obj, k, values[k])
    return changed


async def do_update_contact_details(actor: Caller, client: Client, data: ContactIn) -> Client:
    _reminder(data.reminder_email_hours, "reminder_email_hours")
    _reminder(data.reminder_sms_hours, "reminder_sms_hours")
    phones = _check_phones(data.phones, await practice_region(client.practice_id))  # type: ignore[attr-defined]
    emails = _check_emails(data.emails)
    if data.reminder_sms_hours is not None and not any(p.for_sms for p in phones):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"reminder_sms_hours": _("Mark a phone number for SMS reminders first.")},
        )
    tags: list[Tag] | None = None
    if data.tag_ids is not None:
        tags = await Tag.filter(
            id__in=data.tag_ids,
            practice_id=client.practice_id,  # type: ignore[attr-defined]
        )
        if len(tags) != len(set(data.tag_ids)):
            raise ValidationFailed(_("Some fields are not valid."), {"tag_ids": _("Unknown tag.")})
    values: dict[str, Any] = {
        k: getattr(data, k).strip() if isinstance(getattr(data, k), str) else getattr(data, k)
        for k in TAB_FIELDS["contact"]
        if k != "status"  # below: kept as it is when the form leaves it out
    }
    if data.status is not None:
        values["status"] = data.status
    primary_email = next((e.address for e in emails if e.is_primary), None)
    primary_phone = next((p.number.strip() for p in phones if p.is_primary), None)
    values.update(email=primary_email, phone=primary_phone)
    values["search_name"] = search_key(
        values["first_name"], values["middle_name"], values["last_name"], values["preferred_name"]
    )
    async with atomic():
        current = await _current(client, "contact", data.based_on)
        changed = _changed(current, values)
        _changed(client, values)
        await save_changed(current, changed)
        old_phones = [(p.number, p.label, p.is_primary, p.for_sms) for p in await _phones(client)]
        new_phones = [(p.number.strip(), p.label, p.is_primary, p.for_sms) for p in phones]
        if old_phones != new_phones:
            changed.append("phones")
            await PhoneNumber.filter(client_id=client.id).delete()
            await PhoneNumber.bulk_create(
                [
                    PhoneNumber(client=client, number=n, label=lb, is_primary=pr, for_sms=sms)
                    for n, lb, pr, sms in new_phones
                ]
            )
        old_emails = [(e.address, e.label, e.is_primary) for e in await _emails(client)]
        new_emails = [(e.address, e.label, e.is_primary) for e in emails]
        if old_emails != new_emails:
            changed.append("emails")
            await EmailAddress.filter(client_id=client.id).delete()
            await EmailAddress.bulk_create(
                [
                    EmailAddress(client=client, address=a, label=lb, is_primary=pr)
                    for a, lb, pr in new_emails
                ]
            )
        if tags is not None:
            before = {t.id for t in await client.tags.all()}
            if before != {t.id for t in tags}:
                changed.append("tags")
                await client.tags.clear()
                if tags:
                    await client.tags.add(*tags)
        if changed:
            await audit.record(
                actor,
                "client.contact_updated",
                object_type="client",
                object_id=client.id,
                client_id=client.id,
                detail={"fields": sorted(set(changed) - {"search_name"})},
            )
        await reminders.sync_client(client)
    return client


class OwnRemindersIn(BaseModel):
    """A client's own choice on the portal: each channel off, or hours before."""

    reminder_email_hours: int | None = None
    reminder_sms_hours: int | None = None

    _blanks = field_validator("reminder_email_hours", "reminder_sms_hours", mode="before")(
        blank_to_none
    )


async def do_set_own_reminders(actor: Caller, client: Client, data: OwnRemindersIn) -> Client:
    """The client sets their own reminders (the same fields staff set on the contact tab).
    SMS need the number the practice marked for reminders: a client cannot add one here,
    since numbers on the file are the practice's to check."""
    _reminder(data.reminder_email_hours, "reminder_email_hours")
    _reminder(data.reminder_sms_hours, "reminder_sms_hours")
    if (
        data.reminder_sms_hours is not None
        and not await PhoneNumber.filter(client_id=client.id, for_sms=True).exists()
    ):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {
                "reminder_sms_hours": _(
                    "The practice has no mobile number of yours for SMS: ask them to add one."
                )
            },
        )
    values = {
        "reminder_email_hours": data.reminder_email_hours,
        "reminder_sms_hours": data.reminder_sms_hours,
    }
    async with atomic():
        changed = _changed(client, values)
        if not changed:
            return client
        await client.save(update_fields=changed)
        await audit.record(
            actor,
            "client.reminders_updated",
            object_type="client",
            object_id=client.id,
            client_id=client.id,
            detail=values,
        )
        await reminders.sync_client(client)
    return client


async def do_create_tag(actor: Caller, practice_id: int, name: str, color: str = "") -> Tag:
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed(_("Some fields are missing."), {"name": _("Name the tag.")})
    async with atomic():
        tag, created = await Tag.get_or_create(
            practice_id=practice_id, name=name, defaults={"color": color or "#64748b"}
        )
        if created:
            await audit.record(actor, "tag.created", object_type="tag", object_id=tag.id)
    return tag


# --- clinical details ------------------------------------------------------------------------


async def do_update_clinical_details(actor: Caller, client: Client, data: ClinicalIn) -> Client:
    keywords = [" ".join(k.split()) for k in data.diagnosis_keywords if k.strip()]
    if len(keywords) > MAX_KEYWORDS:
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"diagnosis_keywords": _("At most four diagnosis keywords.")},
        )
    if any(len(k) > 80 for k in keywords):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"diagnosis_keywords": _("A keyword has at most 80 characters.")},
        )
    values = {
        "referral": data.referral.strip(),
        "diagnosis_keywords": keywords,
        "clinical_comments": data.clinical_comments.strip(),
    }
    async with atomic():
        current = await _current(client, "clinical", data.based_on)
        if (current.diagnosis_keywords or []) == keywords:
            values.pop("diagnosis_keywords")
        changed = _changed(current, values)
        if changed:
            _changed(client, values)
            await save_changed(current, changed)
            await audit.record(
                actor,
                "client.clinical_updated",
                object_type="client",
                object_id=client.id,
                client_id=client.id,
                detail={"fields": changed},
            )
    return client


# --- account details -------------------------------------------------------------------------

# 13 to 19 digits, possibly split by spaces or dashes: the shape of a payment card number.
CARD_LIKE = re.compile(r"(?:\d[ -]?){12,18}\d")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def looks_like_card_number(text: str, *, any_long_number: bool = False) -> bool:
    """True when the text holds what could be a card number: 13 to 19 digits that pass the
    Luhn check. With ``any_long_number``, any such run counts, Luhn or not (a mistyped card
    number is still a card number), for fields that have no reason to hold long numbers.

    Card numbers must never be stored: a practice keeps a description ("Visa ending 4242").
    """
    for match in CARD_LIKE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if any_long_number or _luhn_ok(digits):
            return True
    return False


async def do_update_account_details(actor: Caller, client: Client, data: AccountIn) -> Client:
    # Not the health id: a French NIR has 15 digits and may pass the Luhn check by chance.
    for field in ("account_comments", "insurance_company"):
        if looks_like_card_number(getattr(data, field)):
            raise ValidationFailed(
                _("Card numbers are never stored."),
                {field: _("Remove the card number: describe the payment method instead.")},
            )
    values = {
        "payment_terms": data.payment_terms,
        "health_id": data.health_id.strip(),
        "insurance_company": data.insurance_company.strip(),
        "account_comments": data.account_comments.strip(),
    }
    async with atomic():
        current = await _current(client, "account", data.based_on)
        changed = _changed(current, values)
        if changed:
            _changed(client, values)
            await save_changed(current, changed)
            await audit.record(
                actor,
                "client.account_updated",
                object_type="client",
                object_id=client.id,
                client_id=client.id,
                detail={"fields": changed},
            )
    return client


async def do_add_payment_method(
    actor: Caller, client: Client, data: PaymentMethodIn
) -> PaymentMethod:
    description = " ".join(data.description.split())
    if looks_like_card_number(description, any_long_number=True):
        raise ValidationFailed(
            _("Card numbers are never stored."),
            {
                "description": _(
                    "Describe the card (for example “Visa ending 4242”), never its number."
                )
            },
        )
    async with atomic():
        method = await PaymentMethod.create(client=client, kind=data.kind, description=description)
        await audit.record(
            actor,
            "client.payment_method_added",
            object_type="payment_method",
            object_id=method.id,
            client_id=client.id,
        )
    return method


async def do_remove_payment_method(actor: Caller, method: PaymentMethod) -> None:
    if method.deleted_at is not None:
        return
    async with atomic():
        method.deleted_at = datetime.now(UTC)
        await method.save(update_fields=["deleted_at", "updated_at"])
        await audit.record(
            actor,
            "client.payment_method_removed",
            object_type="payment_method",
            object_id=method.id,
            client_id=method.client_id,  # type: ignore[attr-defined]
        )


async def do_assign_therapist(actor: Caller, client: Client, therapist: StaffUser | None) -> None:
    """Hand the client to another therapist (None: to none). The previous one no longer sees
    the file (unless they supervise the new one); their open tasks on it go to the new
    therapist (to none: to an owner, tasks.hand_over_unseen_tasks), or the safety alert's
    "contact the client today" would sit in no one's list, and the client's conversations go
    with the client (messaging.hand_over_client).

    Precondition: ``therapist`` came through ``access_practitioner`` (an active clinician or
    owner of the practice)."""
    old_id: int | None = client.therapist_id  # type: ignore[attr-defined]
    if old_id == (therapist.id if therapist else None):
        return
    async with atomic():
        client.therapist = therapist  # type: ignore[assignment]
        await client.save(update_fields=["therapist_id", "updated_at"])
        if old_id is not None and therapist is not None:
            await Task.filter(
                client_id=client.id, assignee_id=old_id, done_at=None, deleted_at=None
            ).update(assignee_id=therapist.id)
        previous = await StaffUser.get_or_none(id=old_id) if old_id is not None else None
        await messaging.hand_over_client(actor, client, previous, therapist)
        await tasks.hand_over_unseen_tasks(actor, [old_id], and_supervisors=True)
        await audit.record(
            actor,
            "client.therapist_changed",
            object_type="client",
            object_id=client.id,
            client_id=client.id,
            detail={"therapist_id": therapist.id if therapist else None},
        )


# --- service fee discounts -------------------------------------------------------------------


class DiscountIn(BaseModel):
    service_id: int
    kind: DiscountKind
    value: Decimal = Field(ge=0, max_digits=10, decimal_places=2)


async def do_set_discount(
    actor: Caller, client: Client, service: Service, kind: DiscountKind, value: Decimal
) -> ServiceDiscount:
    """Set (or replace) the client's discount on one service."""
    if kind is DiscountKind.PERCENT and not Decimal(0) < value <= Decimal(100):
        raise ValidationFailed(
            _("Some fields are not valid."), {"value": _("A percentage between 0 and 100.")}
        )
    async with atomic():
        discount, _created = await ServiceDiscount.update_or_create(
            defaults={"kind": kind, "value": value}, client=client, service=service
        )
        await audit.record(
            actor,
            "client.discount_set",
            object_type="service_discount",
            object_id=discount.id,
            client_id=client.id,
        )
    return discount


async def do_remove_discount(actor: Caller, discount: ServiceDiscount) -> None:
    async with atomic():
        await ServiceDiscount.filter(id=discount.id).delete()
        await audit.record(
            actor,
            "client.discount_removed",
            object_type="service_discount",
            object_id=discount.id,
            client_id=discount.client_id,  # type: ignore[attr-defined]
        )
