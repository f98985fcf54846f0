"""The live agenda's API and events: booking, attendance, moving and deleting through
/api/appointments, the agenda of a range through /api/agenda, who may reach which id, and
the ``appointment.changed`` event that every open agenda (and the client's portal) receives.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from models.accounts import Practice, StaffRole, StaffUser
from models.agenda import Appointment, Attendance
from server.actions import agenda
from server.actions.clients import do_create_client
from staff.agenda import AgendaOut
from tests.conftest import Factory, LiveServer, login
from tests.test_realtime import SignIn, open_tab, sign_in  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("settled_hub")

PARIS = ZoneInfo("Europe/Paris")
MONDAY = date(2027, 3, 1)  # a Monday, in winter time


def paris(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), PARIS).astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def practice(make: Factory) -> dict[str, Any]:
    """Alice and Bob see clients; Fanny is the front desk; Alice works Monday mornings."""
    p = await make.practice()
    cats = await agenda.ensure_builtin_categories(p)
    owner = await make.owner(first_name="Olga")
    alice = await make.therapist(first_name="Alice", last_name="Martin")
    bob = await make.therapist(first_name="Bob", last_name="Petit")
    fanny = await make.office_admin(first_name="Fanny")
    gone = await make.therapist(first_name="Gone", is_active=False)
    office = await agenda.do_create_location(None, p, name="Cabinet Lyon")
    talk = await agenda.do_create_service(
        None, p, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    video = await agenda.do_create_service(
        None,
        p,
        name="Visio",
        duration_minutes=50,
        price=Decimal("70"),
        category=cats[agenda.BuiltinCategory.TELECONSULTATION],
    )
    await agenda.do_add_availability(
        None,
        alice,
        services=[talk, video],
        weekday=0,
        start_time=time(9),
        end_time=time(12, 20),
        location=office,
    )
    camille = await make.client(alice, first_name="Camille", last_name="Roux")
    noe = await make.client(alice, portal=False, first_name="Noé", last_name="Blanc")
    bobs = await make.client(bob, first_name="Basile", last_name="Vidal")
    return {
        "practice": p,
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "fanny": fanny,
        "gone": gone,
        "office": office,
        "talk": talk,
        "video": video,
        "camille": camille,
        "noe": noe,
        "bobs": bobs,
    }


def booking(s: dict[str, Any], client: str, at: datetime, **kw: Any) -> dict[str, Any]:
    return {
        "practitioner_id": s["alice"].id,
        "client_id": s[client].id,
        "service_id": s["talk"].id,
        "location_id": s["office"].id,
        "starts_at": iso(at),
        **kw,
    }


async def test_book_clash_attendance_move_delete_through_the_api(
    http: httpx.AsyncClient, practice: dict[str, Any]
) -> None:
    s = practice
    await login(http, s["fanny"])  # the front desk books for everyone

    r = await http.post("/api/appointments", json=booking(s, "camille", paris(MONDAY, 9)))
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["client_name"] == "Camille Roux"
    assert first["service_name"] == "Séance"
    assert first["attendance"] == "scheduled"
    assert first["starts_at"] == "2027-03-01T08:00:00Z"
    assert first["ends_at"] == "2027-03-01T08:50:00Z"

    # Alice is taken at 9:00: a clear 409 that names the clash, and nothing written.
    r = await http.post("/api/appointments", json=booking(s, "noe", paris(MONDAY, 9, 25)))
    assert r.status_code == 409
    assert "Alice Martin already has Séance" in r.json()["error"]["message"]
    assert await Appointment.filter(client_id=s["noe"].id).count() == 0

    # Local times with an offset are understood as such.
    r = await http.post(
        "/api/appointments",
        json=booking(s, "noe", paris(MONDAY, 9, 50), starts_at="2027-03-01T09:50:00+01:00"),
    )
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["starts_at"] == "2027-03-01T08:50:00Z"

    r = await http.post(f"/api/appointments/{first['id']}/attendance", json={"attendance": "x"})
    assert r.status_code == 422
    r = await http.post(
        f"/api/appointments/{first['id']}/attendance", json={"attendance": "attended"}
    )
    assert r.status_code == 200 and r.json()["attendance"] == "attended"
    # An attended appointment cannot be moved, nor cancelled.
    r = await http.post(
        f"/api/appointments/{first['id']}/move", json={"starts_at": iso(paris(MONDAY, 11, 30))}
    )
    assert r.status_code == 409
    r = await http.post(
        f"/api/appointments/{first['id']}/attendance",
        json={"attendance": "cancelled_by_client"},
    )
    assert r.status_code == 409

    # Moving onto a taken time is refused; to a free one leaves a "moved" trace behind.
    r = await http.post(
        f"/api/appointments/{second['id']}/move", json={"starts_at": iso(paris(MONDAY, 9))}
    )
    assert r.status_code == 409
    r = await http.post(
        f"/api/appointments/{second['id']}/move", json={"starts_at": iso(paris(MONDAY, 11, 30))}
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["id"] != second["id"] and moved["starts_at"] == "2027-03-01T10:30:00Z"
    assert (await Appointment.get(id=second["id"])).attendance is Attendance.MOVED

    r = await http.get(f"/api/agenda?start={MONDAY}&days=1")
    assert r.status_code == 200
    day = r.json()
    AgendaOut.model_validate(day)  # the shape the OpenAPI description promises
    assert {a["id"]: a["attendance"] for a in day["appointments"]} == {
        first["id"]: "attended",
        second["id"]: "moved",
        moved["id"]: "scheduled",
    }
    assert day["time_zone"] == "Europe/Paris"
    assert day["range_start"] == "2027-02-28T23:00:00Z"
    [window] = day["availability"]
    assert window["practitioner_id"] == s["alice"].id
    assert (window["start"], window["end"]) == ("2027-03-01T08:00:00Z", "2027-03-01T11:20:00Z")
    assert sorted(window["service_ids"]) == sorted([s["talk"].id, s["video"].id])

    r = await http.delete(f"/api/appointments/{moved['id']}")
    assert r.status_code == 200
    r = await http.get(f"/api/agenda?start={MONDAY}&days=7")
    assert moved["id"] not in {a["id"] for a in r.json()["appointments"]}
    # A deleted appointment is gone: its id now answers 404.
    r = await http.post(
        f"/api/appointments/{moved['id']}/attendance", json={"attendance": "attended"}
    )
    assert r.status_code == 404


async def test_agenda_range_filters_and_free_slots(
    http: httpx.AsyncClient, practice: dict[str, Any]
) -> None:
    s = practice
    await login(http, s["alice"])
    for client, at in (("camille", paris(MONDAY, 9)), ("noe", paris(MONDAY + timedelta(7), 9))):
        r = await http.post("/api/appointments", json=booking(s, client, at))
        assert r.status_code == 200, r.text
    # A teleconsultation takes place remotely: no location, whatever was sent.
    r = await http.post(
        "/api/appointments",
        json=booking(s, "camille", paris(MONDAY, 10, 40), service_id=s["video"].id),
    )
    assert r.json()["location_id"] is None and r.json()["category"] == "teleconsultation"

    week = (await http.get(f"/api/agenda?start={MONDAY}&days=7")).json()
    assert len(week["appointments"]) == 2  # the next Monday is outside this week
    assert len(week["availability"]) == 1
    at_office = (
        await http.get(f"/api/agenda?start={MONDAY}&days=7&location={s['office'].id}")
    ).json()
    assert [a["service_name"] for a in at_office["appointments"]] == ["Séance"]
    bobs = (await http.get(f"/api/agenda?start={MONDAY}&days=7&practitioner={s['bob'].id}")).json()
    assert bobs["appointments"] == [] and bobs["availability"] == []

    r = await http.get(
        f"/api/agenda/slots?practitioner={s['alice'].id}&service={s['talk'].id}&start={MONDAY}"
    )
    assert [x["start"] for x in r.json()] == ["2027-03-01T08:50:00Z", "2027-03-01T10:30:00Z"]

    for bad in ("days=0", "days=32", "start=tomorrow", "practitioner=abc"):
        r = await http.get(f"/api/agenda?start={MONDAY}&{bad}")
        assert r.status_code == 422, bad
    # The front desk is not a practitioner, an inactive therapist has no agenda.
    for who in ("fanny", "gone"):
        r = await http.get(f"/api/agenda?start={MONDAY}&practitioner={s[who].id}")
        assert r.status_code == 404


async def test_who_reaches_which_appointment(
    http: httpx.AsyncClient,
    new_http: Any,
    practice: dict[str, Any],
    make: Factory,
) -> None:
    s = practice
    # Another practice, with its own therapist, client and appointment.
    elsewhere = await Practice.create(name="Elsewhere")
    stranger = await StaffUser.create(
        practice=elsewhere,
        email="stranger@example.org",
        password_hash=await make.password_hash(),
        first_name="Stranger",
        last_name="Danger",
        role=StaffRole.OWNER,
    )
    their_client = await do_create_client(
        None, elsewhere, first_name="Their", last_name="Client", therapist=stranger
    )
    their_room = await agenda.do_create_location(None, elsewhere, name="Their room")
    their_service = await agenda.do_create_service(
        None, elsewhere, name="Theirs", duration_minutes=30, price=Decimal("1")
    )
    theirs = await agenda.do_book_appointment(
        None,
        practitioner=stranger,
        client=their_client,
        service=their_service,
        starts_at=paris(MONDAY, 9),
        location=their_room,
    )
    ours = await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["camille"],
        service=s["talk"],
        starts_at=paris(MONDAY, 9),
        location=s["office"],
    )

    # Nobody signed in: 401 everywhere.
    assert (await http.get(f"/api/agenda?start={MONDAY}")).status_code == 401
    r = await http.post("/api/appointments", json=booking(s, "camille", paris(MONDAY, 10)))
    assert r.status_code == 401

    # Every staff member of the practice sees the practice's agenda; a therapist sees a
    # colleague's session with a client not in their caseload as private (the time is
    # taken, no name, no service) and cannot change it...
    for who in ("owner", "alice", "bob", "fanny"):
        async with new_http() as browser:
            await login(browser, s[who])
            week = (await browser.get(f"/api/agenda?start={MONDAY}")).json()
            (seen,) = week["appointments"]
            if who == "bob":
                assert (seen["client_name"], seen["service_name"], seen["private"]) == (
                    "",
                    "",
                    True,
                )
                assert seen["client_id"] is None and seen["starts_at"] == "2027-03-01T08:00:00Z"
                for url in (
                    f"/api/appointments/{ours.id}/attendance",
                    f"/api/appointments/{ours.id}/move",
                ):
                    r = await browser.post(
                        url, json={"attendance": "no_show", "starts_at": "2027-03-01T10:00:00Z"}
                    )
                    assert r.status_code == 404, url
                assert (await browser.delete(f"/api/appointments/{ours.id}")).status_code == 404
                assert (await browser.get(f"/api/appointments/{ours.id}/offers")).status_code == 404
            else:
                assert seen["client_name"] == "Camille Roux" and not seen["private"], who
            # ...but another practice's ids, and things that are not ids, are 404s.
            for url in (
                f"/api/appointments/{theirs.id}/attendance",
                "/api/appointments/99999/attendance",
                "/api/appointments/-1/attendance",
            ):
                r = await browser.post(url, json={"attendance": "attended"})
                assert r.status_code == 404, (who, url)
            assert (await browser.delete(f"/api/appointments/{theirs.id}")).status_code == 404
            r = await browser.post(
                "/api/appointments",
                json=booking(s, "camille", paris(MONDAY, 11), service_id=their_service.id),
            )
            assert r.status_code == 404
            r = await browser.post(
                "/api/appointments",
                json=booking(s, "camille", paris(MONDAY, 11), practitioner_id=stranger.id),
            )
            assert r.status_code == 404
    assert (await Appointment.get(id=theirs.id)).attendance is Attendance.SCHEDULED

    # A therapist books only clients of their caseload; the front desk books anyone's.
    async with new_http() as browser:
        await login(browser, s["alice"])
        r = await browser.post("/api/appointments", json=booking(s, "bobs", paris(MONDAY, 11)))
        assert r.status_code == 404
    async with new_http() as browser:
        await login(browser, s["fanny"])
        r = await browser.post("/api/appointments", json=booking(s, "bobs", paris(MONDAY, 11)))
        assert r.status_code == 200

    # A client's portal session is not a staff session.
    async with new_http() as browser:
        await login(browser, s["camille"])
        assert (await browser.get(f"/api/agenda?start={MONDAY}")).status_code == 401
        r = await browser.post(
            f"/api/appointments/{ours.id}/attendance", json={"attendance": "cancelled_by_client"}
        )
        assert r.status_code in (401, 403)
    assert (await Appointment.get(id=ours.id)).attendance is Attendance.SCHEDULED


async def test_a_therapist_sees_in_full_only_the_sessions_of_their_caseload(
    new_http: Any, practice: dict[str, Any], make: Factory, capture_events: Any
) -> None:
    """The agenda named every client of the practice to every therapist: Bob learned that his
    neighbour saw Alice on Mondays, which the client list, the file and the circle of care
    never tell him. He now sees in full the sessions he holds and those of his own clients
    (Basile, covered by Alice), and of a colleague's others only that the time is taken; a
    supervisor sees the supervisee's, as with their files."""
    s = practice
    sup = await make.therapist(first_name="Sophie")
    await StaffUser.filter(id=s["alice"].id).update(supervisor_id=sup.id)
    captured = capture_events()
    covered = await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["bobs"],
        service=s["talk"],
        starts_at=paris(MONDAY, 10),
        location=s["office"],
    )
    hers = await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["camille"],
        service=s["talk"],
        starts_at=paris(MONDAY, 11),
        location=s["office"],
    )
    private = {
        (e.recipient, e.payload["id"])
        for e in captured.of_type("appointment.changed")
        if e.payload.get("private")
    }
    assert private == {(f"s:{s['bob'].id}", hers.id)}
    expected = {
        "bob": {covered.id: "Basile Vidal", hers.id: ""},
        "sup": {covered.id: "Basile Vidal", hers.id: "Camille Roux"},
        "fanny": {covered.id: "Basile Vidal", hers.id: "Camille Roux"},
    }
    people = {"bob": s["bob"], "sup": sup, "fanny": s["fanny"]}
    for who, names in expected.items():
        async with new_http() as browser:
            await login(browser, people[who])
            week = (await browser.get(f"/api/agenda?start={MONDAY}")).json()
            assert {a["id"]: a["client_name"] for a in week["appointments"]} == names, who
            # Bob marks his own client's session; the colleague's is out of his reach.
            if who == "bob":
                r = await browser.post(
                    f"/api/appointments/{covered.id}/attendance", json={"attendance": "attended"}
                )
                assert r.status_code == 200
                r = await browser.post(
                    f"/api/appointments/{hers.id}/attendance", json={"attendance": "no_show"}
                )
                assert r.status_code == 404
    assert (await Appointment.get(id=hers.id)).attendance is Attendance.SCHEDULED


