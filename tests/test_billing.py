"""Billing: consultations, the service rules, billing methods, discounts, totals, numbering
(also under real concurrency), drafts and finalized invoices, credit notes, payments,
sending, and who may see what."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from models.accounts import Practice, StaffUser
from models.agenda import Appointment, Attendance, DiscountKind, Service, ServiceDiscount
from models.billing import (
    BillingProfile,
    Consultation,
    DefaultService,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    PayerKind,
    Payment,
    PaymentKind,
    PaymentMethodUsed,
)
from models.clients import Client, Contact
from models.notifications import OutboxAttachment, OutboxMessage, OutboxStatus
from server.actions import billing
from server.actions.billing import BillingMethod, LineIn, Payer, PaymentIn, ProfileChanges
from server.auth.sessions import Caller
from server.errors import Conflict, ValidationFailed
from server.queries import billing as queries
from tests.conftest import Factory, login, request_key_of

ROOT = Path(__file__).resolve().parent.parent


def practice_today() -> date:
    """The practice's day (Europe/Paris, the factories' default): what invoices, payments
    and statements are dated by. UTC's (date.today() here) is a day behind from 22:00 or
    23:00 UTC, and a statement "until today" missed the invoice issued a minute before."""
    return datetime.now(ZoneInfo("Europe/Paris")).date()


def caller_of(staff: StaffUser) -> Caller:
    return Caller.acting_as(staff)


async def service(name: str = "Session", price: str = "60.00") -> Service:
    practice = await Practice.first()
    assert practice is not None
    return await Service.create(
        practice=practice, name=name, duration_minutes=50, price=Decimal(price)
    )


async def appointment(
    practitioner: StaffUser,
    client: Client,
    svc: Service,
    days_ago: int,
    attendance: Attendance = Attendance.ATTENDED,
    deleted: bool = False,
) -> Appointment:
    start = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(
        days=days_ago
    )
    return await Appointment.create(
        practice_id=practitioner.practice_id,  # type: ignore[attr-defined]
        practitioner=practitioner,
        client=client,
        service=svc,
        starts_at=start,
        ends_at=start + timedelta(minutes=50),
        attendance=attendance,
        deleted_at=datetime.now(UTC) if deleted else None,
    )


async def setup(make: Factory) -> tuple[Practice, StaffUser, StaffUser, Client]:
    owner = await make.owner()
    therapist = await make.therapist()
    client = await make.client(therapist, first_name="Hélène", last_name="Dubois")
    return await make.practice(), owner, therapist, client


async def bill(
    owner: StaffUser,
    consultations: list[Consultation],
    method: BillingMethod = BillingMethod.PER_CLIENT,
    payer: Payer | None = None,
    finalize: bool = False,
) -> list[Invoice]:
    practice = await Practice.get(id=owner.practice_id)  # type: ignore[attr-defined]
    return await billing.do_bill(
        caller_of(owner),
        practice,
        None,
        consultations,
        method=method,
        payer=payer or Payer(),
        finalize=finalize,
    )


# --- consultations ------------------------------------------------------------------------


async def test_consultations_created_only_where_missing_and_not_for_what_did_not_happen(
    make: Factory,
) -> None:
    practice, owner, therapist, client = await setup(make)
    svc = await service()
    held = await appointment(therapist, client, svc, 3)
    await appointment(therapist, client, svc, 5, Attendance.SCHEDULED)  # past, not marked
    await appointment(therapist, client, svc, 7, Attendance.NO_SHOW)
    await appointment(therapist, client, svc, 8, Attendance.CANCELLED_BY_CLIENT)
    await appointment(therapist, client, svc, 9, Attendance.CANCELLED_BY_PRACTITIONER)
    await appointment(therapist, client, svc, 10, deleted=True)
    await appointment(therapist, client, svc, -2, Attendance.SCHEDULED)  # future
    # One already written by hand the day of the first appointment: not duplicated.
    await Consultation.create(
        practice=practice,
        client=client,
        practitioner=therapist,
        on_date=held.starts_at.astimezone(billing.ZoneInfo(practice.time_zone)).date(),
        title="Written by hand",
    )
    created = await billing.do_ensure_consultations(caller_of(owner), client)
    assert len(created) == 1
    assert "from the agenda" in created[0].title and "Session" in created[0].title
    assert await Consultation.filter(client_id=client.id).count() == 2
    # Idempotent.
    assert await billing.do_ensure_consultations(caller_of(owner), client) == []


async def test_a_session_billed_from_the_agenda_is_named_in_the_clients_language(
    make: Factory, http: Any
) -> None:
    """The consultation made by "Bill this client" is the invoice's line, which the client
    reads; its title was written in the language of whoever clicked, so an English-speaking
    front desk billed a French client "Session of Dec 3, 2026 (from the agenda)"."""
    practice, owner, therapist, client = await setup(make)
    desk = await make.office_admin(locale="en")
    account = await make.portal_account(client)
    account.locale = "fr"
    await account.save()
    svc = await service("Séance")
    held = await appointment(therapist, client, svc, 3)
    await login(http, desk)
    r = await http.post(f"/staff/clients/{client.id}/bill", headers={"Accept-Language": "en"})
    assert r.status_code == 303
    (made,) = await Consultation.filter(client_id=client.id)
    day = held.starts_at.astimezone(billing.ZoneInfo(practice.time_zone))
    assert made.title.startswith(f"Séance du {day.day} ") and "(depuis l’agenda)" in made.title
    # The biller's own page stays in English.
    page = await http.get(f"/staff/billing/new?client={client.id}")
    assert page.status_code == 200 and "Bill" in page.text and "Facturer" not in page.text


async def test_line_service_rules(make: Factory) -> None:
    practice, owner, therapist, client = await setup(make)
    first = await service("First service", "50.00")
    booked = await service("Booked service", "70.00")
    default_a = await service("Default A", "40.00")
    default_b = await service("Default B", "10.00")
    appt = await appointment(therapist, client, booked, 2)
    (from_appointment,) = await billing.do_ensure_consultations(caller_of(owner), client)
    assert from_appointment.appointment_id == appt.id  # type: ignore[attr-defined]
    other = await make.therapist()
    loose_default = await Consultation.create(
        practice=practice,
        client=client,
        practitioner=therapist,
        on_date=practice_today() - timedelta(days=20),
        title="Phone session",
    )
    loose_first = await Consultation.create(
        practice=practice,
        client=client,
        practitioner=other,
        on_date=practice_today() - timedelta(days=21),
        title="Report",
    )
    await DefaultService.create(practitioner=therapist, service=default_a)
    await DefaultService.create(practitioner=therapist, service=default_b)
    rules = await billing.ServiceRules.load(
        practice.id, [from_appointment, loose_default, loose_first]
    )
    # 1. the appointment's service
    assert [s.name for s in rules.services_for(from_appointment)] == ["Booked service"]
    # 2. the practitioner's default services
    assert [s.name for s in rules.services_for(loose_default)] == ["Default A", "Default B"]
    # 3. the practice's first service
    assert [s.name for s in rules.services_for(loose_first)] == [first.name]
    # A consultation on the day of an appointment, without the link, still matches it.
    same_day = await Consultation.create(
        practice=practice,
        client=client,
        practitioner=therapist,
        on_date=from_appointment.on_date,
        title="Same day",
    )
    rules = await billing.ServiceRules.load(practice.id, [same_day])
    assert [s.name for s in rules.services_for(same_day)] == ["Booked service"]


# --- billing methods ------------------------------------------------------------------------


async def _three_consultations(
    make: Factory,
) -> tuple[StaffUser, Client, Client, list[Consultation]]:
    practice, owner, therapist, client = await setup(make)
    svc = await service()
    other = await make.client(therapist, first_name="Marc", last_name="Petit")
    await appointment(therapist, client, svc, 2)
    await appointment(therapist, client, svc, 4)
    await appointment(therapist, other, svc, 3)
    consultations = await billing.do_ensure_consultations(None, client)
    consultations += await billing.do_ensure_consultations(None, other)
    return owner, client, other, consultations


async def test_one_invoice_per_consultation(make: Factory) -> None:
    owner, client, _other, consultations = await _three_consultations(make)
    mine = [c for c in consultations if c.client_id == client.id]  # type: ignore[attr-defined]
    invoices = await bill(owner, mine, BillingMethod.PER_CONSULTATION)
    assert len(invoices) == 2
    assert all(i.client_id == client.id and i.payer_name == "Hélène Dubois" for i in invoices)  # type: ignore[attr-defined]
    assert all(i.status is InvoiceStatus.DRAFT and i.number is None for i in invoices)
    assert await Consultation.filter(invoice_id=None).count() == 1


async def test_one_invoice_for_all(make: Factory) -> None:
    owner, client, _other, consultations = await _three_consultations(make)
    mine = [c for c in consultations if c.client_id == client.id]  # type: ignore[attr-defined]
    (invoice,) = await bill(owner, mine, BillingMethod.SINGLE)
    assert await InvoiceLine.filter(invoice_id=invoice.id).count() == 2
    assert invoice.total == Decimal("120.00")


async def test_one_invoice_per_client(make: Factory) -> None:
    owner, client, other, consultations = await _three_consultations(make)
    invoices = await bill(owner, consultations, BillingMethod.PER_CLIENT)
    assert sorted((i.client_id, i.total) for i in invoices) == sorted(  # type: ignore[attr-defined]
        [(client.id, Decimal("120.00")), (other.id, Decimal("60.00"))]
    )


async def test_single_invoice_to_one_recipient(make: Factory) -> None:
    owner, _client, _other, consultations = await _three_consultations(make)
    contact = await Contact.create(
        practice_id=owner.practice_id,  # type: ignore[attr-defined]
        first_name="Anne",
        last_name="Martin",
        organisation="Hôpital Nord",
        address="1 rue de la Paix\n75001 Paris",
        email="billing@hopital.example",
    )
    (invoice,) = await bill(
        owner, consultations, BillingMethod.SINGLE, Payer(kind=PayerKind.CONTACT, contact=contact)
    )
    assert invoice.client_id is None  # several clients  # type: ignore[attr-defined]
    assert invoice.payer_name == "Anne Martin (Hôpital Nord)"
    assert invoice.payer_email == "billing@hopital.example"
    assert invoice.total == Decimal("180.00")
    # Someone typed in, for one client.
    owner2, client2, _o, cons2 = owner, _client, _other, consultations
    assert await Consultation.filter(invoice_id=None).count() == 0
    with pytest.raises(ValidationFailed):  # nothing left to bill
        await bill(owner2, cons2, BillingMethod.SINGLE)
    assert client2


async def test_another_person_pays_and_several_clients_need_one_payer(make: Factory) -> None:
    owner, _client, _other, consultations = await _three_consultations(make)
    with pytest.raises(ValidationFailed):
        await bill(owner, consultations, BillingMethod.SINGLE)  # payer: "the client" of whom?
    with pytest.raises(ValidationFailed):
        await bill(owner, consultations, BillingMethod.SINGLE, Payer(kind=PayerKind.OTHER))
    (invoice,) = await bill(
        owner,
        consultations,
        BillingMethod.SINGLE,
        Payer(kind=PayerKind.OTHER, name="Jean Dubois", address="3 place du Marché"),
    )
    assert (invoice.payer_kind, invoice.payer_name) == (PayerKind.OTHER, "Jean Dubois")


async def test_billed_at_most_once_and_not_billable_skipped(make: Factory) -> None:
    owner, client, _other, consultations = await _three_consultations(make)
    consultations[0].billable = False
    await consultations[0].save()
    invoices = await bill(owner, consultations, BillingMethod.PER_CONSULTATION)
    assert len(invoices) == 2
    # A stale selection (already billed meanwhile) is refused as a whole.
    stale = await Consultation.filter(id__in=[c.id for c in consultations[1:]])
    for c in stale:
        c.invoice_id = None  # type: ignore[attr-defined]  # what a stale page still thinks
    with pytest.raises(Conflict):
        await bill(owner, stale, BillingMethod.PER_CONSULTATION)
    assert await Invoice.all().count() == 2
    assert client


# --- discounts and totals -----------------------------------------------------------------


async def test_client_discounts_apply(make: Factory) -> None:
    practice, owner, therapist, client = await setup(make)
    percent = await service("Individual", "80.00")
    fixed = await service("Couple", "100.00")
    await ServiceDiscount.create(
        client=client, service=percent, kind=DiscountKind.PERCENT, value=Decimal("25")
    )
    await ServiceDiscount.create(
        client=client, service=fixed, kind=DiscountKind.FIXED_PRICE, value=Decimal("45.50")
    )
    await appointment(therapist, client, percent, 2)
    await appointment(therapist, client, fixed, 3)
    consultations = await billing.do_ensure_consultations(None, client)
    (invoice,) = await bill(owner, consultations, BillingMethod.SINGLE)
    lines = {line.description: line for line in await InvoiceLine.filter(invoice_id=invoice.id)}
    assert lines["Individual"].discount == Decimal("20.00")
    assert lines["Individual"].amount == Decimal("60.00")
    assert lines["Couple"].discount == Decimal("54.50")
    assert lines["Couple"].amount == Decimal("45.50")
    assert (invoice.subtotal, invoice.discount_total, invoice.total) == (
        Decimal("180.00"),
        Decimal("74.50"),
        Decimal("105.50"),
    )


async def test_totals_are_decimal_with_tax_and_exemption(make: Factory) -> None:
    practice, owner, therapist, client = await setup(make)
    svc = await service("Workshop", "33.33")
    for d in (2, 3, 4):
        await appointment(therapist, client, svc, d)
    profile = await billing.profile_for(practice, None)
    profile.tax_rate = Decimal("20.00")
    profile.tax_exemption = "TVA non applicable, art. 261-4-1° du CGI"
    await profile.save()
    consultations = await billing.do_ensure_consultations(None, client)
    (invoice,) = await bill(owner, consultations, BillingMethod.SINGLE)
    await invoice.refresh_from_db()
    assert isinstance(invoice.total, Decimal)
    assert invoice.subtotal == Decimal("99.99")
    assert invoice.tax_total == Decimal("20.01")  # 6.666 rounded per line: 6.67 x 3
    assert invoice.total == Decimal("120.00")
    assert invoice.tax_exemption == ""  # tax is charged: no exemption mention
    profile.tax_rate = Decimal("0")
    await profile.save()
    await billing.do_add_line(
        caller_of(owner), invoice, LineIn("Report", Decimal("0.10"), Decimal("3"))
    )
    await invoice.refresh_from_db()
    assert invoice.total == Decimal("120.30")


# --- drafts, finalizing, numbering ---------------------------------------------------------


async def _draft(make: Factory) -> tuple[StaffUser, Client, Invoice]:
    practice, owner, therapist, client = await setup(make)
    svc = await service()
    await appointment(therapist, client, svc, 2)
    consultations = await billing.do_ensure_consultations(None, client)
    (invoice,) = await bill(owner, consultations, BillingMethod.SINGLE)
    return owner, client, invoice


async def test_drafts_are_editable_and_finalized_invoices_are_not(make: Factory) -> None:
    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    line = await billing.do_add_line(actor, invoice, LineIn("Missed session fee", Decimal("30")))
    assert invoice.total == Decimal("90.00")
    await billing.do_update_draft(
        actor,
        invoice,
        payer_name="Hélène Dubois",
        payer_address="2 rue Neuve",
        payer_email="",
        notes="Thanks",
    )
    await billing.do_remove_line(actor, invoice, line)
    assert invoice.total == Decimal("60.00")
    await billing.do_finalize(actor, invoice)
    assert invoice.number == f"F-{practice_today().year}-0001"
    with pytest.raises(Conflict):
        await billing.do_add_line(actor, invoice, LineIn("More", Decimal("1")))
    with pytest.raises(Conflict):
        await billing.do_update_draft(
            actor, invoice, payer_name="X", payer_address="", payer_email="", notes=""
        )
    with pytest.raises(Conflict):
        await billing.do_delete_draft(actor, invoice)
    with pytest.raises(Conflict):
        await billing.do_finalize(actor, invoice)
    # A stale copy of the invoice (another tab) cannot edit it either.
    stale = await Invoice.get(id=invoice.id)
    stale.status = InvoiceStatus.DRAFT
    with pytest.raises(Conflict):
        await billing.do_add_line(actor, stale, LineIn("More", Decimal("1")))
    fresh = await Invoice.get(id=invoice.id)
    assert (fresh.total, fresh.number) == (Decimal("60.00"), invoice.number)


async def test_deleting_a_draft_frees_its_consultations_and_leaves_no_gap(make: Factory) -> None:
    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    await billing.do_delete_draft(actor, invoice)
    assert not await Invoice.exists(id=invoice.id)
    consultations = await Consultation.filter(client_id=client.id)
    assert all(c.invoice_id is None for c in consultations)  # type: ignore[attr-defined]
    (again,) = await bill(owner, consultations, BillingMethod.SINGLE, finalize=True)
    assert again.number == f"F-{practice_today().year}-0001"


async def test_numbering_per_issuer_prefix_and_no_yearly_reset(make: Factory) -> None:
    practice, owner, therapist, client = await setup(make)
    svc = await service()
    for d in (2, 3, 4):
        await appointment(therapist, client, svc, d)
    consultations = await billing.do_ensure_consultations(None, client)
    own = await billing.profile_for(practice, therapist)
    own.prefix, own.yearly_reset = "DR-", False
    await own.save()
    first = await billing.do_bill(
        caller_of(therapist),
        practice,
        therapist,
        consultations[:2],
        method=BillingMethod.PER_CONSULTATION,
        payer=Payer(),
        finalize=True,
    )
    assert [i.number for i in first] == ["DR-00001", "DR-00002"]
    (practice_invoice,) = await bill(owner, consultations[2:], finalize=True)
    assert practice_invoice.number == f"F-{practice_today().year}-0001"


async def test_two_issuers_of_one_practice_never_share_a_default_prefix(make: Factory) -> None:
    """The default prefix is the surname's first three letters and numbers are counted per
    issuer: Dupont and Dupuis, billing in their own names, both issued DUP-2026-0001."""
    practice = await make.practice()
    owner = await make.owner()
    dupont = await make.therapist(last_name="Dupont")
    dupuis = await make.therapist(last_name="Dupuis")
    dupre = await make.therapist(last_name="Dupré")
    client = await make.client(dupont)
    svc = await service()
    for therapist, days in ((dupont, 2), (dupuis, 3), (dupre, 4)):
        await appointment(therapist, client, svc, days)
    consultations = await billing.do_ensure_consultations(None, client)
    year = practice_today().year
    numbers = []
    for therapist in (dupont, dupuis, dupre):
        (invoice,) = await billing.do_bill(
            caller_of(owner),
            practice,
            therapist,
            [c for c in consultations if c.practitioner_id == therapist.id],  # type: ignore[attr-defined]
            method=BillingMethod.SINGLE,
            payer=Payer(),
            finalize=True,
        )
        numbers.append(invoice.number)
    assert numbers == [f"DUP-{year}-0001", f"DUP2-{year}-0001", f"DUP3-{year}-0001"]
    # The settings page shows a new issuer the prefix they will get.
    dupin = await make.therapist(last_name="Dupin")
    assert (await billing.find_profile(practice, dupin)).prefix == "DUP4-"
    assert (await billing.profile_for(practice, dupin)).prefix == "DUP4-"


def _profile(prefix: str, name: str) -> ProfileChanges:
    return ProfileChanges(name, "", "", "", prefix, True, Decimal(0), "", 30, "")


async def test_a_prefix_another_issuer_gave_up_does_not_repeat_its_numbers(
    make: Factory,
) -> None:
    """Alice issues ALI-2026-0001, then changes her prefix to AL-. Only current prefixes were
    checked: Bob could take ALI-, or get it by default, and his sequence starting at 1 issued
    ALI-2026-0001 a second time in the practice. Alice may take hers back."""
    practice, owner, alice, client = await setup(make)
    bob = await make.therapist()
    svc = await service()
    await appointment(alice, client, svc, 2)
    actor = caller_of(owner)
    await billing.do_update_profile(actor, practice, alice, _profile("ALI-", "Alice"))
    (first,) = await billing.do_bill(
        actor,
        practice,
        alice,
        await billing.do_ensure_consultations(None, client),
        method=BillingMethod.SINGLE,
        payer=Payer(),
        finalize=True,
    )
    assert first.number == f"ALI-{practice_today().year}-0001"
    await billing.do_update_profile(actor, practice, alice, _profile("AL-", "Alice"))
    with pytest.raises(ValidationFailed) as refused:
        await billing.do_update_profile(actor, practice, bob, _profile("ALI-", "Bob"))
    assert "prefix" in refused.value.fields
    assert (await billing.find_profile(practice, bob)).prefix != "ALI-"
    # A prefix that only starts the same is free; a new issuer's default skips ALI- too.
    await billing.do_update_profile(actor, practice, bob, _profile("A", "Bob"))
    alison = await make.therapist(last_name="Alibert")
    assert (await billing.profile_for(practice, alison)).prefix == "ALI2-"
    await billing.do_update_profile(actor, practice, alice, _profile("ALI-", "Alice"))


CONCURRENT_FINALIZER = textwrap.dedent(
    """
    import asyncio, sys
    from server import db
    from server.actions import billing
    from models.billing import Invoice

    async def main(url, ids, start_at):
        await db.init_db(url)
        import time
        while time.time() < start_at:
            await asyncio.sleep(0.005)
        for i in ids:
            await billing.do_finalize(None, await Invoice.get(id=i))
        await db.close_db()

    url, start_at, *ids = sys.argv[1:]
    asyncio.run(main(url, [int(i) for i in ids], float(start_at)))
    """
)


async def test_gapless_numbers_under_concurrent_finalization(make: Factory, settings: Any) -> None:
    """Three processes finalize 30 drafts of one issuer at the same moment: numbers 1 to 30,
    each once. Runs on SQLite and, with DATABASE_URL=postgres://..., on PostgreSQL."""
    import time

    practice, owner, therapist, client = await setup(make)
    svc = await service()
    for d in range(1, 31):
        await appointment(therapist, client, svc, d)
    consultations = await billing.do_ensure_consultations(None, client)
    invoices = await bill(owner, consultations, BillingMethod.PER_CONSULTATION)
    ids = [i.id for i in invoices]
    start_at = time.time() + 3.0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CONCURRENT_FINALIZER,
            settings.database_url,
            str(start_at),
            *[str(i) for i in ids[k::3]],
            env=env,
            cwd=str(ROOT),
            stderr=subprocess.PIPE,
        )
        for k in range(3)
    ]
    results = [await p.communicate() for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    numbers = sorted(
        await Invoice.filter(status=InvoiceStatus.FINALIZED).values_list("number", flat=True)
    )
    year = practice_today().year
    assert numbers == [f"F-{year}-{n:04d}" for n in range(1, 31)]


async def test_a_line_added_from_another_page_is_in_the_finalized_total(make: Factory) -> None:
    """Finalize wrote back every column as its page had read them: the total from before the
    line, on a numbered invoice whose lines add up to more."""
    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    finalize_page = await Invoice.get(id=invoice.id)
    await billing.do_add_line(actor, invoice, LineIn("Report", Decimal("30")))
    await billing.do_update_draft(
        actor,
        await Invoice.get(id=invoice.id),
        payer_name="Hélène Dubois",
        payer_address="",
        payer_email="",
        notes="Thank you",
    )
    await billing.do_finalize(actor, finalize_page)
    final = await Invoice.get(id=invoice.id)
    lines = await InvoiceLine.filter(invoice_id=invoice.id)
    assert final.status is InvoiceStatus.FINALIZED and final.number
    assert final.total == sum((Decimal(str(line.amount)) for line in lines), Decimal("0"))
    assert final.total == Decimal("90.00") and final.notes == "Thank you"


# --- credit notes ---------------------------------------------------------------------------


async def test_credit_note_cancels_a_finalized_invoice(make: Factory) -> None:
    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    await billing.do_finalize(actor, invoice)
    await billing.do_record_payment(
        actor, invoice, PaymentIn(Decimal("60"), PaymentMethodUsed.CARD, practice_today())
    )
    note = await billing.do_credit_note(actor, invoice, reason="Billed by mistake")
    year = practice_today().year
    assert (note.kind, note.number, note.total) == (
        InvoiceKind.CREDIT_NOTE,
        f"F-{year}-0002",
        Decimal("-60.00"),
    )
    assert note.credited_invoice_id == invoice.id  # type: ignore[attr-defined]
    await invoice.refresh_from_db()
    assert invoice.credited == Decimal("60.00") and invoice.balance == Decimal("0.00")
    # What was paid is now the client's credit; the consultation may be billed again.
    assert await billing.client_credit(client.id) == Decimal("60.00")
    assert await Consultation.filter(client_id=client.id, invoice_id=None).count() == 1
    with pytest.raises(Conflict):
        await billing.do_credit_note(actor, invoice)
    with pytest.raises(Conflict):
        await billing.do_credit_note(actor, note)


async def test_a_payment_and_a_credit_note_from_two_pages_do_not_lose_money(
    make: Factory,
) -> None:
    """Each read the invoice before the other wrote. The payment was applied to an invoice
    the note had cancelled (or the note moved nothing to credit): paid 60, credited 60,
    the client's 60 nowhere. The second is now a 409 and the first stands."""
    for note_first in (True, False):
        owner, client, invoice = await _draft(make)
        actor = caller_of(owner)
        await billing.do_finalize(actor, invoice)
        page_a, page_b = await Invoice.get(id=invoice.id), await Invoice.get(id=invoice.id)
        pay = PaymentIn(Decimal("60"), PaymentMethodUsed.CARD, practice_today())
        if note_first:
            await billing.do_credit_note(actor, page_a)
            with pytest.raises(Conflict):
                await billing.do_record_payment(actor, page_b, pay)
        else:
            await billing.do_record_payment(actor, page_a, pay)
            with pytest.raises(Conflict):
                await billing.do_credit_note(actor, page_b)
        await invoice.refresh_from_db()
        assert invoice.balance >= 0
        assert (invoice.paid, invoice.credited) in {
            (Decimal("0.00"), Decimal("60.00")),
            (Decimal("60.00"), Decimal("0.00")),
        }
        assert await billing.client_credit(client.id) == Decimal("0.00")


async def test_a_payment_form_sent_twice_records_one_payment(make: Factory, http: Any) -> None:
    """The answer lost, the button pressed again: a second payment was recorded (a payment is
    never deleted, so the client's account stayed wrong). The page's key finds the first."""
    owner, client, invoice = await _draft(make)
    await billing.do_finalize(caller_of(owner), invoice)
    await login(http, owner)
    url = f"/staff/billing/invoices/{invoice.id}"

    key = await request_key_of(http, url)
    form = {"amount": "20", "method": "cash", "paid_on": practice_today().isoformat()}
    for _ in range(2):
        r = await http.post(f"{url}/payments", data={**form, "request_key": key})
        assert r.status_code == 303
    await invoice.refresh_from_db()
    assert invoice.paid == Decimal("20.00")
    assert await Payment.filter(invoice_id=invoice.id).count() == 1
    # A second payment of the same amount, from the page shown again, is a payment.
    again = await http.post(
        f"{url}/payments", data={**form, "request_key": await request_key_of(http, url)}
    )
    assert again.status_code == 303
    await invoice.refresh_from_db()
    assert invoice.paid == Decimal("40.00")
    # The API takes a key of the caller's own.
    api = f"/api/invoices/{invoice.id}/payments"
    body = {"amount": "5", "method": "card", "paid_on": practice_today().isoformat()}
    for _ in range(2):
        assert (await http.post(api, json={**body, "request_key": "k-1"})).status_code == 200
    await invoice.refresh_from_db()
    assert invoice.paid == Decimal("45.00")
    # Two at once with one key (a double click): one payment, and both are answered with it
    # (the second used to fail its claim on the invoice: an error page for a payment made).
    pages = [await Invoice.get(id=invoice.id) for _ in range(2)]
    paid = PaymentIn(Decimal("7"), PaymentMethodUsed.CASH, practice_today(), "", "double-click")
    both = await asyncio.gather(
        *(billing.do_record_payment(caller_of(owner), page, paid) for page in pages)
    )
    assert both[0].id == both[1].id
    await invoice.refresh_from_db()
    assert invoice.paid == Decimal("52.00")


# --- payments ---------------------------------------------------------------------------------


async def test_partial_payments_balance_overpayment_credit_and_refund(make: Factory) -> None:
    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    with pytest.raises(Conflict):  # a draft is not paid
        await billing.do_record_payment(
            actor, invoice, PaymentIn(Decimal("1"), PaymentMethodUsed.CASH, practice_today())
        )
    await billing.do_finalize(actor, invoice)
    await billing.do_record_payment(
        actor,
        invoice,
        PaymentIn(Decimal("20.50"), PaymentMethodUsed.CASH, practice_today(), "box 3"),
    )
    assert invoice.balance == Decimal("39.50")
    with pytest.raises(ValidationFailed):
        await billing.do_record_payment(
            actor, invoice, PaymentIn(Decimal("0"), PaymentMethodUsed.CASH, practice_today())
        )
    await billing.do_record_payment(
        actor,
        invoice,
        PaymentIn(Decimal("50"), PaymentMethodUsed.TRANSFER, practice_today(), "VIR 991"),
    )
    await invoice.refresh_from_db()
    assert (invoice.paid, invoice.balance) == (Decimal("60.00"), Decimal("0.00"))
    assert await billing.client_credit(client.id) == Decimal("10.50")
    # The credit pays part of the next invoice.
    svc = await Service.first()
    therapist = await StaffUser.get(id=client.therapist_id)  # type: ignore[attr-defined]
    assert svc is not None
    await appointment(therapist, client, svc, 1)
    consultations = await billing.do_ensure_consultations(None, client)
    (second,) = await bill(owner, consultations, BillingMethod.SINGLE, finalize=True)
    with pytest.raises(ValidationFailed):
        await billing.do_record_payment(
            actor, second, PaymentIn(Decimal("11"), PaymentMethodUsed.CREDIT, practice_today())
        )
    await billing.do_record_payment(
        actor, second, PaymentIn(Decimal("10.50"), PaymentMethodUsed.CREDIT, practice_today())
    )
    assert second.balance == Decimal("49.50")
    assert await billing.client_credit(client.id) == Decimal("0.00")
    # Refunds come out of credit only.
    with pytest.raises(ValidationFailed):
        await billing.do_refund(
            actor, client, PaymentIn(Decimal("1"), PaymentMethodUsed.CASH, practice_today())
        )
    await billing.do_record_payment(
        actor, second, PaymentIn(Decimal("60"), PaymentMethodUsed.CARD, practice_today())
    )
    assert await billing.client_credit(client.id) == Decimal("10.50")
    await billing.do_refund(
        actor, client, PaymentIn(Decimal("10.50"), PaymentMethodUsed.TRANSFER, practice_today())
    )
    assert await billing.client_credit(client.id) == Decimal("0.00")
    assert await Payment.filter(client_id=client.id).count() == 8


async def test_a_payers_statement_lists_the_invoice_they_pay_for_several_clients(
    make: Factory,
) -> None:
    """Client A pays one invoice covering A and B (no client, payer A): the payment is on A's
    account, so the invoice and its credit note are on A's statement too, not only the
    money (which closed at -120, as if A were owed it). B's statement has none of it."""
    practice, owner, therapist, a = await setup(make)
    b = await make.client(therapist)
    svc = await service()
    await appointment(therapist, a, svc, 2)
    await appointment(therapist, b, svc, 2)
    consultations = await billing.do_ensure_consultations(
        None, a
    ) + await billing.do_ensure_consultations(None, b)
    (invoice,) = await bill(
        owner,
        consultations,
        BillingMethod.SINGLE,
        payer=Payer(kind=PayerKind.CLIENT, client=a),
        finalize=True,
    )
    actor = caller_of(owner)
    await billing.do_record_payment(
        actor, invoice, PaymentIn(Decimal("120"), PaymentMethodUsed.CARD, practice_today())
    )
    start, end = practice_today() - timedelta(days=30), practice_today()
    result = await queries.statement(a.id, start, end)
    assert [(r.charge, r.credit) for r in result.rows] == [
        (Decimal("120.00"), Decimal("0")),
        (Decimal("0"), Decimal("120.00")),
    ]
    assert result.closing == Decimal("0.00")
    await billing.do_credit_note(actor, invoice)
    result = await queries.statement(a.id, start, end)
    assert Decimal("-120.00") in [r.charge for r in result.rows]
    # The 120 paid are now A's credit: the statement says A is owed them.
    assert result.closing == Decimal("-120.00") == -(await billing.client_credit(a.id))
    assert (await queries.statement(b.id, start, end)).rows == []


async def test_what_a_paying_client_overpays_or_gets_back_is_their_credit(make: Factory) -> None:
    """A parent (a client too) pays their child's invoice: 100 for 60. The 40 kept went to
    the child's account (holder = client, then payer), where the parent could not use it
    and the child's file refunded it. They are the parent's, as is what a credit note gives
    back, and the invoice is on the parent's statement with the payments, not the child's."""
    practice, owner, therapist, child = await setup(make)
    parent = await make.client(therapist, first_name="Paul", last_name="Dubois")
    svc = await service()  # 60.00
    await appointment(therapist, child, svc, 3)
    await appointment(therapist, child, svc, 2)
    first, second = await bill(
        owner,
        await billing.do_ensure_consultations(None, child),
        BillingMethod.PER_CONSULTATION,
        payer=Payer(kind=PayerKind.CLIENT, client=parent),
        finalize=True,
    )
    actor = caller_of(owner)
    await billing.do_record_payment(
        actor, first, PaymentIn(Decimal("100"), PaymentMethodUsed.CARD, practice_today())
    )
    assert await billing.client_credit(parent.id) == Decimal("40.00")
    assert await billing.client_credit(child.id) == Decimal("0.00")
    # The parent's credit pays the child's next invoice in part; a credit note on the
    # first gives its 60 back to the parent.
    await billing.do_record_payment(
        actor, second, PaymentIn(Decimal("40"), PaymentMethodUsed.CREDIT, practice_today())
    )
    await billing.do_credit_note(actor, first)
    assert await billing.client_credit(parent.id) == Decimal("60.00")
    assert await billing.client_credit(child.id) == Decimal("0.00")
    start, end = practice_today() - timedelta(days=30), practice_today()
    assert (await queries.statement(child.id, start, end)).rows == []
    statement = await queries.statement(parent.id, start, end)
    # Charged 60 + 60 - 60, paid 100: 20 still owed on the second, 60 of credit.
    assert statement.closing == Decimal("-40.00")
    assert sum(r.charge for r in statement.rows) == Decimal("60.00")


async def test_a_cancelled_invoice_takes_no_payment(make: Factory, http: Any) -> None:
    """A payment typed on an invoice's page while a colleague credited it (or sent through
    the API) was recorded as money on account: no invoice named, refundable as if the client
    had overpaid. It is a 409 and nothing is recorded."""
    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    await billing.do_finalize(actor, invoice)
    stale = await Invoice.get(id=invoice.id)
    await billing.do_credit_note(actor, invoice)
    await invoice.refresh_from_db()
    pay = PaymentIn(Decimal("60"), PaymentMethodUsed.CASH, practice_today())
    with pytest.raises(Conflict):
        await billing.do_record_payment(actor, invoice, pay)
    with pytest.raises(Conflict):  # as read before the credit note
        await billing.do_record_payment(actor, stale, pay)
    await login(http, owner)
    body = {"amount": "60.00", "method": "cash", "paid_on": practice_today().isoformat()}
    r = await http.post(f"/api/invoices/{invoice.id}/payments", json=body)
    assert r.status_code == 409
    r = await http.post(f"/staff/billing/invoices/{invoice.id}/payments", data=body)
    assert r.status_code == 409
    assert await Payment.all().count() == 0
    assert await billing.client_credit(client.id) == Decimal("0.00")


async def test_a_credit_note_never_strands_what_a_payer_without_account_paid(
    make: Factory, http: Any
) -> None:
    """An insurer (a contact) pays an invoice covering two clients, then it is credited: no
    client account could hold the 120 given back, and nothing refunds them, so they stayed
    as paid on the cancelled invoice (balance -120, on no statement). The credit note is
    refused (409) while such money would be given back; unpaid, it goes through."""
    practice, owner, therapist, a = await setup(make)
    b = await make.client(therapist)
    svc = await service()
    for client in (a, b):
        await appointment(therapist, client, svc, 3)
        await appointment(therapist, client, svc, 2)
    consultations = await billing.do_ensure_consultations(
        None, a
    ) + await billing.do_ensure_consultations(None, b)
    insurer = await Contact.create(
        practice=practice, first_name="Ana", last_name="Lyse", organisation="Mutuelle"
    )
    paid, unpaid = [
        (
            await bill(
                owner,
                pair,
                BillingMethod.SINGLE,
                payer=Payer(kind=PayerKind.CONTACT, contact=insurer),
                finalize=True,
            )
        )[0]
        for pair in (consultations[::2], consultations[1::2])
    ]
    actor = caller_of(owner)
    await billing.do_record_payment(
        actor, paid, PaymentIn(Decimal("50"), PaymentMethodUsed.TRANSFER, practice_today())
    )
    await paid.refresh_from_db()
    with pytest.raises(Conflict):
        await billing.do_credit_note(actor, paid)
    await login(http, owner)
    r = await http.post(f"/api/invoices/{paid.id}/credit-note", json={"reason": "x"})
    assert r.status_code == 409
    await paid.refresh_from_db()
    assert (paid.credited, paid.balance) == (Decimal("0.00"), Decimal("70.00"))
    assert await Invoice.filter(kind=InvoiceKind.CREDIT_NOTE).count() == 0
    note = await billing.do_credit_note(actor, unpaid)
    assert note.total == Decimal("-120.00")


async def test_what_a_payer_who_is_not_a_client_overpays_is_never_the_clients_credit(
    make: Factory, http: Any
) -> None:
    """A mother (a contact, not a client) pays 100 for her son's invoice of 60. The 40 she
    overpaid became the son's credit: the practice refunded it to him, or it paid his next
    invoice, though it was hers. No account of hers can hold it, so the overpayment is
    refused (422 on the amount), on the page as through the API, and nothing is recorded;
    what the invoice owes is taken. The same for someone typed in."""
    practice, owner, therapist, son = await setup(make)
    svc = await service()  # 60.00
    await appointment(therapist, son, svc, 3)
    await appointment(therapist, son, svc, 2)
    mother = await Contact.create(practice=practice, first_name="Marie", last_name="Dubois")
    by_mother, by_aunt = [
        (await bill(owner, [consultation], BillingMethod.SINGLE, payer=payer, finalize=True))[0]
        for consultation, payer in zip(
            await billing.do_ensure_consultations(None, son),
            (
                Payer(kind=PayerKind.CONTACT, contact=mother),
                Payer(kind=PayerKind.OTHER, name="Anne Dubois"),
            ),
            strict=True,
        )
    ]
    actor = caller_of(owner)
    too_much = PaymentIn(Decimal("100"), PaymentMethodUsed.TRANSFER, practice_today())
    for invoice in (by_mother, by_aunt):
        with pytest.raises(ValidationFailed) as refused:
            await billing.do_record_payment(actor, invoice, too_much)
        assert "amount" in refused.value.fields
    await login(http, owner)
    body = {"amount": "100.00", "method": "transfer", "paid_on": practice_today().isoformat()}
    r = await http.post(f"/staff/billing/invoices/{by_mother.id}/payments", data=body)
    assert r.status_code == 422
    assert "Marie Dubois is not a client" in r.text and "Record €60.00" in r.text
    r = await http.post(f"/api/invoices/{by_aunt.id}/payments", json=body)
    assert r.status_code == 422 and "amount" in r.json()["error"]["fields"]
    assert await Payment.all().count() == 0
    assert await billing.client_credit(son.id) == Decimal("0.00")
    # What the invoice owes is taken.
    r = await http.post(
        f"/staff/billing/invoices/{by_mother.id}/payments", data={**body, "amount": "60.00"}
    )
    assert r.status_code == 303
    await by_mother.refresh_from_db()
    assert by_mother.balance == Decimal("0.00")
    assert await billing.client_credit(son.id) == Decimal("0.00")


async def test_a_credit_note_gives_a_client_back_only_their_own_money(
    make: Factory, http: Any
) -> None:
    """An invoice for a client that a contact paid, then credited: the 60 the contact paid
    moved to the client's credit, and could be refunded to the client. It is refused (409)
    as for a contact paying for several clients. Paid from the client's own credit, the
    credit note gives that back to the client's credit."""
    practice, owner, therapist, client = await setup(make)
    svc = await service()  # 60.00
    for days_ago in (4, 3, 2):
        await appointment(therapist, client, svc, days_ago)
    insurer = await Contact.create(
        practice=practice, first_name="Ana", last_name="Lyse", organisation="Mutuelle"
    )
    own, by_insurer, from_credit = [
        (await bill(owner, [consultation], BillingMethod.SINGLE, payer=payer, finalize=True))[0]
        for consultation, payer in zip(
            await billing.do_ensure_consultations(None, client),
            (
                Payer(kind=PayerKind.CLIENT),
                Payer(kind=PayerKind.CONTACT, contact=insurer),
                Payer(kind=PayerKind.CONTACT, contact=insurer),
            ),
            strict=True,
        )
    ]
    actor = caller_of(owner)
    await billing.do_record_payment(
        actor, own, PaymentIn(Decimal("120"), PaymentMethodUsed.CARD, practice_today())
    )
    assert await billing.client_credit(client.id) == Decimal("60.00")
    await billing.do_record_payment(
        actor, by_insurer, PaymentIn(Decimal("60"), PaymentMethodUsed.TRANSFER, practice_today())
    )
    await billing.do_record_payment(
        actor, from_credit, PaymentIn(Decimal("60"), PaymentMethodUsed.CREDIT, practice_today())
    )
    assert await billing.client_credit(client.id) == Decimal("0.00")
    await by_insurer.refresh_from_db()
    with pytest.raises(Conflict):
        await billing.do_credit_note(actor, by_insurer)
    await login(http, owner)
    r = await http.post(f"/staff/billing/invoices/{by_insurer.id}/credit-note", data={})
    assert r.status_code == 409
    await by_insurer.refresh_from_db()
    assert (by_insurer.credited, by_insurer.paid) == (Decimal("0.00"), Decimal("60.00"))
    assert await Invoice.filter(kind=InvoiceKind.CREDIT_NOTE).count() == 0
    assert await billing.client_credit(client.id) == Decimal("0.00")
    await from_credit.refresh_from_db()
    await billing.do_credit_note(actor, from_credit)
    assert await billing.client_credit(client.id) == Decimal("60.00")


async def test_only_money_received_has_a_receipt(make: Factory, new_http: Any) -> None:
    """A refund (money given back) or a use or move of credit was served as a receipt of
    "Amount received -€40.00", on the portal and to staff. Those are a 404; a payment
    received still has its receipt, listed on the portal."""
    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    await billing.do_finalize(actor, invoice)
    paid = await billing.do_record_payment(
        actor, invoice, PaymentIn(Decimal("100"), PaymentMethodUsed.CASH, practice_today())
    )
    refund = await billing.do_refund(
        actor, client, PaymentIn(Decimal("10"), PaymentMethodUsed.CASH, practice_today())
    )
    await invoice.refresh_from_db()
    await billing.do_credit_note(actor, invoice)
    moved = await Payment.filter(method=PaymentMethodUsed.CREDIT).order_by("id")
    assert [p.amount > 0 for p in moved] == [False, True]  # out of the invoice, onto credit
    portal = new_http()
    await login(portal, client)
    staff = new_http("10.0.0.6")
    await login(staff, owner)
    for payment in [refund, *moved]:
        for browser, url in [
            (portal, f"/portal/api/payments/{payment.id}/receipt"),
            (portal, f"/portal/receipts/{payment.id}.pdf"),
            (staff, f"/api/payments/{payment.id}/receipt"),
            (staff, f"/staff/billing/payments/{payment.id}/receipt.pdf"),
        ]:
            assert (await browser.get(url)).status_code == 404, url
    r = await portal.get(f"/portal/api/payments/{paid.id}/receipt")
    assert r.status_code == 200
    assert "Amount received" in PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
    page = (await portal.get("/portal/invoices")).text
    assert f"/portal/receipts/{paid.id}.pdf" in page
    assert not any(f"/portal/receipts/{p.id}.pdf" in page for p in [refund, *moved])
    file_tab = (await staff.get(f"/staff/clients/{client.id}/billing")).text
    assert f"/staff/billing/payments/{refund.id}/receipt.pdf" not in file_tab


async def test_a_refund_form_sent_twice_records_one_refund(make: Factory, http: Any) -> None:
    """Credit of 100, a refund of 30 typed in, the button pressed twice: 60 were recorded as
    given back, and the client's credit showed 40 instead of 70."""
    practice, owner, therapist, client = await setup(make)
    await Payment.create(
        practice=practice,
        client=client,
        invoice=None,
        method=PaymentMethodUsed.CASH,
        paid_on=practice_today(),
        amount=Decimal("100"),
    )
    await login(http, owner)
    page = f"/staff/clients/{client.id}/billing"
    form = {"amount": "30", "method": "cash", "paid_on": practice_today().isoformat()}
    sent = {**form, "request_key": await request_key_of(http, page)}
    url = f"/staff/clients/{client.id}/refund"
    results = await asyncio.gather(*(http.post(url, data=sent) for _ in range(2)))
    assert [r.status_code for r in results] == [303, 303]
    assert await Payment.filter(client_id=client.id, kind=PaymentKind.REFUND).count() == 1
    assert await billing.client_credit(client.id) == Decimal("70.00")
    # From the page shown again, a second refund of the same amount is a refund.
    again = await http.post(url, data={**form, "request_key": await request_key_of(http, page)})
    assert again.status_code == 303
    assert await billing.client_credit(client.id) == Decimal("40.00")
    # All that is left, pressed twice: the second press finds the refund made instead of
    # being told there is not that much credit left.
    rest = PaymentIn(Decimal("40"), PaymentMethodUsed.TRANSFER, practice_today(), "", "the-rest")
    both = await asyncio.gather(*(billing.do_refund(caller_of(owner), client, rest) for _ in "12"))
    assert both[0].id == both[1].id
    assert await billing.client_credit(client.id) == Decimal("0.00")
    assert await Payment.filter(client_id=client.id, kind=PaymentKind.REFUND).count() == 3


async def test_pdfs_are_real_documents(make: Factory) -> None:
    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    from server.billing_pdf import invoice_pdf, receipt_pdf

    draft_text = PdfReader(io.BytesIO(await invoice_pdf(invoice))).pages[0].extract_text()
    assert "Draft" in draft_text and "Hélène Dubois" in draft_text
    await billing.do_finalize(actor, invoice)
    payment = await billing.do_record_payment(
        actor,
        invoice,
        PaymentIn(Decimal("25"), PaymentMethodUsed.CHEQUE, practice_today(), "CHQ 12"),
    )
    text = PdfReader(io.BytesIO(await invoice_pdf(invoice))).pages[0].extract_text()
    assert invoice.number and invoice.number in text
    assert "€60.00" in text and "PARTLY PAID" in text and "€35.00" in text
    receipt = PdfReader(io.BytesIO(await receipt_pdf(payment))).pages[0].extract_text()
    assert "RECEIPT" in receipt and "€25.00" in receipt and "CHQ 12" in receipt
    # An overpayment: the receipt shows all that was handed over, and what became credit.
    rest = await billing.do_record_payment(
        actor, invoice, PaymentIn(Decimal("50"), PaymentMethodUsed.CASH, practice_today())
    )
    receipt = PdfReader(io.BytesIO(await receipt_pdf(rest))).pages[0].extract_text()
    assert "€50.00" in receipt and "Kept as credit" in receipt and "€15.00" in receipt


async def test_an_issued_invoice_keeps_the_issuer_and_client_it_was_issued_with(
    make: Factory, http: Any
) -> None:
    """Finalized and sent with the practice's old address; the practice moves and updates
    its billing settings, and the client's name is corrected: the same invoice (same
    number), downloaded again by the client or for an audit, printed the new issuer and the
    new client instead of those it was issued with."""
    from server.billing_pdf import invoice_doc, invoice_pdf, receipt_pdf

    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    practice = await Practice.get(id=owner.practice_id)  # type: ignore[attr-defined]

    def profile(name: str, street: str) -> ProfileChanges:
        return ProfileChanges(
            legal_name=name,
            address=street,
            registration=f"SIRET of {name}",
            email=f"{street.split()[-1].lower()}@example.org",
            prefix="F-",
            yearly_reset=True,
            tax_rate=Decimal("0"),
            tax_exemption="",
            payment_days=30,
            footer=f"Footer of {name}",
        )

    client.health_id = "1 85 01 75 123 456"
    await client.save()
    await billing.do_update_profile(actor, practice, None, profile("Cabinet Lumière", "2 rue Old"))
    await billing.do_finalize(actor, invoice)
    payment = await billing.do_record_payment(
        actor, invoice, PaymentIn(Decimal("10"), PaymentMethodUsed.CASH, practice_today())
    )
    issued = await invoice_doc(invoice)
    await billing.do_update_profile(actor, practice, None, profile("New Name SARL", "9 rue New"))
    client.last_name, client.health_id = "Renamed", "2 90 02 69 000 111"
    await client.save()

    after = await invoice_doc(await Invoice.get(id=invoice.id))
    printed = ("issuer_name", "issuer_address", "issuer_registration", "issuer_email", "footer")
    printed += ("client_name", "client_health_id")
    assert {f: getattr(after, f) for f in printed} == {
        "issuer_name": "Cabinet Lumière",
        "issuer_address": "2 rue Old",
        "issuer_registration": "SIRET of Cabinet Lumière",
        "issuer_email": "old@example.org",
        "footer": "Footer of Cabinet Lumière",
        "client_name": "Hélène Dubois",
        "client_health_id": "1 85 01 75 123 456",
    }
    assert {f: getattr(issued, f) for f in printed} == {f: getattr(after, f) for f in printed}
    text = PdfReader(io.BytesIO(await invoice_pdf(invoice))).pages[0].extract_text()
    assert "Cabinet Lumière" in text and "2 rue Old" in text and "New Name" not in text
    receipt = PdfReader(io.BytesIO(await receipt_pdf(payment))).pages[0].extract_text()
    assert "Cabinet Lumière" in receipt and "New Name" not in receipt
    await login(http, owner)
    page = await http.get(f"/staff/billing/invoices/{invoice.id}")
    assert "Cabinet Lumière" in page.text and "New Name SARL" not in page.text
    # A credit note is issued when it is made: by the issuer, for the client, as they are then.
    note = await billing.do_credit_note(actor, invoice, reason="Wrong name")
    await billing.do_update_profile(actor, practice, None, profile("Third SAS", "3 rue Last"))
    noted = await invoice_doc(await Invoice.get(id=note.id))
    assert (noted.issuer_name, noted.issuer_address) == ("New Name SARL", "9 rue New")
    assert (noted.client_name, noted.footer) == ("Hélène Renamed", "Footer of New Name SARL")
    # A draft is not issued yet: it shows the issuer and the client as they are now.
    (draft,) = await bill(owner, await Consultation.filter(client_id=client.id))
    shown = await invoice_doc(draft)
    assert (shown.issuer_name, shown.client_name) == ("Third SAS", "Hélène Renamed")


async def test_invoices_issued_before_the_copies_existed_get_them_from_the_migration(
    make: Factory,
) -> None:
    """models/migrations/0022_invoice_snapshot.py fills in the finalized invoices' copies
    from their issuer and client as they are; a draft keeps none (it has not been issued)."""
    import importlib

    from tortoise.migrations.operations import RunSQL

    from server.billing_pdf import invoice_doc
    from server.db import connection

    owner, client, invoice = await _draft(make)
    await billing.do_finalize(caller_of(owner), invoice)
    (draft,) = await bill(
        owner,
        [
            await Consultation.create(
                practice_id=owner.practice_id,  # type: ignore[attr-defined]
                client=client,
                practitioner=owner,
                on_date=practice_today(),
                title="Report",
            )
        ],
    )
    printed = ("issuer_name", "issuer_footer", "client_name", "client_health_id")
    # As an invoice finalized before the migration: no copies.
    await Invoice.all().update(**dict.fromkeys(printed, ""))
    profile = await BillingProfile.get(id=invoice.profile_id)  # type: ignore[attr-defined]
    profile.footer = "Paid to IBAN FR76 0000"
    await profile.save()
    client.health_id = "1 85 01 75 123 456"
    await client.save()
    migration = importlib.import_module("models.migrations.0022_invoice_snapshot").Migration
    (fill,) = [op for op in migration.operations if isinstance(op, RunSQL)]
    for sql in fill.sql:
        await connection().execute_query(sql)
    filled = await Invoice.get(id=invoice.id)
    assert [getattr(filled, f) for f in printed] == [
        profile.legal_name,
        "Paid to IBAN FR76 0000",
        "Hélène Dubois",
        "1 85 01 75 123 456",
    ]
    assert (await invoice_doc(filled)).issuer_name == profile.legal_name
    assert [getattr(await Invoice.get(id=draft.id), f) for f in printed] == ["", "", "", ""]


# --- sending ----------------------------------------------------------------------------------


async def test_send_by_email_with_the_pdf_and_tracking(make: Factory, settings: Any) -> None:
    from dataclasses import replace

    from aiosmtpd.controller import Controller

    from server import mail
    from server.settings import set_settings
    from tests.conftest import free_port

    owner, client, invoice = await _draft(make)
    actor = caller_of(owner)
    with pytest.raises(Conflict):
        await billing.do_send_invoice(actor, invoice, "helene@example.org")
    await billing.do_finalize(actor, invoice)
    with pytest.raises(ValidationFailed):
        await billing.do_send_invoice(actor, invoice, "not an address")
    await billing.do_send_invoice(actor, invoice, "helene@example.org")
    assert invoice.sent_to == "helene@example.org" and invoice.sent_at is not None
    message = await OutboxMessage.get(id=invoice.outbox_id)
    assert message.status is OutboxStatus.QUEUED
    assert await OutboxAttachment.filter(message_id=message.id).count() == 1

    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        set_settings(replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
        assert await mail.deliver_due() == 1
    finally:
        controller.stop()
        set_settings(settings)
    await message.refresh_from_db()
    assert message.status is OutboxStatus.SENT and message.sent_at is not None
    email = message_from_bytes(received[0])
    assert email["To"] == "helene@example.org"
    parts = [p for p in email.walk() if p.get_content_type() == "application/pdf"]
    assert len(parts) == 1 and parts[0].get_filename() == f"invoice-{invoice.number}.pdf"
    pdf = PdfReader(io.BytesIO(parts[0].get_payload(decode=True)))
    assert invoice.number in pdf.pages[0].extract_text()


# --- access -------------------------------------------------------------------------------------


async def test_who_sees_which_invoice(make: Factory) -> None:
    from server.access import access_invoice
    from server.errors import NotFound

    practice, owner, therapist, client = await setup(make)
    other_therapist = await make.therapist()
    admin = await make.office_admin()
    other_client = await make.client(other_therapist)
    svc = await service()
    await appointment(therapist, client, svc, 2)
    await appointment(other_therapist, other_client, svc, 2)
    mine = await billing.do_ensure_consultations(None, client)
    theirs = await billing.do_ensure_consultations(None, other_client)
    (invoice,) = await bill(owner, mine, finalize=True)
    (draft,) = await bill(owner, theirs)

    async def as_client(c: Client) -> Caller:
        return Caller.acting_as((await make.portal_account(c), c))

    for who, sees in (
        (caller_of(owner), {invoice.id, draft.id}),
        (caller_of(admin), {invoice.id, draft.id}),
        (caller_of(therapist), {invoice.id}),
        (caller_of(other_therapist), {draft.id}),
    ):
        for inv in (invoice, draft):
            if inv.id in sees:
                assert (await access_invoice(who, inv.id)).id == inv.id
            else:
                with pytest.raises(NotFound):
                    await access_invoice(who, inv.id)
    assert (await access_invoice(await as_client(client), invoice.id)).id == invoice.id
    with pytest.raises(NotFound):
        await access_invoice(await as_client(other_client), invoice.id)
    with pytest.raises(NotFound):  # drafts are not for clients
        await access_invoice(await as_client(other_client), draft.id)


# --- through HTTP ---------------------------------------------------------------------------


async def test_bill_a_client_through_the_pages(make: Factory, http: Any) -> None:
    practice, owner, therapist, client = await setup(make)
    svc = await service("Psychotherapy", "70.00")
    await appointment(therapist, client, svc, 3)
    await appointment(therapist, client, svc, 10)
    await login(http, owner)
    r = await http.post(f"/staff/clients/{client.id}/bill")
    assert (
        r.status_code == 303 and r.headers["location"] == f"/staff/billing/new?client={client.id}"
    )
    r = await http.get(r.headers["location"])
    assert r.status_code == 200 and "from the agenda" in r.text
    ids = [c.id for c in await Consultation.filter(client_id=client.id)]
    params: list[tuple[str, str | int]] = [("consultation", i) for i in ids]
    params += [("issuer", "practice"), ("method", "single"), ("payer_kind", "client")]
    r = await http.get("/staff/billing/preview", params=params)
    assert r.status_code == 200 and "€140.00" in r.text
    r = await http.post("/staff/billing/preview", data=dict(params) | {"consultation": ids})  # type: ignore[arg-type]
    assert r.status_code == 200 and "€140.00" in r.text
    r = await http.get("/staff/billing/preview.pdf", params=[*params, ("n", 0)])
    assert r.headers["content-type"] == "application/pdf"
    assert "€140.00" in PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
    assert not await Invoice.exists()  # a preview writes nothing
    r = await http.post("/staff/billing/create", data=dict(params) | {"consultation": ids})  # type: ignore[arg-type]
    assert r.status_code == 303
    invoice = await Invoice.get()
    assert r.headers["location"] == f"/staff/billing/invoices/{invoice.id}"
    assert (invoice.total, invoice.status) == (Decimal("140.00"), InvoiceStatus.DRAFT)
    base = f"/staff/billing/invoices/{invoice.id}"
    r = await http.post(f"{base}/lines", data={"description": "Report", "unit_price": "abc"})
    assert r.status_code == 422 and await InvoiceLine.filter(invoice_id=invoice.id).count() == 2
    r = await http.post(
        f"{base}/lines", data={"description": "Report", "unit_price": "25", "quantity": "2"}
    )
    assert r.status_code == 303
    assert (await Invoice.get(id=invoice.id)).total == Decimal("190.00")
    assert (await http.post(f"{base}/finalize")).status_code == 303
    assert (await http.post(f"{base}/finalize")).status_code == 409
    assert (
        await http.post(f"{base}/lines", data={"description": "x", "unit_price": "1"})
    ).status_code == 409
    r = await http.post(
        f"{base}/payments",
        # Typed the French way: a decimal comma.
        data={"amount": "90,00", "method": "card", "paid_on": practice_today().isoformat()},
    )
    assert r.status_code == 303
    r = await http.get(base)
    assert r.status_code == 200 and "€100.00" in r.text and "Not sent yet" in r.text
    # The amount left is prefilled as each reader writes it, so it posts back as it reads.
    assert 'name="amount" inputmode="decimal" value="100.00"' in r.text
    french = await http.get(base, headers={"Accept-Language": "fr"})
    assert 'name="amount" inputmode="decimal" value="100,00"' in french.text
    payment = await Payment.get(invoice_id=invoice.id)
    r = await http.get(f"/staff/billing/payments/{payment.id}/receipt.pdf")
    assert r.headers["content-type"] == "application/pdf"
    r = await http.post(f"{base}/send", data={"to": "helene@example.org"})
    assert r.status_code == 303
    r = await http.get(base)
    assert "Sent to helene@example.org" in r.text and "Waiting in the outbox" in r.text
    r = await http.get("/staff/billing")
    assert r.status_code == 200 and 'class="ageing-chart"' in r.text and "€100.00" in r.text
    r = await http.get(f"/staff/clients/{client.id}/billing")
    assert r.status_code == 200 and (await Invoice.get()).number in r.text  # type: ignore[operator]
    r = await http.get(f"/staff/clients/{client.id}/statement")
    assert r.status_code == 200 and "€190.00" in r.text and "€100.00" in r.text
    # French puts a no-break space before the colon (it read "Relevé de compte: …").
    r = await http.get(f"/staff/clients/{client.id}/statement", headers={"Accept-Language": "fr"})
    assert "<h1>Relevé de compte\u00a0: <a " in r.text
    r = await http.get(f"/staff/clients/{client.id}/statement", params={"format": "pdf"})
    assert r.headers["content-type"] == "application/pdf"
    r = await http.get(f"/staff/clients/{client.id}/statement", params={"start": "nope"})
    assert r.status_code == 422


async def test_batch_billing_from_the_consultation_list(make: Factory, http: Any) -> None:
    owner, client, other, consultations = await _three_consultations(make)
    await login(http, owner)
    r = await http.get("/staff/billing/consultations")
    assert r.status_code == 200 and "Marc Petit" in r.text and "Hélène Dubois" in r.text
    ids = [c.id for c in consultations]
    r = await http.get(
        "/staff/billing/new", params=[("consultation", i) for i in ids] + [("method", "per_client")]
    )
    assert r.status_code == 200 and "One invoice per client" in r.text
    data = {"consultation": ids, "method": "per_client", "payer_kind": "client", "finalize": "1"}
    r = await http.post("/staff/billing/create", data=data)  # type: ignore[arg-type]
    assert r.status_code == 303 and r.headers["location"] == "/staff/billing?created=2"
    numbers = sorted(await Invoice.all().values_list("number", flat=True))
    assert numbers == [f"F-{practice_today().year}-0001", f"F-{practice_today().year}-0002"]
    assert client and other


async def test_each_caller_reaches_only_the_invoices_they_may(
    make: Factory, http: Any, new_http: Any
) -> None:
    practice, owner, therapist, client = await setup(make)
    other_therapist = await make.therapist()
    admin = await make.office_admin()
    other_client = await make.client(other_therapist)
    svc = await service()
    await appointment(therapist, client, svc, 2)
    (invoice,) = await bill(
        owner, await billing.do_ensure_consultations(None, client), finalize=True
    )
    payment = await billing.do_record_payment(
        caller_of(owner),
        invoice,
        PaymentIn(Decimal("10"), PaymentMethodUsed.CASH, practice_today()),
    )
    staff_urls = [
        f"/staff/billing/invoices/{invoice.id}",
        f"/staff/billing/invoices/{invoice.id}.pdf",
        f"/staff/billing/payments/{payment.id}/receipt.pdf",
    ]
    for who, expected in ((owner, 200), (admin, 200), (therapist, 200), (other_therapist, 404)):
        browser = new_http()
        await login(browser, who)
        for url in staff_urls:
            assert (await browser.get(url)).status_code == expected, (who.email, url)
        r = await browser.get("/staff/billing")
        assert r.status_code == 200 and ((invoice.number in r.text) == (expected == 200))  # type: ignore[operator]
        # Writes follow the same rule.
        r = await browser.post(
            f"/staff/billing/invoices/{invoice.id}/send", data={"to": "a@b.example"}
        )
        assert r.status_code == (303 if expected == 200 else 404)
    # The clients, on the portal.
    portal_urls = [f"/portal/invoices/{invoice.id}.pdf", f"/portal/receipts/{payment.id}.pdf"]
    browser = new_http()
    await login(browser, client)
    r = await browser.get("/portal/invoices")
    assert r.status_code == 200 and invoice.number in r.text  # type: ignore[operator]
    for url in portal_urls:
        r = await browser.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert (await browser.get(staff_urls[0])).status_code in (303, 401)  # not staff
    stranger = new_http()
    await login(stranger, other_client)
    r = await stranger.get("/portal/invoices")
    assert r.status_code == 200 and invoice.number not in r.text  # type: ignore[operator]
    for url in portal_urls:
        assert (await stranger.get(url)).status_code == 404
    nobody = new_http()
    for url in portal_urls + staff_urls:
        assert (await nobody.get(url)).status_code in (303, 401)
    # A draft never reaches the portal.
    await appointment(therapist, client, svc, 5)
    (draft,) = await bill(owner, await billing.do_ensure_consultations(None, client))
    assert (await browser.get(f"/portal/invoices/{draft.id}.pdf")).status_code == 404


async def test_billing_settings_and_default_services(
    make: Factory, http: Any, new_http: Any
) -> None:
    practice, owner, therapist, client = await setup(make)
    svc = await service("Default", "55.00")
    await login(http, owner)
    r = await http.post(
        "/staff/billing/settings?issuer=practice",
        data={
            "legal_name": "Cabinet Dubois",
            "prefix": "CAB-",
            "yearly_reset": "true",
            "tax_rate": "0",
            "tax_exemption": "Exonéré de TVA",
            "payment_days": "15",
        },
    )
    assert r.status_code == 303
    profile = await BillingProfile.get(practice_id=practice.id, practitioner_id=None)
    assert (profile.legal_name, profile.prefix, profile.payment_days) == (
        "Cabinet Dubois",
        "CAB-",
        15,
    )
    r = await http.post(
        "/staff/billing/settings?issuer=practice", data={"legal_name": "X", "tax_rate": "120"}
    )
    assert r.status_code == 422
    mine = new_http()
    await login(mine, therapist)
    r = await mine.post(
        f"/staff/billing/settings?issuer={therapist.id}",
        data={"what": "defaults", "service": str(svc.id)},
    )
    assert r.status_code == 303
    assert await DefaultService.filter(practitioner_id=therapist.id).count() == 1
    assert (await mine.get("/staff/billing/settings?issuer=practice")).status_code == 404
    colleague = await make.therapist()
    assert (await mine.get(f"/staff/billing/settings?issuer={colleague.id}")).status_code == 404


async def test_a_typed_prefix_another_issuer_uses_is_refused(
    make: Factory, http: Any, new_http: Any
) -> None:
    """Defaults never collide (093d6c5), but a prefix typed in the settings was not checked:
    a therapist typing the practice's "CAB-" printed the practice's invoice numbers."""
    practice, owner, therapist, client = await setup(make)
    await login(http, owner)
    form = {"legal_name": "Cabinet Dubois", "prefix": "CAB-", "tax_rate": "0", "payment_days": "15"}
    assert (
        await http.post("/staff/billing/settings?issuer=practice", data=form)
    ).status_code == 303
    mine = new_http()
    await login(mine, therapist)
    url = f"/staff/billing/settings?issuer={therapist.id}"
    taken = await mine.post(url, data={**form, "legal_name": "Dr Martin"})
    assert taken.status_code == 422
    assert "numbers or numbered its invoices with it" in taken.text
    assert (await billing.find_profile(practice, therapist)).prefix != "CAB-"
    # Saving one's own prefix again is fine.
    ok = await mine.post(url, data={**form, "legal_name": "Dr Martin", "prefix": "MAR-"})
    assert ok.status_code == 303
    again = await mine.post(url, data={**form, "legal_name": "Dr Martin B.", "prefix": "MAR-"})
    assert again.status_code == 303
    assert (await billing.find_profile(practice, therapist)).legal_name == "Dr Martin B."


async def test_the_desk_sees_no_billing_settings_link_it_cannot_open(
    make: Factory, http: Any, new_http: Any
) -> None:
    # The front desk's billing page offered "Billing settings", which answered 404.
    practice, owner, therapist, client = await setup(make)
    await login(http, await make.office_admin())
    page = await http.get("/staff/billing")
    assert page.status_code == 200
    assert "/staff/billing/settings" not in page.text
    assert (await http.get("/staff/billing/settings")).status_code == 404
    for who in (owner, therapist):
        theirs = new_http()
        await login(theirs, who)
        page = await theirs.get("/staff/billing/consultations")
        assert 'href="/staff/billing/settings"' in page.text
        assert (await theirs.get("/staff/billing/settings")).status_code == 200


async def test_the_practice_profile_is_made_once_when_first_needed_twice_at_once(
    make: Factory,
) -> None:
    from models.billing import BillingProfile

    practice = await make.practice()
    therapist = await make.therapist()
    made = await asyncio.gather(*(billing.profile_for(practice, None) for _ in range(4)))
    made += await asyncio.gather(*(billing.profile_for(practice, therapist) for _ in range(4)))
    assert len({p.id for p in made}) == 2
    assert await BillingProfile.filter(practice_id=practice.id).count() == 2


async def test_each_therapist_hears_of_their_own_clients_invoices_only(
    make: Factory, capture_events: Callable[[], Any]
) -> None:
    """A batch billed by the desk was announced with every invoice id to every therapist
    concerned (colleagues' clients' invoices named), and to a therapist who had left."""
    practice, owner, alice, hers = await setup(make)
    bob = await make.therapist(first_name="Bob")
    his = await make.client(bob, first_name="Paul")
    desk = await make.office_admin()
    svc = await service()
    await appointment(alice, hers, svc, 2)
    await appointment(bob, his, svc, 3)
    consultations = [
        *await billing.do_ensure_consultations(None, hers),
        *await billing.do_ensure_consultations(None, his),
    ]
    captured = capture_events()
    invoices = await bill(desk, consultations, BillingMethod.PER_CLIENT)
    by_client = {i.client_id: i.id for i in invoices}  # type: ignore[attr-defined]
    told = {e.recipient: e.payload["ids"] for e in captured.of_type("invoices.changed")}
    assert told[f"s:{alice.id}"] == [by_client[hers.id]]
    assert told[f"s:{bob.id}"] == [by_client[his.id]]
    assert sorted(told[f"s:{desk.id}"]) == sorted(by_client.values())
    assert sorted(told[f"s:{owner.id}"]) == sorted(by_client.values())
    bob.is_active = False
    await bob.save()
    captured = capture_events()
    await billing.do_finalize(caller_of(owner), await Invoice.get(id=by_client[his.id]))
    assert f"s:{bob.id}" not in captured.recipients("invoices.changed")
    assert f"s:{desk.id}" in captured.recipients("invoices.changed")


async def test_bill_this_client_clicked_twice_makes_each_consultation_once(
    make: Factory,
) -> None:
    """Both requests read "no consultation yet" before either wrote: every session was made
    twice, and billed twice."""
    practice, owner, therapist, client = await setup(make)
    svc = await service()
    for days in (2, 9):
        await appointment(therapist, client, svc, days)
    first, second = await asyncio.gather(
        billing.do_ensure_consultations(None, client),
        billing.do_ensure_consultations(None, client),
    )
    assert len(first) + len(second) == 2
    assert await Consultation.filter(client_id=client.id).count() == 2


async def test_consultation_by_hand_and_not_billable(make: Factory, http: Any) -> None:
    practice, owner, therapist, client = await setup(make)
    first = await service("First", "45.00")
    await login(http, owner)
    r = await http.post(
        f"/staff/clients/{client.id}/consultations",
        data={
            "practitioner_id": therapist.id,
            "on_date": "2026-11-02",
            "title": "Phone call",
            "billable": "true",
        },
    )
    assert r.status_code == 303
    r = await http.post(
        f"/staff/clients/{client.id}/consultations",
        data={"practitioner_id": therapist.id, "on_date": "2026-11-02", "title": ""},
    )
    assert r.status_code == 422
    # Only a practitioner the form offers (an active clinician or owner): not the front
    # desk, nor a colleague who has left.
    desk = await make.office_admin()
    gone = await make.therapist(first_name="Gone")
    gone.is_active = False
    await gone.save()
    for who in (desk, gone):
        r = await http.post(
            f"/staff/clients/{client.id}/consultations",
            data={"practitioner_id": who.id, "on_date": "2026-11-02", "title": "Report"},
        )
        assert r.status_code == 404
        r = await http.get(f"/staff/billing/settings?issuer={who.id}")
        assert r.status_code == 404
    page = await http.get(f"/staff/clients/{client.id}/billing")
    assert f'<option value="{desk.id}"' not in page.text
    consultation = await Consultation.get(client_id=client.id)
    r = await http.get(f"/staff/clients/{client.id}/billing")
    assert r.status_code == 200 and "Phone call" in r.text
    r = await http.post(
        f"/staff/billing/consultations/{consultation.id}/billable", data={"billable": "false"}
    )
    assert r.status_code == 303
    await consultation.refresh_from_db()
    assert consultation.billable is False
    with pytest.raises(ValidationFailed):
        await bill(owner, [consultation])
    consultation.billable = True
    await consultation.save()
    (invoice,) = await bill(owner, [consultation])
    (line,) = await InvoiceLine.filter(invoice_id=invoice.id)
    assert line.service_id == first.id and line.description == "First — Phone call"  # type: ignore[attr-defined]
    r = await http.post(
        f"/staff/billing/consultations/{consultation.id}/billable", data={"billable": "false"}
    )
    assert r.status_code == 409  # billed already


async def test_a_consultation_form_sent_twice_makes_one_consultation(
    make: Factory, http: Any
) -> None:
    """A phone session added by hand, the button pressed twice: two billable consultations,
    and the next invoice billed the client twice."""
    practice, owner, therapist, client = await setup(make)
    await login(http, owner)
    page = f"/staff/clients/{client.id}/billing"
    form = {
        "practitioner_id": str(therapist.id),
        "on_date": practice_today().isoformat(),
        "title": "Phone session",
        "billable": "true",
    }
    sent = {**form, "request_key": await request_key_of(http, page)}
    url = f"/staff/clients/{client.id}/consultations"
    results = await asyncio.gather(*(http.post(url, data=sent) for _ in range(2)))
    assert [r.status_code for r in results] == [303, 303]
    assert await Consultation.filter(client_id=client.id).count() == 1
    # Sent again after the answer came: still one.
    assert (await http.post(url, data=sent)).status_code == 303
    assert await Consultation.filter(client_id=client.id).count() == 1
    # From the page shown again, a second session the same day is a second consultation.
    again = await http.post(url, data={**form, "request_key": await request_key_of(http, page)})
    assert again.status_code == 303
    assert await Consultation.filter(client_id=client.id).count() == 2


async def test_bad_input_is_a_clear_error_and_changes_nothing(make: Factory, http: Any) -> None:
    owner, client, invoice = await _draft(make)
    await login(http, owner)
    loose = await Consultation.create(
        practice_id=owner.practice_id,  # type: ignore[attr-defined]
        client=client,
        practitioner=owner,
        on_date=practice_today(),
        title="Report",
    )
    ids = [loose.id]
    assert (await http.get("/staff/billing/new", params={"method": "nope"})).status_code == 200
    r = await http.get("/staff/billing/preview.pdf", params={"consultation": ids, "n": "x"})
    assert r.status_code == 404
    r = await http.get("/staff/billing/preview", params={"consultation": "abc"})
    assert r.status_code in (404, 422)
    r = await http.get("/staff/billing/preview", params={"consultation": ids, "method": "weird"})
    assert r.status_code == 422
    r = await http.post(
        "/staff/billing/create", data={"consultation": "999999", "method": "single"}
    )
    assert r.status_code == 404
    base = f"/staff/billing/invoices/{invoice.id}"
    r = await http.post(f"{base}/details", data={"payer_name": ""})
    assert r.status_code == 422
    r = await http.post(f"{base}/finalize")
    r = await http.post(
        f"{base}/payments", data={"amount": "-5", "method": "cash", "paid_on": "2026-01-01"}
    )
    assert r.status_code == 422
    r = await http.post(
        f"{base}/payments", data={"amount": "5", "method": "bitcoin", "paid_on": "2026-01-01"}
    )
    assert r.status_code == 422
    r = await http.post(f"{base}/send", data={"to": "nobody"})
    assert r.status_code == 422
    assert (await http.post(f"{base}/whatever")).status_code == 404
    fresh = await Invoice.get(id=invoice.id)
    assert (fresh.paid, fresh.sent_at) == (Decimal("0.00"), None)
    assert await Payment.all().count() == 0


async def test_a_batch_of_a_thousand_through_the_page(make: Factory, http: Any) -> None:
    practice, owner, therapist, client = await setup(make)
    other = await make.client(therapist)
    await service()
    await Consultation.bulk_create(
        [
            Consultation(
                practice=practice,
                client=client if i % 2 else other,
                practitioner=therapist,
                on_date=practice_today() - timedelta(days=i),
                title=f"Session {i}",
            )
            for i in range(1_100)
        ]
    )
    ids = [c.id for c in await Consultation.all()]
    await login(http, owner)
    r = await http.post("/staff/billing/new", data={"consultation": ids, "method": "per_client"})  # type: ignore[arg-type]
    assert r.status_code == 200
    data = {
        "consultation": ids,
        "method": "per_client",
        "payer_kind": "client",
        "issuer": "practice",
    }
    r = await http.post("/staff/billing/create", data=data)  # type: ignore[arg-type]
    assert r.status_code == 303, r.text
    assert await Invoice.all().count() == 2
    assert await InvoiceLine.all().count() == 1_100


async def test_a_therapist_bills_their_own_caseload_only(make: Factory, new_http: Any) -> None:
    practice, owner, therapist, client = await setup(make)
    colleague = await make.therapist()
    theirs = await make.client(colleague)
    svc = await service()
    await appointment(therapist, client, svc, 2)
    await appointment(colleague, theirs, svc, 2)
    mine = await billing.do_ensure_consultations(None, client)
    other = await billing.do_ensure_consultations(None, theirs)
    browser = new_http()
    await login(browser, therapist)
    assert (await browser.post(f"/staff/clients/{theirs.id}/bill")).status_code == 404
    base = {"method": "single", "payer_kind": "client"}
    r = await browser.post("/staff/billing/create", data=base | {"consultation": other[0].id})
    assert r.status_code == 404
    r = await browser.post(
        "/staff/billing/create",
        data=base | {"consultation": mine[0].id, "issuer": str(colleague.id)},
    )
    assert r.status_code == 404
    assert not await Invoice.exists()
    r = await browser.post(
        "/staff/billing/create",
        data=base | {"consultation": mine[0].id, "issuer": str(therapist.id), "finalize": "1"},
    )
    assert r.status_code == 303
    invoice = await Invoice.get()
    assert invoice.number == f"{therapist.last_name[:3].upper()}-{practice_today().year}-0001"
    # The front desk bills anyone's, in the practice's name.
    desk = new_http("10.0.0.3")
    await login(desk, await make.office_admin())
    r = await desk.post("/staff/billing/create", data=base | {"consultation": other[0].id})
    assert r.status_code == 303


async def test_a_therapist_never_writes_to_an_invoice_in_a_colleagues_name(
    make: Factory, new_http: Any
) -> None:
    """Alice bills her client in her own name (one issued invoice, one draft), then hands the
    client over to Bob. Bob sees both (his caseload's) but may change neither: finalizing,
    crediting, paying or editing would issue in Alice's name. The owner still may."""
    practice, owner, alice, client = await setup(make)
    bob = await make.therapist()
    svc = await service()
    await appointment(alice, client, svc, 3)
    (issued,) = await billing.do_bill(
        caller_of(alice),
        practice,
        alice,
        await billing.do_ensure_consultations(None, client),
        method=BillingMethod.SINGLE,
        payer=Payer(),
        finalize=True,
    )
    await appointment(alice, client, svc, 2)
    (draft,) = await billing.do_bill(
        caller_of(alice),
        practice,
        alice,
        await billing.do_ensure_consultations(None, client),
        method=BillingMethod.SINGLE,
        payer=Payer(),
    )
    line = await InvoiceLine.filter(invoice_id=draft.id).first()
    assert line is not None
    client.therapist_id = bob.id  # type: ignore[attr-defined]
    await client.save()
    browser = new_http()
    await login(browser, bob)
    # He reads them, without forms that would only answer 404.
    for invoice in (issued, draft):
        page = await browser.get(f"/staff/billing/invoices/{invoice.id}")
        assert page.status_code == 200 and "data-read-only" in page.text
        assert f"/staff/billing/invoices/{invoice.id}/" not in page.text.replace(".pdf", "")
    pay = {"amount": "60.00", "method": "cash", "paid_on": practice_today().isoformat()}
    for path, data in [
        (f"{draft.id}/finalize", {}),
        (f"{draft.id}/lines", {"description": "Report", "unit_price": "10"}),
        (f"{draft.id}/details", {"payer_name": "Someone"}),
        (f"{draft.id}/lines/{line.id}/remove", {}),
        (f"{draft.id}/delete", {}),
        (f"{issued.id}/credit-note", {"reason": "x"}),
        (f"{issued.id}/payments", pay),
        (f"{issued.id}/send", {"to": "x@example.org"}),
    ]:
        r = await browser.post(f"/staff/billing/invoices/{path}", data=data)
        assert r.status_code == 404, path
    for path, body in [
        (f"{draft.id}/finalize", None),
        (f"{issued.id}/credit-note", {"reason": "x"}),
        (f"{issued.id}/payments", pay),
        (f"{issued.id}/send", {"to": "x@example.org"}),
    ]:
        r = await browser.post(f"/api/invoices/{path}", json=body)
        assert r.status_code == 404, path
    draft = await Invoice.get(id=draft.id)
    assert draft.status is InvoiceStatus.DRAFT and draft.payer_name != "Someone"
    assert await InvoiceLine.filter(invoice_id=draft.id).count() == 1
    assert not await Invoice.exists(kind=InvoiceKind.CREDIT_NOTE)
    assert not await Payment.exists()
    assert (await Invoice.get(id=issued.id)).sent_at is None
    # Alice's own, and the practice's, stay Bob's to change when they are his caseload's.
    owners = new_http("10.0.0.4")
    await login(owners, owner)
    r = await owners.post(f"/staff/billing/invoices/{draft.id}/finalize")
    assert r.status_code == 303
    await appointment(bob, client, svc, 1)
    (practices,) = await bill(owner, await billing.do_ensure_consultations(None, client))
    r = await browser.post(f"/staff/billing/invoices/{practices.id}/finalize")
    assert r.status_code == 303


async def test_a_therapists_single_invoice_for_two_of_their_clients_is_theirs(
    make: Factory, new_http: Any
) -> None:
    """A therapist bills two clients of their caseload with one single invoice to one
    recipient, in the practice's name: it has no client and is not in their name, yet it is
    theirs to open (the page they are sent to after creating it), finish and delete. A
    colleague still does not see it."""
    practice, owner, therapist, a = await setup(make)
    b = await make.client(therapist)
    svc = await service()
    await appointment(therapist, a, svc, 2)
    await appointment(therapist, b, svc, 2)
    consultations = await billing.do_ensure_consultations(
        None, a
    ) + await billing.do_ensure_consultations(None, b)
    browser = new_http()
    await login(browser, therapist)
    data = {
        "consultation": [c.id for c in consultations],
        "method": "single",
        "payer_kind": "other",
        "payer_name": "Town hall",
        "issuer": "practice",
    }
    r = await browser.post("/staff/billing/create", data=data)  # type: ignore[arg-type]
    assert r.status_code == 303
    invoice = await Invoice.get()
    assert invoice.client_id is None  # type: ignore[attr-defined]
    assert r.headers["location"] == f"/staff/billing/invoices/{invoice.id}"
    assert (await browser.get(r.headers["location"])).status_code == 200
    assert (await browser.get(f"/api/invoices/{invoice.id}")).status_code == 200
    colleague = new_http("10.0.0.5")
    await login(colleague, await make.therapist())
    assert (await colleague.get(f"/staff/billing/invoices/{invoice.id}")).status_code == 404
    r = await browser.post(f"/staff/billing/invoices/{invoice.id}/delete")
    assert r.status_code == 303 and not await Invoice.exists()
    assert not await Consultation.filter(invoice_id__not_isnull=True).exists()


def test_a_pdf_name_beyond_latin_1_is_sent_percent_encoded() -> None:
    """The default invoice prefix comes from the practitioner's surname: "Łoś" gives
    "ŁOŚ-000001.pdf", which a Latin-1 header cannot hold (every invoice PDF was a 500)."""
    from server.billing_pdf import pdf_response

    plain = pdf_response(b"%PDF", "INV-000001.pdf")
    assert plain.headers["content-disposition"] == 'inline; filename="INV-000001.pdf"'
    polish = pdf_response(b"%PDF", "ŁOŚ-000001.pdf")
    assert polish.headers["content-disposition"] == (
        "inline; filename*=utf-8''%C5%81O%C5%9A-000001.pdf"
    )


@pytest.mark.parametrize("issuer", ["Cabinet Demo — Claire Rousseau, psychologue", "Dr A"])
def test_a_long_issuer_name_does_not_run_under_the_title(issuer: str) -> None:
    """The issuer's name was set in a 100 mm cell that it overflowed: on a statement,
    "Cabinet Demo — Claire Rousseau, psychologue" ran under "RELEVÉ DE COMPTE"."""
    from datetime import date as day

    from server.billing_pdf import FONT, _new_pdf, render_statement

    data = render_statement(
        issuer=[issuer, "1 rue de la Paix\n69001 Lyon"],
        client_name="Amira Benali",
        client_address="",
        start=day(2026, 1, 1),
        end=day(2026, 12, 31),
        opening=Decimal("0.00"),
        rows=[],
        closing=Decimal("0.00"),
        credit=Decimal("0.00"),
        currency="EUR",
    )
    spans: list[tuple[float, float, float, str]] = []

    def seen(text: str, cm: Any, tm: Any, font: Any, size: float) -> None:
        if text.strip():
            spans.append((tm[4], tm[5], size * tm[0], " ".join(text.split())))

    PdfReader(io.BytesIO(data)).pages[0].extract_text(visitor_text=seen)
    measure = _new_pdf()
    measure.set_font(FONT, "B", 18)
    title = next(s for s in spans if s[3] == "STATEMENT")
    name = [s for s in spans if s[3] and s[3] in issuer and abs(s[2] - 14) < 0.1]
    assert " ".join(s[3] for s in name) == issuer  # all of it, on one line or more
    measure.set_font(FONT, "B", 14)
    for x, y, _size, text in name:
        end = x + measure.get_string_width(text) * 72 / 25.4
        assert end < title[0] or abs(y - title[1]) > 10, (text, end, title)


@pytest.mark.parametrize(
    ("last_name", "prefix"),
    [("Dupont", "DUP-"), ("Ôdin", "ODI-"), ("Łoś", "LOS-"), ("de la Tour", "DEL-"), ("王", "F-")],
)
def test_the_default_invoice_prefix_is_one_the_settings_form_accepts(
    last_name: str, prefix: str
) -> None:
    """The default was the name's first three letters as they are: "ÔDI-" or "DE -", which
    the settings form then refused, so the issuer could not save their settings without
    finding out why."""
    from models.accounts import StaffUser
    from server.actions.billing import _default_prefix
    from staff.billing import ProfileForm

    got = _default_prefix(StaffUser(first_name="A", last_name=last_name))
    assert got == prefix
    assert ProfileForm(legal_name="A", prefix=got).prefix == got  # the form takes it


async def test_refused_invoice_forms_keep_what_was_typed(make: Factory, http: Any) -> None:
    """A 422 on one of the invoice page's forms (a price with three decimals, the payer's
    name emptied, an amount of nothing) showed the error beside a form back to its blanks
    and defaults: the line, the payer's details or the payment were typed again."""
    owner, _client, invoice = await _draft(make)
    await login(http, owner)
    url = f"/staff/billing/invoices/{invoice.id}"
    line = {
        "description": "Frais de dossier",
        "quantity": "2",
        "unit_price": "12.345",  # three decimals: refused
        "discount": "1.50",
        "on_date": practice_today().isoformat(),
    }
    r = await http.post(f"{url}/lines", data=line)
    assert r.status_code == 422, r.text
    form = r.text.split(f'action="{url}/lines"', 1)[1].split("</form>", 1)[0]
    for name, value in line.items():
        assert re.search(rf'name="{name}"[^>]*value="{re.escape(value)}"', form), name
    assert re.search(r'name="unit_price"[^>]*><span class="field-error">', form)

    details = {
        "payer_name": "",
        "payer_email": "famille.dubois@example.org",
        "payer_address": "2 rue Neuve\n69003 Lyon",
        "notes": "Merci de régler sous 30 jours.",
    }
    r = await http.post(f"{url}/details", data=details)
    assert r.status_code == 422, r.text
    form = r.text.split(f'action="{url}/details"', 1)[1].split("</form>", 1)[0]
    assert 'name="payer_name" value=""' in form
    assert 'name="payer_email" value="famille.dubois@example.org"' in form
    assert ">2 rue Neuve\n69003 Lyon</textarea>" in form and ">Merci de régler" in form
    await invoice.refresh_from_db()
    assert invoice.total == Decimal("60.00") and invoice.notes == ""

    await billing.do_finalize(caller_of(owner), invoice)
    payment = {"amount": "0", "method": "transfer", "paid_on": "2026-11-30", "reference": "VIR 889"}
    r = await http.post(f"{url}/payments", data=payment)
    assert r.status_code == 422, r.text
    form = r.text.split(f'action="{url}/payments"', 1)[1].split("</form>", 1)[0]
    for name in ("amount", "paid_on", "reference"):
        assert re.search(rf'name="{name}"[^>]*value="{payment[name]}"', form), name
    assert '<option value="transfer" selected>' in form
    assert not await Payment.filter(invoice_id=invoice.id).exists()


async def test_a_refused_consultation_by_hand_keeps_what_was_typed(
    make: Factory, http: Any
) -> None:
    """A date with a six-digit year (a date field lets it through) was refused with the
    form back to today, the client's therapist, no title and "billable" ticked."""
    _practice, owner, therapist, client = await setup(make)
    await login(http, owner)
    form = {
        "practitioner_id": str(owner.id),
        "on_date": "20266-11-02",
        "title": "Compte rendu pour le médecin traitant",
        # billable left unticked
    }
    r = await http.post(f"/staff/clients/{client.id}/consultations", data=form)
    assert r.status_code == 422, r.text
    page = r.text.split('id="add-consultation"', 1)[1].split("</form>", 1)[0]
    assert re.search(
        r'name="on_date" value="20266-11-02" required><span class="field-error">', page
    )
    assert (
        'name="title" required maxlength="200" value="Compte rendu pour le médecin traitant"'
        in page
    )
    assert f'<option value="{owner.id}" selected>' in page
    assert f'<option value="{therapist.id}" selected>' not in page
    assert not re.search(r'name="billable" value="true" checked', page)
    assert not await Consultation.filter(client_id=client.id).exists()


async def test_a_refused_bill_form_keeps_what_was_chosen(make: Factory, http: Any) -> None:
    """ "A contact" chosen as payer but none picked (422): the form came back with the
    template, the payer's kind and details and "finalize now" as on a new form."""
    _practice, owner, therapist, client = await setup(make)
    svc = await service("Psychotherapy", "70.00")
    await appointment(therapist, client, svc, 3)
    ids = [c.id for c in await billing.do_ensure_consultations(None, client)]
    await login(http, owner)
    form = {
        "consultation": [str(i) for i in ids],
        "issuer": str(therapist.id),
        "template": "detailed",
        "method": "single",
        "payer_kind": "contact",
        "payer_name": "Mutuelle des Lilas",
        "payer_email": "remboursements@lilas.example.org",
        "payer_address": "BP 12\n69003 Lyon",
        "finalize": "1",
    }
    r = await http.post("/staff/billing/preview", data=form)
    assert r.status_code == 422, r.text
    page = r.text
    assert re.search(r'name="payer_contact_id">.*?</select><span class="field-error">', page, re.S)
    assert '<option value="detailed" selected>' in page
    assert re.search(r'name="payer_kind" value="contact" checked', page)
    assert not re.search(r'name="payer_kind" value="client" checked', page)
    assert 'name="payer_name" maxlength="200" value="Mutuelle des Lilas"' in page
    assert 'value="remboursements@lilas.example.org"' in page
    assert ">BP 12\n69003 Lyon</textarea>" in page
    assert re.search(r'name="finalize" value="1" checked', page)
    assert not await Invoice.exists()


async def test_a_refused_bill_form_still_lists_the_consultations_unticked(
    make: Factory, http: Any
) -> None:
    """Of a client's three sessions, one unticked (to be billed later), and a contact chosen
    as payer but none picked (422): the form came back listing only the two ticked; the
    third was gone from it, to be found again from the list of consultations."""
    _practice, owner, therapist, client = await setup(make)
    svc = await service("Psychotherapy", "70.00")
    for days_ago in (3, 10, 17):
        await appointment(therapist, client, svc, days_ago)
    ids = sorted(c.id for c in await billing.do_ensure_consultations(None, client))
    await login(http, owner)
    shown = await http.get("/staff/billing/new", params={"client": client.id})
    bill_form = shown.text.split('id="bill-form"', 1)[1].split("</form>", 1)[0]
    # What a browser sends: the form's hidden fields, the boxes still ticked.
    form: dict[str, Any] = dict(
        re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', bill_form)
    )
    form.pop("csrf_token", None)
    unticked, *ticked = ids
    form |= {
        "consultation": [str(i) for i in ticked],
        "method": "single",
        "payer_kind": "contact",
    }
    r = await http.post("/staff/billing/preview", data=form)
    assert r.status_code == 422, r.text
    page = r.text.split('id="bill-form"', 1)[1]
    for i in ticked:
        assert re.search(rf'name="consultation" value="{i}"\s*checked', page), i
    assert re.search(rf'name="consultation" value="{unticked}"\s*aria-label', page)
    assert re.search(r'name="payer_contact_id">.*?</select><span class="field-error">', page, re.S)
    assert not await Invoice.exists()
