"""Billing writes: consultations, invoices (drafts, finalizing, credit notes), payments,
refunds, sending by email, billing profiles.

Numbering. Finalizing takes the next number of the issuer's sequence (a counter row per
issuer and year). The first statement of the finalizing transaction is a write (the
invoice's own draft -> finalized switch), so on SQLite the transaction holds the database's
write lock before it reads the counter, and a concurrent finalizer waits for it rather than
reading a stale counter; on PostgreSQL the counter row is read ``FOR UPDATE``, which holds
a second finalizer of the same issuer until the first commits. Either way two invoices never
get the same number, and a rollback gives its number back (no gap).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError

from models.accounts import PortalAccount, Practice, StaffRole, StaffUser
from models.agenda import Appointment, Attendance, Service, ServiceDiscount, discounted_price
from models.billing import (
    CENT,
    ZERO,
    BillingProfile,
    Consultation,
    DefaultService,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceSequence,
    InvoiceStatus,
    InvoiceTemplate,
    PayerKind,
    Payment,
    PaymentKind,
    PaymentMethodUsed,
)
from models.clients import Client, Contact, search_key
from realtime.events import client_recipient, emit, staff_recipient
from server.actions import audit
from server.actions.reminders import client_locale
from server.actions.retries import once_per_key
from server.auth.sessions import Caller
from server.db import atomic, dialect
from server.errors import Conflict, NotFound, ValidationFailed
from server.i18n import format_date, format_money, writing_in
from server.i18n import gettext as _

# Appointments that produce no consultation: nothing took place.
NOT_HELD = (
    Attendance.NO_SHOW,
    Attendance.CANCELLED_BY_CLIENT,
    Attendance.CANCELLED_BY_PRACTITIONER,
    Attendance.MOVED,
)


class BillingMethod(StrEnum):
    PER_CONSULTATION = "per_consultation"
    PER_CLIENT = "per_client"
    SINGLE = "single"  # one invoice for everything, to one payer


def money(value: Decimal) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(_("Some fields are not valid."), {field_name: message})


def practice_today(practice: Practice) -> date:
    return datetime.now(ZoneInfo(practice.time_zone)).date()


# --- billing profiles ---------------------------------------------------------------------


def _default_prefix(practitioner: StaffUser | None) -> str:
    """The first three letters of the issuer's last name, in the letters an invoice number
    takes (the settings form accepts A-Z, digits, / _ -): "Ôdin" gives ODI-, "Łoś" LOS-,
    "de la Tour" DEL-; a name with none of them, F-."""
    if practitioner is None:
        return "F-"
    plain = search_key(practitioner.last_name).upper().replace("Ł", "L")
    letters = "".join(c for c in plain if "A" <= c <= "Z" or c.isdigit() and c.isascii())
    return f"{letters[:3]}-" if letters else "F-"


def default_profile(practice: Practice, practitioner: StaffUser | None) -> BillingProfile:
    """An issuer's profile before anyone filled it in (not saved)."""
    return BillingProfile(
        practice_id=practice.id,
        practitioner_id=practitioner.id if practitioner else None,
        legal_name=practitioner.full_name if practitioner else practice.name,
        prefix=_default_prefix(practitioner),
    )


# What follows the prefix in a number (format_number): "2026-0001" or "00001".
_NUMBER_AFTER_PREFIX = re.compile(r"(\d{4}-)?\d{4,}")


async def _prefix_taken(practice_id: int, prefix: str, profile_id: int | None) -> bool:
    """Whether an issuer of the practice other than ``profile_id`` numbers with ``prefix``,
    or once did: numbers are counted per issuer, so an issuer taking up a prefix another
    gave up would issue that one's numbers (ALI-2026-0001) a second time."""
    others = BillingProfile.filter(practice_id=practice_id)
    if profile_id is not None:
        others = others.exclude(id=profile_id)
    if await others.filter(prefix=prefix).exists():
        return True
    numbered = Invoice.filter(practice_id=practice_id, number__startswith=prefix)
    if profile_id is not None:
        numbered = numbered.exclude(profile_id=profile_id)
    # startswith may ignore case (SQLite's LIKE): compared again here, with what follows.
    numbers: list[str] = await numbered.values_list("number", flat=True)  # type: ignore[assignment]
    return any(
        number.startswith(prefix) and _NUMBER_AFTER_PREFIX.fullmatch(number[len(prefix) :])
        for number in numbers
    )


async def _unused_prefix(practice_id: int, wanted: str) -> str:
    """``wanted``, or, when another issuer of the practice numbers or numbered with it, the
    same with the first number free ("DUP-", "DUP2-", "DUP3-"...). Numbers are counted per
    issuer: Dupont and Dupuis, both "DUP-" by default, issued DUP-2026-0001 twice in one
    practice."""
    stem, n, prefix = wanted.removesuffix("-"), 2, wanted
    while await _prefix_taken(practice_id, prefix, None):
        prefix, n = f"{stem}{n}-", n + 1
    return prefix


async def find_profile(practice: Practice, practitioner: StaffUser | None) -> BillingProfile:
    """The issuer's profile, or its defaults (unsaved) if it has none yet: for reading."""
    profile = await BillingProfile.get_or_none(
        practice_id=practice.id, practitioner_id=practitioner.id if practitioner else None
    )
    if profile is not None:
        return profile
    # The prefix it would get if made now (profile_for).
    profile = default_profile(practice, practitioner)
    profile.prefix = await _unused_prefix(practice.id, profile.prefix)
    return profile


async def profile_for(practice: Practice, practitioner: StaffUser | None) -> BillingProfile:
    """The issuer's profile, made with the defaults the first time it is needed."""
    profile = await BillingProfile.get_or_none(
        practice_id=practice.id, practitioner_id=practitioner.id if practitioner else None
    )
    if profile is not None:
        return profile
    async with atomic():
        # One first use at a time per practice: the practice's own profile has no
        # practitioner, and NULLs never collide under the unique key, so two first invoices
        # at once made two profiles (two sequences, the same numbers issued twice). The same
        # lock keeps two new issuers from both taking the same free prefix.
        await Practice.filter(id=practice.id).select_for_update().first()
        defaults = default_profile(practice, practitioner)
        profile, _created = await BillingProfile.get_or_create(
            practice_id=practice.id,
            practitioner_id=practitioner.id if practitioner else None,
            defaults={
                "legal_name": defaults.legal_name,
                "prefix": await _unused_prefix(practice.id, defaults.prefix),
            },
        )
    return profile


@dataclass
class ProfileChanges:
    legal_name: str
    address: str
    registration: str
    email: str
    prefix: str
    yearly_reset: bool
    tax_rate: Decimal
    tax_exemption: str
    payment_days: int
    footer: str


