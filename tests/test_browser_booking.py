"""Booking from the portal in a real browser, with the front desk's agenda open: the new
appointment appears on the agenda live, and the practice's change appears on the client's
phone live."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from models.agenda import Appointment
from server.actions.booking import HORIZON_DAYS
from server.queries.agenda import slots_for
from tests.conftest import PASSWORD, PHONE, LiveServer, login, sign_in
from tests.test_browser_agenda import PARIS, agenda_page, practice

__all__ = ["practice"]  # the fixture, re-used

pytestmark = pytest.mark.usefixtures("settled_hub")


async def first_slot(practice: dict[str, Any]) -> datetime:
    """The first slot the portal offers (Alice's Monday mornings), in Paris time: asked the
    way the portal asks, so that the desk shows the week the phone books into whatever the
    day and hour (a Monday before nine had the phone book today and the desk show next week;
    a Monday at a quarter past nine offers 9:50 first, not 9:00)."""
    today = datetime.now(PARIS).date()
    slots = await slots_for(
        practice["alice"].id,
        practice["talk"].id,
        timedelta(minutes=practice["talk"].duration_minutes),
        PARIS,
        today,
        today + timedelta(days=HORIZON_DAYS),
    )
    return slots[0].start.astimezone(PARIS)


async def test_a_portal_booking_reaches_the_desk_live_and_back(
    browser: Browser, live_server: LiveServer, practice: dict[str, Any]
) -> None:
    s = practice
    start = await first_slot(s)
    desk = await agenda_page(browser, live_server, s["fanny"], f"date={start.date()}")
    await expect(desk.locator(".appt")).to_have_count(0)

    phone = await (await browser.new_context(locale="en-US", **PHONE)).new_page()
    await sign_in(phone, f"{live_server.url}/portal/login", s["camille"].email, PASSWORD)
    await expect(phone).to_have_url(f"{live_server.url}/portal/")
    await phone.goto(f"{live_server.url}/portal/appointments")
    await phone.get_by_role("link", name="Alice Martin").click()
    await phone.locator("select[name=service]").select_option(label="Séance · 50 minutes · €70.00")
    first = phone.locator("button.slot").first
    hour = start.hour % 12 or 12
    await expect(first).to_have_text(f"{hour}:{start:%M} {'AM' if start.hour < 12 else 'PM'}")
    await first.click()
    await expect(phone.locator(".alert.ok")).to_contain_text("Your appointment is booked")

    booked = await Appointment.get(client_id=s["camille"].id)
    block = desk.locator(f'[data-appointment-id="{booked.id}"]')
    await expect(block).to_contain_text("Camille Roux")
    await expect(block).to_contain_text(f"{hour}:{start:%M}")  # en-US: "9:50 AM"

    # The practice cancels: the client's page says so without a reload.
    await phone.evaluate("window.neverReloaded = true")
    async with httpx.AsyncClient(base_url=live_server.url) as staff:
        await login(staff, s["fanny"])
        r = await staff.post(
            f"/api/appointments/{booked.id}/attendance",
            json={"attendance": "cancelled_by_practitioner"},
        )
        assert r.status_code == 200, r.text
    row = phone.locator(f'[data-appointment="{booked.id}"]')
    await expect(row).to_contain_text("Cancelled by the practitioner")
    assert await phone.evaluate("window.neverReloaded") is True
    await expect(block).to_have_attribute("data-attendance", "cancelled_by_practitioner")
    # Neither page polls: what reached them without a reload came over their socket. (No
    # time bound beyond expect's default: how fast is the benchmarks' business.)
    assert await desk.evaluate("window.neverReloaded") is True


async def test_the_booking_form_fits_a_phone(
    browser: Browser, live_server: LiveServer, practice: dict[str, Any]
) -> None:
    # At 390px the earlier-slot checkbox's label was squeezed one word a line beside its
    # hint, and the chosen service's price was cut off by the select.
    from models.accounts import Practice

    s = practice
    await Practice.filter(id=s["alice"].practice_id).update(earlier_slot_alerts=True)
    phone = await (await browser.new_context(locale="fr-FR", **PHONE)).new_page()
    await sign_in(phone, f"{live_server.url}/portal/login", s["camille"].email, PASSWORD)
    await expect(phone).to_have_url(f"{live_server.url}/portal/")
    await phone.goto(f"{live_server.url}/portal/book/{s['alice'].id}?service={s['talk'].id}")
    label = phone.locator("label.check", has=phone.locator("input[name=alert]"))
    line = await phone.evaluate("parseFloat(getComputedStyle(document.body).lineHeight) || 23")
    box = await label.bounding_box()
    assert box is not None and box["height"] < 2.5 * line, box  # two lines at most
    hint = await phone.locator("#alert-hint").bounding_box()
    assert hint is not None and hint["y"] >= box["y"] + box["height"] - 1  # under, not beside
    await expect(phone.locator("[data-service-detail]")).to_have_text("50 minutes · 70,00 €")
    await expect(phone.locator("[data-service-detail]")).to_be_in_viewport()
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
