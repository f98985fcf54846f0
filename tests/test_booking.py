"""Online booking on the portal: a practitioner's page per location, free slots, booking
(and the race for the last place), confirmation email, cancellation within the notice."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from models.accounts import Practice
from models.agenda import Appointment, Attendance, Availability, Location
from models.notifications import OutboxMessage
from server.actions import agenda, booking
from server.auth.sessions import Caller
from tests.conftest import Factory, login


@pytest.fixture
async def practice(make: Factory) -> dict[str, Any]:
    p = await make.practice()
    cats = await agenda.ensure_builtin_categories(p)
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    lyon = await agenda.do_create_location(None, p, name="Lyon", address="3 rue de la Paix")
    villeurbanne = await agenda.do_create_location(None, p, name="Villeurbanne")
    talk = await agenda.do_create_service(
        None, p, name="Séance", duration_minutes=60, price=Decimal("70")
    )
    kids = await agenda.do_create_service(
        None, p, name="Séance enfant", duration_minutes=45, price=Decimal("60")
    )
    group = await agenda.do_create_service(
        None,
        p,
        name="Groupe",
        duration_minutes=60,
        price=Decimal("25"),
        category=cats[agenda.BuiltinCategory.GROUP],
    )
    # Three days ahead: the first free slots are beyond the default 24-hour notice.
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    # Lyon offers adults 9-11; Villeurbanne offers children 14-15 and a group at 18.
    await agenda.do_add_availability(
        None,
        alice,
        services=[talk],
        weekday=day.weekday(),
        start_time=time(9),
        end_time=time(11),
        location=lyon,
    )
    await agenda.do_add_availability(
        None,
        alice,
        services=[kids],
        weekday=day.weekday(),
        start_time=time(14),
        end_time=time(15),
        location=villeurbanne,
    )
    await agenda.do_add_availability(
        None,
        alice,
        services=[group],
        weekday=day.weekday(),
        start_time=time(18),
        end_time=time(19),
        location=villeurbanne,
        is_group_slot=True,
        capacity=2,
    )
    clients = [await make.client(alice, first_name=n, last_name="Client") for n in "ABC"]
    return {
        "alice": alice,
        "lyon": lyon,
        "villeurbanne": villeurbanne,
        "talk": talk,
        "kids": kids,
        "group": group,
        "clients": clients,
        "practice": p,
    }


def slot_times(html: str) -> list[str]:
    return re.findall(r'data-slot="([^"]+)"', html)


async def test_locations_switch_services_and_slots(
    http: httpx.AsyncClient, practice: dict[str, Any]
) -> None:
    await login(http, practice["clients"][0])
    alice, lyon, vil = practice["alice"], practice["lyon"], practice["villeurbanne"]
    assert f"/portal/book/{alice.id}" in (await http.get("/portal/appointments")).text
    page = await http.get(f"/portal/book/{alice.id}?location={lyon.id}")
    assert "Séance" in page.text and "Séance enfant" not in page.text
    page = await http.get(f"/portal/book/{alice.id}?location={vil.id}")
    assert "Séance enfant" in page.text and ">Séance ·" not in page.text
    page = await http.get(
        f"/portal/book/{alice.id}?location={lyon.id}&service={practice['talk'].id}"
    )
    assert len(slot_times(page.text)) >= 2  # 9:00 and 10:00 on each such weekday
    group = await http.get(
        f"/portal/book/{alice.id}?location={vil.id}&service={practice['group'].id}"
    )
    assert "2 places left" in group.text


async def book(
    http: httpx.AsyncClient, pid: int, service: int, location: int, start: str
) -> httpx.Response:
    return await http.post(
        f"/portal/book/{pid}",
        data={
            "csrf_token": http.headers["X-CSRF-Token"],
            "service_id": str(service),
            "location_id": str(location),
            "starts_at": start,
        },
    )


async def test_book_confirm_and_cancel(
    http: httpx.AsyncClient, new_http: Any, practice: dict[str, Any]
) -> None:
    client = practice["clients"][0]
    await login(http, client)
    alice, lyon, talk = practice["alice"], practice["lyon"], practice["talk"]
    page = await http.get(f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}")
    first = slot_times(page.text)[0]
    r = await book(http, alice.id, talk.id, lyon.id, first)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/appointments?booked=")
    appt = await Appointment.get(client_id=client.id)
    assert appt.starts_at == datetime.fromisoformat(first)
    mail = await OutboxMessage.get(purpose="appointment.confirmation")
    assert mail.to == client.email and "Alice Mercier" in mail.body_text
    # Not which therapy: a shared mailbox or a lock screen shows the mail (reminders too).
    assert talk.name not in mail.subject + mail.body_text + (mail.body_html or "")
    # The slot is gone for everyone.
    page = await http.get(f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}")
    assert first not in slot_times(page.text)
    # The same booking sent again (a retry after a lost answer, a double tap): it is booked,
    # once. It said "no longer free", and people booked a second slot.
    again = await book(http, alice.id, talk.id, lyon.id, first)
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    assert await Appointment.filter(client_id=client.id).count() == 1
    assert await OutboxMessage.filter(purpose="appointment.confirmation").count() == 1
    # Anyone else finds it taken.
    async with new_http("10.8.0.2") as other:
        await login(other, practice["clients"][1])
        taken = await book(other, alice.id, talk.id, lyon.id, first)
        assert taken.status_code == 409 and "no longer free" in taken.text
    # Not a time the practitioner offers: refused the same way.
    odd = (datetime.fromisoformat(first) + timedelta(minutes=7)).isoformat()
    assert (await book(http, alice.id, talk.id, lyon.id, odd)).status_code == 409
    # Cancel online: within the notice period (24 h by default) it is refused.
    listing = await http.get("/portal/appointments")
    main = listing.text.split("<main", 1)[1]
    assert "Séance" in main and f"/portal/appointments/{appt.id}/cancel" in main, main
    r = await http.post(
        f"/portal/appointments/{appt.id}/cancel", data={"csrf_token": http.headers["X-CSRF-Token"]}
    )
    assert r.status_code == 303
    await appt.refresh_from_db()
    assert appt.attendance is Attendance.CANCELLED_BY_CLIENT


async def test_cancellation_notice_and_other_clients(
    new_http: Any, practice: dict[str, Any]
) -> None:
    alice, lyon, talk = practice["alice"], practice["lyon"], practice["talk"]
    soon = datetime.now(UTC) + timedelta(hours=5)
    appt = await agenda.do_book_appointment(
        None,
        practitioner=alice,
        client=practice["clients"][0],
        service=talk,
        starts_at=soon,
        location=lyon,
    )
    owner = new_http("10.8.0.1")
    await login(owner, practice["clients"][0])
    token = {"csrf_token": owner.headers["X-CSRF-Token"]}
    r = await owner.post(f"/portal/appointments/{appt.id}/cancel", data=token)
    assert r.status_code == 409 and "contact the practice" in r.text
    await Practice.filter(id=practice["practice"].id).update(cancellation_notice_hours=2)
    # Someone else's appointment is a 404, same as a missing one.
    other = new_http("10.8.0.2")
    await login(other, practice["clients"][1])
    r = await other.post(
        f"/portal/appointments/{appt.id}/cancel", data={"csrf_token": other.headers["X-CSRF-Token"]}
    )
    assert r.status_code == 404
    assert "Séance" not in (await other.get("/portal/appointments")).text
    assert (
        await owner.post(f"/portal/appointments/{appt.id}/cancel", data=token)
    ).status_code == 303


@pytest.mark.parametrize("bigger_slot_elsewhere", [False, True])
async def test_two_clients_race_for_the_last_place(
    new_http: Any, practice: dict[str, Any], bigger_slot_elsewhere: bool
) -> None:
    alice, vil, group = practice["alice"], practice["villeurbanne"], practice["group"]
    if bigger_slot_elsewhere:
        # Another day's group slot of the same service, for eight: the check under the lock
        # took the largest capacity of any day, and let all three in.
        day = (datetime.now(UTC) + timedelta(days=3)).date()
        await agenda.do_add_availability(
            None,
            alice,
            services=[group],
            weekday=(day.weekday() + 1) % 7,
            start_time=time(10),
            end_time=time(11),
            location=vil,
            is_group_slot=True,
            capacity=8,
        )
    sessions = []
    for i, client in enumerate(practice["clients"]):
        http = new_http(f"10.8.1.{i}")
        await login(http, client)
        sessions.append(http)
    page = await sessions[0].get(f"/portal/book/{alice.id}?location={vil.id}&service={group.id}")
    start = slot_times(page.text)[0]
    # Two places, three clients at once: two get in, the third is told the slot is gone.
    results = await asyncio.gather(*(book(h, alice.id, group.id, vil.id, start) for h in sessions))
    assert sorted(r.status_code for r in results) == [303, 303, 409]
    assert await Appointment.filter(service_id=group.id).count() == 2


async def test_booking_off_and_unknown_practitioner(
    http: httpx.AsyncClient, practice: dict[str, Any], make: Factory
) -> None:
    await login(http, practice["clients"][0])
    desk = await make.office_admin()
    assert (await http.get(f"/portal/book/{desk.id}")).status_code == 404
    assert (await http.get("/portal/book/999999")).status_code == 404
    await Practice.filter(id=practice["practice"].id).update(online_booking=False)
    assert (await http.get(f"/portal/book/{practice['alice'].id}")).status_code == 404
    assert "Book online" not in (await http.get("/portal/appointments")).text


async def test_teleconsultation_link_and_home_visit_address(
    http: httpx.AsyncClient, practice: dict[str, Any], make: Factory
) -> None:
    from server.actions.booking import where
    from server.queries.agenda import video_link

    cats = await agenda.ensure_builtin_categories(practice["practice"])
    video = await agenda.do_create_service(
        None,
        practice["practice"],
        name="Visio",
        duration_minutes=50,
        price=Decimal("70"),
        category=cats[agenda.BuiltinCategory.TELECONSULTATION],
    )
    home = await agenda.do_create_service(
        None,
        practice["practice"],
        name="À domicile",
        duration_minutes=60,
        price=Decimal("90"),
        category=cats[agenda.BuiltinCategory.HOME_VISIT],
    )
    client = practice["clients"][0]
    client.address_line1, client.city = "12 rue Mercière", "Lyon"
    await client.save()
    start = datetime.now(UTC) + timedelta(days=10)
    remote = await agenda.do_book_appointment(
        None, practitioner=practice["alice"], client=client, service=video, starts_at=start
    )
    visit = await agenda.do_book_appointment(
        None,
        practitioner=practice["alice"],
        client=client,
        service=home,
        starts_at=start + timedelta(hours=2),
    )
    p = await Practice.get(id=practice["practice"].id)
    link = video_link(p.video_url_template, remote.video_room)
    assert link == f"https://meet.jit.si/cabinet-{remote.video_room}"
    assert link in where(remote, p, None, client)
    assert "12 rue Mercière" in where(visit, p, None, client)
    await login(http, client)
    page = await http.get("/portal/appointments")
    assert f'href="{link}"' in page.text and "12 rue Mercière" in page.text
    # Cancelled, the session has no link to join any more (the list showed "Join by video:
    # <link>" on it).
    await agenda.do_set_attendance(None, remote, Attendance.CANCELLED_BY_CLIENT)
    page = await http.get("/portal/appointments")
    assert link not in page.text and "Join by video" not in page.text
    assert link not in where(remote, p, None, client)
    # One moved, the new date has its link; the old one none.
    again = await agenda.do_book_appointment(
        None, practitioner=practice["alice"], client=client, service=video, starts_at=start
    )
    later = await agenda.do_move_appointment(None, again, start + timedelta(days=2))
    page = await http.get("/portal/appointments")
    assert video_link(p.video_url_template, later.video_room) in page.text
    assert video_link(p.video_url_template, again.video_room) not in page.text
    # Over: nothing to join.
    await Appointment.filter(id=later.id).update(
        starts_at=datetime.now(UTC) - timedelta(hours=2),
        ends_at=datetime.now(UTC) - timedelta(hours=1),
    )
    assert "Join by video" not in where(await Appointment.get(id=later.id), p, None, client)


async def test_clients_set_their_own_reminders_on_the_portal(
    http: httpx.AsyncClient, practice: dict[str, Any]
) -> None:
    from models.audit import AuditEntry
    from models.clients import Client, PhoneNumber
    from models.jobs import Job, JobStatus

    client, other = practice["clients"][0], practice["clients"][1]
    start = datetime.combine(
        (datetime.now(UTC) + timedelta(days=3)).date(), time(9), tzinfo=UTC
    ).replace(minute=0)
    appt = await agenda.do_book_appointment(
        None,
        practitioner=practice["alice"],
        client=client,
        service=practice["talk"],
        starts_at=start,
        location=practice["lyon"],
    )
    await login(http, client)

    async def save(email: str, sms: str) -> httpx.Response:
        return await http.post(
            "/portal/reminders",
            data={
                "csrf_token": http.headers["X-CSRF-Token"],
                "reminder_email_hours": email,
                "reminder_sms_hours": sms,
            },
        )

    async def pending() -> dict[str, datetime]:
        rows = await Job.filter(key__startswith="reminder:", status=JobStatus.PENDING)
        return {str(j.key): j.run_at for j in rows}

    page = await http.get("/portal/appointments")
    assert "data-reminders-form" in page.text and "there is none yet" in page.text
    # SMS without a number marked for them: refused, said next to the field, nothing changes.
    r = await save("24", "2")
    assert r.status_code == 422 and "no mobile number of yours" in r.text
    assert (await Client.get(id=client.id)).reminder_email_hours is None
    assert await pending() == {}
    # Out of range: refused too.
    r = await save("1", "")
    assert r.status_code == 422 and "between 2 and 72 hours" in r.text
    assert await pending() == {}

    await PhoneNumber.create(client=client, number="+33612345678", for_sms=True)
    r = await save("24", "2")
    assert r.status_code == 303 and r.headers["location"].endswith("reminders=1#reminders")
    fresh = await Client.get(id=client.id)
    assert (fresh.reminder_email_hours, fresh.reminder_sms_hours) == (24, 2)
    assert await pending() == {
        f"reminder:{appt.id}:client-{client.id}:email": start - timedelta(hours=24),
        f"reminder:{appt.id}:client-{client.id}:sms": start - timedelta(hours=2),
    }
    entry = await AuditEntry.get(action="client.reminders_updated", client_id=client.id)
    assert entry.detail == {"reminder_email_hours": 24, "reminder_sms_hours": 2}
    page = await http.get("/portal/appointments?reminders=1")
    assert "Your reminders are saved." in page.text
    assert '<option value="24" selected>' in page.text
    # Nobody else's reminders moved.
    assert (await Client.get(id=other.id)).reminder_email_hours is None

    # Off again: the reminders of every upcoming session go.
    assert (await save("", "")).status_code == 303
    assert await pending() == {}
    assert await AuditEntry.filter(action="client.reminders_updated").count() == 2


async def test_only_what_the_page_offers_can_be_booked(
    http: httpx.AsyncClient, practice: dict[str, Any]
) -> None:
    """The page offers slots up to six weeks out, at open locations; a hand-made form for
    anything else is refused like a slot someone else took, and a time at the edge of the
    calendar is a 422, not a 500. Nothing is booked."""
    await login(http, practice["clients"][0])
    alice, lyon, talk = practice["alice"], practice["lyon"], practice["talk"]
    page = await http.get(f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}")
    first = datetime.fromisoformat(slot_times(page.text)[0])
    # The same weekday and hour, seven weeks on: free, but beyond the horizon.
    tz = ZoneInfo(practice["practice"].time_zone)
    later = (first.astimezone(tz) + timedelta(weeks=7)).isoformat()
    r = await book(http, alice.id, talk.id, lyon.id, later)
    assert r.status_code == 409 and "no longer free" in r.text
    r = await book(http, alice.id, talk.id, lyon.id, "9999-12-31T10:00:00+00:00")
    assert r.status_code == 422  # past any calendar: bad input, like the year 1 below
    r = await book(http, alice.id, talk.id, lyon.id, "0001-01-01T00:00:00+05:00")
    assert r.status_code == 422
    # The practice closed Lyon: its old availability books nothing any more.
    await Location.filter(id=lyon.id).update(is_active=False)
    r = await book(http, alice.id, talk.id, lyon.id, first.isoformat())
    assert r.status_code == 409
    assert not await Appointment.exists()


async def test_the_remote_choice_offers_and_books_remote_slots_only(
    http: httpx.AsyncClient, practice: dict[str, Any]
) -> None:
    """Alice also sees clients by video at 16:00 on the same weekday as her Lyon mornings:
    the remote choice lists 16:00 alone, and a Lyon time posted as remote is refused (it
    was booked with no location, a video session in office hours). The Séance those hours
    also offer (saved before hours without a location were refused it) is not offered
    there: every booking of it was refused ("Choose a location")."""
    alice, lyon, talk = practice["alice"], practice["lyon"], practice["talk"]
    cats = await agenda.ensure_builtin_categories(practice["practice"])
    video = await agenda.do_create_service(
        None,
        practice["practice"],
        name="Visio",
        duration_minutes=60,
        price=Decimal("70"),
        category=cats[agenda.BuiltinCategory.TELECONSULTATION],
    )
    lyon_page = f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}"
    await login(http, practice["clients"][0])
    in_lyon = slot_times((await http.get(lyon_page)).text)
    day = datetime.fromisoformat(in_lyon[0]).astimezone(ZoneInfo(practice["practice"].time_zone))
    await agenda.do_add_availability(
        None,
        alice,
        services=[talk, video],
        weekday=day.weekday(),
        start_time=time(16),
        end_time=time(17),
    )
    remote_page = (await http.get(f"/portal/book/{alice.id}?location=&service={video.id}")).text
    remote = slot_times(remote_page)
    assert remote and not set(remote) & set(in_lyon)
    assert all(datetime.fromisoformat(s).astimezone(day.tzinfo).hour == 16 for s in remote)
    assert ">Visio ·" in remote_page and ">Séance ·" not in remote_page
    assert not slot_times(
        (await http.get(f"/portal/book/{alice.id}?location=&service={talk.id}")).text
    )
    r = await http.post(
        f"/portal/book/{alice.id}",
        data={
            "csrf_token": http.headers["X-CSRF-Token"],
            "service_id": str(video.id),
            "starts_at": in_lyon[0],  # no location_id: the page's remote form
        },
    )
    assert r.status_code == 409
    assert not await Appointment.exists()


async def test_a_group_booking_sent_twice_takes_one_place(
    http: httpx.AsyncClient, practice: dict[str, Any]
) -> None:
    """A double tap (or a retry after a lost answer) on a group with places left took a
    second place for the same client, and sent a second confirmation."""
    client = practice["clients"][0]
    alice, vil, group = practice["alice"], practice["villeurbanne"], practice["group"]
    await login(http, client)
    page = await http.get(f"/portal/book/{alice.id}?location={vil.id}&service={group.id}")
    start = slot_times(page.text)[0]
    first = await book(http, alice.id, group.id, vil.id, start)
    again = await book(http, alice.id, group.id, vil.id, start)
    assert first.status_code == again.status_code == 303
    assert again.headers["location"] == first.headers["location"]
    assert await Appointment.filter(client_id=client.id, service_id=group.id).count() == 1
    assert await OutboxMessage.filter(purpose="appointment.confirmation").count() == 1
    # The other place is still there for someone else.
    page = await http.get(f"/portal/book/{alice.id}?location={vil.id}&service={group.id}")
    assert "1 place left" in page.text


@pytest.mark.parametrize("meanwhile", ["time off", "hours removed"])
async def test_a_booking_racing_a_closed_time_is_refused(
    http: httpx.AsyncClient,
    practice: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: str,
) -> None:
    """The free-slot check runs before the booking's transaction, and the check inside it
    looked at appointments only: time off (or the hours taken away) committed in between
    let the booking land in the closed time."""
    client = practice["clients"][0]
    alice, lyon, talk = practice["alice"], practice["lyon"], practice["talk"]
    await login(http, client)
    page = await http.get(f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}")
    start = datetime.fromisoformat(slot_times(page.text)[0])
    checked = booking.slots_for

    async def check_then_close(*args: Any, **kw: Any) -> Any:
        free_now = await checked(*args, **kw)
        # What the practitioner commits between this check and the booking's transaction.
        if meanwhile == "time off":
            await agenda.do_add_time_off(
                None,
                alice,
                starts_at=start - timedelta(hours=1),
                ends_at=start + timedelta(hours=3),
            )
        else:
            for hours in await Availability.filter(practitioner_id=alice.id, location_id=lyon.id):
                await agenda.do_remove_availability(None, hours)
        return free_now

    monkeypatch.setattr(booking, "slots_for", check_then_close)
    r = await book(http, alice.id, talk.id, lyon.id, start.isoformat())
    assert r.status_code == 409 and "no longer free" in r.text
    assert not await Appointment.filter(client_id=client.id).exists()


async def test_a_client_cannot_book_two_sessions_at_the_same_time(
    http: httpx.AsyncClient, practice: dict[str, Any], make: Factory
) -> None:
    """Online booking checked only the practitioner: a client booked Alice at 9:00 and Bob
    at 9:00. The second is refused, saying why; the front desk may still book it."""
    client = practice["clients"][0]
    alice, lyon, talk = practice["alice"], practice["lyon"], practice["talk"]
    bob = await make.therapist(first_name="Bob", last_name="Durand")
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    await agenda.do_add_availability(
        None,
        bob,
        services=[talk],
        weekday=day.weekday(),
        start_time=time(9),
        end_time=time(11),
        location=lyon,
    )
    await login(http, client)
    page = await http.get(f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}")
    first = slot_times(page.text)[0]
    assert (await book(http, alice.id, talk.id, lyon.id, first)).status_code == 303
    page = await http.get(f"/portal/book/{bob.id}?location={lyon.id}&service={talk.id}")
    assert first in slot_times(page.text)  # Bob is free then
    r = await book(http, bob.id, talk.id, lyon.id, first)
    assert r.status_code == 409
    assert "You already have an appointment at that time" in r.text
    assert await Appointment.filter(client_id=client.id).count() == 1
    # Another client takes Bob's 9:00 as before.
    await login(http, practice["clients"][1])
    assert (await book(http, bob.id, talk.id, lyon.id, first)).status_code == 303
    # The desk decides: it may book the client with Bob at that hour.
    await agenda.do_book_appointment(
        None,
        practitioner=bob,
        client=client,
        service=talk,
        starts_at=datetime.fromisoformat(first) + timedelta(hours=1),
        location=lyon,
    )


async def test_a_double_tap_on_a_slot_answers_booked_twice(
    http: httpx.AsyncClient, practice: dict[str, Any]
) -> None:
    """Both taps found the slot free; the second waited for the first's lock, then failed
    the practitioner's check: "no longer free" for a slot the client had just booked."""
    client = practice["clients"][0]
    alice, lyon, talk = practice["alice"], practice["lyon"], practice["talk"]
    await login(http, client)
    page = await http.get(f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}")
    start = slot_times(page.text)[0]
    taps = await asyncio.gather(*(book(http, alice.id, talk.id, lyon.id, start) for _ in "12"))
    assert [r.status_code for r in taps] == [303, 303]
    assert taps[0].headers["location"] == taps[1].headers["location"]
    assert await Appointment.filter(client_id=client.id).count() == 1
    assert await OutboxMessage.filter(purpose="appointment.confirmation").count() == 1