async def do_update_profile(
    actor: Caller, practice: Practice, practitioner: StaffUser | None, changes: ProfileChanges
) -> BillingProfile:
    if not Decimal(0) <= changes.tax_rate < Decimal(100):
        raise _invalid("tax_rate", _("Between 0 and 100."))
    if not 0 <= changes.payment_days <= 365:
        raise _invalid("payment_days", _("Between 0 and 365 days."))
    if not changes.legal_name.strip():
        raise _invalid("legal_name", _("The name printed on invoices."))
    profile = await profile_for(practice, practitioner)
    async with atomic():
        # Numbers are counted per issuer: two issuers of one practice with the same prefix
        # print the same invoice numbers. The practice's lock, as in profile_for, keeps two
        # saves at once from both taking a free prefix.
        await Practice.filter(id=practice.id).select_for_update().first()
        if await _prefix_taken(practice.id, changes.prefix, profile.id):
            raise _invalid(
                "prefix",
                _("Another issuer of the practice numbers or numbered its invoices with it."),
            )
        for name, value in vars(changes).items():
            setattr(profile, name, value)
        await profile.save()
        await audit.record(
            actor, "billing.profile_updated", object_type="billing_profile", object_id=profile.id
        )
    return profile


async def do_set_default_services(
    actor: Caller, practitioner: StaffUser, services: Sequence[Service]
) -> None:
    async with atomic():
        await DefaultService.filter(practitioner_id=practitioner.id).delete()
        for service in services:
            await DefaultService.create(practitioner=practitioner, service=service)
        await audit.record(
            actor,
            "billing.default_services",
            object_type="staff_user",
            object_id=practitioner.id,
            detail={"service_ids": [s.id for s in services]},
        )


# --- consultations ------------------------------------------------------------------------


def consultation_title(service_name: str, on: date) -> str:
    """Recognisable as made by "Bill this client" from the agenda. It becomes the invoice's
    line: call it in the language of the invoice's reader (``writing_in``), not the biller's."""
    return _("Session of %(date)s (from the agenda): %(service)s") % {
        "date": format_date(on),
        "service": service_name,
    }


async def do_ensure_consultations(actor: Caller | None, client: Client) -> list[Consultation]:
    """Create the consultations missing for the client's past appointments that took place
    (not deleted, not a no-show, not cancelled or moved): one per day and practitioner,
    unless one already exists. Returns those created."""
    practice = await Practice.get(id=client.practice_id)  # type: ignore[attr-defined]
    tz = ZoneInfo(practice.time_zone)
    now = datetime.now(UTC)
    appointments = (
        await Appointment.filter(client_id=client.id, deleted_at=None, starts_at__lt=now)
        .exclude(attendance__in=NOT_HELD)
        .order_by("starts_at")
    )
    if not appointments:
        return []
    services = {s.id: s for s in await Service.filter(practice_id=practice.id)}
    # The titles become invoice lines, read by the client (or whoever pays for them): in the
    # client's language, not in that of whoever clicked "Bill this client".
    locale = await client_locale(client, practice)
    created: list[Consultation] = []
    async with atomic():
        # One at a time per client, and what exists read under that lock: "Bill this client"
        # clicked twice made every consultation twice, and the invoice billed each session
        # twice.
        await Client.filter(id=client.id).select_for_update().first()
        existing = {
            (c.practitioner_id, c.on_date)  # type: ignore[attr-defined]
            for c in await Consultation.filter(client_id=client.id)
        }
        for appointment in appointments:
            on = appointment.starts_at.astimezone(tz).date()
            key = (appointment.practitioner_id, on)  # type: ignore[attr-defined]
            if key in existing:
                continue
            existing.add(key)
            service = services[appointment.service_id]  # type: ignore[attr-defined]
            created.append(
                await Consultation.create(
                    practice_id=practice.id,
                    client_id=client.id,
                    practitioner_id=appointment.practitioner_id,  # type: ignore[attr-defined]
                    appointment_id=appointment.id,
                    on_date=on,
                    title=_title_in(locale, service.name, on),
                )
            )
        if created:
            await audit.record(
                actor,
                "consultation.created",
                object_type="client",
                object_id=client.id,
                client_id=client.id,
                practice_id=practice.id,
                detail={"ids": [c.id for c in created]},
            )
    return created


def _title_in(locale: str, service_name: str, on: date) -> str:
    with writing_in(locale):
        return consultation_title(service_name, on)


async def do_create_consultation(
    actor: Caller,
    client: Client,
    practitioner: StaffUser,
    *,
    on_date: date,
    title: str,
    billable: bool = True,
    request_key: str = "",
) -> Consultation:
    """A consultation without an appointment (a phone session, a report...). ``request_key``:
    the form's own key; the same form sent again gives the consultation it made, not a second
    one to bill (server/actions/retries.py)."""
    title = title.strip()
    if not title:
        raise _invalid("title", _("Give it a title."))

    async def write(key: str | None) -> Consultation:
        async with atomic():
            consultation = await Consultation.create(
                practice_id=client.practice_id,  # type: ignore[attr-defined]
                client=client,
                practitioner=practitioner,
                on_date=on_date,
                title=title[:200],
                billable=billable,
                request_key=key,
            )
            await audit.record(
                actor,
                "consultation.created",
                object_type="consultation",
                object_id=consultation.id,
                client_id=client.id,
            )
        return consultation

    return await once_per_key(Consultation, request_key, write, client_id=client.id)


async def do_set_billable(actor: Caller, consultation: Consultation, billable: bool) -> None:
    if consultation.invoice_id is not None:  # type: ignore[attr-defined]
        raise Conflict(_("This consultation is already billed."))
    async with atomic():
        consultation.billable = billable
        await consultation.save(update_fields=["billable", "updated_at"])
        await audit.record(
            actor,
            "consultation.billable",
            object_type="consultation",
            object_id=consultation.id,
            client_id=consultation.client_id,  # type: ignore[attr-defined]
            detail={"billable": billable},
        )


# --- planning invoices (also what the preview shows) ----------------------------------------


@dataclass
class LinePlan:
    description: str
    unit_price: Decimal
    quantity: Decimal = Decimal("1.00")
    discount: Decimal = ZERO
    tax_rate: Decimal = ZERO
    on_date: date | None = None
    service_id: int | None = None
    consultation_id: int | None = None

    @property
    def gross(self) -> Decimal:
        return money(self.unit_price * self.quantity)

    @property
    def amount(self) -> Decimal:
        return money(self.gross - self.discount)

    @property
    def tax(self) -> Decimal:
        return money(self.amount * self.tax_rate / Decimal(100))


@dataclass
class Totals:
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal


def totals(lines: Sequence[LinePlan]) -> Totals:
    subtotal = sum((line.gross for line in lines), ZERO)
    discount = sum((line.discount for line in lines), ZERO)
    tax = sum((line.tax for line in lines), ZERO)
    return Totals(money(subtotal), money(discount), money(tax), money(subtotal - discount + tax))


