"""Export client: the zip holds the whole record as the caller may see it, a FHIR R4 Bundle
that validates, the documents' bytes and the invoices' PDFs; producing it is recorded;
outsiders get 404."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader

from models.accounts import PortalAccount, Practice
from models.agenda import Appointment, Attendance
from models.audit import AuditEntry
from models.billing import BillingProfile, Invoice, PaymentMethodUsed
from models.clients import AlternateContact, Client, PhoneNumber, Relationship
from models.notes import NoteTemplate
from models.notifications import OutboxMessage
from server.actions import agenda, billing, notes
from server.actions.billing import BillingMethod, LineIn, Payer, PaymentIn, ProfileChanges
from server.actions.clients import do_link_clients
from server.auth.sessions import Caller
from server.export import client_record
from tests.conftest import Factory, login
from tests.test_documents import PDF, PNG, upload
from tests.test_messaging import send


@pytest.fixture
async def practice(make: Factory, new_http: Callable[..., httpx.AsyncClient]) -> dict[str, Any]:
    """Hélène's file, filled: contact, clinical and account details, an alternate contact, a
    linked account, a conversation with Alice, documents and a task."""
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice", last_name="Martin")
    bob = await make.therapist(first_name="Bob")
    desk = await make.office_admin()
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    mother = await make.client(alice, first_name="Marie", last_name="Dubois")
    await do_link_clients(None, helene, mother, Relationship.PARENT)
    grandpa = await AlternateContact.create(
        client=helene,
        first_name="Jean",
        last_name="Dubois",
        relationship="grandfather",
        is_emergency=True,
        email="jean@example.org",
        city="Lyon",
    )
    await PhoneNumber.create(alternate_contact=grandpa, number="+33 4 00 00 00 01", is_primary=True)

    staff = new_http("10.8.0.1")
    await login(staff, alice)
    contact = {
        "first_name": "Hélène",
        "last_name": "Dubois",
        "preferred_name": "Léna",
        "date_of_birth": "1990-04-02",
        "city": "Lyon",
        "phones": [{"number": "+33 6 12 34 56 78", "label": "mobile", "for_sms": True}],
        "emails": [{"address": "helene@example.org"}],
    }
    assert (await staff.put(f"/api/clients/{helene.id}/contact", json=contact)).status_code == 200
    clinical = {"referral": "Dr Secret", "diagnosis_keywords": ["insomnia"]}
    assert (await staff.put(f"/api/clients/{helene.id}/clinical", json=clinical)).status_code == 200
    account = {"payment_terms": "monthly", "health_id": "1 90 04 69 123 456 78"}
    assert (await staff.put(f"/api/clients/{helene.id}/account", json=account)).status_code == 200

    r = await staff.post(
        "/api/conversations", json={"kind": "client", "subject": "Suivi", "client_id": helene.id}
    )
    cid = r.json()["id"]
    assert (await send(staff, "/api", cid, "Bonjour Hélène", "s1")).status_code == 200
    portal = new_http("10.8.0.2")
    await login(portal, helene)
    assert (await send(portal, "/portal/api", cid, "Merci, à jeudi", "c1")).status_code == 200

    letter = (await upload(staff, helene, "Courrier.pdf", PDF, shared=True)).json()
    gone = (await upload(staff, helene, "Old.png", PNG)).json()
    assert (await staff.delete(f"/api/documents/{gone['id']}")).status_code == 200
    # Three sessions: one attended, one moved to a later date (which is then scheduled).
    as_alice = Caller.acting_as(alice)
    practice_row = await make.practice()
    talk = await agenda.do_create_service(
        as_alice, practice_row, name="Séance individuelle", duration_minutes=50, price=Decimal("70")
    )
    office = await agenda.do_create_location(as_alice, practice_row, name="Cabinet de Lyon")
    monday = datetime(2026, 3, 2, 9, tzinfo=UTC)
    first = await agenda.do_book_appointment(
        as_alice, practitioner=alice, client=helene, service=talk, starts_at=monday, location=office
    )
    await agenda.do_set_attendance(as_alice, first, Attendance.ATTENDED)
    note = await notes.do_save_draft(
        as_alice, first, NoteTemplate.BLANK, {"note": "Sommeil en progrès, angoisse nocturne"}
    )
    await notes.do_sign(as_alice, note)
    await notes.do_add_addendum(as_alice, note, "Appel de suivi prévu")
    second = await agenda.do_book_appointment(
        as_alice,
        practitioner=alice,
        client=helene,
        service=talk,
        starts_at=monday + timedelta(days=7),
        location=office,
    )
    await agenda.do_move_appointment(as_alice, second, monday + timedelta(days=8))
    cancelled = await agenda.do_book_appointment(
        as_alice,
        practitioner=alice,
        client=helene,
        service=talk,
        starts_at=monday + timedelta(days=14),
        location=office,
    )
    await agenda.do_delete_appointment(as_alice, cancelled)  # deleted: not in the export
    task = {"note": "Envoyer le bilan"}
    assert (await staff.post(f"/api/clients/{helene.id}/tasks", json=task)).status_code == 200
    return {
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "desk": desk,
        "helene": helene,
        "mother": mother,
        "letter": letter,
        "conversation": cid,
    }


async def export_of(
    new_http: Callable[..., httpx.AsyncClient], who: Any, client: Client, url: str = ""
) -> tuple[httpx.Response, zipfile.ZipFile | None]:
    http = new_http("10.8.1.1")
    await login(http, who)
    r = await http.get(url or f"/api/clients/{client.id}/export")
    archive = zipfile.ZipFile(io.BytesIO(r.content)) if r.status_code == 200 else None
    return r, archive


def validated_bundle(archive: zipfile.ZipFile) -> tuple[dict[str, Any], Bundle]:
    raw = json.loads(archive.read("fhir.json"))
    bundle = Bundle.model_validate(raw)
    # Each resource on its own, against its own R4(B) model as well.
    for entry in raw["entry"]:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    return raw, bundle


async def test_the_therapist_exports_the_whole_file(
    new_http: Callable[..., httpx.AsyncClient], practice: dict[str, Any]
) -> None:
    helene: Client = practice["helene"]
    r, archive = await export_of(new_http, practice["alice"], helene)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert archive is not None
    letter = practice["letter"]
    assert sorted(archive.namelist()) == [
        f"documents/{letter['id']}-Courrier.pdf",
        "fhir.json",
        "record.json",
    ]
    assert archive.read(f"documents/{letter['id']}-Courrier.pdf") == PDF

    record = json.loads(archive.read("record.json"))
    client = record["client"]
    assert (client["first_name"], client["preferred_name"], client["date_of_birth"]) == (
        "Hélène",
        "Léna",
        "1990-04-02",
    )
    assert client["address"]["city"] == "Lyon"
    assert client["phones"][0]["for_sms"] is True
    assert record["clinical"]["referral"] == "Dr Secret"
    assert record["clinical"]["diagnosis_keywords"] == ["insomnia"]
    assert record["account"]["payment_terms"] == "monthly"
    assert record["account"]["health_id"] == "1 90 04 69 123 456 78"
    account = await PortalAccount.get(client_id=helene.id)
    assert record["account"]["portal_account"]["email"] == account.email
    circle = record["circle_of_care"]
    assert [(a["first_name"], a["is_emergency_contact"]) for a in circle["alternate_contacts"]] == [
        ("Jean", True)
    ]
    assert circle["alternate_contacts"][0]["phones"][0]["number"] == "+33 4 00 00 00 01"
    assert [(link["first_name"], link["relationship"]) for link in circle["linked_accounts"]] == [
        ("Marie", "parent")
    ]
    sessions = record["sessions"]
    assert [(x["attendance"], x["service"]["name"]) for x in sessions] == [
        ("attended", "Séance individuelle"),
        ("moved", "Séance individuelle"),
        ("scheduled", "Séance individuelle"),
    ]
    assert sessions[0]["starts_at"] == "2026-03-02T09:00:00+00:00"
    assert sessions[0]["location"]["name"] == "Cabinet de Lyon"
    assert sessions[0]["practitioner"]["name"] == "Alice Martin"
    [note] = record["session_notes"]
    assert note["session_id"] == sessions[0]["id"] and note["signed_at"] is not None
    assert note["sections"] == {"note": "Sommeil en progrès, angoisse nocturne"}
    assert [a["text"] for a in note["addenda"]] == ["Appel de suivi prévu"]
    # Nothing billed yet: empty, and no word of billing being absent.
    assert record["invoices"] == []
    assert record["money_on_account"] == {"currency": "EUR", "credit": "0.00", "payments": []}
    assert "Billing is not part" not in json.dumps(record)
    [conversation] = record["conversations"]
    assert [m["body"] for m in conversation["messages"]] == ["Bonjour Hélène", "Merci, à jeudi"]
    assert [d["name"] for d in record["documents"]] == ["Courrier.pdf"]  # not the deleted one
    assert record["documents"][0]["shared_with_client"] is True
    assert [t["note"] for t in record["tasks"]] == ["Envoyer le bilan"]
    # The file's logs, as its Logs tab shows them to whoever may open the file.
    actions = [e["action"] for e in record["logs"]["audit"]]
    assert "client.clinical_updated" in actions and "document.uploaded" in actions
    assert "note.signed" in actions and "client.created" in actions
    assert "Dr Secret" not in json.dumps(record["logs"])  # the trail names fields, not values

    raw, bundle = validated_bundle(archive)
    assert bundle.type == "collection"
    kinds = [e["resource"]["resourceType"] for e in raw["entry"]]
    assert kinds.count("Patient") == 1
    assert kinds.count("RelatedPerson") == 2  # the grandfather and the linked mother
    assert kinds.count("Communication") == 2
    assert kinds.count("DocumentReference") == 1
    appointments = [
        e["resource"] for e in raw["entry"] if e["resource"]["resourceType"] == "Appointment"
    ]
    assert [a["status"] for a in appointments] == ["fulfilled", "cancelled", "booked"]
    assert appointments[0]["minutesDuration"] == 50
    assert appointments[1]["cancelationReason"] == {"text": "moved"}
    assert appointments[0]["participant"][0]["actor"]["reference"] == raw["entry"][0]["fullUrl"]
    patient = raw["entry"][0]["resource"]
    assert patient["name"][0]["given"] == ["Hélène"] and patient["birthDate"] == "1990-04-02"
    assert {"system": "sms", "value": "+33 6 12 34 56 78"} in patient["telecom"]
    patient_url = raw["entry"][0]["fullUrl"]
    messages = [
        e["resource"] for e in raw["entry"] if e["resource"]["resourceType"] == "Communication"
    ]
    assert messages[1]["sender"]["reference"] == patient_url  # Hélène wrote the reply
    assert messages[0]["recipient"] == [{"reference": patient_url, "display": "Hélène Dubois"}]
    assert messages[0]["payload"][0]["contentString"] == "Bonjour Hélène"
    doc = next(
        e["resource"] for e in raw["entry"] if e["resource"]["resourceType"] == "DocumentReference"
    )
    attachment = doc["content"][0]["attachment"]
    assert attachment["url"] == f"documents/{letter['id']}-Courrier.pdf"
    assert attachment["contentType"] == "application/pdf" and attachment["size"] == len(PDF)
    assert "Dr Secret" not in archive.read("fhir.json").decode()

    entry = await AuditEntry.get(action="client.exported")
    assert (entry.client_id, entry.is_read, entry.actor_id) == (
        helene.id,
        True,
        practice["alice"].id,
    )


async def test_the_owner_does_not_get_others_conversations(
    new_http: Callable[..., httpx.AsyncClient], practice: dict[str, Any]
) -> None:
    r, archive = await export_of(new_http, practice["owner"], practice["helene"])
    assert r.status_code == 200 and archive is not None
    record = json.loads(archive.read("record.json"))
    assert record["session_notes"][0]["sections"]["note"].startswith("Sommeil")
    # Alice's conversation with Hélène is not the owner's to read: left out, and counted.
    assert record["conversations"] == []
    assert record["remarks"]["messages"].startswith("1 conversation with this client is left out")
    validated_bundle(archive)


async def test_the_front_desk_export_has_no_clinical_details(
    new_http: Callable[..., httpx.AsyncClient], practice: dict[str, Any]
) -> None:
    helene: Client = practice["helene"]
    r, archive = await export_of(new_http, practice["desk"], helene)
    assert r.status_code == 200 and archive is not None
    record = json.loads(archive.read("record.json"))
    assert record["clinical"] is None and record["session_notes"] is None
    assert "clinical" in record["remarks"]
    for name in archive.namelist():
        content = archive.read(name)
        for secret in ("Dr Secret", "insomnia", "Sommeil", "Appel de suivi"):
            assert secret.encode() not in content, (name, secret)
    validated_bundle(archive)
    # Once the practice opens clinical details to the front desk, they are in.
    await Practice.filter(id=helene.practice_id).update(office_admins_see_clinical=True)  # type: ignore[attr-defined]
    _r, archive = await export_of(new_http, practice["desk"], helene)
    assert archive is not None
    assert json.loads(archive.read("record.json"))["clinical"]["referral"] == "Dr Secret"


async def test_from_the_file_page_and_who_may(
    new_http: Callable[..., httpx.AsyncClient], practice: dict[str, Any]
) -> None:
    helene: Client = practice["helene"]
    page_url = f"/staff/clients/{helene.id}/export"
    r, archive = await export_of(new_http, practice["alice"], helene, page_url)
    assert r.status_code == 200 and archive is not None and "fhir.json" in archive.namelist()
    assert f"cabinet-client-{helene.id}-" in r.headers["content-disposition"]
    # Bob's caseload does not hold Hélène: 404, like a missing client.
    for url in (page_url, f"/api/clients/{helene.id}/export"):
        r, _archive = await export_of(new_http, practice["bob"], helene, url)
        assert r.status_code == 404
    # Clients never export, not even themselves.
    r, _archive = await export_of(new_http, helene, helene)
    assert r.status_code == 401
    r, _archive = await export_of(new_http, helene, helene, page_url)
    assert r.status_code == 303
    nobody = new_http("10.8.2.1")
    assert (await nobody.get(f"/api/clients/{helene.id}/export")).status_code == 401
    assert await AuditEntry.filter(action="client.exported").count() == 1


async def test_an_empty_file_exports_too(
    new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    owner = await make.owner()
    client = await make.client(None, portal=False, first_name="Zoé", last_name="Vide")
    r, archive = await export_of(new_http, owner, client)
    assert r.status_code == 200 and archive is not None
    assert sorted(archive.namelist()) == ["fhir.json", "record.json"]
    record = json.loads(archive.read("record.json"))
    assert record["client"]["therapist"] is None
    assert record["account"]["portal_account"] is None
    assert record["circle_of_care"] == {"alternate_contacts": [], "linked_accounts": []}
    raw, _bundle = validated_bundle(archive)
    assert [e["resource"]["resourceType"] for e in raw["entry"]] == ["Patient"]
    assert date.fromisoformat(record["exported_at"][:10])


async def test_clinical_documents_leave_the_export_with_clinical_details(
    new_http: Callable[..., httpx.AsyncClient], practice: dict[str, Any]
) -> None:
    helene: Client = practice["helene"]
    alice = new_http("10.8.3.1")
    await login(alice, practice["alice"])
    secret_pdf = PDF.replace(b"%%EOF", b"% bilan confidentiel\n%%EOF")
    r = await alice.post(
        f"/api/clients/{helene.id}/documents",
        files={"file": ("Bilan psychologique.pdf", secret_pdf, "application/pdf")},
        data={"clinical": "1"},
    )
    assert r.status_code == 200, r.text
    secret_id = r.json()["id"]

    def holds_secret(archive: zipfile.ZipFile) -> bool:
        names = archive.namelist()
        contents = b"".join(archive.read(n) for n in names)
        return b"Bilan psychologique" in contents or b"bilan confidentiel" in contents

    for who, sees in (("alice", True), ("owner", True), ("desk", False)):
        r, archive = await export_of(new_http, practice[who], helene)
        assert r.status_code == 200 and archive is not None
        record = json.loads(archive.read("record.json"))
        assert (secret_id in [d["id"] for d in record["documents"]]) is sees, who
        assert holds_secret(archive) is sees, who
        raw, _bundle = validated_bundle(archive)
        refs = [e for e in raw["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
        assert any("Bilan" in e["resource"]["description"] for e in refs) is sees, who
        # The letter is not clinical: everyone who may export gets it.
        assert practice["letter"]["id"] in [d["id"] for d in record["documents"]]
    await Practice.filter(id=helene.practice_id).update(office_admins_see_clinical=True)  # type: ignore[attr-defined]
    _r, archive = await export_of(new_http, practice["desk"], helene)
    assert archive is not None and holds_secret(archive)


async def test_the_sent_log_holds_only_what_went_to_the_client_or_their_circle(
    new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """Messages filed under a client but sent to someone else (the practitioner's own mobile
    when the client books, a linked person's address when they have unread messages) stay
    out of the client's export: not the client's to take away, and a linked person may be
    someone the exporting therapist is not allowed to see."""
    alice = await make.therapist()
    ines = await make.client(alice, first_name="Inès", email="ines@example.org")
    mother = await AlternateContact.create(client=ines, first_name="Marie", last_name="Roux")
    await PhoneNumber.create(alternate_contact=mother, number="06 11 22 33 44", for_sms=True)
    practice = await make.practice()
    for to, purpose in (
        ("ines@example.org", "reminder"),
        ("06 11 22 33 44", "reminder"),
        ("06 99 99 99 99", "booking.practitioner"),
        ("parent@example.org", "message.notice"),
    ):
        await OutboxMessage.create(
            channel="email" if "@" in to else "sms",
            to=to,
            body_text="…",
            purpose=purpose,
            client_id=ines.id,
            practice_id=practice.id,
        )
    r, archive = await export_of(new_http, alice, ines)
    assert r.status_code == 200 and archive is not None
    record = json.loads(archive.read("record.json"))
    assert [m["to"] for m in record["logs"]["sent"]] == ["ines@example.org", "06 11 22 33 44"]


# --- billing ----------------------------------------------------------------------------------


@pytest.fixture
async def billed(make: Factory, practice: dict[str, Any]) -> dict[str, Any]:
    """Hélène's billing, by the owner for the practice (10% tax): invoice A (a session and a
    report with a discount) paid by a cheque above its total, the rest kept as credit, part
    of it refunded; invoice B partly paid then cancelled by credit note C (what was paid
    moves to her credit); draft D. Then invoice L for Léo, in Bob's caseload, whom Hélène
    pays for. The issuer's name changes after all that."""
    owner, alice, bob = practice["owner"], practice["alice"], practice["bob"]
    helene: Client = practice["helene"]
    leo = await make.client(bob, first_name="Léo", last_name="Dubois")
    actor = Caller.acting_as(owner)
    practice_row = await make.practice()
    profile = ProfileChanges(
        legal_name="Cabinet Martin",
        address="1 rue de la Paix\n69001 Lyon",
        registration="SIRET 123 456 789 00012",
        email="compta@example.org",
        prefix="F-",
        yearly_reset=True,
        tax_rate=Decimal("10.00"),
        tax_exemption="",
        payment_days=30,
        footer="Merci de votre confiance",
    )
    await billing.do_update_profile(actor, practice_row, None, profile)

    async def draft(client: Client, practitioner: Any, on: date, payer: Payer) -> Invoice:
        consultation = await billing.do_create_consultation(
            actor, client, practitioner, on_date=on, title=f"Séance du {on.isoformat()}"
        )
        [invoice] = await billing.do_bill(
            actor,
            practice_row,
            None,
            [consultation],
            method=BillingMethod.PER_CLIENT,
            payer=payer,
        )
        return invoice

    a = await draft(helene, alice, date(2026, 3, 2), Payer())
    report = LineIn(
        "Compte rendu écrit",
        Decimal("30"),
        quantity=Decimal("2"),
        discount=Decimal("5"),
        on_date=date(2026, 3, 3),
    )
    await billing.do_add_line(actor, a, report)
    await billing.do_finalize(actor, a)
    cheque = await billing.do_record_payment(
        actor, a, PaymentIn(Decimal("150"), PaymentMethodUsed.CHEQUE, date(2026, 3, 10), "CHQ-001")
    )
    refund = await billing.do_refund(
        actor, helene, PaymentIn(Decimal("10"), PaymentMethodUsed.CASH, date(2026, 3, 20))
    )
    b = await draft(helene, alice, date(2026, 3, 16), Payer())
    await billing.do_finalize(actor, b)
    await billing.do_record_payment(
        actor, b, PaymentIn(Decimal("20"), PaymentMethodUsed.CARD, date(2026, 3, 17), "CB-42")
    )
    c = await billing.do_credit_note(actor, await Invoice.get(id=b.id), reason="Séance offerte")
    d = await draft(helene, alice, date(2026, 3, 23), Payer())
    leos = await draft(leo, bob, date(2026, 3, 5), Payer(client=helene))
    await billing.do_finalize(actor, leos)
    # Printed from the copies made when each was issued; a draft as things are now.
    await BillingProfile.filter(practice_id=practice_row.id, practitioner_id=None).update(
        legal_name="Cabinet Martin & Associés"
    )
    return {
        **practice,
        "leo": leo,
        "a": await Invoice.get(id=a.id),
        "b": await Invoice.get(id=b.id),
        "c": c,
        "d": d,
        "l": await Invoice.get(id=leos.id),
        "cheque": cheque,
        "refund": refund,
    }


