"""Calendar feeds: parsed back by the icalendar package, private by default, revocable."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from models.accounts import PortalAccount
from server.actions import agenda
from tests.conftest import Factory, login


@pytest.fixture
async def booked(make: Factory) -> dict[str, Any]:
    practice = await make.practice()
    alice = await make.therapist(first_name="Alice", last_name="Mercier")
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    office = await agenda.do_create_location(
        None, practice, name="Cabinet Lyon", address="3 rue de la Paix, Lyon"
    )
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    await agenda.do_add_availability(
        None,
        alice,
        services=[talk],
        weekday=start.weekday(),
        start_time=time(0),
        end_time=time(23, 59),
        location=office,
    )
    appt = await agenda.do_book_appointment(
        None, practitioner=alice, client=helene, service=talk, starts_at=start, location=office
    )
    return {"alice": alice, "helene": helene, "appt": appt, "start": start}


async def feed_address(http: httpx.AsyncClient, prefix: str) -> str:
    r = await http.post(
        f"{prefix}/calendar-feed/renew", data={"csrf_token": http.headers["X-CSRF-Token"]}
    )
    assert r.status_code == 303
    page = await http.get(f"{prefix}/calendar-feed")
    found = re.search(r'value="https?://[^/"]+(/feeds/[^"]+)" data-feed-url', page.text)
    assert found, page.text
    return found.group(1)


async def test_practitioner_feed_shows_initials_and_service(
    http: httpx.AsyncClient, new_http: Any, booked: dict[str, Any]
) -> None:
    await login(http, booked["alice"])
    path = await feed_address(http, "/staff")
    assert path.startswith("/feeds/staff/") and path.endswith(".ics")
    anonymous = new_http("10.7.0.1")
    r = await anonymous.get(path)  # calendar apps have no session
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(r.content)
    events = [c for c in cal.walk("VEVENT")]
    assert len(events) == 1
    event = events[0]
    assert str(event["summary"]) == "H.D. · Séance"
    assert "Hélène" not in r.text and "Dubois" not in r.text  # never the full name
    assert event.decoded("dtstart") == booked["start"]
    assert event.decoded("dtend") == booked["start"] + timedelta(minutes=50)
    assert str(event["uid"]).startswith(f"appointment-{booked['appt'].id}@")
    assert str(event["status"]) == "CONFIRMED"
    # Cancelled: still in the feed, marked so, so calendars drop it.
    await agenda.do_set_attendance(None, booked["appt"], agenda.Attendance.CANCELLED_BY_CLIENT)
    event = next(iter(Calendar.from_ical((await anonymous.get(path)).content).walk("VEVENT")))
    assert str(event["status"]) == "CANCELLED"
    # A new address stops the old one.
    newer = await feed_address(http, "/staff")
    assert newer != path
    assert (await anonymous.get(path)).status_code == 404
    assert (await anonymous.get(newer)).status_code == 200


async def test_client_feed_has_their_appointments_only(
    http: httpx.AsyncClient, new_http: Any, booked: dict[str, Any], make: Factory
) -> None:
    other = await make.client(booked["alice"], first_name="Other", last_name="Person")
    await login(http, booked["helene"])
    path = await feed_address(http, "/portal")
    assert path.startswith("/feeds/client/")
    r = await new_http("10.7.0.2").get(path)
    events = list(Calendar.from_ical(r.content).walk("VEVENT"))
    assert [str(e["summary"]) for e in events] == ["Séance · Alice Mercier"]
    assert str(events[0]["location"]) == "3 rue de la Paix, Lyon"
    assert "Other" not in r.text and other.id
    account = await PortalAccount.get(client_id=booked["helene"].id)
    await PortalAccount.filter(id=account.id).update(is_active=False)
    assert (await new_http("10.7.0.3").get(path)).status_code == 404


async def test_switching_access_off_ends_the_feed_address_for_good(
    http: httpx.AsyncClient, new_http: Any, booked: dict[str, Any], make: Factory
) -> None:
    """The practice switched a client's portal off (an ex-partner had it), then on again with
    the toggle: the old feed address, perhaps in the ex-partner's calendar, showed the
    sessions again. It is gone with the switch-off; a new one is made from the portal. The
    same for a colleague's account."""
    owner = await make.owner()
    await login(http, booked["helene"])
    client_feed = await feed_address(http, "/portal")
    staff_http = new_http("10.7.0.6")
    await login(staff_http, booked["alice"])
    staff_feed = await feed_address(staff_http, "/staff")
    as_owner = new_http("10.7.0.5")
    await login(as_owner, owner)
    helene = booked["helene"].id
    for active in (False, True):
        r = await as_owner.post(f"/api/clients/{helene}/portal/active", json={"active": active})
        assert r.status_code == 200
        r = await as_owner.post(f"/api/staff/{booked['alice'].id}/active", json={"active": active})
        assert r.status_code == 200
    calendar = new_http("10.7.0.7")
    assert (await calendar.get(client_feed)).status_code == 404
    assert (await calendar.get(staff_feed)).status_code == 404


async def test_unknown_feeds_are_404(new_http: Any) -> None:
    http = new_http("10.7.0.4")
    assert (await http.get("/feeds/staff/nope.ics")).status_code == 404
    assert (await http.get("/feeds/client/" + "x" * 100)).status_code == 404