@dataclass
class Payer:
    kind: PayerKind = PayerKind.CLIENT
    client: Client | None = None  # another client who pays (a parent...)
    contact: Contact | None = None
    name: str = ""
    address: str = ""
    email: str = ""


@dataclass
class InvoicePlan:
    client: Client | None
    payer_kind: PayerKind
    payer_client: Client | None
    payer_contact: Contact | None
    payer_name: str
    payer_address: str
    payer_email: str
    lines: list[LinePlan] = field(default_factory=list)
    consultation_ids: list[int] = field(default_factory=list)

    @property
    def totals(self) -> Totals:
        return totals(self.lines)


def client_address(client: Client) -> str:
    city = " ".join(p for p in (client.postal_code, client.city) if p)
    parts = (client.address_line1, client.address_line2, city, client.country)
    return "\n".join(p for p in parts if p)


class ServiceRules:
    """Which service(s) each consultation bills, loaded once for many consultations:
    the appointment's service when the consultation matches an appointment (linked, or the
    same day with the same practitioner); else the practitioner's default services; else
    the practice's first service."""

    def __init__(
        self,
        services: dict[int, Service],
        appointment_service: dict[int, int],
        same_day: dict[tuple[int, int, date], int],
        defaults: dict[int, list[int]],
        first: Service | None,
        discounts: dict[tuple[int, int], ServiceDiscount],
    ) -> None:
        self.services = services
        self.appointment_service = appointment_service
        self.same_day = same_day
        self.defaults = defaults
        self.first = first
        self.discounts = discounts

    @classmethod
    async def load(cls, practice_id: int, consultations: Sequence[Consultation]) -> ServiceRules:
        services = {s.id: s for s in await Service.filter(practice_id=practice_id).order_by("id")}
        first = next((s for s in services.values() if s.is_active), None)
        client_ids = sorted({c.client_id for c in consultations})  # type: ignore[attr-defined]
        appointment_ids = [c.appointment_id for c in consultations if c.appointment_id]  # type: ignore[attr-defined]
        appointment_service: dict[int, int] = {}
        same_day: dict[tuple[int, int, date], int] = {}
        tz = ZoneInfo((await Practice.get(id=practice_id)).time_zone)
        if client_ids:
            rows = await (
                Appointment.filter(client_id__in=client_ids, deleted_at=None)
                .exclude(attendance__in=NOT_HELD)
                .values("id", "client_id", "practitioner_id", "service_id", "starts_at")
            )
            for row in rows:
                appointment_service[row["id"]] = row["service_id"]
                key = (
                    row["client_id"],
                    row["practitioner_id"],
                    row["starts_at"].astimezone(tz).date(),
                )
                same_day.setdefault(key, row["service_id"])
        if appointment_ids:
            for row in await Appointment.filter(id__in=appointment_ids).values("id", "service_id"):
                appointment_service[row["id"]] = row["service_id"]
        defaults: dict[int, list[int]] = defaultdict(list)
        practitioner_ids = sorted({c.practitioner_id for c in consultations})  # type: ignore[attr-defined]
        for row in (
            await DefaultService.filter(practitioner_id__in=practitioner_ids)
            .order_by("id")
            .values("practitioner_id", "service_id")
        ):
            defaults[row["practitioner_id"]].append(row["service_id"])
        discounts = {
            (d.client_id, d.service_id): d  # type: ignore[attr-defined]
            for d in await ServiceDiscount.filter(client_id__in=client_ids)
        }
        return cls(services, appointment_service, same_day, defaults, first, discounts)

    def services_for(self, consultation: Consultation) -> list[Service]:
        appointment_id = consultation.appointment_id  # type: ignore[attr-defined]
        service_id = self.appointment_service.get(appointment_id) if appointment_id else None
        if service_id is None:
            service_id = self.same_day.get(
                (consultation.client_id, consultation.practitioner_id, consultation.on_date)  # type: ignore[attr-defined]
            )
        if service_id is not None:
            return [self.services[service_id]]
        defaults = self.defaults.get(consultation.practitioner_id, [])  # type: ignore[attr-defined]
        if defaults:
            return [self.services[i] for i in defaults]
        return [self.first] if self.first is not None else []

    def lines_for(self, consultation: Consultation, tax_rate: Decimal) -> list[LinePlan]:
        services = self.services_for(consultation)
        if not services:
            raise ValidationFailed(
                _("The practice has no service to bill. Add one in Setup first."),
                {"services": _("No service.")},
            )
        out = []
        for service in services:
            price = Decimal(service.price)
            discount = self.discounts.get((consultation.client_id, service.id))  # type: ignore[attr-defined]
            paid = discounted_price(price, discount)
            unit, off = (price, money(price - paid)) if paid <= price else (paid, ZERO)
            out.append(
                LinePlan(
                    description=f"{service.name} — {consultation.title}"
                    if consultation.appointment_id is None  # type: ignore[attr-defined]
                    else service.name,
                    unit_price=unit,
                    discount=off,
                    tax_rate=tax_rate,
                    on_date=consultation.on_date,
                    service_id=service.id,
                    consultation_id=consultation.id,
                )
            )
        return out


def _payer_for(
    client: Client | None, payer: Payer
) -> tuple[PayerKind, Client | None, Contact | None, str, str, str]:
    if payer.kind is PayerKind.CONTACT:
        contact = payer.contact
        if contact is None:
            raise _invalid("payer_contact_id", _("Choose the contact who pays."))
        name = f"{contact.full_name}" + (
            f" ({contact.organisation})" if contact.organisation else ""
        )
        return PayerKind.CONTACT, None, contact, name, contact.address, contact.email
    if payer.kind is PayerKind.OTHER:
        if not payer.name.strip():
            raise _invalid("payer_name", _("Type the name of the person who pays."))
        return (
            PayerKind.OTHER,
            None,
            None,
            payer.name.strip(),
            payer.address.strip(),
            payer.email.strip(),
        )
    who = payer.client or client
    if who is None:
        raise _invalid("payer_kind", _("One invoice for several clients needs one payer."))
    return PayerKind.CLIENT, who, None, who.full_name, client_address(who), who.email or ""