async def test_the_portal_offers_no_time_inside_the_cancellation_notice(
    http: httpx.AsyncClient, make: Factory
) -> None:
    """The portal offered times from now on, so a misclick on a slot in 15 minutes could not
    be undone online (cancelling needs the notice). Slots now start beyond it."""
    p = await make.practice()
    await agenda.ensure_builtin_categories(p)
    alice = await make.therapist()
    lyon = await agenda.do_create_location(None, p, name="Lyon")
    talk = await agenda.do_create_service(
        None, p, name="Séance", duration_minutes=30, price=Decimal("70")
    )
    today = datetime.now(ZoneInfo(p.time_zone)).date()
    for d in range(3):
        await agenda.do_add_availability(
            None,
            alice,
            services=[talk],
            on_date=today + timedelta(days=d),
            start_time=time(0),
            end_time=time(23, 30),
            location=lyon,
        )
    client = await make.client(alice)
    await login(http, client)
    url = f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}"
    soon = datetime.now(UTC) + timedelta(hours=24)
    offered = [datetime.fromisoformat(s) for s in slot_times((await http.get(url)).text)]
    assert offered and min(offered) >= soon
    # A time inside the notice, posted anyway: refused.
    inside = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    r = await book(http, alice.id, talk.id, lyon.id, inside.isoformat())
    assert r.status_code == 409 and "no longer free" in r.text
    # The first time offered, booked by mistake, can be cancelled online at once.
    assert (await book(http, alice.id, talk.id, lyon.id, min(offered).isoformat())).is_redirect
    booked = await Appointment.get(client_id=client.id)
    listing = await http.get("/portal/appointments")
    assert f"/portal/appointments/{booked.id}/cancel" in listing.text
    # No notice: the portal offers the next free times, as before.
    await Practice.filter(id=p.id).update(cancellation_notice_hours=0)
    offered = [datetime.fromisoformat(s) for s in slot_times((await http.get(url)).text)]
    assert min(offered) < datetime.now(UTC) + timedelta(hours=2)
    r = await book(http, alice.id, talk.id, lyon.id, inside.isoformat())
    assert r.is_redirect


