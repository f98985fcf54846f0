"""The sessions tab of a client file: every appointment, newest first, its filters, marking
attendance from it, and the attendance totals of the clinical tab."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from models.agenda import Appointment, Attendance
from server.actions import agenda
from tests.conftest import Factory, login

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def rows(html: str) -> list[int]:
    """The appointment ids listed, in order."""
    return [int(i) for i in re.findall(r'data-session="(\d+)"', html)]


@pytest.fixture
async def file(make: Factory) -> dict[str, Any]:
    practice = await make.practice()
    owner = await make.owner()
    alice = await make.therapist(first_name="Alice")
    bob = await make.therapist(first_name="Bob")
    desk = await make.office_admin()
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    marc = await make.client(bob, first_name="Marc")
    office = await agenda.do_create_location(None, practice, name="Cabinet Lyon")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    short = await agenda.do_create_service(
        None, practice, name="Point", duration_minutes=25, price=Decimal("35")
    )

    async def book(who: Any, service: Any, days: int, client: Any = helene) -> Appointment:
        return await agenda.do_book_appointment(
            None,
            practitioner=who,
            client=client,
            service=service,
            starts_at=NOW + timedelta(days=days),
            location=office,
        )

    attended = await book(alice, talk, -30)
    await agenda.do_set_attendance(None, attended, Attendance.ATTENDED)
    by_client = await book(alice, short, -20)
    await agenda.do_set_attendance(None, by_client, Attendance.CANCELLED_BY_CLIENT)
    by_bob = await book(bob, talk, -10)
    await agenda.do_set_attendance(None, by_bob, Attendance.CANCELLED_BY_PRACTITIONER)
    no_show = await book(alice, talk, -5)
    await agenda.do_set_attendance(None, no_show, Attendance.NO_SHOW)
    upcoming = await book(alice, talk, 7)
    deleted = await book(alice, short, 9)
    await agenda.do_delete_appointment(None, deleted)
    marcs = await book(bob, talk, 8, client=marc)
    return {
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "desk": desk,
        "helene": helene,
        "marc": marc,
        "attended": attended,
        "by_client": by_client,
        "by_bob": by_bob,
        "no_show": no_show,
        "upcoming": upcoming,
        "deleted": deleted,
        "marcs": marcs,
    }


async def test_all_sessions_newest_first(http: httpx.AsyncClient, file: dict[str, Any]) -> None:
    await login(http, file["alice"])
    r = await http.get(f"/staff/clients/{file['helene'].id}/sessions")
    assert r.status_code == 200
    expected = ["upcoming", "no_show", "by_bob", "by_client", "attended"]
    assert rows(r.text) == [file[k].id for k in expected]  # never the deleted one
    assert "not billed" in r.text
    assert "Cancelled by the practitioner" in r.text and "No-show" in r.text
    assert "€70.00" in r.text and "€35.00" in r.text  # the service price stands for the amount
    assert f'href="/staff/appointments/{file["attended"].id}/note"' in r.text


async def test_no_note_links_for_an_office_without_clinical_access(
    http: httpx.AsyncClient, file: dict[str, Any]
) -> None:
    await login(http, file["desk"])
    r = await http.get(f"/staff/clients/{file['helene'].id}/sessions")
    assert len(rows(r.text)) == 5 and "/note" not in r.text


async def test_sessions_in_french(http: httpx.AsyncClient, file: dict[str, Any]) -> None:
    await login(http, file["alice"])
    r = await http.get(
        f"/staff/clients/{file['helene'].id}/sessions", headers={"Accept-Language": "fr"}
    )
    assert "non facturé" in r.text and "Annulé par le client" in r.text
    assert "70,00" in r.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=no_show", ["no_show"]),
        ("status=cancelled_by_client", ["by_client"]),
        ("service=Point", ["by_client"]),
        ("amount_min=50", ["upcoming", "no_show", "by_bob", "attended"]),
        ("amount_max=40", ["by_client"]),
        ("amount_min=30&amount_max=40", ["by_client"]),
        ("amount_min=70%2C00&amount_max=70", ["upcoming", "no_show", "by_bob", "attended"]),
        ("status=attended&service=Point", []),
        # Values that mean nothing are ignored rather than failing the page.
        (
            "status=bogus&amount_min=abc&therapist=x",
            ["upcoming", "no_show", "by_bob", "by_client", "attended"],
        ),
    ],
)
async def test_filters(
    http: httpx.AsyncClient, file: dict[str, Any], query: str, expected: list[str]
) -> None:
    await login(http, file["alice"])
    r = await http.get(f"/staff/clients/{file['helene'].id}/sessions?{query}")
    assert r.status_code == 200
    assert rows(r.text) == [file[k].id for k in expected]
    if not expected:
        assert "No session matches these filters." in r.text


async def test_sessions_api(http: httpx.AsyncClient, new_http: Any, file: dict[str, Any]) -> None:
    helene = file["helene"]
    await login(http, file["alice"])
    r = await http.get(f"/api/clients/{helene.id}/sessions")
    assert r.status_code == 200
    out = r.json()
    assert [s["id"] for s in out] == [
        file[k].id for k in ["upcoming", "no_show", "by_bob", "by_client", "attended"]
    ]
    assert out[0]["amount"] == "70.00" and out[0]["billed"] is False
    assert out[0]["attendance"] == "scheduled" and "attended" in out[0]["next_attendances"]
    r = await http.get(f"/api/clients/{helene.id}/sessions?therapist={file['bob'].id}")
    assert [s["id"] for s in r.json()] == [file["by_bob"].id]
    r = await http.get(f"/api/clients/{helene.id}/sessions?amount_max=40")
    assert [s["service_name"] for s in r.json()] == ["Point"]

    await login(http, file["bob"])
    assert (await http.get(f"/api/clients/{helene.id}/sessions")).status_code == 404
    portal = new_http()
    await login(portal, helene)
    assert (await portal.get(f"/api/clients/{helene.id}/sessions")).status_code == 401
    await portal.aclose()


async def test_filter_by_therapist(http: httpx.AsyncClient, file: dict[str, Any]) -> None:
    await login(http, file["owner"])
    base = f"/staff/clients/{file['helene'].id}/sessions"
    page = (await http.get(base)).text
    # The therapist filter offers those found on this client's sessions.
    assert f'<option value="{file["bob"].id}"' in page
    r = await http.get(f"{base}?therapist={file['bob'].id}")
    assert rows(r.text) == [file["by_bob"].id]
    r = await http.get(f"{base}?therapist={file['alice'].id}&status=scheduled")
    assert rows(r.text) == [file["upcoming"].id]


async def test_mark_attendance(http: httpx.AsyncClient, file: dict[str, Any]) -> None:
    helene, upcoming = file["helene"], file["upcoming"]
    await login(http, file["desk"])  # the office marks attendance too
    url = f"/staff/clients/{helene.id}/sessions/{upcoming.id}/attendance"
    r = await http.post(url, data={"attendance": "attended", "status": "scheduled"})
    assert r.status_code == 303
    # Back on the list as it was filtered.
    assert r.headers["location"] == f"/staff/clients/{helene.id}/sessions?status=scheduled&saved=1"
    await upcoming.refresh_from_db()
    assert upcoming.attendance is Attendance.ATTENDED
    page = await http.get(r.headers["location"])
    assert "Saved." in page.text and rows(page.text) == []

    # A no-show may become attended, but "moved" is final: a clear 409 on the tab.
    moved = file["by_client"]
    await agenda.do_set_attendance(None, moved, Attendance.SCHEDULED)
    await agenda.do_move_appointment(None, moved, NOW + timedelta(days=20))
    r = await http.post(
        f"/staff/clients/{helene.id}/sessions/{moved.id}/attendance",
        data={"attendance": "attended"},
    )
    assert r.status_code == 409
    assert 'role="alert"' in r.text
    assert "A session marked “Moved” cannot be marked “Attended”." in r.text
    await moved.refresh_from_db()
    assert moved.attendance is Attendance.MOVED

    r = await http.post(url, data={"attendance": "late"})
    assert r.status_code == 422


async def test_mark_attendance_back_to_scheduled_when_slot_taken(
    http: httpx.AsyncClient, file: dict[str, Any]
) -> None:
    """Un-cancelling is refused when someone took the freed time meanwhile."""
    by_client = file["by_client"]
    await agenda.do_book_appointment(
        None,
        practitioner=file["alice"],
        client=file["marc"],
        service=await by_client.service,
        starts_at=by_client.starts_at,
        location=await by_client.location,
    )
    await login(http, file["alice"])
    r = await http.post(
        f"/staff/clients/{file['helene'].id}/sessions/{by_client.id}/attendance",
        data={"attendance": "scheduled"},
    )
    assert r.status_code == 409 and "already has" in r.text


async def test_sessions_access(
    http: httpx.AsyncClient, new_http: Any, file: dict[str, Any]
) -> None:
    helene, upcoming = file["helene"], file["upcoming"]
    url = f"/staff/clients/{helene.id}/sessions/{upcoming.id}/attendance"
    await login(http, file["bob"])  # not his client, though one of the sessions is his
    assert (await http.get(f"/staff/clients/{helene.id}/sessions")).status_code == 404
    assert (await http.post(url, data={"attendance": "attended"})).status_code == 404

    await login(http, file["alice"])
    # Another file's appointment, a deleted one, and a missing id look alike.
    for other in (file["marcs"].id, file["deleted"].id, 999999):
        r = await http.post(
            f"/staff/clients/{helene.id}/sessions/{other}/attendance",
            data={"attendance": "attended"},
        )
        assert r.status_code == 404
    await file["marcs"].refresh_from_db()
    assert file["marcs"].attendance is Attendance.SCHEDULED

    portal = new_http()
    await login(portal, helene)
    r = await portal.get(f"/staff/clients/{helene.id}/sessions")
    assert r.status_code == 303 and "/staff/login" in r.headers["location"]
    r = await portal.post(url, data={"attendance": "attended"})
    assert r.status_code in (303, 403)  # no staff session: sent to sign in (or refused)
    await portal.aclose()
    await upcoming.refresh_from_db()
    assert upcoming.attendance is Attendance.SCHEDULED


async def test_empty_sessions(http: httpx.AsyncClient, file: dict[str, Any], make: Factory) -> None:
    newcomer = await make.client(file["alice"])
    await login(http, file["alice"])
    r = await http.get(f"/staff/clients/{newcomer.id}/sessions")
    assert "No sessions yet." in r.text and rows(r.text) == []


async def test_clinical_attendance_totals(http: httpx.AsyncClient, file: dict[str, Any]) -> None:
    await login(http, file["alice"])
    helene = file["helene"]
    out = (await http.get(f"/api/clients/{helene.id}")).json()
    assert out["clinical"]["attendance"] == {"attended": 1, "cancelled": 2, "no_show": 1}
    page = (await http.get(f"/staff/clients/{helene.id}/clinical")).text
    assert "1 attended, 2 cancelled, 1 no-show" in page
    # Marking from the sessions tab moves the totals.
    await http.post(
        f"/staff/clients/{helene.id}/sessions/{file['upcoming'].id}/attendance",
        data={"attendance": "no_show"},
    )
    out = (await http.get(f"/api/clients/{helene.id}")).json()
    assert out["clinical"]["attendance"]["no_show"] == 2
    # Real plural forms, not "(s)": French counts 0 and 1 as singular.
    french = {"Accept-Language": "fr-FR"}
    page = (await http.get(f"/staff/clients/{helene.id}/clinical", headers=french)).text
    assert "1 honorée, 2 annulées, 2 absences" in page
    page = (await http.get(f"/staff/clients/{helene.id}/clinical")).text
    assert "1 attended, 2 cancelled, 2 no-shows" in page


async def test_demo_practice_has_an_agenda(http: httpx.AsyncClient) -> None:
    from models.accounts import StaffUser
    from models.agenda import Availability, Location, Service, ServiceCategory
    from models.clients import Client
    from server.demo import DEMO_PASSWORD, create_demo

    await create_demo()
    assert await Location.filter(is_active=True).count() == 2
    kinds = {
        (await ServiceCategory.get(id=s.category_id)).builtin  # type: ignore[attr-defined]
        for s in await Service.filter(category_id__not_isnull=True)
    }
    assert kinds == set(agenda.BuiltinCategory)
    for email in ("alice@demo.cabinet", "bruno@demo.cabinet"):
        who = await StaffUser.get(email=email)
        assert await Availability.filter(practitioner_id=who.id, weekday__not_isnull=True).exists()
    helene = await Client.get(first_name="Hélène")
    states = set(await Appointment.filter(client_id=helene.id).values_list("attendance", flat=True))
    assert Attendance.SCHEDULED in states and len(states) >= 3
    everyone = set(await Appointment.all().values_list("attendance", flat=True))
    assert {
        Attendance.ATTENDED,
        Attendance.CANCELLED_BY_CLIENT,
        Attendance.CANCELLED_BY_PRACTITIONER,
        Attendance.NO_SHOW,
        Attendance.SCHEDULED,
    } <= everyone
    r = await http.post(
        "/api/session", json={"email": "alice@demo.cabinet", "password": DEMO_PASSWORD}
    )
    http.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    page = await http.get(f"/staff/clients/{helene.id}/sessions")
    assert len(rows(page.text)) >= 4


async def test_the_file_opens_on_its_sessions(
    http: httpx.AsyncClient, file: dict[str, Any]
) -> None:
    await login(http, file["alice"])
    r = await http.get(f"/staff/clients/{file['helene'].id}")
    assert r.status_code == 200
    assert rows(r.text) == [
        file[k].id for k in ["upcoming", "no_show", "by_bob", "by_client", "attended"]
    ]


# --- in a browser ----------------------------------------------------------------------------


async def test_filter_and_mark_in_a_browser(
    live_server: Any, file: dict[str, Any], tmp_path: Any
) -> None:
    """A therapist filters the tab by status and marks the upcoming session attended."""
    from playwright.async_api import async_playwright, expect

    from tests.conftest import CHROMIUM_ARGS, PASSWORD, chromium_path, require_service, sign_in

    path = chromium_path()
    require_service(path is not None, "Chromium")
    helene, upcoming = file["helene"], file["upcoming"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                locale="en-US", viewport={"width": 1280, "height": 800}
            )
            page = await context.new_page()
            await sign_in(page, f"{live_server.url}/staff/login", file["alice"].email, PASSWORD)
            await expect(page).to_have_url(f"{live_server.url}/staff/")
            await page.goto(f"{live_server.url}/staff/clients/{helene.id}")
            await expect(page.locator("tr[data-session]")).to_have_count(5)
            await page.locator("select[name=status]").select_option("scheduled")
            await page.get_by_role("button", name="Filter").click()
            row = page.locator(f'tr[data-session="{upcoming.id}"]')
            await expect(page.locator("tr[data-session]")).to_have_count(1)
            await row.get_by_label("New status").select_option("attended")
            await row.get_by_role("button", name="Save").click()
            await expect(page.get_by_text("Saved.")).to_be_visible()
            # Still filtered on "scheduled": the session it marked has left the list.
            await expect(page.locator("tr[data-session]")).to_have_count(0)
            await page.get_by_role("link", name="Show all").click()
            await expect(row.locator("[data-attendance]")).to_have_text("Attended")
            await page.screenshot(path=str(tmp_path / "sessions.png"), full_page=True)
        finally:
            await browser.close()
    await upcoming.refresh_from_db()
    assert upcoming.attendance is Attendance.ATTENDED