async def plan_invoices(
    practice: Practice,
    profile: BillingProfile,
    consultations: Sequence[Consultation],
    method: BillingMethod,
    payer: Payer,
) -> list[InvoicePlan]:
    """The invoices billing these consultations would make (nothing is written)."""
    billable = [c for c in consultations if c.billable and c.invoice_id is None]  # type: ignore[attr-defined]
    if not billable:
        raise _invalid("consultation_ids", _("Nothing billable is selected."))
    billable.sort(key=lambda c: (c.client_id, c.on_date, c.id))  # type: ignore[attr-defined]
    rules = await ServiceRules.load(practice.id, billable)
    clients = {
        c.id: c
        for c in await Client.filter(id__in={c.client_id for c in billable})  # type: ignore[attr-defined]
    }
    groups: list[list[Consultation]]
    if method is BillingMethod.PER_CONSULTATION:
        groups = [[c] for c in billable]
    elif method is BillingMethod.PER_CLIENT:
        by_client: dict[int, list[Consultation]] = defaultdict(list)
        for c in billable:
            by_client[c.client_id].append(c)  # type: ignore[attr-defined]
        groups = list(by_client.values())
    else:
        groups = [billable]
    tax_rate = Decimal(profile.tax_rate)
    plans = []
    for group in groups:
        client_ids = {c.client_id for c in group}  # type: ignore[attr-defined]
        client = clients[next(iter(client_ids))] if len(client_ids) == 1 else None
        # Per client, each invoice goes to its own client unless someone else was named.
        kind, payer_client, contact, name, address, email = _payer_for(client, payer)
        plan = InvoicePlan(client, kind, payer_client, contact, name, address, email)
        for consultation in group:
            plan.lines.extend(rules.lines_for(consultation, tax_rate))
            plan.consultation_ids.append(consultation.id)
        plans.append(plan)
    return plans


# --- creating, editing, deleting drafts ---------------------------------------------------


async def _billing_staff(practice_id: int) -> set[int]:
    """The active owners and front desk: they see every invoice of the practice."""
    return {
        int(i)  # type: ignore[call-overload]
        for i in await StaffUser.filter(
            practice_id=practice_id,
            is_active=True,
            role__in=(StaffRole.OWNER, StaffRole.OFFICE_ADMIN),
        ).values_list("id", flat=True)
    }


async def _therapists_of(client_ids: set[int]) -> dict[int, int]:
    """Each client's therapist, if active (a deactivated one is told nothing)."""
    if not client_ids:
        return {}
    rows = await Client.filter(
        id__in=client_ids, therapist_id__not_isnull=True, therapist__is_active=True
    ).values_list("id", "therapist_id")
    return {int(c): int(t) for c, t in rows}  # type: ignore[call-overload]


async def _billing_recipients(practice_id: int, client_ids: set[int]) -> list[str]:
    """Who is told a client's billing changed: the front desk and owners, and the clients'
    active therapists (their own caseload)."""
    ids = await _billing_staff(practice_id) | set((await _therapists_of(client_ids)).values())
    return [staff_recipient(i) for i in sorted(ids)]


async def notify_invoices_changed(practice_id: int, invoices: Sequence[Invoice]) -> None:
    """``invoices.changed`` to billing staff with every id; to each active therapist with
    the ids of their own clients' invoices only (a batch billed for the practice names
    colleagues' clients' invoices); the client's portal hears of finalized ones. Call
    inside ``atomic()``."""
    if not invoices:
        return
    billing = await _billing_staff(practice_id)
    if billing:
        await emit(
            [staff_recipient(i) for i in sorted(billing)],
            "invoices.changed",
            {"ids": [i.id for i in invoices]},
        )
    therapists = await _therapists_of({i.client_id for i in invoices if i.client_id})  # type: ignore[attr-defined]
    theirs: dict[int, list[int]] = defaultdict(list)
    for invoice in invoices:
        therapist = therapists.get(invoice.client_id)  # type: ignore[attr-defined]
        if therapist is not None and therapist not in billing:
            theirs[therapist].append(invoice.id)
    for therapist, ids in sorted(theirs.items()):
        await emit([staff_recipient(therapist)], "invoices.changed", {"ids": ids})
    finalized: dict[int, list[int]] = defaultdict(list)
    for invoice in invoices:
        if invoice.status is InvoiceStatus.FINALIZED:
            for cid in {invoice.client_id, invoice.payer_client_id} - {None}:  # type: ignore[attr-defined]
                finalized[cid].append(invoice.id)  # type: ignore[index]
    if finalized:
        for account in await PortalAccount.filter(client_id__in=list(finalized), is_active=True):
            await emit(
                [client_recipient(account.id)],
                "invoices.changed",
                {"ids": finalized[account.client_id]},  # type: ignore[attr-defined]
            )


async def do_bill(
    actor: Caller | None,
    practice: Practice,
    issuer: StaffUser | None,
    consultations: Sequence[Consultation],
    *,
    method: BillingMethod,
    payer: Payer,
    template: InvoiceTemplate = InvoiceTemplate.STANDARD,
    finalize: bool = False,
) -> list[Invoice]:
    """Bill these consultations (those billable and not yet billed) as ``method`` says.
    A consultation billed meanwhile by someone else makes the whole batch a 409.
    ``issuer``: the practitioner billing in their own name, or None for the practice."""
    profile = await profile_for(practice, issuer)
    plans = await plan_invoices(practice, profile, consultations, method, payer)
    if finalize:
        await ensure_sequence(profile, practice_today(practice).year)
    invoices: list[Invoice] = []
    async with atomic():
        for plan in plans:
            t = plan.totals
            invoice = await Invoice.create(
                practice_id=practice.id,
                profile_id=profile.id,
                template=template,
                client=plan.client,
                payer_kind=plan.payer_kind,
                payer_client=plan.payer_client,
                payer_contact=plan.payer_contact,
                payer_name=plan.payer_name,
                payer_address=plan.payer_address,
                payer_email=plan.payer_email,
                currency=practice.currency,
                subtotal=t.subtotal,
                discount_total=t.discount_total,
                tax_total=t.tax_total,
                total=t.total,
                tax_exemption=profile.tax_exemption if t.tax_total == ZERO else "",
                created_by=actor.staff if actor else None,
            )
            await InvoiceLine.bulk_create(
                [_line_row(invoice.id, i, line) for i, line in enumerate(plan.lines)]
            )
            taken = await Consultation.filter(
                id__in=plan.consultation_ids, invoice_id=None, billable=True
            ).update(invoice_id=invoice.id)
            if taken != len(plan.consultation_ids):
                raise Conflict(_("Some of these consultations were billed meanwhile. Reload."))
            invoices.append(invoice)
        await audit.record(
            actor,
            "invoice.created",
            object_type="invoice",
            object_id=invoices[0].id,
            client_id=plans[0].client.id if len(plans) == 1 and plans[0].client else None,
            practice_id=practice.id,
            detail={"method": method.value, "ids": [i.id for i in invoices]},
        )
        if finalize:
            for invoice, plan in zip(invoices, plans, strict=True):
                await _finalize(actor, invoice, profile, practice, plan.client)
        await notify_invoices_changed(practice.id, invoices)
    return invoices


def _line_row(invoice_id: int, position: int, line: LinePlan) -> InvoiceLine:
    return InvoiceLine(
        invoice_id=invoice_id,
        position=position,
        consultation_id=line.consultation_id,
        service_id=line.service_id,
        on_date=line.on_date,
        description=line.description[:300],
        quantity=line.quantity,
        unit_price=line.unit_price,
        discount=line.discount,
        tax_rate=line.tax_rate,
        amount=line.amount,
        tax=line.tax,
    )


