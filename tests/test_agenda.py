"""The agenda's rules: free slots from availability (weekly hours, one-off openings, time
off, durations, group capacity, daylight saving), no double booking, attendance."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.agenda import Appointment, Attendance, TimeOff
from server.actions import agenda
from server.errors import Conflict, ValidationFailed
from server.queries.agenda import Busy, Window, free_slots, slots_for
from tests.conftest import Factory

PARIS = ZoneInfo("Europe/Paris")
MONDAY = date(2027, 3, 1)  # a Monday, in winter time
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def paris(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), PARIS).astimezone(UTC)


@pytest.fixture
async def setup(make: Factory) -> dict[str, Any]:
    practice = await make.practice()
    cats = await agenda.ensure_builtin_categories(practice)
    alice = await make.therapist(first_name="Alice")
    office = await agenda.do_create_location(None, practice, name="Cabinet Lyon")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    short = await agenda.do_create_service(
        None, practice, name="Point", duration_minutes=25, price=Decimal("35")
    )
    group = await agenda.do_create_service(
        None,
        practice,
        name="Groupe",
        duration_minutes=90,
        price=Decimal("30"),
        category=cats[agenda.BuiltinCategory.GROUP],
    )
    video = await agenda.do_create_service(
        None,
        practice,
        name="Visio",
        duration_minutes=50,
        price=Decimal("70"),
        category=cats[agenda.BuiltinCategory.TELECONSULTATION],
    )
    # Mondays 9:00-12:20 at the office: four 50-minute sessions or eight short ones.
    await agenda.do_add_availability(
        None,
        alice,
        services=[talk, short, video],
        weekday=0,
        start_time=time(9),
        end_time=time(12, 20),
        location=office,
    )
    clients = [await make.client(alice, first_name=f"C{i}") for i in range(4)]
    return {
        "practice": practice,
        "alice": alice,
        "office": office,
        "talk": talk,
        "short": short,
        "group": group,
        "video": video,
        "clients": clients,
    }


async def talk(s: dict[str, Any], client: int, starts_at: datetime) -> Appointment:
    """Book client ``client`` of the fixture for a session with Alice at the office."""
    return await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["clients"][client],
        service=s["talk"],
        starts_at=starts_at,
        location=s["office"],
    )


async def slots(
    s: dict[str, Any], service: str, first: date = MONDAY, days: int = 0
) -> list[datetime]:
    svc = s[service]
    found = await slots_for(
        s["alice"].id,
        svc.id,
        timedelta(minutes=svc.duration_minutes),
        PARIS,
        first,
        first + timedelta(days=days),
        now=LONG_AGO,
    )
    return [f.start for f in found]


async def test_weekly_hours_make_slots_of_the_service_duration(setup: dict[str, Any]) -> None:
    assert await slots(setup, "talk") == [
        paris(MONDAY, h, m) for h, m in [(9, 0), (9, 50), (10, 40), (11, 30)]
    ]
    assert len(await slots(setup, "short")) == 8
    # Only Mondays, and only the services offered there.
    assert await slots(setup, "talk", MONDAY + timedelta(days=1), days=5) == []
    assert await slots(setup, "group") == []


async def test_valid_dates_one_off_openings_and_time_off(setup: dict[str, Any]) -> None:
    s = setup
    await agenda.do_add_availability(
        None,
        s["alice"],
        services=[s["talk"]],
        on_date=MONDAY + timedelta(days=3),
        start_time=time(14),
        end_time=time(15),
        location=s["office"],
    )
    week = await slots(s, "talk", days=6)
    assert paris(MONDAY + timedelta(days=3), 14) in week
    # A holiday closes the hours it covers.
    await TimeOff.create(
        practitioner=s["alice"], starts_at=paris(MONDAY, 9), ends_at=paris(MONDAY, 10, 30)
    )
    assert (await slots(s, "talk"))[0] == paris(MONDAY, 10, 40)


async def test_daylight_saving_keeps_local_hours(setup: dict[str, Any]) -> None:
    # 2027-03-28 is the spring change in Paris: 9:00 local is 8:00 UTC before, 7:00 after.
    before, after = date(2027, 3, 22), date(2027, 3, 29)
    assert (await slots(setup, "talk", before))[0] == datetime(2027, 3, 22, 8, tzinfo=UTC)
    assert (await slots(setup, "talk", after))[0] == datetime(2027, 3, 29, 7, tzinfo=UTC)


async def test_bookings_take_slots_and_double_booking_is_refused(setup: dict[str, Any]) -> None:
    s = setup
    first = await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["clients"][0],
        service=s["talk"],
        starts_at=paris(MONDAY, 9),
        location=s["office"],
    )
    assert paris(MONDAY, 9) not in await slots(s, "talk")
    # The short service's slots that overlap 9:00-9:50 are gone too.
    assert paris(MONDAY, 9, 25) not in await slots(s, "short")
    with pytest.raises(Conflict) as refused:
        await agenda.do_book_appointment(
            None,
            practitioner=s["alice"],
            client=s["clients"][1],
            service=s["short"],
            starts_at=paris(MONDAY, 9, 25),
            location=s["office"],
        )
    assert "Séance" in refused.value.message  # says what it collides with
    assert await Appointment.all().count() == 1
    # Cancelling frees the slot; going back to scheduled is refused once someone took it.
    await agenda.do_set_attendance(None, first, Attendance.CANCELLED_BY_CLIENT)
    assert paris(MONDAY, 9) in await slots(s, "talk")
    await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["clients"][1],
        service=s["talk"],
        starts_at=paris(MONDAY, 9),
        location=s["office"],
    )
    with pytest.raises(Conflict):
        await agenda.do_set_attendance(None, first, Attendance.SCHEDULED)


async def test_attendance_transitions(setup: dict[str, Any]) -> None:
    s = setup
    appt = await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["clients"][0],
        service=s["talk"],
        starts_at=paris(MONDAY, 9),
        location=s["office"],
    )
    await agenda.do_set_attendance(None, appt, Attendance.ATTENDED)
    await agenda.do_set_attendance(None, appt, Attendance.NO_SHOW)  # a correction
    with pytest.raises(Conflict):
        await agenda.do_set_attendance(None, appt, Attendance.CANCELLED_BY_PRACTITIONER)
    await agenda.do_set_attendance(None, appt, Attendance.SCHEDULED)
    moved_to = await agenda.do_move_appointment(None, appt, paris(MONDAY, 11, 30))
    await appt.refresh_from_db()
    assert appt.attendance is Attendance.MOVED and moved_to.attendance is Attendance.SCHEDULED
    # The new appointment remembers the one it replaced (questionnaires follow the session).
    assert (await Appointment.get(id=moved_to.id)).moved_from_id == appt.id  # type: ignore[attr-defined]
    assert paris(MONDAY, 9) in await slots(s, "talk")  # the old slot is free again
    with pytest.raises(Conflict):
        await agenda.do_set_attendance(None, appt, Attendance.SCHEDULED)  # moved is final
    await agenda.do_delete_appointment(None, moved_to)
    assert paris(MONDAY, 11, 30) in await slots(s, "talk")
    assert await Appointment.filter(id=moved_to.id).exists()  # soft: the record stays


async def test_a_move_within_the_appointments_own_time(setup: dict[str, Any]) -> None:
    """09:00 to 09:30: the appointment's own time is not a clash (it was refused, naming the
    appointment being moved), and the part of the old time the new one covers is never
    offered to clients waiting for an earlier slot."""
    from models.jobs import Job, JobStatus
    from models.offers import FreedSlot, SlotStatus

    s = setup
    s["practice"].earlier_slot_alerts = True
    await s["practice"].save()
    appt = await talk(s, 0, paris(MONDAY, 9))
    moved_to = await agenda.do_move_appointment(None, appt, paris(MONDAY, 9, 30))
    assert moved_to.starts_at == paris(MONDAY, 9, 30)
    await appt.refresh_from_db()
    assert appt.attendance is Attendance.MOVED
    (freed,) = await FreedSlot.filter(appointment_id=appt.id)
    assert freed.status is SlotStatus.TAKEN
    assert not await Job.filter(key=f"offers.round:{freed.id}", status=JobStatus.PENDING).exists()
    # Another client's appointment is still a clash.
    await talk(s, 1, paris(MONDAY, 10, 30))
    with pytest.raises(Conflict):
        await agenda.do_move_appointment(None, moved_to, paris(MONDAY, 10))


async def test_two_changes_of_one_appointment_at_once_do_not_both_pass(
    setup: dict[str, Any],
) -> None:
    """Each handler loads the appointment, then acts: the second, on what it loaded, must not
    move it again (two live appointments for one) or write "moved" over a cancellation."""
    s = setup
    appt = await talk(s, 0, paris(MONDAY, 9))
    first, second = await Appointment.get(id=appt.id), await Appointment.get(id=appt.id)
    await agenda.do_move_appointment(None, first, paris(MONDAY, 10))
    with pytest.raises(Conflict):
        await agenda.do_move_appointment(None, second, paris(MONDAY, 11))
    live = await Appointment.filter(client_id=s["clients"][0].id, attendance=Attendance.SCHEDULED)
    assert [a.starts_at for a in live] == [paris(MONDAY, 10)]
    # The refused move booked nothing (its booking rolled back with it).
    assert not await Appointment.filter(starts_at=paris(MONDAY, 11)).exists()
    # The client cancels on the portal while the desk, on an older page, moves it.
    other = await talk(s, 1, paris(MONDAY, 11))
    seen_by_desk = await Appointment.get(id=other.id)
    await agenda.do_set_attendance(None, other, Attendance.CANCELLED_BY_CLIENT)
    with pytest.raises(Conflict):
        await agenda.do_move_appointment(None, seen_by_desk, paris(MONDAY, 11, 30))
    await other.refresh_from_db()
    assert other.attendance is Attendance.CANCELLED_BY_CLIENT


async def test_group_slot_capacity(setup: dict[str, Any]) -> None:
    s = setup
    await agenda.do_add_availability(
        None,
        s["alice"],
        services=[s["group"]],
        weekday=2,
        start_time=time(18),
        end_time=time(19, 30),
        location=s["office"],
        is_group_slot=True,
        capacity=3,
    )
    wednesday = MONDAY + timedelta(days=2)
    found = await slots_for(
        s["alice"].id,
        s["group"].id,
        timedelta(minutes=90),
        PARIS,
        wednesday,
        wednesday,
        now=LONG_AGO,
    )
    assert [(f.start, f.places_left) for f in found] == [(paris(wednesday, 18), 3)]
    for client in s["clients"][:3]:
        await agenda.do_book_appointment(
            None,
            practitioner=s["alice"],
            client=client,
            service=s["group"],
            starts_at=paris(wednesday, 18),
            location=s["office"],
        )
    with pytest.raises(Conflict):
        await agenda.do_book_appointment(
            None,
            practitioner=s["alice"],
            client=s["clients"][3],
            service=s["group"],
            starts_at=paris(wednesday, 18),
            location=s["office"],
        )
    assert await slots(s, "group", wednesday) == []


async def test_the_last_place_raced_for_goes_to_one(setup: dict[str, Any]) -> None:
    s = setup

    async def book(client: Any) -> Any:
        return await agenda.do_book_appointment(
            None,
            practitioner=s["alice"],
            client=client,
            service=s["talk"],
            starts_at=paris(MONDAY, 9),
            location=s["office"],
        )

    results = await asyncio.gather(*(book(c) for c in s["clients"][:3]), return_exceptions=True)
    assert sum(isinstance(r, Appointment) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 2
    assert await Appointment.all().count() == 1


async def test_teleconsultation_has_a_room_and_no_location(setup: dict[str, Any]) -> None:
    s = setup
    appt = await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["clients"][0],
        service=s["video"],
        starts_at=paris(MONDAY, 9),
        location=s["office"],
    )
    assert appt.location_id is None and len(appt.video_room) >= 16  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed):
        await agenda.do_book_appointment(
            None,
            practitioner=s["alice"],
            client=s["clients"][1],
            service=s["talk"],
            starts_at=paris(MONDAY, 11, 30),
        )


def test_free_slots_is_a_pure_function() -> None:
    start = datetime(2027, 1, 4, 8, tzinfo=UTC)
    window = Window(start, start + timedelta(hours=2), 1, frozenset({7}))
    busy = [Busy(start + timedelta(minutes=30), start + timedelta(minutes=60), 7)]
    got = free_slots([window], 7, timedelta(minutes=30), busy, [], not_before=start)
    assert [g.start - start for g in got] == [
        timedelta(0),
        timedelta(hours=1),
        timedelta(hours=1, minutes=30),
    ]
    # Nothing in the past.
    assert free_slots(
        [window], 7, timedelta(minutes=30), [], [], not_before=start + timedelta(hours=1, minutes=1)
    )[0].start == start + timedelta(hours=1, minutes=30)


async def test_hours_changes_reach_open_agendas(
    setup: dict[str, Any], capture_events: Any, make: Factory
) -> None:
    desk = await make.office_admin()
    captured = capture_events()
    s = setup
    availability = await agenda.do_add_availability(
        None,
        s["alice"],
        services=[s["talk"]],
        weekday=4,
        start_time=time(9),
        end_time=time(12),
        location=s["office"],
    )
    await agenda.do_remove_availability(None, availability)
    events = captured.of_type("hours.changed")
    assert {e.recipient for e in events} == {f"s:{s['alice'].id}", f"s:{desk.id}"}
    assert all(e.payload == {"practitioner_id": s["alice"].id} for e in events)
    assert len(events) == 4  # two changes, two staff members each


async def _group_slot(s: dict[str, Any], weekday: int, start: time, capacity: int) -> None:
    await agenda.do_add_availability(
        None,
        s["alice"],
        services=[s["group"]],
        weekday=weekday,
        start_time=start,
        end_time=(datetime.combine(MONDAY, start) + timedelta(minutes=90)).time(),
        location=s["office"],
        is_group_slot=True,
        capacity=capacity,
    )


async def _group(s: dict[str, Any], client: int, starts_at: datetime, **kw: Any) -> Appointment:
    return await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["clients"][client],
        service=s["group"],
        starts_at=starts_at,
        location=kw.get("location", s["office"]),
    )


async def test_a_group_slot_holds_its_own_capacity_not_another_days(
    setup: dict[str, Any],
) -> None:
    """Wednesday's group holds two; Thursday's, of the same service, eight. The booking
    check took the largest of any day, and let eight into Wednesday's two places."""
    s = setup
    wednesday = MONDAY + timedelta(days=2)
    await _group_slot(s, 2, time(18), 2)
    await _group_slot(s, 3, time(10), 8)
    await _group(s, 0, paris(wednesday, 18))
    await _group(s, 1, paris(wednesday, 18))
    with pytest.raises(Conflict, match="This group slot is full"):
        await _group(s, 2, paris(wednesday, 18))
    # Thursday's session has its own eight places.
    for client in range(3):
        await _group(s, client, paris(wednesday + timedelta(days=1), 10))


