"""The portal's first screen: what waits for the client (questionnaires, forms) and their
next appointment, on the tiles; nothing of anyone else's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from models.forms import FieldKind, FormPurpose
from models.measures import MeasureKind
from server.actions import agenda, forms, measures
from server.auth.sessions import Caller
from server.form_fields import FieldIn
from tests.conftest import Factory, login


async def test_home_tiles_say_what_waits_and_when_the_next_session_is(
    http: httpx.AsyncClient, make: Factory, new_http: Any
) -> None:
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    client = await make.client(alice, first_name="Camille")
    other = await make.client(alice, first_name="Other")
    await login(http, client)
    page = (await http.get("/portal/")).text
    assert "to fill in" not in page and "to complete" not in page and "Next:" not in page
    assert 'href="/portal/measures"' in page and 'href="/portal/forms"' in page

    actor = Caller.acting_as(alice)
    await measures.do_send_measure(actor, client, MeasureKind.PHQ9)
    await measures.do_send_measure(actor, client, MeasureKind.GAD7)
    template = await forms.do_create_form(actor, "Intake", FormPurpose.INTAKE)
    await forms.do_edit_form(
        actor, template, add=FieldIn(kind=FieldKind.SHORT_TEXT, label="Name", required=True)
    )
    await forms.do_send_form(actor, client, template)
    practice = await make.practice()
    service = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    start = (datetime.now(UTC) + timedelta(days=3)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    office = await agenda.do_create_location(None, practice, name="Lyon")
    await agenda.do_book_appointment(
        None,
        practitioner=alice,
        client=client,
        service=service,
        starts_at=start,
        location=office,
    )

    page = (await http.get("/portal/")).text
    assert "2 questionnaires to fill in" in page and "1 form to complete" in page
    local = start.astimezone(ZoneInfo(practice.time_zone))
    assert f"Next: {local:%A}, {local:%B} {local.day}, {local.year}" in page
    # The other client's home says nothing of it.
    theirs = new_http()
    await login(theirs, other)
    page = (await theirs.get("/portal/")).text
    assert "to fill in" not in page and "to complete" not in page and "Next:" not in page