def _plan_of(line: InvoiceLine) -> LinePlan:
    return LinePlan(
        description=line.description,
        unit_price=Decimal(line.unit_price),
        quantity=Decimal(line.quantity),
        discount=Decimal(line.discount),
        tax_rate=Decimal(line.tax_rate),
        on_date=line.on_date,
        service_id=line.service_id,  # type: ignore[attr-defined]
        consultation_id=line.consultation_id,  # type: ignore[attr-defined]
    )


def _check_draft(invoice: Invoice) -> None:
    if invoice.status is not InvoiceStatus.DRAFT:
        raise Conflict(_("A finalized invoice is never changed: issue a credit note instead."))


async def _lock_draft(invoice: Invoice) -> None:
    """Claim the draft for this transaction (its first statement is this write, see the
    module docstring); a finalized or deleted invoice is a 409."""
    claimed = await Invoice.filter(id=invoice.id, status=InvoiceStatus.DRAFT).update(
        updated_at=datetime.now(UTC)
    )
    if not claimed:
        raise Conflict(_("A finalized invoice is never changed: issue a credit note instead."))


# An invoice's figures computed from its lines (_retotal writes them, _finalize reads them).
TOTALS = ("subtotal", "discount_total", "tax_total", "total", "tax_exemption")


async def _retotal(invoice: Invoice) -> None:
    lines = [_plan_of(line) for line in await InvoiceLine.filter(invoice_id=invoice.id)]
    t = totals(lines)
    profile = await BillingProfile.get(id=invoice.profile_id)  # type: ignore[attr-defined]
    invoice.subtotal, invoice.discount_total = t.subtotal, t.discount_total
    invoice.tax_total, invoice.total = t.tax_total, t.total
    invoice.tax_exemption = profile.tax_exemption if t.tax_total == ZERO else ""
    await invoice.save(update_fields=[*TOTALS, "updated_at"])


@dataclass
class LineIn:
    description: str
    unit_price: Decimal
    quantity: Decimal = Decimal("1")
    discount: Decimal = ZERO
    on_date: date | None = None


async def do_add_line(actor: Caller, invoice: Invoice, line: LineIn) -> InvoiceLine:
    """An ad hoc line (a report, a missed-session fee...) on a draft."""
    _check_draft(invoice)
    if not line.description.strip():
        raise _invalid("description", _("Describe what is billed."))
    if line.quantity <= 0:
        raise _invalid("quantity", _("More than zero."))
    if line.unit_price < 0:
        raise _invalid("unit_price", _("Not below zero."))
    plan = LinePlan(
        description=line.description.strip(),
        unit_price=money(line.unit_price),
        quantity=Decimal(line.quantity).quantize(CENT),
        discount=money(line.discount),
        on_date=line.on_date,
    )
    if plan.discount < 0 or plan.discount > plan.gross:
        raise _invalid("discount", _("Between zero and the line's price."))
    profile = await BillingProfile.get(id=invoice.profile_id)  # type: ignore[attr-defined]
    plan.tax_rate = Decimal(profile.tax_rate)
    async with atomic():
        await _lock_draft(invoice)
        position = await InvoiceLine.filter(invoice_id=invoice.id).count()
        row = _line_row(invoice.id, position, plan)
        await row.save()
        await _retotal(invoice)
        await audit.record(
            actor,
            "invoice.line_added",
            object_type="invoice",
            object_id=invoice.id,
            client_id=invoice.client_id,  # type: ignore[attr-defined]
            detail={"description": plan.description, "amount": str(plan.amount)},
        )
        await notify_invoices_changed(invoice.practice_id, [invoice])  # type: ignore[attr-defined]
    return row


async def do_remove_line(actor: Caller, invoice: Invoice, line: InvoiceLine) -> None:
    _check_draft(invoice)
    if line.invoice_id != invoice.id:  # type: ignore[attr-defined]
        raise NotFound()
    async with atomic():
        await _lock_draft(invoice)
        if line.consultation_id is not None:  # type: ignore[attr-defined]
            others = (
                await InvoiceLine.filter(
                    invoice_id=invoice.id,
                    consultation_id=line.consultation_id,  # type: ignore[attr-defined]
                )
                .exclude(id=line.id)
                .count()
            )
            if not others:
                # The consultation goes back to "not billed".
                await Consultation.filter(id=line.consultation_id, invoice_id=invoice.id).update(  # type: ignore[attr-defined]
                    invoice_id=None
                )
        await line.delete()
        await _retotal(invoice)
        await audit.record(
            actor,
            "invoice.line_removed",
            object_type="invoice",
            object_id=invoice.id,
            client_id=invoice.client_id,  # type: ignore[attr-defined]
            detail={"description": line.description},
        )
        await notify_invoices_changed(invoice.practice_id, [invoice])  # type: ignore[attr-defined]


async def do_update_draft(
    actor: Caller,
    invoice: Invoice,
    *,
    payer_name: str,
    payer_address: str,
    payer_email: str,
    notes: str,
) -> Invoice:
    _check_draft(invoice)
    if not payer_name.strip():
        raise _invalid("payer_name", _("Who pays?"))
    async with atomic():
        await _lock_draft(invoice)
        invoice.payer_name = payer_name.strip()[:200]
        invoice.payer_address = payer_address.strip()
        invoice.payer_email = payer_email.strip()[:254]
        invoice.notes = notes.strip()
        await invoice.save(
            update_fields=["payer_name", "payer_address", "payer_email", "notes", "updated_at"]
        )
        await audit.record(
            actor,
            "invoice.updated",
            object_type="invoice",
            object_id=invoice.id,
            client_id=invoice.client_id,  # type: ignore[attr-defined]
        )
        await notify_invoices_changed(invoice.practice_id, [invoice])  # type: ignore[attr-defined]
    return invoice


async def do_delete_draft(actor: Caller, invoice: Invoice) -> None:
    """A draft has no number yet: deleting it leaves no gap. Its consultations are billable
    again."""
    _check_draft(invoice)
    async with atomic():
        await _lock_draft(invoice)
        await Consultation.filter(invoice_id=invoice.id).update(invoice_id=None)
        await audit.record(
            actor,
            "invoice.deleted",
            object_type="invoice",
            object_id=invoice.id,
            client_id=invoice.client_id,  # type: ignore[attr-defined]
            detail={"total": str(invoice.total), "payer": invoice.payer_name},
        )
        await notify_invoices_changed(invoice.practice_id, [invoice])  # type: ignore[attr-defined]
        await invoice.delete()


# --- finalizing and numbering -------------------------------------------------------------


def format_number(profile: BillingProfile, year: int, n: int) -> str:
    if profile.yearly_reset:
        return f"{profile.prefix}{year}-{n:04d}"
    return f"{profile.prefix}{n:05d}"