async def test_the_export_holds_the_clients_invoices_payments_and_credit(
    new_http: Callable[..., httpx.AsyncClient], billed: dict[str, Any]
) -> None:
    a, b, c, d, leos = (billed[k] for k in "abcdl")
    r, archive = await export_of(new_http, billed["owner"], billed["helene"])
    assert r.status_code == 200 and archive is not None
    record = json.loads(archive.read("record.json"))
    assert record["format_version"] == 3
    assert "invoices" not in record["remarks"]
    assert "Billing is not part" not in json.dumps(record)
    invoices = {i["id"]: i for i in record["invoices"]}
    assert list(invoices) == [a.id, b.id, c.id, d.id, leos.id]

    first = invoices[a.id]
    assert (first["number"], first["kind"], first["status"]) == (a.number, "invoice", "finalized")
    assert first["this_client_is"] == "client"
    assert first["issued_on"] == a.issued_on.isoformat()
    assert first["due_on"] == (a.issued_on + timedelta(days=30)).isoformat()
    assert first["issuer"] == {
        "name": "Cabinet Martin",  # as issued, not as the settings read now
        "address": "1 rue de la Paix\n69001 Lyon",
        "registration": "SIRET 123 456 789 00012",
        "email": "compta@example.org",
        "footer": "Merci de votre confiance",
    }
    assert first["payer"] == {"kind": "client", "name": "Hélène Dubois", "address": "Lyon"}
    assert first["client_name"] == "Hélène Dubois"
    assert first["currency"] == "EUR"
    assert first["lines"] == [
        {
            "date": "2026-03-02",
            "description": "Séance individuelle — Séance du 2026-03-02",
            "quantity": "1.00",
            "unit_price": "70.00",
            "discount": "0.00",
            "tax_rate": "10.00",
            "amount": "70.00",
            "tax": "7.00",
        },
        {
            "date": "2026-03-03",
            "description": "Compte rendu écrit",
            "quantity": "2.00",
            "unit_price": "30.00",
            "discount": "5.00",
            "tax_rate": "10.00",
            "amount": "55.00",
            "tax": "5.50",
        },
    ]
    totals = ("subtotal", "discount_total", "tax_total", "total", "paid", "credited")
    assert [first[k] for k in totals] == ["130.00", "5.00", "12.50", "137.50", "137.50", "0.00"]
    assert first["balance_due"] == "0.00"
    cheque = billed["cheque"]
    assert first["payments"] == [
        {
            "id": cheque.id,
            "kind": "payment",
            "method": "cheque",
            "paid_on": "2026-03-10",
            "amount": "137.50",
            "reference": "CHQ-001",
            "part_of": None,
        }
    ]
    assert first["pdf"] == f"invoices/invoice-{a.number}.pdf"

    # B: paid 20, then cancelled: the 20 moved to her credit, nothing is due.
    second = invoices[b.id]
    assert [second[k] for k in totals] == ["70.00", "0.00", "7.00", "77.00", "0.00", "77.00"]
    assert second["balance_due"] == "0.00"
    assert [(p["method"], p["amount"], p["reference"]) for p in second["payments"]] == [
        ("card", "20.00", "CB-42"),
        ("credit", "-20.00", c.number),
    ]
    note = invoices[c.id]
    assert (note["kind"], note["status"], note["cancels"]) == ("credit_note", "finalized", b.number)
    assert note["due_on"] is None and note["balance_due"] is None
    assert note["total"] == "-77.00" and note["notes"] == "Séance offerte"
    assert [(x["unit_price"], x["amount"], x["tax"]) for x in note["lines"]] == [
        ("-70.00", "-70.00", "-7.00")
    ]
    assert note["issuer"]["name"] == "Cabinet Martin"
    assert note["pdf"] == f"invoices/credit-note-{c.number}.pdf"

    # The draft: marked, unnumbered, nothing due, no PDF, its issuer as it is now.
    draft = invoices[d.id]
    assert (draft["status"], draft["number"], draft["issued_on"]) == ("draft", None, None)
    assert (draft["total"], draft["balance_due"], draft["pdf"]) == ("77.00", None, None)
    assert draft["issuer"]["name"] == "Cabinet Martin & Associés"

    # Léo's session, addressed to Hélène: hers as the payer.
    theirs = invoices[leos.id]
    assert (theirs["this_client_is"], theirs["client_name"]) == ("payer", "Léo Dubois")
    assert theirs["payer"]["name"] == "Hélène Dubois" and theirs["balance_due"] == "77.00"

    # Her account: 12.50 kept from the cheque, 10.00 refunded, 20.00 moved from B.
    account = record["money_on_account"]
    assert account["currency"] == "EUR" and account["credit"] == "22.50"
    assert [
        (p["kind"], p["method"], p["amount"], p["part_of"] is not None) for p in account["payments"]
    ] == [
        ("payment", "cheque", "12.50", True),
        ("refund", "cash", "-10.00", False),
        ("payment", "credit", "20.00", True),
    ]
    assert account["payments"][0]["part_of"] == cheque.id
    assert account["payments"][1]["id"] == billed["refund"].id
    assert sum(Decimal(p["amount"]) for p in account["payments"]) == Decimal("22.50")
    assert isinstance(first["total"], str)  # money is never a float

    # Invoices are not clinical: the FHIR bundle is unchanged by them, and still validates.
    raw, _bundle = validated_bundle(archive)
    assert "Invoice" not in {e["resource"]["resourceType"] for e in raw["entry"]}
    entry = await AuditEntry.filter(action="client.exported").order_by("-id").first()
    assert entry is not None and entry.detail["invoices"] == 5
    # Shown in a later export's logs as the Logs tab shows it: no counts, no figures.
    _r, archive = await export_of(new_http, billed["owner"], billed["helene"])
    assert archive is not None
    later = json.loads(archive.read("record.json"))
    [shown] = [e for e in later["logs"]["audit"] if e["action"] == "client.exported"]
    assert shown["detail"] == {}