async def test_every_change_is_announced_to_the_staff_and_the_client(
    http: httpx.AsyncClient, practice: dict[str, Any], capture_events: Any, make: Factory
) -> None:
    s = practice
    await login(http, s["fanny"])
    camille_account = await make.portal_account(s["camille"])
    staff = {f"s:{s[w].id}" for w in ("owner", "alice", "bob", "fanny")}  # not the inactive one
    captured = capture_events()

    r = await http.post("/api/appointments", json=booking(s, "camille", paris(MONDAY, 9)))
    booked = r.json()
    events = captured.of_type("appointment.changed")
    assert {e.recipient for e in events} == staff | {f"c:{camille_account.id}"}
    for e in events:
        if e.recipient == f"s:{s['bob'].id}":
            # Bob is told as his agenda shows it: a colleague's session, private.
            assert e.payload["client_name"] == "" and e.payload["private"] is True
            assert e.payload["id"] == booked["id"] and e.payload["service_name"] == ""
        elif e.recipient.startswith("s:"):
            assert e.payload["client_name"] == "Camille Roux"
            assert e.payload["id"] == booked["id"] and e.payload["deleted"] is False
            assert "_client_therapist_id" not in e.payload
        else:
            # The client's own appointment, without the office's names and colours.
            assert "client_name" not in e.payload and "color" not in e.payload
            assert e.payload["starts_at"] == booked["starts_at"]

    # A refused booking announces nothing.
    captured.events.clear()
    r = await http.post("/api/appointments", json=booking(s, "noe", paris(MONDAY, 9)))
    assert r.status_code == 409
    assert captured.events == []

    # Noé has no portal account: only the staff hear of Noé's appointment.
    r = await http.post("/api/appointments", json=booking(s, "noe", paris(MONDAY, 10, 40)))
    assert captured.recipients("appointment.changed") == staff
    noes = r.json()

    captured.events.clear()
    await http.post(f"/api/appointments/{booked['id']}/attendance", json={"attendance": "no_show"})
    [change] = [e for e in captured.of_type("appointment.changed") if e.recipient in staff][:1]
    assert change.payload["attendance"] == "no_show"

    # A move announces both: the old one moved, the new one scheduled.
    captured.events.clear()
    r = await http.post(
        f"/api/appointments/{noes['id']}/move", json={"starts_at": iso(paris(MONDAY, 11, 30))}
    )
    mine = [
        e.payload
        for e in captured.of_type("appointment.changed")
        if e.recipient == f"s:{s['fanny'].id}"
    ]
    assert [(p["id"], p["attendance"]) for p in mine] == [
        (r.json()["id"], "scheduled"),
        (noes["id"], "moved"),
    ]

    captured.events.clear()
    await http.delete(f"/api/appointments/{booked['id']}")
    mine = [
        e.payload
        for e in captured.of_type("appointment.changed")
        if e.recipient == f"s:{s['fanny'].id}"
    ]
    assert [(p["id"], p["deleted"]) for p in mine] == [(booked["id"], True)]


