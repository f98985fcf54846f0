"""The Logs tab: what was sent about the client, the history of their sessions, and who did
or looked at what."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from server.actions import agenda, audit
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
    assert "(scheduled → cancelled_by_client)" in text
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
    assert "changed contact details (phone)" in page
    record, _documents = await client_record(Caller.acting_as(alice), client)
    text = json.dumps(record["logs"], default=str)
    assert "parent.elsewhere" not in text and "Secret Person" not in text and "999" not in text
    assert '"fields": ["phone"]' in text