@pytest.mark.parametrize("kind", ["too soon", "group"])
async def test_an_alert_that_cannot_be_set_does_not_undo_the_booking(
    http: httpx.AsyncClient, practice: dict[str, Any], kind: str
) -> None:
    """ "Alert me of an earlier slot" ticked, then a slot too soon for it (or a group one):
    the alert's refusal rolled back the booking and the client got a bare error page. The
    booking goes through; the confirmation says no alert was set, and why."""
    from models.offers import WaitlistEntry

    client = practice["clients"][0]
    alice = practice["alice"]
    loc, service = (
        (practice["lyon"], practice["talk"])
        if kind == "too soon"
        else (practice["villeurbanne"], practice["group"])
    )
    await Practice.filter(id=practice["practice"].id).update(
        earlier_slot_alerts=True, earlier_slot_min_days=10 if kind == "too soon" else 1
    )
    await login(http, client)
    page = await http.get(f"/portal/book/{alice.id}?location={loc.id}&service={service.id}&alert=1")
    start = slot_times(page.text)[0]  # three days ahead
    r = await http.post(
        f"/portal/book/{alice.id}",
        data={
            "csrf_token": http.headers["X-CSRF-Token"],
            "service_id": str(service.id),
            "location_id": str(loc.id),
            "starts_at": start,
            "alert_earlier": "true",
        },
    )
    assert r.status_code == 303
    booked = await Appointment.get(client_id=client.id)
    assert not await WaitlistEntry.filter(appointment_id=booked.id).exists()
    shown = await http.get(r.headers["location"])
    assert "Your appointment is booked" in shown.text
    assert "No earlier-slot alert was set" in shown.text
    why = "more than 10 days away" if kind == "too soon" else "Group sessions cannot wait"
    assert why in shown.text
    assert await OutboxMessage.filter(purpose="appointment.confirmation").count() == 1


