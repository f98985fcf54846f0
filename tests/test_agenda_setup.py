"""Agenda setup: categories, services, locations, availability and time off, through the
JSON API and the pages, as each kind of caller."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from models.agenda import (
    Appointment,
    Availability,
    BuiltinCategory,
    Location,
    Service,
    ServiceCategory,
    TimeOff,
)
from server.actions import agenda
from server.queries.agenda import slots_for
from tests.conftest import Factory, login

PARIS = ZoneInfo("Europe/Paris")
NEXT_YEAR = date.today().year + 1


@pytest.fixture
async def team(make: Factory) -> dict[str, Any]:
    practice = await make.practice()
    cats = await agenda.ensure_builtin_categories(practice)
    owner = await make.owner(first_name="Olga")
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    desk = await make.office_admin(first_name="Denise")
    client = await make.client(alice)
    office = await agenda.do_create_location(None, practice, name="Cabinet Lyon")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    group = await agenda.do_create_service(
        None,
        practice,
        name="Groupe",
        duration_minutes=90,
        price=Decimal("30"),
        category=cats[BuiltinCategory.GROUP],
    )
    return {
        "practice": practice,
        "cats": cats,
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "desk": desk,
        "client": client,
        "office": office,
        "talk": talk,
        "group": group,
    }


def hours(practitioner: Any, services: list[Any], **kw: Any) -> dict[str, Any]:
    body = {
        "practitioner_id": practitioner.id,
        "weekday": 0,
        "start_time": "09:00",
        "end_time": "12:00",
        "service_ids": [s.id for s in services],
    }
    body.update(kw)
    return body


# --- categories ------------------------------------------------------------------------------


async def test_categories(http: httpx.AsyncClient, team: dict[str, Any]) -> None:
    await login(http, team["owner"])
    listed = (await http.get("/api/setup/categories")).json()
    assert [c["builtin"] for c in listed] == ["teleconsultation", "home_visit", "group"]
    assert not any(c["editable"] for c in listed)

    r = await http.post("/api/setup/categories", json={"name": " Bilans ", "color": "#aa3300"})
    assert r.status_code == 200, r.text
    mine = r.json()
    assert (mine["name"], mine["color"], mine["editable"]) == ("Bilans", "#aa3300", True)
    r = await http.put(
        f"/api/setup/categories/{mine['id']}", json={"name": "Bilans initiaux", "color": "#112233"}
    )
    assert r.json()["name"] == "Bilans initiaux" and r.json()["color"] == "#112233"

    builtin = team["cats"][BuiltinCategory.GROUP]
    r = await http.put(f"/api/setup/categories/{builtin.id}", json={"name": "X"})
    assert r.status_code == 409
    assert (await ServiceCategory.get(id=builtin.id)).name == "Group"

    r = await http.post("/api/setup/categories", json={"name": "", "color": "red"})
    assert r.status_code == 422
    assert set(r.json()["error"]["fields"]) == {"name", "color"}
    assert (await http.put("/api/setup/categories/999999", json={"name": "X"})).status_code == 404


async def test_category_of_another_practice_is_missing(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    from models.accounts import Practice

    other = await Practice.create(name="Elsewhere")
    theirs = await agenda.do_create_category(None, other, name="Theirs", color="#000000")
    await login(http, team["owner"])
    r = await http.put(f"/api/setup/categories/{theirs.id}", json={"name": "Mine now"})
    assert r.status_code == 404
    r = await http.post(
        "/api/setup/services",
        json={"name": "S", "duration_minutes": 30, "price": "10", "category_id": theirs.id},
    )
    assert r.status_code == 404


# --- services and locations --------------------------------------------------------------


async def test_services(http: httpx.AsyncClient, team: dict[str, Any]) -> None:
    await login(http, team["desk"])  # office admins set up the practice too
    video = team["cats"][BuiltinCategory.TELECONSULTATION]
    r = await http.post(
        "/api/setup/services",
        json={"name": "Visio", "duration_minutes": 45, "price": "65.50", "category_id": video.id},
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["price"] == "65.50" and created["category_id"] == video.id

    body = {"name": "Visio longue", "duration_minutes": 60, "price": "80", "is_active": False}
    r = await http.put(f"/api/setup/services/{created['id']}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is False and r.json()["category_id"] is None
    service = await Service.get(id=created["id"])  # deactivated, never deleted
    assert service.name == "Visio longue" and not service.is_active
    listed = (await http.get("/api/setup/services")).json()
    assert listed[-1]["id"] == created["id"]  # inactive ones last

    for bad, field in [
        ({"duration_minutes": 3}, "duration_minutes"),
        ({"duration_minutes": 2000}, "duration_minutes"),
        ({"price": "-1"}, "price"),
        ({"price": "1.234"}, "price"),
        ({"name": ""}, "name"),
        ({"name": " \t "}, "name"),  # blank once trimmed: was saved as an empty name
    ]:
        r = await http.post(
            "/api/setup/services", json={"name": "S", "duration_minutes": 30, "price": "10", **bad}
        )
        assert r.status_code == 422, bad
        assert field in r.json()["error"]["fields"], r.json()
    assert (await http.put("/api/setup/services/424242", json=body)).status_code == 404


async def test_a_service_in_use_does_not_become_or_stop_being_a_group_service(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    """Turned into a group service while weekly hours offer it one to one, it could no
    longer be booked in them (a group service needs a group slot); out of Group, a group
    slot would take one client where it took several."""
    await login(http, team["owner"])
    talk, group, groups = team["talk"], team["group"], team["cats"][BuiltinCategory.GROUP]
    await agenda.do_add_availability(
        None, team["alice"], services=[talk], weekday=0, start_time=time(9), end_time=time(12)
    )
    await agenda.do_add_availability(
        None,
        team["alice"],
        services=[group],
        weekday=1,
        start_time=time(9),
        end_time=time(12),
        is_group_slot=True,
        capacity=6,
    )
    for service, category_id in [(talk, groups.id), (group, None)]:
        body = {
            "name": "Renamed",
            "duration_minutes": 50,
            "price": "70",
            "category_id": category_id,
        }
        r = await http.put(f"/api/setup/services/{service.id}", json=body)
        assert r.status_code == 422, r.text
        assert "category_id" in r.json()["error"]["fields"]
        again = await Service.get(id=service.id)
        assert again.name == service.name and again.category_id == service.category_id  # type: ignore[attr-defined]
    # Other changes of a service in use go through, and so does its group-ness once nothing
    # uses it.
    body = {"name": "Séance longue", "duration_minutes": 60, "price": "80"}
    assert (await http.put(f"/api/setup/services/{talk.id}", json=body)).status_code == 200
    await Availability.filter(services__id=talk.id).update(deleted_at=datetime.now(UTC))
    body["category_id"] = groups.id
    session = await agenda.do_book_appointment(
        None,
        practitioner=team["alice"],
        client=team["client"],
        service=talk,
        starts_at=datetime(NEXT_YEAR, 3, 1, 9, tzinfo=UTC),
        location=team["office"],
    )
    assert (await http.put(f"/api/setup/services/{talk.id}", json=body)).status_code == 422
    await agenda.do_delete_appointment(None, session)
    assert (await http.put(f"/api/setup/services/{talk.id}", json=body)).status_code == 200


async def test_a_group_service_with_booked_sessions_keeps_its_length(
    http: httpx.AsyncClient, team: dict[str, Any], make: Factory
) -> None:
    """Clients join a group session with the same start and end: lengthened from 90 to
    120 minutes, the group sessions already booked took nobody more."""
    alice, group, office = team["alice"], team["group"], team["office"]
    saturday = date(NEXT_YEAR, 5, 1)
    saturday += timedelta(days=5 - saturday.weekday())
    await agenda.do_add_availability(
        None,
        alice,
        services=[group],
        on_date=saturday,
        start_time=time(10),
        end_time=time(13),
        location=office,
        is_group_slot=True,
        capacity=6,
    )
    await agenda.do_book_appointment(
        None,
        practitioner=alice,
        client=team["client"],
        service=group,
        starts_at=datetime.combine(saturday, time(10), PARIS),
        location=office,
    )
    await login(http, team["owner"])
    body = {"name": "Groupe", "duration_minutes": 120, "price": "30"}
    body["category_id"] = team["cats"][BuiltinCategory.GROUP].id
    r = await http.put(f"/api/setup/services/{group.id}", json=body)
    assert r.status_code == 422 and "duration_minutes" in r.json()["error"]["fields"], r.text
    # The session still takes a second client.
    await agenda.do_book_appointment(
        None,
        practitioner=alice,
        client=await make.client(alice),
        service=await Service.get(id=group.id),
        starts_at=datetime.combine(saturday, time(10), PARIS),
        location=office,
    )
    # Other edits go through, and the new length once no session is booked.
    r = await http.put(f"/api/setup/services/{group.id}", json={**body, "duration_minutes": 90})
    assert r.status_code == 200, r.text
    await Appointment.filter(service_id=group.id).update(deleted_at=datetime.now(UTC))
    assert (await http.put(f"/api/setup/services/{group.id}", json=body)).status_code == 200


async def test_locations(http: httpx.AsyncClient, team: dict[str, Any]) -> None:
    await login(http, team["owner"])
    r = await http.post(
        "/api/setup/locations", json={"name": "Annexe", "address": "3 rue des Lilas, Lyon"}
    )
    assert r.status_code == 200, r.text
    annexe = r.json()
    r = await http.put(
        f"/api/setup/locations/{annexe['id']}",
        json={"name": "Annexe Nord", "address": "5 rue des Lilas", "is_active": False},
    )
    assert r.json() == {
        **annexe,
        "name": "Annexe Nord",
        "address": "5 rue des Lilas",
        "is_active": False,
    }
    names = [loc["name"] for loc in (await http.get("/api/setup/locations")).json()]
    assert names == ["Cabinet Lyon", "Annexe Nord"]
    r = await http.post("/api/setup/locations", json={"name": "x" * 121})
    assert r.status_code == 422 and "name" in r.json()["error"]["fields"]
    for url, body in [
        ("/api/setup/locations", {"name": "   "}),
        (f"/api/setup/locations/{annexe['id']}", {"name": "   "}),
        ("/api/setup/categories", {"name": "   "}),
    ]:
        r = await (http.put if url[-1].isdigit() else http.post)(url, json=body)
        assert r.status_code == 422 and "name" in r.json()["error"]["fields"], r.text
    assert (await Location.get(id=annexe["id"])).name == "Annexe Nord"
    assert not await Location.filter(name="").exists()
    assert not await ServiceCategory.filter(name="").exists()
    assert (
        await http.put("/api/setup/locations/999999", json={"name": "Nowhere"})
    ).status_code == 404


async def test_roles_for_practice_setup(
    http: httpx.AsyncClient, new_http: Any, team: dict[str, Any]
) -> None:
    await login(http, team["alice"])
    # A therapist reads the lists (the agenda needs them) but changes none of them.
    assert (await http.get("/api/setup/services")).status_code == 200
    r = await http.post(
        "/api/setup/services", json={"name": "S", "duration_minutes": 30, "price": "10"}
    )
    assert r.status_code == 403
    r = await http.put(
        f"/api/setup/services/{team['talk'].id}",
        json={"name": "S", "duration_minutes": 30, "price": "10"},
    )
    assert r.status_code == 403
    assert (await http.post("/api/setup/locations", json={"name": "L"})).status_code == 403
    assert (await http.post("/api/setup/categories", json={"name": "C"})).status_code == 403

    portal = new_http()
    await login(portal, team["client"])
    nobody = new_http("10.0.0.9")
    for who in (portal, nobody):
        for url in (
            "/api/setup/categories",
            "/api/setup/services",
            "/api/setup/locations",
            "/api/setup/availability",
            "/api/setup/time-off",
        ):
            assert (await who.get(url)).status_code == 401, url
        r = await who.post(
            "/api/setup/services", json={"name": "S", "duration_minutes": 30, "price": "10"}
        )
        assert r.status_code == 401
    await portal.aclose()
    await nobody.aclose()


# --- availability ----------------------------------------------------------------------------


async def test_availability_by_the_office(http: httpx.AsyncClient, team: dict[str, Any]) -> None:
    alice, talk, office = team["alice"], team["talk"], team["office"]
    await login(http, team["desk"])
    body = hours(
        alice,
        [talk],
        location_id=office.id,
        valid_from=f"{NEXT_YEAR}-01-01",
        valid_until=f"{NEXT_YEAR}-06-30",
    )
    r = await http.post("/api/setup/availability", json=body)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["start_time"] == "09:00" and created["service_ids"] == [talk.id]
    assert created["valid_until"] == f"{NEXT_YEAR}-06-30"

    # Mondays 9:00-12:00 in Paris: three 50-minute sessions a week.
    monday = date(NEXT_YEAR, 3, 1)
    monday += timedelta(days=-monday.weekday())
    slots = await slots_for(
        alice.id, talk.id, timedelta(minutes=50), PARIS, monday, monday + timedelta(days=6)
    )
    assert [s.start.astimezone(PARIS).strftime("%a %H:%M") for s in slots] == [
        "Mon 09:00",
        "Mon 09:50",
        "Mon 10:40",
    ]
    # After the validity, nothing.
    july = date(NEXT_YEAR, 7, 5)
    assert not await slots_for(
        alice.id, talk.id, timedelta(minutes=50), PARIS, july, july + timedelta(days=6)
    )

    r = await http.put(
        f"/api/setup/availability/{created['id']}",
        json=hours(
            alice,
            [talk],
            location_id=team["office"].id,
            weekday=2,
            start_time="14:00",
            end_time="18:00",
        ),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["weekday"], r.json()["start_time"], r.json()["location_id"]) == (
        2,
        "14:00",
        office.id,
    )

    listed = (await http.get(f"/api/setup/availability?practitioner_id={alice.id}")).json()
    assert [a["id"] for a in listed] == [created["id"]]
    assert (await http.delete(f"/api/setup/availability/{created['id']}")).status_code == 200
    # Soft: no longer offered nor listed, still on record.
    assert (await http.get(f"/api/setup/availability?practitioner_id={alice.id}")).json() == []
    row = await Availability.get(id=created["id"])
    assert row.deleted_at is not None
    r = await http.put(
        f"/api/setup/availability/{created['id']}",
        json=hours(alice, [talk], location_id=team["office"].id),
    )
    assert r.status_code == 404


async def test_one_off_opening_and_group_slot(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    alice, group, office = team["alice"], team["group"], team["office"]
    await login(http, team["owner"])
    saturday = date(NEXT_YEAR, 5, 1)
    saturday += timedelta(days=5 - saturday.weekday())
    r = await http.post(
        "/api/setup/availability",
        json=hours(
            alice,
            [group],
            weekday=None,
            on_date=saturday.isoformat(),
            start_time="10:00",
            end_time="11:30",
            location_id=office.id,
            is_group_slot=True,
            capacity=6,
        ),
    )
    assert r.status_code == 200, r.text
    assert r.json()["is_group_slot"] and r.json()["capacity"] == 6
    slots = await slots_for(
        alice.id, group.id, timedelta(minutes=90), PARIS, saturday, saturday + timedelta(days=7)
    )
    assert [(s.start.astimezone(PARIS).date(), s.places_left) for s in slots] == [(saturday, 6)]


async def test_the_same_hours_sent_twice_are_added_once(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    """ "Add the hours" sent twice made two identical rows, and the portal listed each free
    time twice."""
    alice, talk, office = team["alice"], team["talk"], team["office"]
    await login(http, team["desk"])
    body = hours(alice, [talk], location_id=office.id)
    first = await http.post("/api/setup/availability", json=body)
    again = await http.post("/api/setup/availability", json=body)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert await Availability.filter(practitioner_id=alice.id, deleted_at=None).count() == 1
    monday = date(NEXT_YEAR, 3, 1)
    monday += timedelta(days=-monday.weekday())
    slots = await slots_for(
        alice.id, talk.id, timedelta(minutes=50), PARIS, monday, monday + timedelta(days=6)
    )
    assert len(slots) == len({s.start for s in slots}) == 3
    # Other hours, or the same hours for other services, are other rows.
    other = await http.post(
        "/api/setup/availability", json={**body, "start_time": "14:00", "end_time": "15:00"}
    )
    assert other.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"on_date": f"{NEXT_YEAR}-02-03"}, "weekday"),  # both a weekday and a date
        ({"weekday": None}, "weekday"),  # neither
        ({"weekday": 7}, "weekday"),
        ({"end_time": "08:00"}, "end_time"),
        ({"start_time": "25:00"}, "start_time"),
        # A wall-clock time carries no offset: one was a 500 beside a time without.
        ({"start_time": "09:00+05:00"}, "start_time"),
        ({"start_time": "09:00Z", "end_time": "12:00Z"}, "start_time"),
        ({"service_ids": []}, "service_ids"),
        ({"valid_from": f"{NEXT_YEAR}-05-01", "valid_until": f"{NEXT_YEAR}-04-01"}, "valid_until"),
        ({"is_group_slot": True, "capacity": 1, "group": True}, "capacity"),
        ({"is_group_slot": True, "capacity": 4}, "service_ids"),  # a group slot of a 1:1 service
        ({"group": True}, "is_group_slot"),  # a group service outside a group slot
    ],
)
async def test_availability_validation(
    http: httpx.AsyncClient, team: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    await login(http, team["owner"])
    services = [team["group"]] if changes.pop("group", False) else [team["talk"]]
    r = await http.post(
        "/api/setup/availability",
        json=hours(team["alice"], services, **{"location_id": team["office"].id, **changes}),
    )
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["fields"], r.json()
    assert not await Availability.exists()


async def test_hours_at_no_location_are_for_remote_services_only(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    """Hours without a location offered a session held at the practice on the portal, and
    every booking of it was refused ("Choose a location")."""
    await login(http, team["owner"])
    alice, talk, cats = team["alice"], team["talk"], team["cats"]
    r = await http.post("/api/setup/availability", json=hours(alice, [talk]))
    assert r.status_code == 422 and "location_id" in r.json()["error"]["fields"], r.text
    assert not await Availability.exists()
    remote = []
    for kind in (BuiltinCategory.TELECONSULTATION, BuiltinCategory.HOME_VISIT):
        remote.append(
            await agenda.do_create_service(
                None,
                team["practice"],
                name=kind.value,
                duration_minutes=50,
                price=Decimal("70"),
                category=cats[kind],
            )
        )
    r = await http.post("/api/setup/availability", json=hours(alice, remote))
    assert r.status_code == 200, r.text
    r = await http.put(f"/api/setup/availability/{r.json()['id']}", json=hours(alice, [talk]))
    assert r.status_code == 422 and "location_id" in r.json()["error"]["fields"], r.text


async def test_hours_saved_without_a_location_before_the_rule_are_flagged(
    http: httpx.AsyncClient, new_http: Any, team: dict[str, Any]
) -> None:
    """Hours saved without a location before it was required for sessions at the practice
    still offered them, and no booking of them could go through ("Choose a location"):
    nothing on the setup page said so. Each such row now says it, and how to mend it."""
    alice, talk, office = team["alice"], team["talk"], team["office"]
    video = await agenda.do_create_service(
        None,
        team["practice"],
        name="Visio",
        duration_minutes=50,
        price=Decimal("70"),
        category=team["cats"][BuiltinCategory.TELECONSULTATION],
    )
    # As the old rule let them be saved.
    legacy = await Availability.create(
        practitioner=alice, weekday=1, start_minute=9 * 60, end_minute=12 * 60
    )
    await legacy.services.add(talk, video)
    remote = await Availability.create(
        practitioner=alice, weekday=2, start_minute=9 * 60, end_minute=12 * 60
    )
    await remote.services.add(video)
    good = await agenda.do_add_availability(
        None,
        alice,
        services=[talk],
        weekday=3,
        start_time=time(9),
        end_time=time(12),
        location=office,
    )
    await login(http, team["owner"])
    url = f"/staff/setup/availability?practitioner={alice.id}"

    def row(page: str, hours: Availability) -> str:
        return page.split(f'data-availability="{hours.id}"')[1].split("</tr>")[0]

    page = (await http.get(url)).text
    warning = "Séance cannot be booked in these hours: it takes place at the practice"
    assert warning in row(page, legacy) and "Choose a location" in row(page, legacy)
    assert "cannot be booked" not in row(page, good)
    assert "cannot be booked" not in row(page, remote)  # a teleconsultation needs none
    # Nor does the portal offer there what no booking can take (it showed slots that were
    # refused once chosen); the teleconsultation stays.
    portal = new_http("10.7.7.7")
    await login(portal, team["client"])
    offered = (await portal.get(f"/portal/book/{alice.id}?location=")).text
    assert "Visio" in offered and "Séance" not in offered

    # The row's own form gives the hours a location; the warning goes.
    r = await http.post(
        f"/staff/setup/availability/{legacy.id}/location", data={"location_id": str(office.id)}
    )
    assert r.status_code == 303, r.text
    await legacy.refresh_from_db()
    assert legacy.location_id == office.id  # type: ignore[attr-defined]
    assert "cannot be booked" not in (await http.get(url)).text
    r = await http.post(
        f"/staff/setup/availability/{remote.id}/location", data={"location_id": "999999"}
    )
    assert r.status_code == 404


async def test_hours_at_a_location_since_closed_are_flagged_and_can_move(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    """Closing a location left its hours on the setup page as if nothing had happened,
    though neither the portal nor the agenda books anything there any more."""
    alice, talk, office = team["alice"], team["talk"], team["office"]
    hours = await agenda.do_add_availability(
        None,
        alice,
        services=[talk],
        weekday=3,
        start_time=time(9),
        end_time=time(12),
        location=office,
    )
    other = await agenda.do_create_location(None, team["practice"], name="Annexe")
    await agenda.do_update_location(
        None, office, name=office.name, address=office.address, is_active=False
    )
    await login(http, team["owner"])
    url = f"/staff/setup/availability?practitioner={alice.id}"
    page = (await http.get(url)).text
    assert "This location is closed: nothing can be booked in these hours" in page
    r = await http.post(
        f"/staff/setup/availability/{hours.id}/location", data={"location_id": str(other.id)}
    )
    assert r.status_code == 303, r.text
    await hours.refresh_from_db()
    assert hours.location_id == other.id  # type: ignore[attr-defined]
    assert "This location is closed" not in (await http.get(url)).text


async def test_a_remote_service_in_hours_without_location_stays_remote(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    """Made a session at the practice while hours without a location offered it, a
    teleconsultation showed slots that no booking could take ("Choose a location")."""
    await login(http, team["owner"])
    video = await agenda.do_create_service(
        None,
        team["practice"],
        name="Visio",
        duration_minutes=50,
        price=Decimal("70"),
        category=team["cats"][BuiltinCategory.TELECONSULTATION],
    )
    hours_id = (
        await http.post("/api/setup/availability", json=hours(team["alice"], [video]))
    ).json()["id"]
    body = {"name": "Visio", "duration_minutes": 50, "price": "70", "category_id": None}
    r = await http.put(f"/api/setup/services/{video.id}", json=body)
    assert r.status_code == 422 and "category_id" in r.json()["error"]["fields"], r.text
    assert (await Service.get(id=video.id)).category_id is not None  # type: ignore[attr-defined]
    # With a location, the hours still suit it.
    moved = hours(team["alice"], [video], location_id=team["office"].id)
    r = await http.put(f"/api/setup/availability/{hours_id}", json=moved)
    assert r.status_code == 200, r.text
    assert (await http.put(f"/api/setup/services/{video.id}", json=body)).status_code == 200


async def test_availability_refuses_what_is_not_offered(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    owner, alice, talk = team["owner"], team["alice"], team["talk"]
    await login(http, owner)
    body = {"name": "Séance", "duration_minutes": 50, "price": "70", "is_active": False}
    await http.put(
        f"/api/setup/locations/{team['office'].id}", json={"name": "Closed", "is_active": False}
    )
    r = await http.post(
        "/api/setup/availability", json=hours(alice, [talk], location_id=team["office"].id)
    )
    assert r.status_code == 422 and "location_id" in r.json()["error"]["fields"]
    await http.put(f"/api/setup/services/{talk.id}", json=body)
    r = await http.post(
        "/api/setup/availability", json=hours(alice, [talk], location_id=team["office"].id)
    )
    assert r.status_code == 422 and "service_ids" in r.json()["error"]["fields"]
    # Wrong ids are missing, whichever field names them.
    assert (
        await http.post(
            "/api/setup/availability",
            json=hours(alice, [talk], location_id=team["office"].id, service_ids=[999999]),
        )
    ).status_code == 404
    assert (
        await http.post("/api/setup/availability", json=hours(alice, [talk], location_id=999999))
    ).status_code == 404
    assert (
        await http.post(
            "/api/setup/availability",
            json={**hours(alice, [talk], location_id=team["office"].id), "practitioner_id": 999999},
        )
    ).status_code == 404
    # An office admin has no hours of their own.
    assert (
        await http.post(
            "/api/setup/availability",
            json=hours(team["desk"], [team["group"]], is_group_slot=True, capacity=3),
        )
    ).status_code == 404


async def test_therapist_edits_only_their_own_availability(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    alice, bob, talk = team["alice"], team["bob"], team["talk"]
    bobs = await agenda.do_add_availability(
        None,
        bob,
        services=[talk],
        weekday=1,
        start_time=datetime(2000, 1, 1, 9).time(),
        end_time=datetime(2000, 1, 1, 12).time(),
    )
    await login(http, alice)
    r = await http.post(
        "/api/setup/availability", json=hours(alice, [talk], location_id=team["office"].id)
    )
    assert r.status_code == 200, r.text
    mine = r.json()["id"]
    assert [a["id"] for a in (await http.get("/api/setup/availability")).json()] == [mine]

    assert (
        await http.post(
            "/api/setup/availability", json=hours(bob, [talk], location_id=team["office"].id)
        )
    ).status_code == 404
    assert (await http.get(f"/api/setup/availability?practitioner_id={bob.id}")).status_code == 404
    assert (
        await http.put(
            f"/api/setup/availability/{bobs.id}",
            json=hours(bob, [talk], location_id=team["office"].id),
        )
    ).status_code == 404
    assert (
        await http.put(
            f"/api/setup/availability/{bobs.id}",
            json=hours(alice, [talk], location_id=team["office"].id),
        )
    ).status_code == 404
    assert (await http.delete(f"/api/setup/availability/{bobs.id}")).status_code == 404
    # Nor can their own hours be handed over to someone else.
    r = await http.put(
        f"/api/setup/availability/{mine}", json=hours(bob, [talk], location_id=team["office"].id)
    )
    assert r.status_code == 404
    await bobs.refresh_from_db()
    assert bobs.deleted_at is None and bobs.weekday == 1

    # The office sees and changes everyone's.
    await login(http, team["desk"])
    everyone = {a["practitioner_id"] for a in (await http.get("/api/setup/availability")).json()}
    assert everyone == {alice.id, bob.id}
    r = await http.put(
        f"/api/setup/availability/{mine}", json=hours(bob, [talk], location_id=team["office"].id)
    )
    assert r.status_code == 422 and "practitioner_id" in r.json()["error"]["fields"]
    assert (await http.delete(f"/api/setup/availability/{bobs.id}")).status_code == 200


# --- time off --------------------------------------------------------------------------------


async def test_time_off_in_local_time(http: httpx.AsyncClient, team: dict[str, Any]) -> None:
    alice, bob = team["alice"], team["bob"]
    await login(http, alice)
    # 14 July in Paris is summer time (UTC+2), 24 December winter time (UTC+1).
    r = await http.post(
        "/api/setup/time-off",
        json={
            "practitioner_id": alice.id,
            "starts_at": f"{NEXT_YEAR}-07-14T09:00",
            "ends_at": f"{NEXT_YEAR}-07-14T18:00",
            "reason": "Fête nationale",
        },
    )
    assert r.status_code == 200, r.text
    off = await TimeOff.get(id=r.json()["id"])
    assert off.starts_at == datetime(NEXT_YEAR, 7, 14, 7, tzinfo=UTC)
    assert off.ends_at == datetime(NEXT_YEAR, 7, 14, 16, tzinfo=UTC)

    r = await http.put(
        f"/api/setup/time-off/{off.id}",
        json={
            "practitioner_id": alice.id,
            "starts_at": f"{NEXT_YEAR}-12-24T00:00",
            "ends_at": f"{NEXT_YEAR}-12-26T00:00",
            "reason": "Noël",
        },
    )
    assert r.status_code == 200, r.text
    await off.refresh_from_db()
    assert off.starts_at == datetime(NEXT_YEAR, 12, 23, 23, tzinfo=UTC)
    # An explicit offset is honoured as given.
    r = await http.post(
        "/api/setup/time-off",
        json={
            "practitioner_id": alice.id,
            "starts_at": f"{NEXT_YEAR}-03-02T08:00:00Z",
            "ends_at": f"{NEXT_YEAR}-03-02T09:00:00Z",
        },
    )
    assert r.json()["starts_at"].startswith(f"{NEXT_YEAR}-03-02T08:00:00")
    assert len((await http.get("/api/setup/time-off")).json()) == 2

    r = await http.post(
        "/api/setup/time-off",
        json={
            "practitioner_id": alice.id,
            "starts_at": f"{NEXT_YEAR}-07-14T09:00",
            "ends_at": f"{NEXT_YEAR}-07-14T08:00",
        },
    )
    assert r.status_code == 422 and "ends_at" in r.json()["error"]["fields"]
    r = await http.post(
        "/api/setup/time-off",
        json={"practitioner_id": alice.id, "starts_at": "not a date", "ends_at": "x"},
    )
    assert r.status_code == 422 and {"starts_at", "ends_at"} <= set(r.json()["error"]["fields"])

    bobs = await agenda.do_add_time_off(
        None,
        bob,
        starts_at=datetime(NEXT_YEAR, 8, 1, tzinfo=UTC),
        ends_at=datetime(NEXT_YEAR, 8, 15, tzinfo=UTC),
    )
    body = {
        "practitioner_id": bob.id,
        "starts_at": f"{NEXT_YEAR}-08-01T00:00",
        "ends_at": f"{NEXT_YEAR}-08-02T00:00",
    }
    assert (await http.post("/api/setup/time-off", json=body)).status_code == 404
    assert (await http.put(f"/api/setup/time-off/{bobs.id}", json=body)).status_code == 404
    assert (await http.delete(f"/api/setup/time-off/{bobs.id}")).status_code == 404
    assert (await http.get(f"/api/setup/time-off?practitioner_id={bob.id}")).status_code == 404

    assert (await http.delete(f"/api/setup/time-off/{off.id}")).status_code == 200
    assert not await TimeOff.exists(id=off.id)
    await login(http, team["owner"])
    assert (await http.delete(f"/api/setup/time-off/{bobs.id}")).status_code == 200


# --- pages -----------------------------------------------------------------------------------


async def test_setup_pages_for_the_office(http: httpx.AsyncClient, team: dict[str, Any]) -> None:
    await login(http, team["desk"])
    home = (await http.get("/staff/")).text
    assert 'href="/staff/setup"' in home
    r = await http.get("/staff/setup")
    assert r.status_code == 303 and r.headers["location"] == "/staff/setup/services"
    for page in ("categories", "services", "locations", "availability", "time-off"):
        r = await http.get(f"/staff/setup/{page}")
        assert r.status_code == 200, page
    assert "Teleconsultation" in (await http.get("/staff/setup/categories")).text

    r = await http.post(
        "/staff/setup/services",
        data={"name": "Bilan", "duration_minutes": "90", "price": "120,50", "category_id": ""},
    )
    assert r.status_code == 303, r.text
    bilan = await Service.get(name="Bilan")
    assert bilan.price == Decimal("120.50") and bilan.category_id is None  # type: ignore[attr-defined]
    # Its row shows the price the way the reader writes it, to post back unchanged.
    french = await http.get("/staff/setup/services", headers={"Accept-Language": "fr"})
    assert 'name="price" value="120,50"' in french.text

    r = await http.post(
        "/staff/setup/services", data={"name": "Bilan", "duration_minutes": "2", "price": "1"}
    )
    assert r.status_code == 422
    assert "Between 5 minutes and 24 hours." in r.text or "out of range" in r.text

    # Deactivate from the row (its button sends is_active=false after the hidden true).
    row = {"name": "Bilan", "duration_minutes": "90", "price": "120.50"}
    r = await http.post(
        f"/staff/setup/services/{bilan.id}", data={**row, "is_active": ["true", "false"]}
    )
    assert r.status_code == 303
    await bilan.refresh_from_db()
    assert not bilan.is_active

    r = await http.post("/staff/setup/locations", data={"name": "Annexe", "address": "Lyon 3e"})
    assert r.status_code == 303
    r = await http.post("/staff/setup/categories", data={"name": "Bilans", "color": "#123456"})
    assert r.status_code == 303
    mine = await ServiceCategory.get(name="Bilans")
    r = await http.post(
        f"/staff/setup/categories/{mine.id}", data={"name": "Bilans", "color": "nope"}
    )
    assert r.status_code == 422
    builtin = team["cats"][BuiltinCategory.HOME_VISIT]
    r = await http.post(f"/staff/setup/categories/{builtin.id}", data={"name": "Chez moi"})
    assert r.status_code == 409
    assert (await http.post("/staff/setup/services/999999", data=row)).status_code == 404


async def test_availability_and_time_off_pages(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    alice, bob, talk, office = team["alice"], team["bob"], team["talk"], team["office"]
    await login(http, alice)
    assert 'href="/staff/setup"' not in (await http.get("/staff/")).text
    assert (await http.get("/staff/setup")).headers["location"] == "/staff/setup/availability"
    assert (await http.get("/staff/setup/services")).status_code == 403
    page = (await http.get("/staff/setup/availability")).text
    assert alice.full_name in page and bob.full_name not in page

    form = {
        "practitioner_id": str(alice.id),
        "weekday": "3",
        "on_date": "",
        "start_time": "14:00",
        "end_time": "17:30",
        "location_id": str(office.id),
        "service_ids": str(talk.id),
        "capacity": "6",
    }
    r = await http.post("/staff/setup/availability", data=form)
    assert r.status_code == 303, r.text
    made = await Availability.get(practitioner_id=alice.id)
    assert (
        made.weekday,
        made.start_minute,
        made.end_minute,
        made.is_group_slot,
        made.capacity,
    ) == (
        3,
        14 * 60,
        17 * 60 + 30,
        False,
        1,
    )
    page = (await http.get("/staff/setup/availability")).text
    assert "14:00–17:30" in page and "Cabinet Lyon" in page

    r = await http.post("/staff/setup/availability", data={**form, "end_time": "13:00"})
    assert r.status_code == 422 and "The end comes after the start." in r.text
    r = await http.post("/staff/setup/availability", data={**form, "practitioner_id": str(bob.id)})
    assert r.status_code == 404
    assert (await http.get(f"/staff/setup/availability?practitioner={bob.id}")).status_code == 404

    r = await http.post(f"/staff/setup/availability/{made.id}/remove")
    assert r.status_code == 303
    await made.refresh_from_db()
    assert made.deleted_at is not None

    r = await http.post(
        "/staff/setup/time-off",
        data={
            "practitioner_id": str(alice.id),
            "starts_at": f"{NEXT_YEAR}-08-03T00:00",
            "ends_at": f"{NEXT_YEAR}-08-22T00:00",
            "reason": "Vacances",
        },
    )
    assert r.status_code == 303, r.text
    off = await TimeOff.get(practitioner_id=alice.id)
    assert off.starts_at == datetime(NEXT_YEAR, 8, 2, 22, tzinfo=UTC)
    assert "Vacances" in (await http.get("/staff/setup/time-off")).text
    bobs = await agenda.do_add_time_off(
        None,
        bob,
        starts_at=datetime(NEXT_YEAR, 8, 1, tzinfo=UTC),
        ends_at=datetime(NEXT_YEAR, 8, 2, tzinfo=UTC),
    )
    assert (await http.post(f"/staff/setup/time-off/{bobs.id}/remove")).status_code == 404
    assert (await http.post(f"/staff/setup/time-off/{off.id}/remove")).status_code == 303
    assert not await TimeOff.exists(id=off.id)


async def test_owner_picks_a_practitioner_and_group_slots_by_form(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    owner, bob, group, office = team["owner"], team["bob"], team["group"], team["office"]
    await login(http, owner)
    assert 'href="/staff/setup"' in (await http.get("/staff/")).text
    page = (await http.get(f"/staff/setup/availability?practitioner={bob.id}")).text
    assert f"Hours of {bob.full_name}" in page
    r = await http.post(
        "/staff/setup/availability",
        data={
            "practitioner_id": str(bob.id),
            "on_date": f"{NEXT_YEAR}-05-05",
            "start_time": "18:00",
            "end_time": "19:30",
            "location_id": str(office.id),
            "service_ids": str(group.id),
            "is_group_slot": "true",
            "capacity": "8",
        },
    )
    assert r.status_code == 303, r.text
    assert f"practitioner={bob.id}" in r.headers["location"]
    made = await Availability.get(practitioner_id=bob.id)
    assert made.is_group_slot and made.capacity == 8 and made.on_date == date(NEXT_YEAR, 5, 5)
    assert "group slot, 8 participants" in (await http.get(r.headers["location"])).text


async def test_add_hours_refused_keeps_what_was_typed(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    """A 422 on "Add the hours" shows the form again as it was filled in, not the blank
    form with its defaults: every field had to be typed again."""
    owner, bob, talk, group, office = (
        team["owner"],
        team["bob"],
        team["talk"],
        team["group"],
        team["office"],
    )
    await login(http, owner)
    form = {
        "practitioner_id": str(bob.id),
        "weekday": "4",
        "start_time": "14:15",
        "end_time": "17:45",
        "location_id": str(office.id),
        "valid_from": f"{NEXT_YEAR}-09-01",
        "valid_until": f"{NEXT_YEAR}-06-30",  # before the start: refused
        "service_ids": [str(talk.id), str(group.id)],
        "is_group_slot": "true",
        "capacity": "9",
    }
    r = await http.post("/staff/setup/availability", data=form)
    assert r.status_code == 422, r.text
    page = r.text
    # The error stands beside its field, not only in the list at the top.
    assert re.search(
        r'name="valid_until"[^>]*><span class="field-error">The end comes after the start\.',
        page,
    )
    assert f"Hours of {bob.full_name}" in page
    for name in ("start_time", "end_time", "valid_from", "valid_until", "capacity"):
        assert re.search(rf'name="{name}"[^>]*value="{form[name]}"', page), name
    assert re.search(r'<option value="4" selected>', page)
    assert re.search(rf'<option value="{office.id}" selected>', page)
    for service in (talk, group):
        assert re.search(rf'name="service_ids" value="{service.id}" checked', page), service
    assert re.search(r'name="is_group_slot" value="true" checked', page)
    assert not await Availability.exists(practitioner_id=bob.id)

    # A date instead of a weekday, and no box ticked: nothing comes back ticked.
    once = {**form, "weekday": "", "on_date": f"{NEXT_YEAR}-05-05", "valid_until": ""}
    del once["is_group_slot"]
    r = await http.post("/staff/setup/availability", data=once)
    assert r.status_code == 422, r.text
    assert f'name="on_date" value="{NEXT_YEAR}-05-05"' in r.text
    assert re.search(
        r'name="is_group_slot"[^>]*>[^<]*<span class="field-error">A group service needs a group',
        r.text,
    )
    assert 'name="is_group_slot" value="true" checked' not in r.text
    assert '<option value="4" selected>' not in r.text
    assert not await Availability.exists(practitioner_id=bob.id)


async def test_a_refused_row_keeps_its_changes_in_the_row(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    """A service, location or category changed in its row and refused (422) came back with
    the row as saved and the changes in the "Add" form below, as if for a new one: saved
    from there, they made a second service instead of correcting the first."""
    talk, office = team["talk"], team["office"]
    await login(http, team["desk"])
    row = {"name": "Séance longue", "duration_minutes": "2", "price": "95,50"}
    r = await http.post(f"/staff/setup/services/{talk.id}", data={**row, "is_active": "true"})
    assert r.status_code == 422, r.text
    mine = r.text.split(f'action="/staff/setup/services/{talk.id}"', 1)[1].split("</form>")[0]
    for name, value in row.items():
        assert re.search(rf'name="{name}" value="{value}"', mine), name
    assert re.search(r'name="duration_minutes"[^>]*><span class="field-error">', mine)
    add = r.text.split('action="/staff/setup/services"', 1)[1].split("</form>")[0]
    assert "Séance longue" not in add and "95,50" not in add
    await talk.refresh_from_db()
    assert talk.name == "Séance" and talk.duration_minutes == 50

    r = await http.post(
        f"/staff/setup/locations/{office.id}",
        data={"name": "   ", "address": "3 place Bellecour", "is_active": "true"},
    )
    assert r.status_code == 422, r.text
    mine = r.text.split(f'action="/staff/setup/locations/{office.id}"', 1)[1].split("</form>")[0]
    assert 'name="address" value="3 place Bellecour"' in mine
    add = r.text.split('action="/staff/setup/locations"', 1)[1].split("</form>")[0]
    assert "Bellecour" not in add
    await office.refresh_from_db()
    assert office.address == ""


async def test_setup_pages_refuse_outsiders(
    http: httpx.AsyncClient, new_http: Any, team: dict[str, Any]
) -> None:
    portal = new_http()
    await login(portal, team["client"])
    for url in ("/staff/setup", "/staff/setup/services", "/staff/setup/availability"):
        r = await portal.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/login"), url
        r = await http.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/login"), url
    await portal.aclose()


# --- in a browser ----------------------------------------------------------------------------


async def test_setup_in_a_browser(live_server: Any, team: dict[str, Any], tmp_path: Any) -> None:
    """The owner adds a service from the Setup link, then Bob's Tuesday hours offering it."""
    from playwright.async_api import async_playwright, expect

    from tests.conftest import CHROMIUM_ARGS, PASSWORD, chromium_path, require_service, sign_in

    path = chromium_path()
    require_service(path is not None, "Chromium")
    bob = team["bob"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                locale="en-US", viewport={"width": 1280, "height": 900}
            )
            page = await context.new_page()
            await sign_in(page, f"{live_server.url}/staff/login", team["owner"].email, PASSWORD)
            await expect(page).to_have_url(f"{live_server.url}/staff/")
            await page.locator("nav").get_by_role("link", name="Setup").click()
            await expect(page).to_have_url(f"{live_server.url}/staff/setup/services")
            add = page.locator("form[action='/staff/setup/services']")
            await add.locator("input[name=name]").fill("Bilan")
            await add.locator("input[name=duration_minutes]").fill("90")
            await add.locator("input[name=price]").fill("120,50")
            await add.get_by_role("button", name="Add the service").click()
            await expect(page.get_by_text("Saved.")).to_be_visible()
            await expect(page.locator("td", has_text="€120.50")).to_be_visible()
            await page.screenshot(path=str(tmp_path / "services.png"), full_page=True)

            await page.get_by_role("link", name="Availability").click()
            await page.locator("select[name=practitioner]").select_option(str(bob.id))
            await page.get_by_role("button", name="Show").click()
            await expect(page.get_by_text(f"Hours of {bob.full_name}")).to_be_visible()
            form = page.locator("form[action='/staff/setup/availability']")
            await form.locator("select[name=weekday]").select_option("1")
            await form.locator("input[name=start_time]").fill("13:30")
            await form.locator("input[name=end_time]").fill("18:00")
            await form.get_by_label("Bilan").check()
            # A session at the practice needs a location: without one it would show on the
            # portal and no booking of it could go through.
            await form.get_by_role("button", name="Add the hours").click()
            await expect(page.locator("[data-field=location_id]")).to_have_text(
                "Choose a location."
            )
            form = page.locator("form[action='/staff/setup/availability']")
            await form.locator("select[name=weekday]").select_option("1")
            await form.locator("input[name=start_time]").fill("13:30")
            await form.locator("input[name=end_time]").fill("18:00")
            await form.locator("select[name=location_id]").select_option(label="Cabinet Lyon")
            await form.get_by_label("Bilan").check()
            await form.get_by_role("button", name="Add the hours").click()
            await expect(page.get_by_text("Saved.")).to_be_visible()
            await expect(page.locator("tr[data-availability]")).to_contain_text("13:30–18:00")
            await page.screenshot(path=str(tmp_path / "availability.png"), full_page=True)
        finally:
            await browser.close()
    made = await Availability.get(practitioner_id=bob.id).prefetch_related("services")
    assert made.weekday == 1 and [s.name for s in made.services] == ["Bilan"]