async def test_an_open_agenda_socket_hears_a_booking_made_elsewhere(
    live_server: LiveServer,
    sign_in: SignIn,  # noqa: F811 (the fixture imported above)
    practice: dict[str, Any],
) -> None:
    s = practice
    desk = await sign_in(s["fanny"])
    alice = await sign_in(s["alice"])
    tab = await open_tab(live_server, desk)
    r = await alice.http.post("/api/appointments", json=booking(s, "camille", paris(MONDAY, 9)))
    assert r.status_code == 200, r.text
    frame = await tab.expect("appointment.changed")
    assert frame["data"]["id"] == r.json()["id"]
    assert frame["data"]["client_name"] == "Camille Roux"
    assert frame["data"]["attendance"] == "scheduled"
    await tab.ws.close()


async def test_built_in_categories_read_in_the_readers_language(
    http: httpx.AsyncClient, make: Factory
) -> None:
    owner = await make.owner()
    await agenda.ensure_builtin_categories(await make.practice())
    await login(http, owner)
    french = (await http.get("/staff/agenda", headers={"Accept-Language": "fr"})).text
    assert "Téléconsultation" in french and "Visite à domicile" in french
    assert ">Teleconsultation<" not in french and ">Home visit<" not in french
    english = (await http.get("/staff/agenda", headers={"Accept-Language": "en"})).text
    assert ">Teleconsultation<" in english


async def test_the_agenda_names_its_time_zone_by_its_city(
    http: httpx.AsyncClient, make: Factory
) -> None:
    # French read "Heures de Europe/Paris".
    await login(http, await make.owner())
    french = (await http.get("/staff/agenda", headers={"Accept-Language": "fr"})).text
    assert "Horaires à l’heure de Paris." in french and "Europe/Paris." not in french
    english = (await http.get("/staff/agenda", headers={"Accept-Language": "en"})).text
    assert "Times are Paris time." in english