async def test_one_client_cannot_take_every_free_slot_online(
    http: httpx.AsyncClient, practice: dict[str, Any], new_http: Any
) -> None:
    """No limit on online bookings: one client (or one stolen session) booked every free
    hour for six weeks. Now at most the practice's number of upcoming online bookings (3
    by default, 0: no limit); the front desk's bookings do not count."""
    client = practice["clients"][0]
    alice, lyon, talk = practice["alice"], practice["lyon"], practice["talk"]
    await login(http, client)
    page = await http.get(f"/portal/book/{alice.id}?location={lyon.id}&service={talk.id}")
    free = slot_times(page.text)
    # One booked by the front desk: not counted.
    await agenda.do_book_appointment(
        Caller.acting_as(alice),
        practitioner=alice,
        client=client,
        service=talk,
        starts_at=datetime.fromisoformat(free[-1]),
        location=lyon,
    )
    for start in free[:3]:
        assert (await book(http, alice.id, talk.id, lyon.id, start)).status_code == 303
    r = await book(http, alice.id, talk.id, lyon.id, free[3])
    assert r.status_code == 409 and "please contact the practice" in r.text
    assert "3 upcoming appointments booked online" in r.text
    assert await Appointment.filter(client_id=client.id).count() == 4
    # The same booking sent again is still answered "booked".
    assert (await book(http, alice.id, talk.id, lyon.id, free[0])).status_code == 303
    # One cancelled gives room for another.
    first = await Appointment.filter(client_id=client.id, created_by=None).first()
    assert first is not None
    await agenda.do_set_attendance(None, first, Attendance.CANCELLED_BY_CLIENT)
    assert (await book(http, alice.id, talk.id, lyon.id, free[3])).status_code == 303
    # Another client is not held back by this one's bookings.
    other = new_http()
    await login(other, practice["clients"][1])
    assert (await book(other, alice.id, talk.id, lyon.id, free[4])).status_code == 303
    # The owner sets it on the practice page; 0 lifts it.
    await Practice.filter(id=practice["practice"].id).update(online_bookings_per_client=0)
    assert (await book(http, alice.id, talk.id, lyon.id, free[5])).status_code == 303