# --- the actions themselves ------------------------------------------------------------------


async def test_setup_actions_are_audited(team: dict[str, Any]) -> None:
    from models.audit import AuditEntry
    from server.errors import Conflict

    practice, alice, talk = team["practice"], team["alice"], team["talk"]
    mine = await agenda.do_create_category(None, practice, name=" Bilans ", color="#123456")
    assert mine.name == "Bilans"
    await agenda.do_update_category(None, mine, name="Bilans", color="#654321")
    with pytest.raises(Conflict):
        await agenda.do_update_category(
            None, team["cats"][BuiltinCategory.HOME_VISIT], name="X", color="#000000"
        )
    hours_ = await agenda.do_add_availability(
        None,
        alice,
        services=[talk],
        weekday=4,
        start_time=datetime(2000, 1, 1, 9).time(),
        end_time=datetime(2000, 1, 1, 10).time(),
    )
    await agenda.do_remove_availability(None, hours_)
    await agenda.do_remove_availability(None, hours_)  # twice is once
    off = await agenda.do_add_time_off(
        None,
        alice,
        starts_at=datetime(NEXT_YEAR, 1, 2, tzinfo=UTC),
        ends_at=datetime(NEXT_YEAR, 1, 3, tzinfo=UTC),
    )
    await agenda.do_remove_time_off(None, off)
    actions = await AuditEntry.filter(practice_id=practice.id).values_list("action", flat=True)
    assert actions.count("availability.removed") == 1
    assert {
        "service_category.created",
        "service_category.updated",
        "time_off.added",
        "time_off.removed",
    } <= set(actions)