async def test_the_zip_holds_the_issued_invoices_pdfs(
    new_http: Callable[..., httpx.AsyncClient], billed: dict[str, Any]
) -> None:
    a, b, c, leos = (billed[k] for k in "abcl")
    r, archive = await export_of(new_http, billed["owner"], billed["helene"])
    assert r.status_code == 200 and archive is not None
    record = json.loads(archive.read("record.json"))
    pdfs = sorted(n for n in archive.namelist() if n.startswith("invoices/"))
    # Finalized invoices and credit notes only: the draft was never issued.
    assert pdfs == sorted(
        [
            f"invoices/invoice-{a.number}.pdf",
            f"invoices/invoice-{b.number}.pdf",
            f"invoices/credit-note-{c.number}.pdf",
            f"invoices/invoice-{leos.number}.pdf",
        ]
    )
    assert sorted(i["pdf"] for i in record["invoices"] if i["pdf"]) == pdfs
    for name in pdfs:
        content = archive.read(name)
        assert content.startswith(b"%PDF"), name
    issued = PdfReader(io.BytesIO(archive.read(f"invoices/invoice-{a.number}.pdf")))
    printed = issued.pages[0].extract_text()
    assert a.number in printed and "Cabinet Martin" in printed and "PAID" in printed
    assert "Associés" not in printed  # the issuer as issued
    note = PdfReader(io.BytesIO(archive.read(f"invoices/credit-note-{c.number}.pdf")))
    printed = note.pages[0].extract_text()
    assert "CREDIT NOTE" in printed and str(b.number) in printed


