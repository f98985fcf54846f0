"""Earlier-slot alerts in a real browser: a client's phone shows the offer of a freed slot
the moment it goes out and accepts it, while the front desk's agenda shows the slot
"offered", then booked, without a reload (two pages)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from models.accounts import Practice
from models.agenda import Appointment, Attendance
from models.offers import WaitlistEntry
from server import jobs
from server.actions import agenda, offers
from tests.conftest import PASSWORD, PHONE, LiveServer, login, sign_in
from tests.test_browser_agenda import PARIS, agenda_page, practice

__all__ = ["practice"]  # the fixture, re-used

pytestmark = pytest.mark.usefixtures("settled_hub")


def monday_in(weeks: int) -> date:
    today = datetime.now(PARIS).date()
    return today + timedelta(days=(7 - today.weekday()) or 7) + timedelta(weeks=weeks)


async def test_a_client_sees_an_offer_live_and_accepts_it_while_the_desk_follows(
    browser: Browser, live_server: LiveServer, practice: dict[str, Any]
) -> None:
    s = practice
    p = await Practice.get(id=s["alice"].practice_id)
    p.earlier_slot_alerts = True
    await p.save()
    freed_day, later_day = monday_in(2), monday_in(4)
    nine = time(9)
    noe = await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["noe"],
        service=s["talk"],
        starts_at=datetime.combine(freed_day, nine, PARIS),
        location=s["office"],
    )
    camille = await agenda.do_book_appointment(
        None,
        practitioner=s["alice"],
        client=s["camille"],
        service=s["talk"],
        starts_at=datetime.combine(later_day, nine, PARIS),
        location=s["office"],
    )
    await offers.do_set_earlier_alert(None, camille, True)

    desk = await agenda_page(browser, live_server, s["fanny"], f"date={freed_day}")
    noe_block = desk.locator(f'[data-appointment-id="{noe.id}"]')
    await expect(noe_block).to_contain_text("Noé Blanc")

    phone = await (await browser.new_context(locale="en-US", **PHONE)).new_page()
    await sign_in(phone, f"{live_server.url}/portal/login", s["camille"].email, PASSWORD)
    await expect(phone).to_have_url(f"{live_server.url}/portal/")
    await phone.goto(f"{live_server.url}/portal/appointments")
    await expect(phone.locator(f'[data-appointment="{camille.id}"]')).to_contain_text(
        "You will be alerted of an earlier slot."
    )
    await expect(phone.locator("[data-offer]")).to_have_count(0)
    await phone.evaluate("window.neverReloaded = true")

    # Noé cancels (through the front desk); a few minutes later the worker sends the offers.
    async with httpx.AsyncClient(base_url=live_server.url) as staff:
        await login(staff, s["fanny"])
        r = await staff.post(
            f"/api/appointments/{noe.id}/attendance", json={"attendance": "cancelled_by_client"}
        )
        assert r.status_code == 200, r.text
    await expect(noe_block).to_have_attribute("data-attendance", "cancelled_by_client")
    await expect(desk.locator("[data-slot-offered]")).to_have_count(0)
    await jobs.run_due(now=datetime.now(UTC) + timedelta(minutes=10))

    offer = phone.locator("[data-offer]")
    await expect(offer).to_contain_text("Monday", timeout=2_000)
    await expect(noe_block.locator("[data-slot-offered]")).to_have_text("Offered", timeout=2_000)
    assert await phone.evaluate("window.neverReloaded") is True

    # To whom it was offered, on the cancelled appointment.
    await noe_block.click()
    await expect(desk.locator("#appt-offers")).to_contain_text("Camille Roux · Sent")
    await desk.locator("#appt-dialog [data-close]").click()

    await phone.get_by_role("button", name="Accept and move my appointment").click()
    await expect(phone.locator(".alert.ok")).to_contain_text("moved to the earlier slot")
    moved = await Appointment.get(client_id=s["camille"].id, attendance=Attendance.SCHEDULED)
    assert moved.starts_at == datetime.combine(freed_day, nine, PARIS)

    # The desk sees the slot booked by Camille, and no longer "offered", without a reload.
    new_block = desk.locator(f'[data-appointment-id="{moved.id}"]')
    await expect(new_block).to_contain_text("Camille Roux", timeout=2_000)
    await expect(noe_block.locator("[data-slot-offered]")).to_have_count(0)
    assert await desk.evaluate("window.neverReloaded") is True

    # The front desk puts Camille's new appointment back on the waiting list from the agenda.
    await new_block.click()
    alert = desk.locator("#appt-alert")
    await expect(alert).to_be_visible()
    await expect(alert.locator("input")).not_to_be_checked()
    await alert.locator("input").check()
    for _ in range(50):
        if await WaitlistEntry.filter(appointment_id=moved.id, is_active=True).exists():
            break
        await asyncio.sleep(0.05)
    assert await WaitlistEntry.filter(appointment_id=moved.id, is_active=True).exists()