async def ensure_sequence(profile: BillingProfile, year: int) -> None:
    """Create the issuer's counter row for the year in a transaction of its own, before
    finalizing: two first finalizers then both find it and queue on its lock."""
    key = year if profile.yearly_reset else 0
    if await InvoiceSequence.exists(profile_id=profile.id, year=key):
        return
    try:
        async with atomic():
            await InvoiceSequence.create(profile_id=profile.id, year=key, last_number=0)
    except IntegrityError:
        pass  # made by a concurrent finalizer: just as good


async def _next_number(profile: BillingProfile, year: int) -> str:
    """The next number of the issuer's sequence. Call inside the finalizing transaction,
    after its first write (see the module docstring)."""
    key = year if profile.yearly_reset else 0
    query = InvoiceSequence.filter(profile_id=profile.id, year=key)
    if dialect() == "postgres":
        query = query.select_for_update()
    sequence = await query.first()
    if sequence is None:
        # ensure_sequence() was not called (or the year turned meanwhile): a concurrent
        # insert of the same row then fails the unique (profile, year), never a duplicate.
        sequence = await InvoiceSequence.create(profile_id=profile.id, year=key, last_number=0)
    sequence.last_number += 1
    await InvoiceSequence.filter(id=sequence.id).update(last_number=sequence.last_number)
    return format_number(profile, year, sequence.last_number)


# What _finalize copies onto the invoice: who it is from and for, as printed.
PARTIES = (
    "issuer_name",
    "issuer_address",
    "issuer_registration",
    "issuer_email",
    "issuer_footer",
    "client_name",
    "client_health_id",
)


async def _finalize(
    actor: Caller | None,
    invoice: Invoice,
    profile: BillingProfile,
    practice: Practice,
    client: Client | None,
) -> None:
    """Number the draft and copy onto it its issuer and client as they are now. ``client``:
    the invoice's client (None for one invoice covering several)."""
    if not await InvoiceLine.filter(invoice_id=invoice.id).exists():
        raise _invalid("lines", _("An invoice needs at least one line."))
    # The draft as it is now, under the caller's claim on it: a line added from another page
    # while this request waited changed its totals, and a full save of what this request had
    # read would number an invoice whose lines do not add up to its total.
    await invoice.refresh_from_db(fields=list(TOTALS))
    today = practice_today(practice)
    invoice.status = InvoiceStatus.FINALIZED
    invoice.finalized_at = datetime.now(UTC)
    invoice.issued_on = today
    invoice.due_on = today + timedelta(days=profile.payment_days)
    invoice.number = await _next_number(profile, today.year)
    # Printed from these copies from now on: in France (as in most places) an invoice once
    # issued is never changed, whoever moves office or corrects a name later.
    invoice.issuer_name = profile.legal_name
    invoice.issuer_address = profile.address
    invoice.issuer_registration = profile.registration
    invoice.issuer_email = profile.email
    invoice.issuer_footer = profile.footer
    invoice.client_name = client.full_name if client else ""
    invoice.client_health_id = client.health_id if client else ""
    await invoice.save(
        update_fields=[
            "status",
            "finalized_at",
            "issued_on",
            "due_on",
            "number",
            *PARTIES,
            "updated_at",
        ]
    )
    await audit.record(
        actor,
        "invoice.finalized",
        object_type="invoice",
        object_id=invoice.id,
        client_id=invoice.client_id,  # type: ignore[attr-defined]
        practice_id=practice.id,
        detail={"number": invoice.number, "total": str(invoice.total)},
    )


async def do_finalize(actor: Caller | None, invoice: Invoice) -> Invoice:
    """Give the draft its number; from then on it is never edited."""
    _check_draft(invoice)
    profile = await BillingProfile.get(id=invoice.profile_id)  # type: ignore[attr-defined]
    practice = await Practice.get(id=invoice.practice_id)  # type: ignore[attr-defined]
    await ensure_sequence(profile, practice_today(practice).year)
    async with atomic():
        await _lock_draft(invoice)
        client = await Client.get_or_none(id=invoice.client_id) if invoice.client_id else None  # type: ignore[attr-defined]
        await _finalize(actor, invoice, profile, practice, client)
        await notify_invoices_changed(practice.id, [invoice])
    return invoice