async def test_only_clinicians_with_something_to_book_are_listed(
    http: httpx.AsyncClient, make: Factory, practice: dict[str, Any]
) -> None:
    """The portal listed every clinician with any hours: one whose hours had ended, were at
    a location since closed, or offered in-person sessions with no location (saved before
    that was required) was listed too, and the client who chose them found nothing."""
    p, talk = practice["practice"], practice["talk"]
    ended = await make.therapist(first_name="Ended")
    closed = await make.therapist(first_name="Closed")
    nowhere = await make.therapist(first_name="Nowhere")
    annexe = await agenda.do_create_location(None, p, name="Annexe")
    common = {"services": [talk], "weekday": 2, "start_time": time(9), "end_time": time(12)}
    await agenda.do_add_availability(
        None,
        ended,
        **common,
        location=practice["lyon"],
        valid_from=date.today() - timedelta(days=60),
        valid_until=date.today() - timedelta(days=1),
    )
    await agenda.do_add_availability(None, closed, **common, location=annexe)
    await agenda.do_update_location(None, annexe, name="Annexe", address="", is_active=False)
    legacy = await Availability.create(
        practitioner=nowhere, weekday=2, start_minute=9 * 60, end_minute=12 * 60
    )
    await legacy.services.add(talk)
    await login(http, practice["clients"][0])
    page = (await http.get("/portal/appointments")).text
    assert f"/portal/book/{practice['alice'].id}" in page
    for who in (ended, closed, nowhere):
        assert f"/portal/book/{who.id}" not in page, who.first_name
        assert (await http.get(f"/portal/book/{who.id}")).status_code == 404