async def test_french_day_names_take_no_capital_in_a_sentence(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    # The list of open hours said "Chaque Lundi".
    alice, talk = team["alice"], team["talk"]
    await login(http, team["desk"])
    r = await http.post(
        "/api/setup/availability",
        json=hours(alice, [talk], location_id=team["office"].id, weekday=0),
    )
    assert r.status_code == 200, r.text
    url = f"/staff/setup/availability?practitioner={alice.id}"
    french = (await http.get(url, headers={"Accept-Language": "fr-FR"})).text
    assert "Chaque lundi" in french and "Chaque Lundi" not in french
    assert "Every Monday" in (await http.get(url, headers={"Accept-Language": "en-GB"})).text


async def test_each_services_fields_have_visible_labels(
    http: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    # The inline form of each service had its duration and price named only by aria-labels.
    await login(http, team["owner"])
    page = (await http.get("/staff/setup/services")).text
    row = page.split(f'data-service="{team["talk"].id}"')[1].split("</tr>")[0]
    for text, field in (
        ("Name", 'name="name"'),
        ("Duration (minutes)", 'name="duration_minutes"'),
        ("Price", 'name="price"'),
        ("Category", 'name="category_id"'),
    ):
        assert re.search(rf"<label[^>]*>{re.escape(text)}\s*<(input|select)[^>]*{field}", row), text
