"""The staff home: today's sessions (a clinician's own; the front desk's whole practice) and
the open tasks, in the practice's time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from models.agenda import Attendance
from server.actions import agenda, tasks
from server.auth.sessions import Caller
from tests.conftest import Factory, login


async def test_home_lists_todays_sessions_for_each_role(make: Factory, new_http: Any) -> None:
    practice = await make.practice()
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    bruno = await make.therapist(first_name="Bruno", last_name="Garnier")
    desk = await make.office_admin()
    camille = await make.client(alice, first_name="Camille", last_name="Martin")
    denis = await make.client(alice, first_name="Denis", last_name="Roux")
    eva = await make.client(bruno, first_name="Eva", last_name="Blanc")
    service = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    office = await agenda.do_create_location(None, practice, name="Lyon")
    today = datetime.now(ZoneInfo(practice.time_zone)).date()

    async def book(who: Any, client: Any, hour: int, day: Any = today) -> Any:
        at = datetime.combine(day, time(hour), tzinfo=ZoneInfo(practice.time_zone))
        return await agenda.do_book_appointment(
            None, practitioner=who, client=client, service=service, starts_at=at, location=office
        )

    await book(alice, camille, 14)
    early = await book(alice, denis, 9)
    await agenda.do_set_attendance(None, early, Attendance.CANCELLED_BY_CLIENT)
    await book(bruno, eva, 10)
    await book(alice, camille, 9, today + timedelta(days=1))  # tomorrow: not today's
    await tasks.do_create_task(
        Caller.acting_as(alice), camille, note="Rappeler", assignee=alice, due_date=None
    )
    await tasks.do_create_task(
        Caller.acting_as(alice),
        camille,
        note="Courrier",
        assignee=alice,
        due_date=today - timedelta(days=2),
    )

    http = new_http()
    await login(http, alice)
    page = (await http.get("/staff/")).text
    assert page.index("Denis Roux") < page.index("Camille Martin")  # in time order
    assert "Cancelled by the client" in page and "Eva Blanc" not in page
    assert page.count("Camille Martin") == 1
    assert "2 open tasks" in page and "1 overdue" in page
    assert 'href="/staff/billing"' in page

    http = new_http()
    await login(http, desk)
    page = (await http.get("/staff/")).text
    assert "Eva Blanc" in page and "Bruno Garnier" in page and "Camille Martin" in page

    http = new_http()
    await login(http, await make.therapist(first_name="Nina"))
    assert "No session today." in (await http.get("/staff/")).text


async def test_home_day_runs_from_the_practice_midnight_to_midnight(
    make: Factory, new_http: Any
) -> None:
    """A session at 00:30 belongs to its own day. On SQLite the bounds went to the database
    as Paris times and were compared as text with UTC ones: the list ran from 01:00 (02:00
    in summer) to the same hour the next day."""
    practice = await make.practice()
    alice = await make.therapist()
    early = await make.client(alice, first_name="Early", last_name="Bird")
    late = await make.client(alice, first_name="Night", last_name="Owl")
    service = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=20, price=Decimal("70")
    )
    office = await agenda.do_create_location(None, practice, name="Lyon")
    tz = ZoneInfo(practice.time_zone)
    today = datetime.now(tz).date()
    for client, day in ((early, today), (late, today + timedelta(days=1))):
        at = datetime.combine(day, time(0, 30), tzinfo=tz)
        await agenda.do_book_appointment(
            None, practitioner=alice, client=client, service=service, starts_at=at, location=office
        )
    http = new_http()
    await login(http, alice)
    page = (await http.get("/staff/")).text
    assert "Early Bird" in page and "Night Owl" not in page


async def test_a_covered_session_links_its_note_not_a_file_one_cannot_open(
    make: Factory, new_http: Any
) -> None:
    """Bruno covers a session of Alice's client: her file is a 404 for him, so his home page
    names the client without linking it and links the session's note, which he writes."""
    practice = await make.practice()
    alice = await make.therapist(first_name="Alice")
    bruno = await make.therapist(first_name="Bruno")
    camille = await make.client(alice, first_name="Camille", last_name="Martin")
    eva = await make.client(bruno, first_name="Eva", last_name="Blanc")
    service = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    office = await agenda.do_create_location(None, practice, name="Lyon")
    today = datetime.now(ZoneInfo(practice.time_zone)).date()
    booked = []
    for hour, client in ((9, camille), (11, eva)):
        booked.append(
            await agenda.do_book_appointment(
                None,
                practitioner=bruno,
                client=client,
                service=service,
                starts_at=datetime.combine(today, time(hour), tzinfo=ZoneInfo(practice.time_zone)),
                location=office,
            )
        )
    covered, own = booked
    http = new_http()
    await login(http, bruno)
    page = (await http.get("/staff/")).text
    assert "Camille Martin" in page
    assert f'href="/staff/clients/{camille.id}"' not in page
    assert f'href="/staff/appointments/{covered.id}/note"' in page
    assert (await http.get(f"/staff/appointments/{covered.id}/note")).status_code == 200
    # His own client's file is linked as before.
    assert f'href="/staff/clients/{eva.id}"' in page
    assert f'href="/staff/appointments/{own.id}/note"' not in page
