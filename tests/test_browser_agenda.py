"""The live agenda in a real browser: the front desk's week and a therapist's day, open side by
side, follow every booking and attendance change made elsewhere without a reload.

Like test_browser.py, this launches Debian's Chromium, skips on a laptop without it and
fails in CI (require_service).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from models.accounts import StaffUser
from models.agenda import Appointment
from server.actions import agenda
from server.auth.sessions import Caller
from tests.conftest import (
    Factory,
    LiveServer,
    login,
    signed_in,
)

pytestmark = pytest.mark.usefixtures("settled_hub")

PARIS = ZoneInfo("Europe/Paris")
MONDAY = date(2027, 3, 1)


def paris(hour: int, minute: int = 0) -> str:
    moment = datetime.combine(MONDAY, time(hour, minute), PARIS).astimezone(UTC)
    return moment.isoformat()


@pytest.fixture
async def practice(make: Factory) -> dict[str, Any]:
    p = await make.practice()
    cats = await agenda.ensure_builtin_categories(p)
    fanny = await make.office_admin(first_name="Fanny")
    alice = await make.therapist(first_name="Alice", last_name="Martin")
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
    noe = await make.client(alice, first_name="Noé", last_name="Blanc")
    bob = await make.therapist(first_name="Bob", last_name="Petit")
    return {
        "fanny": fanny,
        "alice": alice,
        "bob": bob,
        "office": office,
        "talk": talk,
        "video": video,
        "camille": camille,
        "noe": noe,
    }


async def agenda_page(
    browser: Browser, server: LiveServer, who: StaffUser, query: str, locale: str = "en-US"
) -> Page:
    context = await browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
    page = await signed_in(context, server, who.email)
    await page.goto(f"{server.url}/staff/agenda?{query}")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#agenda-grid")).to_have_attribute("aria-busy", "false")
    await page.evaluate("window.neverReloaded = true")
    return page


async def test_the_agenda_follows_bookings_and_attendance_live(
    browser: Browser, live_server: LiveServer, practice: dict[str, Any]
) -> None:
    s = practice
    desk = await agenda_page(browser, live_server, s["fanny"], f"date={MONDAY}")
    day = await agenda_page(
        browser, live_server, s["alice"], f"date={MONDAY}&view=day&practitioner={s['alice'].id}"
    )
    # Alice's open hours are shaded in both; nothing is booked yet.
    for page in (desk, day):
        await expect(page.locator(".agenda-open")).to_have_count(1)
        await expect(page.locator(".appt")).to_have_count(0)
    await expect(desk.locator("#agenda-label")).to_contain_text("Week of Monday, March 1, 2027")
    await expect(day.locator(".agenda-col-title")).to_have_text(["Alice Martin"])

    # Someone else books through the API (later, the client on the portal): it appears.
    async with httpx.AsyncClient(base_url=live_server.url) as other:
        await login(other, s["alice"])
        r = await other.post(
            "/api/appointments",
            json={
                "practitioner_id": s["alice"].id,
                "client_id": s["camille"].id,
                "service_id": s["talk"].id,
                "location_id": s["office"].id,
                "starts_at": paris(9),
            },
        )
        assert r.status_code == 200, r.text
        booked = r.json()["id"]
        for page in (desk, day):
            block = page.locator(f'[data-appointment-id="{booked}"]')
            await expect(block).to_contain_text("Camille Roux")
            await expect(block).to_contain_text(re.compile(r"9:00\sAM"))  # en-US, as the dialog
            await expect(block).to_have_attribute("data-attendance", "scheduled")

        block = desk.locator(f'[data-appointment-id="{booked}"]')
        scheduled_colour = await block.evaluate("b => getComputedStyle(b).backgroundColor")
        r = await other.post(
            f"/api/appointments/{booked}/attendance", json={"attendance": "attended"}
        )
        assert r.status_code == 200
        for page in (desk, day):
            block = page.locator(f'[data-appointment-id="{booked}"]')
            await expect(block).to_have_attribute("data-attendance", "attended")
            await expect(block.locator("[data-attendance-label]")).to_have_text("Attended")
        attended_colour = await desk.locator(f'[data-appointment-id="{booked}"]').evaluate(
            "b => getComputedStyle(b).backgroundColor"
        )
        assert attended_colour != scheduled_colour

    # The front desk books in the free hour after it by clicking the shaded hours.
    await desk.locator(".agenda-open").click(position={"x": 20, "y": 60 * 1.1 + 2})
    dialog = desk.locator("#book-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("input[name=time]")).to_have_value("10:00")
    # The free times of the service that day are offered: 9:50 is the first.
    await dialog.locator("#book-free button", has_text=re.compile(r"^9:50\sAM")).click()
    await dialog.locator("#book-client-search").fill("noe")
    await dialog.locator("#book-client-results button", has_text="Noé Blanc").click()
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_be_hidden()
    noes = await Appointment.get(client_id=s["noe"].id)
    for page in (desk, day):
        await expect(page.locator(f'[data-appointment-id="{noes.id}"]')).to_contain_text(
            "Noé Blanc", timeout=1_000
        )

    # Alice marks Noé as a no-show from her day view; the desk's week follows. Her own
    # session's dialog leads to its note, until it did not take place.
    await day.locator(f'[data-appointment-id="{noes.id}"]').click()
    note = day.locator("#appt-dialog [data-note-link]")
    await expect(note).to_be_visible()
    await expect(note).to_have_attribute("href", f"/staff/appointments/{noes.id}/note")
    await day.locator("#appt-dialog button[data-attendance=no_show]").click()
    await expect(note).to_be_hidden()
    await expect(desk.locator(f'[data-appointment-id="{noes.id}"]')).to_have_attribute(
        "data-attendance", "no_show", timeout=1_000
    )
    await day.locator("#appt-dialog [data-close]").click()

    # A clash is refused with the message that names it.
    await desk.locator(".agenda-open").click(position={"x": 20, "y": 150})
    await expect(dialog.locator("input[name=time]")).to_have_value("11:15")
    await dialog.locator("input[name=time]").fill("09:20")
    await dialog.locator("#book-client-search").fill("Roux")
    await dialog.locator("#book-client-results button", has_text="Camille Roux").click()
    await dialog.locator("button[type=submit]").click()
    await expect(dialog.locator(".form-errors")).to_contain_text("Alice Martin already has")
    await dialog.locator("[data-close]").click()

    # Bob, another therapist, sees Alice's sessions as busy time: no name, nothing to open.
    bobs = await agenda_page(browser, live_server, s["bob"], f"date={MONDAY}")
    private = bobs.locator(f'[data-appointment-id="{booked}"]')
    await expect(private).to_have_attribute("data-private", "")
    await expect(private).to_contain_text("Busy")
    await expect(bobs.locator(".agenda-grid")).not_to_contain_text("Camille")
    await private.click(force=True)
    await expect(bobs.locator("#appt-dialog")).to_be_hidden()
    await bobs.close()

    # Deleting on the desk takes it off Alice's day.
    desk.on("dialog", lambda d: d.accept())
    await desk.locator(f'[data-appointment-id="{booked}"]').click()
    await expect(desk.locator("#appt-dialog [data-note-link]")).to_be_hidden()
    await desk.locator("#appt-delete").click()
    await expect(day.locator(f'[data-appointment-id="{booked}"]')).to_have_count(0)
    for page in (desk, day):
        assert await page.evaluate("window.neverReloaded") is True


# The last Sunday of October 2027: in Paris, 03:00 summer time is 02:00 winter time again.
FOLD = date(2027, 10, 31)


async def test_the_night_the_clocks_go_back(
    browser: Browser, live_server: LiveServer, practice: dict[str, Any], make: Factory
) -> None:
    """A session from 02:30 summer time to 02:20 winter time dropped off the grid (it seemed
    to end before it began), and the free times offered 02:00 twice, the second booking the
    first. Each is now drawn for as long as it lasts, and each free time books its instant."""
    s = practice
    short = await agenda.do_create_service(
        None, await make.practice(), name="Bref", duration_minutes=30, price=Decimal("30")
    )
    bruno = await make.therapist(first_name="Bruno", last_name="Petit")
    for who, service in ((s["alice"], short), (bruno, s["talk"])):
        await agenda.do_add_availability(
            None,
            who,
            services=[service],
            weekday=6,
            start_time=time(1),
            end_time=time(4),
            location=s["office"],
        )
    async with httpx.AsyncClient(base_url=live_server.url) as other:
        await login(other, s["fanny"])
        r = await other.post(
            "/api/appointments",
            json={
                "practitioner_id": bruno.id,
                "client_id": s["camille"].id,
                "service_id": s["talk"].id,
                "location_id": s["office"].id,
                "starts_at": "2027-10-31T00:30:00+00:00",  # 02:30 summer time, 50 minutes
            },
        )
        assert r.status_code == 200, r.text
    page = await agenda_page(browser, live_server, s["fanny"], f"date={FOLD}&view=day")
    block = page.locator(f'[data-appointment-id="{r.json()["id"]}"]')
    await expect(block).to_contain_text("Camille Roux")
    assert round((await block.bounding_box() or {"height": 0})["height"]) == round(50 * 1.1)

    alice_column = page.locator(f'.agenda-col[data-practitioner="{s["alice"].id}"]')
    await alice_column.locator(".agenda-open").click(position={"x": 20, "y": 5})
    dialog = page.locator("#book-dialog")
    await expect(dialog).to_be_visible()
    twice = dialog.locator("#book-free button", has_text=re.compile(r"^2:00\sAM"))
    await expect(twice).to_have_count(2)
    labels = await twice.all_inner_texts()
    assert len(set(labels)) == 2, labels  # told apart by the offset
    winter = dialog.locator('#book-free button[data-start^="2027-10-31T01:00:00"]')
    await winter.click()
    await dialog.locator("#book-client-search").fill("noe")
    await dialog.locator("#book-client-results button", has_text="Noé Blanc").click()
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_be_hidden()
    noes = await Appointment.get(client_id=s["noe"].id)
    assert noes.starts_at == datetime(2027, 10, 31, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("locale", "rail", "block"),
    [
        ("en-US", r"^9\sAM$", r"^9:00\sAM$"),
        ("en-GB", r"^09:00$", r"^09:00$"),
        ("fr-FR", r"^09:00$", r"^09:00$"),
    ],
)
async def test_the_grid_writes_times_as_the_reader_does(
    browser: Browser,
    live_server: LiveServer,
    practice: dict[str, Any],
    locale: str,
    rail: str,
    block: str,
) -> None:
    # In en-US the grid said "14:00" while its dialog said "2:00 PM".
    s = practice
    await agenda.do_book_appointment(
        Caller.acting_as(s["alice"]),
        practitioner=s["alice"],
        client=s["camille"],
        service=s["talk"],
        starts_at=datetime.fromisoformat(paris(9)),
        location=s["office"],
    )
    page = await agenda_page(browser, live_server, s["fanny"], f"date={MONDAY}", locale=locale)
    rail_texts = await page.locator(".agenda-hour").all_inner_texts()
    assert any(re.match(rail, t) for t in rail_texts), rail_texts
    await expect(page.locator(".appt .appt-time")).to_have_text(re.compile(block))
