"""The Logs tab: what was sent about the client, the history of their sessions, and who did
or looked at what."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from models.accounts import Practice
from models.notes import NoteTemplate
from server.actions import agenda, audit, notes
from server.auth.sessions import Caller
from server.export import client_record
from server.mail import queue_email
from tests.conftest import Factory, login


async def test_logs_show_mail_sessions_and_activity(http: httpx.AsyncClient, make: Factory) -> None:
    practice = await make.practice()
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    client = await make.client(
        alice, first_name="Hélène", last_name="Dubois", email="helene@example.org"
    )
    other = await make.client(alice, first_name="Other", last_name="Client")
    office = await agenda.do_create_location(None, practice, name="Lyon")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    as_alice = Caller.acting_as(alice)
    appt = await agenda.do_book_appointment(
        as_alice,
        practitioner=alice,
        client=client,
        service=talk,
        starts_at=datetime.now(UTC) + timedelta(days=2),
        location=office,
    )
    await agenda.do_set_attendance(as_alice, appt, agenda.Attendance.CANCELLED_BY_CLIENT)
    await queue_email("helene@example.org", "Your appointment", "…", client_id=client.id)
    await queue_email("other@example.org", "Not hers", "…", client_id=other.id)
    await login(http, alice)
    await http.get(f"/staff/clients/{client.id}/contact")  # a read, logged
    page = await http.get(f"/staff/clients/{client.id}/logs")
    assert page.status_code == 200
    text = page.text
    assert "helene@example.org" in text and "Your appointment" in text
    assert "Not hers" not in text  # another client's mail stays in their file
    assert "Alice Mercier</strong> booked a session" in text
    assert "(Scheduled → Cancelled by the client)" in text
    assert "opened the file" in text


async def test_logs_and_export_name_no_one_the_reader_may_not_see(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """A notice to a linked person (another client, maybe a colleague's) is filed under the
    conversation's client: the Logs tab showed that person's address. The export's audit
    entries copied their details whole: the names of the people added to a conversation, a
    linked file's id. Both now keep to the client, their circle, the staff, and the details
    the tab itself shows. Found by an access audit."""
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    client = await make.client(alice, first_name="Hélène", last_name="Dubois")
    await queue_email(
        "parent.elsewhere@example.org", "A message is waiting", "…", client_id=client.id
    )
    await queue_email(alice.email, "New message notice", "…", client_id=client.id)
    await audit.record(
        Caller.acting_as(alice),
        "conversation.participants_added",
        object_type="conversation",
        object_id=1,
        client_id=client.id,
        detail={"participants": ["Secret Person"], "linked_client_id": 999},
    )
    await audit.record(
        Caller.acting_as(alice),
        "client.contact_updated",
        object_type="client",
        object_id=client.id,
        client_id=client.id,
        detail={"fields": ["phone"]},
    )
    await login(http, alice)
    page = (await http.get(f"/staff/clients/{client.id}/logs")).text
    assert "parent.elsewhere@example.org" not in page
    assert alice.email in page  # the practitioner's own notice is the practice's business
    assert "changed contact details (Phone numbers)" in page
    record, _documents = await client_record(Caller.acting_as(alice), client)
    text = json.dumps(record["logs"], default=str)
    # Not "999" alone: a timestamp's microseconds may hold it.
    assert "parent.elsewhere" not in text and "Secret Person" not in text
    assert "linked_client_id" not in text
    assert '"fields": ["phone"]' in text


def _codes_written() -> tuple[set[str], set[str], set[str]]:
    """Every audit action, object kind and email/SMS purpose the code writes as a literal
    (both branches of ``"a" if x else "b"``, and the ``event=`` of shared helpers)."""
    import ast

    from server.settings import ROOT

    actions: set[str] = set()
    objects: set[str] = set()
    purposes: set[str] = set()

    def strings(node: ast.AST) -> set[str]:
        return {
            n.value
            for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }

    for folder in ("server", "staff", "portal"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("record", "_audit") and len(node.args) > 1:
                    if isinstance(node.args[1], ast.JoinedStr):
                        continue  # record_read's f"read.{what}", listed from its callers
                    actions |= strings(node.args[1])
                if name == "record_read" and len(node.args) > 2:
                    actions |= {f"read.{what}" for what in strings(node.args[2])}
                for keyword in node.keywords:
                    if keyword.arg == "event":
                        actions |= strings(keyword.value)
                    elif keyword.arg == "object_type":
                        objects |= strings(keyword.value)
                    elif keyword.arg == "purpose" and name in (
                        "queue_email",
                        "queue_sms",
                        "email_client",
                    ):
                        purposes |= strings(keyword.value)
    return actions, objects, purposes


def test_every_code_the_app_writes_has_words() -> None:
    # The Logs tab and the audit trail showed "invoice.created", "form_sent",
    # "form_assignment 1": codes with no label. Each one the code writes now has one.
    from server.audit_labels import ACTION_LABELS, OBJECT_LABELS, PURPOSE_LABELS, action_label

    actions, objects, purposes = _codes_written()
    assert {"invoice.created", "form.sent", "read.file", "auth.logout"} <= actions
    assert actions - ACTION_LABELS.keys() == set()
    assert {"client", "form_assignment"} <= objects
    assert objects - OBJECT_LABELS.keys() == set()
    assert {"form_sent", "measure_sent", "reminder"} <= purposes
    assert purposes - PURPOSE_LABELS.keys() == set()
    # A code added later without a label still reads as words.
    assert action_label("invoice.line_moved") == "invoice line moved"


async def test_the_logs_tab_speaks_french_not_codes(http: httpx.AsyncClient, make: Factory) -> None:
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    client = await make.client(
        alice, first_name="Amira", last_name="Benali", email="amira@example.org"
    )
    practice = await make.practice()
    office = await agenda.do_create_location(None, practice, name="Lyon")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    appt = await agenda.do_book_appointment(
        Caller.acting_as(alice),
        practitioner=alice,
        client=client,
        service=talk,
        starts_at=datetime.now(UTC) + timedelta(days=2),
        location=office,
    )
    await agenda.do_set_attendance(
        Caller.acting_as(alice), appt, agenda.Attendance.CANCELLED_BY_PRACTITIONER
    )
    await audit.record(
        None,
        "form.sent",
        object_type="form_assignment",
        object_id=1,
        client_id=client.id,
        practice_id=practice.id,
    )
    await audit.record(
        None,
        "invoice.finalized",
        object_type="invoice",
        object_id=1,
        client_id=client.id,
        practice_id=practice.id,
    )
    await queue_email(
        "amira@example.org",
        "Un formulaire vous attend",
        "…",
        client_id=client.id,
        purpose="form_sent",
    )
    await login(http, alice)
    page = await http.get(
        f"/staff/clients/{client.id}/logs", headers={"Accept-Language": "fr-FR,fr;q=0.9"}
    )
    text = page.text
    assert "(Prévu → Annulé par le praticien)" in text
    assert "a envoyé un formulaire" in text and "a finalisé une facture" in text
    assert "Cabinet (automatique)" in text
    assert "Formulaire à remplir" in text
    for code in (
        "form.sent",
        "invoice.finalized",
        "form_sent",
        "cancelled_by_practitioner",
        ">system<",
    ):
        assert code not in text, code
    # The two columns no longer read the same.
    assert "<th>Motif</th>" in text and "<th>Objet</th>" in text


def test_the_fields_an_entry_names_read_as_the_forms_name_them() -> None:
    """ "a modifié les informations cliniques (clinical_comments)": the Logs tab printed the
    column names a change touched."""
    from types import SimpleNamespace

    from server import i18n
    from server.audit_labels import describe

    entry = SimpleNamespace(
        action="client.clinical_updated", detail={"fields": ["clinical_comments", "referral"]}
    )
    i18n.set_locale("fr")
    try:
        text = describe(entry)
    finally:
        i18n.set_locale("en")
    assert "clinical_comments" not in text and "(Remarques, Adressé par)" in text


async def test_note_activity_is_clinical(
    new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """The sessions tab keeps the notes from a front desk that may not read clinical
    details, but the Logs tab (and the export's logs) told it who started, signed and read
    a session note, and when."""
    practice = await make.practice()
    alice = await make.therapist(first_name="Alice")
    desk = await make.office_admin()
    client = await make.client(alice, first_name="Hélène")
    office = await agenda.do_create_location(None, practice, name="Lyon")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    as_alice = Caller.acting_as(alice)
    appt = await agenda.do_book_appointment(
        as_alice,
        practitioner=alice,
        client=client,
        service=talk,
        starts_at=datetime.now(UTC) - timedelta(days=1),
        location=office,
    )
    note = await notes.do_save_draft(as_alice, appt, NoteTemplate.BLANK, {"note": "x"})
    await notes.do_save_draft(as_alice, appt, NoteTemplate.BLANK, {"note": "xy"})
    await notes.do_sign(as_alice, note)
    await notes.do_add_addendum(as_alice, note, "later")
    await audit.record_read(as_alice, client.id, "note")
    # Reading the clinical details or a questionnaire's answers says as much.
    await audit.record_read(as_alice, client.id, "clinical")
    await audit.record_read(as_alice, client.id, "measures")
    http = new_http("10.9.0.1")
    await login(http, desk)
    page = await http.get(f"/staff/clients/{client.id}/logs")
    assert page.status_code == 200 and "booked a session" in page.text
    assert "session note" not in page.text and "addendum" not in page.text
    assert "draft note" not in page.text
    assert "clinical details" not in page.text and "questionnaire answers" not in page.text
    record, _docs = await client_record(Caller.acting_as(desk), client)
    actions = {e["action"] for e in record["logs"]["audit"]}
    hidden = {"read.note", "read.clinical", "read.measures"}
    assert not {a for a in actions if a.startswith("note.") or a in hidden}, actions
    # Where the practice opens clinical details to the front desk, it sees them.
    await Practice.filter(id=practice.id).update(office_admins_see_clinical=True)
    page = await http.get(f"/staff/clients/{client.id}/logs")
    assert "signed a session note" in page.text and "read a session note" in page.text