async def test_an_ad_hoc_group_outside_the_group_slots(setup: dict[str, Any]) -> None:
    """The front desk may still run a group session outside the group slots' hours (up to
    the size of the service's group slots), and hears why when the service has none."""
    s = setup
    wednesday = MONDAY + timedelta(days=2)
    with pytest.raises(Conflict, match="A group service needs a group slot"):
        await _group(s, 0, paris(wednesday, 14))
    await _group_slot(s, 2, time(18), 2)
    await _group(s, 0, paris(wednesday, 14))
    await _group(s, 1, paris(wednesday, 14))
    with pytest.raises(Conflict, match="This group slot is full"):
        await _group(s, 2, paris(wednesday, 14))


async def test_one_group_session_is_not_held_at_two_locations_at_once(
    setup: dict[str, Any],
) -> None:
    """The same service at the same time was shared whatever the location: Alice's 18:00
    group was confirmed at the office to one client and elsewhere to another."""
    s = setup
    wednesday = MONDAY + timedelta(days=2)
    await _group_slot(s, 2, time(18), 3)
    elsewhere = await agenda.do_create_location(None, s["practice"], name="Villeurbanne")
    await _group(s, 0, paris(wednesday, 18))
    with pytest.raises(Conflict, match="already has Groupe"):
        await _group(s, 1, paris(wednesday, 18), location=elsewhere)
    assert await Appointment.filter(service_id=s["group"].id).count() == 1