async def test_a_therapists_export_leaves_out_the_invoices_they_may_not_see(
    new_http: Callable[..., httpx.AsyncClient], billed: dict[str, Any]
) -> None:
    """Léo is Bob's client: Alice, Hélène's therapist, does not see the invoice Hélène pays
    for him, in the record or as a PDF; she is told that such invoices may be missing,
    whether there are any or not."""
    a, b, c, d, leos = (billed[k] for k in "abcdl")
    r, archive = await export_of(new_http, billed["alice"], billed["helene"])
    assert r.status_code == 200 and archive is not None
    record = json.loads(archive.read("record.json"))
    assert [i["id"] for i in record["invoices"]] == [a.id, b.id, c.id, d.id]
    assert not any(name.endswith(f"-{leos.number}.pdf") for name in archive.namelist())
    assert "Léo" not in json.dumps(record["invoices"])
    assert record["remarks"]["invoices"].startswith("Invoices this client pays for other")
    assert record["money_on_account"]["credit"] == "22.50"
    # The front desk bills for the whole practice: Léo's invoice is in its export.
    _r, archive = await export_of(new_http, billed["desk"], billed["helene"])
    assert archive is not None
    record = json.loads(archive.read("record.json"))
    assert leos.id in [i["id"] for i in record["invoices"]]
    assert "invoices" not in record["remarks"]
    assert f"invoices/invoice-{leos.number}.pdf" in archive.namelist()
    # Bob does not see Hélène at all.
    r, _archive = await export_of(new_http, billed["bob"], billed["helene"])
    assert r.status_code == 404