async def do_credit_note(actor: Caller, invoice: Invoice, *, reason: str = "") -> Invoice:
    """Cancel a finalized invoice by a credit note for its remaining amount (numbered in the
    same sequence). Its consultations may be billed again; what was paid beyond what is
    still owed becomes the paying client's credit. A 409 while it would give back money a
    contact or someone typed in paid (theirs, and no account of theirs can hold it)."""
    if invoice.status is not InvoiceStatus.FINALIZED or invoice.kind is not InvoiceKind.INVOICE:
        raise Conflict(_("Only a finalized invoice can be credited."))
    profile = await BillingProfile.get(id=invoice.profile_id)  # type: ignore[attr-defined]
    practice = await Practice.get(id=invoice.practice_id)  # type: ignore[attr-defined]
    await ensure_sequence(profile, practice_today(practice).year)
    async with atomic():
        await _claim_balance(invoice)
        remaining = money(Decimal(invoice.total) - Decimal(invoice.credited))
        if remaining <= 0:
            raise Conflict(_("This invoice is already fully credited."))
        given_back = money(
            Decimal(invoice.paid) - (Decimal(invoice.total) - invoice.credited - remaining)
        )
        payers_money = given_back
        if credit_holder(invoice) is None and account_holder(invoice) is not None:
            # A contact or someone typed in pays a client's invoice: what the client paid from
            # their own credit goes back to it, what the payer paid is not the client's.
            payers_money -= await _paid_from_credit(invoice)
        if payers_money > 0 and credit_holder(invoice) is None:
            # A contact or someone typed in paid: no account of theirs could hold what the
            # credit note gives back, and nothing refunds it to them. The client's account
            # would have kept it (their money refunded to the client, or paying the client's
            # next invoice), or with no client the money would stay as paid on a cancelled
            # invoice (a balance below zero, on no statement).
            raise Conflict(
                _(
                    "%(amount)s was paid on this invoice by a payer with no client account. "
                    "A credit note would leave that money nowhere to be kept or refunded, so "
                    "this invoice cannot be credited while it is paid."
                )
                % {"amount": format_money(payers_money, invoice.currency)}
            )
        lines = await InvoiceLine.filter(invoice_id=invoice.id).order_by("position")
        note = await Invoice.create(
            practice_id=practice.id,
            profile_id=profile.id,
            kind=InvoiceKind.CREDIT_NOTE,
            template=invoice.template,
            client_id=invoice.client_id,  # type: ignore[attr-defined]
            payer_kind=invoice.payer_kind,
            payer_client_id=invoice.payer_client_id,  # type: ignore[attr-defined]
            payer_contact_id=invoice.payer_contact_id,  # type: ignore[attr-defined]
            payer_name=invoice.payer_name,
            payer_address=invoice.payer_address,
            payer_email=invoice.payer_email,
            currency=invoice.currency,
            subtotal=-Decimal(invoice.subtotal),
            discount_total=-Decimal(invoice.discount_total),
            tax_total=-Decimal(invoice.tax_total),
            total=-remaining,
            tax_exemption=invoice.tax_exemption,
            notes=reason.strip(),
            credited_invoice=invoice,
            created_by=actor.staff,
        )
        if remaining == Decimal(invoice.total):
            rows = [_plan_of(line) for line in lines]
            for row in rows:
                row.unit_price = -row.unit_price
                row.discount = -row.discount
        else:
            rows = [
                LinePlan(
                    description=_("Balance of invoice %s") % invoice.number, unit_price=-remaining
                )
            ]
            note.subtotal, note.discount_total, note.tax_total = -remaining, ZERO, ZERO
            await note.save(update_fields=["subtotal", "discount_total", "tax_total", "updated_at"])
        await InvoiceLine.bulk_create([_line_row(note.id, i, r) for i, r in enumerate(rows)])
        client = await Client.get_or_none(id=invoice.client_id) if invoice.client_id else None  # type: ignore[attr-defined]
        await _finalize(actor, note, profile, practice, client)
        invoice.credited = money(Decimal(invoice.credited) + remaining)
        await invoice.save(update_fields=["credited", "updated_at"])
        await Consultation.filter(invoice_id=invoice.id).update(invoice_id=None)
        # Paid more than is now owed: the excess moves to the credit of whoever paid.
        excess = money(Decimal(invoice.paid) - (Decimal(invoice.total) - invoice.credited))
        holder = account_holder(invoice)
        if excess > 0 and holder is not None:
            today = practice_today(practice)
            moved = await Payment.create(
                practice_id=practice.id,
                client_id=holder,
                invoice=invoice,
                method=PaymentMethodUsed.CREDIT,
                paid_on=today,
                amount=-excess,
                reference=note.number or "",
                recorded_by=actor.staff,
            )
            await Payment.create(
                practice_id=practice.id,
                client_id=holder,
                invoice=None,
                method=PaymentMethodUsed.CREDIT,
                paid_on=today,
                amount=excess,
                reference=note.number or "",
                parent=moved,
                recorded_by=actor.staff,
            )
            invoice.paid = money(Decimal(invoice.paid) - excess)
            await invoice.save(update_fields=["paid", "updated_at"])
        await audit.record(
            actor,
            "invoice.credited",
            object_type="invoice",
            object_id=invoice.id,
            client_id=invoice.client_id,  # type: ignore[attr-defined]
            detail={"credit_note": note.number, "amount": str(remaining)},
        )
        await notify_invoices_changed(practice.id, [invoice, note])
    return note


# --- payments, credit, refunds -------------------------------------------------------------


def account_holder(invoice: Invoice) -> int | None:
    """The client whose account an invoice's money is on (payments, what is paid beyond it,
    what a credit note gives back): the client who pays it (a parent paying for their
    child), else its client; none when a contact or someone typed in pays for several
    clients. ``queries.billing.statement`` lists an invoice on the same account."""
    if invoice.payer_kind is PayerKind.CLIENT and invoice.payer_client_id is not None:  # type: ignore[attr-defined]
        return invoice.payer_client_id  # type: ignore[attr-defined]
    return invoice.client_id  # type: ignore[attr-defined]


def credit_holder(invoice: Invoice) -> int | None:
    """The client whose credit money paid on an invoice beyond what it owes becomes (an
    overpayment, what a credit note gives back): its account holder when a client pays it.
    None when a contact or someone typed in pays: that money is theirs, not the credit of
    the client whose sessions it paid, and they have no account to hold it."""
    return account_holder(invoice) if invoice.payer_kind is PayerKind.CLIENT else None


async def _paid_from_credit(invoice: Invoice) -> Decimal:
    """What the account holder's own credit paid on the invoice, less what went back to it."""
    rows = await Payment.filter(
        invoice_id=invoice.id, kind=PaymentKind.PAYMENT, method=PaymentMethodUsed.CREDIT
    ).values_list("amount", flat=True)
    return money(sum((Decimal(str(a)) for a in rows), ZERO))


async def _claim_balance(invoice: Invoice) -> None:
    """Claim the invoice as the caller read it: what it was paid and credited. Call inside
    ``atomic()``. A payment and a credit note each compute from both figures; claiming only
    its own let each pass on the other's stale figure (a payment applied to a cancelled
    invoice, or a credit note that moved nothing to credit: the client's money lost)."""
    claimed = await Invoice.filter(
        id=invoice.id, paid=invoice.paid, credited=invoice.credited
    ).update(updated_at=datetime.now(UTC))
    if not claimed:
        raise Conflict(_("This invoice changed meanwhile. Reload."))


async def _lock_client(client_id: int) -> None:
    """Serialise the uses of one client's credit (a row lock on PostgreSQL; SQLite's write
    lock). Call inside ``atomic()``."""
    await Client.filter(id=client_id).update(updated_at=datetime.now(UTC))


async def client_credit(client_id: int) -> Decimal:
    """Money the client has on account: overpayments, less credit used and refunds."""
    rows = await Payment.filter(client_id=client_id, invoice_id=None).values_list(
        "amount", flat=True
    )
    return money(sum((Decimal(str(a)) for a in rows), ZERO))


@dataclass
class PaymentIn:
    amount: Decimal
    method: PaymentMethodUsed
    paid_on: date
    reference: str = ""
    # The page's key for this one payment ("" for none): sent again, it finds the first.
    request_key: str = ""