async def test_a_group_booking_sent_twice_keeps_one_place(setup: dict[str, Any]) -> None:
    """A double click at the desk on a group with places left took two places for one
    client: the second finds the first."""
    s = setup
    wednesday = MONDAY + timedelta(days=2)
    await _group_slot(s, 2, time(18), 3)
    first = await _group(s, 0, paris(wednesday, 18))
    again = await _group(s, 0, paris(wednesday, 18))
    assert again.id == first.id
    assert await Appointment.filter(service_id=s["group"].id).count() == 1
    await _group(s, 1, paris(wednesday, 18))
    await _group(s, 2, paris(wednesday, 18))


async def test_a_move_or_a_reinstatement_never_gives_a_client_two_places_in_a_session(
    setup: dict[str, Any],
) -> None:
    """A client with a place in Wednesday's group had another one moved in, or a cancelled
    place there set back to scheduled: two places for one person, one of someone else's."""
    s = setup
    wednesday = MONDAY + timedelta(days=2)
    thursday = MONDAY + timedelta(days=3)
    await _group_slot(s, 2, time(18), 3)
    await _group_slot(s, 3, time(18), 3)
    await _group(s, 0, paris(wednesday, 18))
    later = await _group(s, 0, paris(thursday, 18))
    with pytest.raises(Conflict, match="already has a place"):
        await agenda.do_move_appointment(None, later, paris(wednesday, 18))
    assert (await Appointment.get(id=later.id)).attendance is Attendance.SCHEDULED
    cancelled = await _group(s, 1, paris(wednesday, 18))
    await agenda.do_set_attendance(None, cancelled, Attendance.CANCELLED_BY_CLIENT)
    await _group(s, 1, paris(wednesday, 18))  # booked again meanwhile
    with pytest.raises(Conflict, match="already has a place"):
        await agenda.do_set_attendance(None, cancelled, Attendance.SCHEDULED)
    held = Appointment.filter(starts_at=paris(wednesday, 18), attendance=Attendance.SCHEDULED)
    assert sorted(a.client_id for a in await held) == sorted(  # type: ignore[attr-defined]
        [s["clients"][0].id, s["clients"][1].id]
    )


async def test_a_client_books_a_teleconsultation_offered_in_an_offices_hours(
    setup: dict[str, Any],
) -> None:
    """The check of the hours under the lock (for clients' own bookings) looks at the hours
    the client chose from, the office's, though a teleconsultation takes place remotely."""
    s = setup
    booked, _created = await agenda.do_book_or_find(
        None,
        practitioner=s["alice"],
        client=s["clients"][0],
        service=s["video"],
        starts_at=paris(MONDAY, 9),
        location=s["office"],
        within_hours=True,
    )
    assert booked.location_id is None and booked.video_room  # type: ignore[attr-defined]
    with pytest.raises(Conflict, match="no longer free"):
        await agenda.do_book_or_find(
            None,
            practitioner=s["alice"],
            client=s["clients"][1],
            service=s["video"],
            starts_at=paris(MONDAY, 14),
            location=s["office"],
            within_hours=True,
        )