async def test_a_draft_note_is_exported_with_its_text_to_its_author_only(make: Factory) -> None:
    """The note page shows others only who is writing a draft, but the export gave the
    owner (and a supervisor, the front desk where allowed) its text. Others' drafts are
    listed with their author and state; their author's own export keeps the text."""
    practice = await make.practice()
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice")
    client = await make.client(alice, first_name="Hélène")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    office = await agenda.do_create_location(None, practice, name="Lyon")
    appt = await agenda.do_book_appointment(
        None,
        practitioner=alice,
        client=client,
        service=talk,
        starts_at=datetime.now(UTC),
        location=office,
    )
    as_alice = Caller.acting_as(alice)
    await notes.do_save_draft(as_alice, appt, NoteTemplate.BLANK, {"note": "Half-written"})
    record, _docs = await client_record(Caller.acting_as(owner), client)
    [draft] = record["session_notes"]
    assert draft["state"] == "draft" and draft["author"]["id"] == alice.id
    assert draft["sections"] is None and draft["template"] is None
    assert "Half-written" not in json.dumps(record)
    assert "session_notes" in record["remarks"]
    record, _docs = await client_record(as_alice, client)
    [draft] = record["session_notes"]
    assert draft["state"] == "draft" and draft["sections"] == {"note": "Half-written"}
    assert "session_notes" not in record["remarks"]
    assert draft["session_removed"] is False


async def test_a_note_whose_session_left_the_agenda_is_still_exported(make: Factory) -> None:
    """Before 3b6aaec a session with a signed note could be removed from the agenda, and the
    export then left the note out: a records request lost a signed clinical record."""
    practice = await make.practice()
    alice = await make.therapist(first_name="Alice")
    client = await make.client(alice, first_name="Hélène")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    office = await agenda.do_create_location(None, practice, name="Lyon")
    appt = await agenda.do_book_appointment(
        None,
        practitioner=alice,
        client=client,
        service=talk,
        starts_at=datetime.now(UTC),
        location=office,
    )
    as_alice = Caller.acting_as(alice)
    note = await notes.do_save_draft(as_alice, appt, NoteTemplate.BLANK, {"note": "Signed"})
    await notes.do_sign(as_alice, note)
    # Removed as the agenda removed it then (it refuses now).
    await Appointment.filter(id=appt.id).update(deleted_at=datetime.now(UTC))
    record, _docs = await client_record(as_alice, client)
    [kept] = record["session_notes"]
    assert kept["id"] == note.id and kept["sections"] == {"note": "Signed"}
    assert kept["session_removed"] is True