async def do_record_payment(actor: Caller, invoice: Invoice, data: PaymentIn) -> Payment:
    """A full or partial payment of a finalized invoice. Beyond what it still owes, the
    rest becomes the paying client's credit (a 422 when a contact or someone typed in pays:
    no account of theirs can hold it). Paying "by credit" uses the account holder's credit."""
    if invoice.status is not InvoiceStatus.FINALIZED or invoice.kind is not InvoiceKind.INVOICE:
        raise Conflict(_("Only a finalized invoice can be paid."))
    amount = money(data.amount)
    if amount <= 0:
        raise _invalid("amount", _("More than zero."))
    holder = account_holder(invoice)

    # The same form sent again (the answer was lost, the button pressed twice): the payment
    # it recorded, not a second one, even when both arrive at once (server/actions/retries.py).
    async def write(request_key: str | None) -> Payment:
        async with atomic():
            await _claim_balance(invoice)
            if Decimal(invoice.credited) >= Decimal(invoice.total):
                # Cancelled by a credit note (perhaps from another page meanwhile): all of
                # the payment would become credit on account, with no invoice named.
                raise Conflict(
                    _("This invoice is cancelled by a credit note: it takes no payment.")
                )
            if data.method is PaymentMethodUsed.CREDIT and holder is not None:
                # The credit read below must stay true: one use of it at a time per client, as
                # refunds take it (two payments by credit could both spend the same credit).
                await _lock_client(holder)
            balance = invoice.balance
            applied = min(amount, max(balance, ZERO))
            excess = money(amount - applied)
            if data.method is PaymentMethodUsed.CREDIT:
                if holder is None or await client_credit(holder) < amount:
                    raise _invalid("amount", _("More than the client's credit."))
                if excess > 0:
                    raise _invalid("amount", _("More than the invoice still owes."))
            if excess > 0 and credit_holder(invoice) is None:
                # Paid by a contact or someone typed in: the excess is theirs, and no account of
                # theirs can hold it (the client's credit would be refunded to the client, or
                # pay the client's next invoice).
                raise _invalid(
                    "amount",
                    _(
                        "%(payer)s is not a client: nothing can keep what they pay beyond "
                        "this invoice as their credit, or give it back to them. Record "
                        "%(due)s, what the invoice still owes, and hand them back the rest."
                    )
                    % {
                        "payer": invoice.payer_name,
                        "due": format_money(max(balance, ZERO), invoice.currency),
                    },
                )
            payment = await Payment.create(
                practice_id=invoice.practice_id,  # type: ignore[attr-defined]
                client_id=holder,
                invoice=invoice if applied > 0 else None,
                method=data.method,
                paid_on=data.paid_on,
                amount=applied if applied > 0 else excess,
                reference=data.reference.strip()[:120],
                recorded_by=actor.staff,
                request_key=request_key,
            )
            if applied > 0 and excess > 0:
                await Payment.create(
                    practice_id=invoice.practice_id,  # type: ignore[attr-defined]
                    client_id=holder,
                    invoice=None,
                    method=data.method,
                    paid_on=data.paid_on,
                    amount=excess,
                    reference=data.reference.strip()[:120],
                    parent=payment,
                    recorded_by=actor.staff,
                )
            if data.method is PaymentMethodUsed.CREDIT:
                await Payment.create(
                    practice_id=invoice.practice_id,  # type: ignore[attr-defined]
                    client_id=holder,
                    invoice=None,
                    method=PaymentMethodUsed.CREDIT,
                    paid_on=data.paid_on,
                    amount=-amount,
                    reference=invoice.number or "",
                    parent=payment,
                    recorded_by=actor.staff,
                )
            invoice.paid = money(Decimal(invoice.paid) + applied)
            await invoice.save(update_fields=["paid", "updated_at"])
            await audit.record(
                actor,
                "payment.recorded",
                object_type="invoice",
                object_id=invoice.id,
                client_id=holder,
                detail={"amount": str(amount), "method": data.method.value, "credit": str(excess)},
            )
            await notify_invoices_changed(invoice.practice_id, [invoice])  # type: ignore[attr-defined]
        return payment

    return await once_per_key(
        Payment,
        data.request_key,
        write,
        practice_id=invoice.practice_id,  # type: ignore[attr-defined]
    )


async def do_refund(actor: Caller, client: Client, data: PaymentIn) -> Payment:
    """Give back money the client has on credit."""
    amount = money(data.amount)
    if amount <= 0:
        raise _invalid("amount", _("More than zero."))
    if data.method is PaymentMethodUsed.CREDIT:
        raise _invalid("method", _("How is the money given back?"))

    # The same form sent again (the answer was lost, the button pressed twice): the refund it
    # recorded, not a second one (server/actions/retries.py).
    async def write(request_key: str | None) -> Payment:
        async with atomic():
            await _lock_client(client.id)
            if request_key:
                # Sent twice at once, the second waited for the first's lock above: it finds
                # the refund made rather than a credit too small to give the money back again
                # (the usual refund is all of it).
                earlier = await Payment.get_or_none(
                    request_key=request_key, client_id=client.id, kind=PaymentKind.REFUND
                )
                if earlier is not None:
                    return earlier
            if await client_credit(client.id) < amount:
                raise _invalid("amount", _("More than the client's credit."))
            refund = await Payment.create(
                practice_id=client.practice_id,  # type: ignore[attr-defined]
                client=client,
                kind=PaymentKind.REFUND,
                method=data.method,
                paid_on=data.paid_on,
                amount=-amount,
                reference=data.reference.strip()[:120],
                recorded_by=actor.staff,
                request_key=request_key,
            )
            await audit.record(
                actor,
                "payment.refunded",
                object_type="client",
                object_id=client.id,
                client_id=client.id,
                detail={"amount": str(amount), "method": data.method.value},
            )
            await emit(
                await _billing_recipients(client.practice_id, {client.id}),  # type: ignore[attr-defined]
                "invoices.changed",
                {"ids": []},
            )
        return refund

    return await once_per_key(
        Payment, data.request_key, write, client_id=client.id, kind=PaymentKind.REFUND
    )


# --- sending -------------------------------------------------------------------------------


async def do_send_invoice(actor: Caller, invoice: Invoice, to: str) -> Invoice:
    """Email the invoice's PDF through the outbox; the invoice remembers when and to whom."""
    from server.billing_pdf import invoice_filename, invoice_pdf
    from server.mail import queue_email

    if invoice.status is not InvoiceStatus.FINALIZED:
        raise Conflict(_("Finalize the invoice before sending it."))
    to = to.strip()
    if "@" not in to or " " in to or len(to) > 254:
        raise _invalid("to", _("An email address."))
    pdf = await invoice_pdf(invoice)
    # The issuer the invoice names (finalized, so its copy).
    subject = _("Invoice %(number)s from %(issuer)s") % {
        "number": invoice.number,
        "issuer": invoice.issuer_name,
    }
    body = _("Hello,\n\nPlease find attached invoice %(number)s.\n\nKind regards,\n%(issuer)s") % {
        "number": invoice.number,
        "issuer": invoice.issuer_name,
    }
    async with atomic():
        message = await queue_email(
            to,
            subject,
            body,
            purpose="invoice",
            client_id=invoice.client_id,  # type: ignore[attr-defined]
            practice_id=invoice.practice_id,  # type: ignore[attr-defined]
            attachments=[(invoice_filename(invoice), "application/pdf", pdf)],
        )
        invoice.sent_at = datetime.now(UTC)
        invoice.sent_to = to
        invoice.outbox_id = message.id
        await invoice.save(update_fields=["sent_at", "sent_to", "outbox_id", "updated_at"])
        await audit.record(
            actor,
            "invoice.sent",
            object_type="invoice",
            object_id=invoice.id,
            client_id=invoice.client_id,  # type: ignore[attr-defined]
            detail={"to": to, "number": invoice.number},
        )
        await notify_invoices_changed(invoice.practice_id, [invoice])  # type: ignore[attr-defined]
    return invoice
