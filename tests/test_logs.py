"""The Logs tab: what was sent about the client, the history of their sessions, and who did
or looked at what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from server.actions import agenda
from server.auth.sessions import Caller
from server.mail import queue_email
from tests.conftest import Factory, login


async def test_logs_show_mail_sessions_and_activity(http: httpx.AsyncClient, make: Factory) -> None:
    practice = await make.practice()
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    client = await make.client(alice, first_name="Hélène", last_name="Dubois")
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
