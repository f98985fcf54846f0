"""Export client: the zip holds the whole record as the caller may see it, a FHIR R4 Bundle
that validates, and the documents' bytes; producing it is recorded; outsiders get 404."""

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

from models.accounts import PortalAccount, Practice
from models.agenda import Attendance
from models.audit import AuditEntry
from models.clients import AlternateContact, Client, PhoneNumber, Relationship
from models.notes import NoteTemplate
from models.notifications import OutboxMessage
from server.actions import agenda, notes
from server.actions.clients import do_link_clients
from server.auth.sessions import Caller
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
    # Not there yet, and said so rather than silently missing.
    assert record["invoices"] == [] and "invoices" in record["remarks"]
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
