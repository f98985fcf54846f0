"""Billing in a real browser: the front desk opens a past appointment on the agenda, bills
the client, previews the PDF the payer will get, creates and finalizes the invoice.

Like test_browser.py, this launches Debian's Chromium, skips on a laptop without it and
fails in CI (require_service).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect
from pypdf import PdfReader

from models.agenda import Appointment, Attendance
from models.billing import Invoice, InvoiceStatus
from server.actions import agenda
from tests.conftest import PASSWORD, Factory, LiveServer, sign_in, signed_in

pytestmark = pytest.mark.usefixtures("settled_hub")

PARIS = ZoneInfo("Europe/Paris")


async def test_bill_a_client_from_the_agenda_and_preview_the_pdf(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    practice = await make.practice()
    fanny = await make.office_admin(first_name="Fanny")
    alice = await make.therapist(first_name="Alice", last_name="Martin")
    office = await agenda.do_create_location(None, practice, name="Cabinet Lyon")
    talk = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    camille = await make.client(alice, first_name="Camille", last_name="Roux")
    day = datetime.now(PARIS).date() - timedelta(days=7)
    start = datetime.combine(day, time(10), PARIS).astimezone(UTC)
    appointment = await Appointment.create(
        practice=practice,
        practitioner=alice,
        client=camille,
        service=talk,
        location=office,
        starts_at=start,
        ends_at=start + timedelta(minutes=50),
        attendance=Attendance.ATTENDED,
    )

    context = await browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
    page = await signed_in(context, live_server, fanny.email)
    await page.locator("nav a", has_text="Agenda").click()
    await page.goto(f"{live_server.url}/staff/agenda?date={day.isoformat()}")
    await expect(page.locator("#agenda-grid")).to_have_attribute("aria-busy", "false")
    await page.locator(f'[data-appointment-id="{appointment.id}"]').click()
    dialog = page.locator("#appt-dialog")
    await expect(dialog).to_be_visible()
    await dialog.locator("#appt-bill button", has_text="Bill this client").click()

    # The form: the consultation made from the appointment, ticked.
    await expect(page).to_have_url(f"{live_server.url}/staff/billing/new?client={camille.id}")
    row = page.locator("#bill-form tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("from the agenda")
    await expect(row.locator("input[name=consultation]")).to_be_checked()
    await page.locator("#bill-form button", has_text="Preview").click()

    # The summary, and the PDF as the payer will get it.
    await expect(page.locator("h1")).to_have_text("What will be billed")
    plan = page.locator("[data-plan]")
    await expect(plan).to_have_count(1)
    await expect(plan).to_contain_text("Camille Roux")
    await expect(plan).to_contain_text("€70.00")
    # The preview opens in a new tab, as the PDF itself.
    async with context.expect_event(
        "response", lambda r: r.url.endswith("/staff/billing/preview.pdf")
    ) as info:
        await page.locator("[data-preview-pdf] button").click()
    response = await info.value
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    for extra in context.pages[1:]:
        await extra.close()
    # Chromium hands the tab's bytes to its PDF viewer: read the same form's answer directly.
    body = await page.locator("[data-preview-pdf]").evaluate(
        "f => new URLSearchParams(new FormData(f)).toString()"
    )
    response = await page.request.post(
        f"{live_server.url}/staff/billing/preview.pdf",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(await response.body())).pages[0].extract_text()
    assert "Camille Roux" in text and "€70.00" in text and "Séance" in text
    assert not await Invoice.exists()

    await page.locator("button", has_text="Create 1 invoice").click()
    invoice = await Invoice.get(client_id=camille.id)
    await expect(page).to_have_url(f"{live_server.url}/staff/billing/invoices/{invoice.id}")
    await expect(page.locator("[data-total]")).to_have_text("€70.00")

    # Camille has the portal's Invoices page open: a draft is not for her.
    portal_context = await browser.new_context(locale="en-US")
    portal = await portal_context.new_page()
    account = await make.portal_account(camille)
    await sign_in(portal, f"{live_server.url}/portal/login", account.email, PASSWORD)
    await expect(portal).to_have_url(f"{live_server.url}/portal/")
    await portal.locator("nav a", has_text="Invoices").click()
    await expect(portal.locator("main")).to_contain_text("No invoices yet.")

    await page.locator("button", has_text="Finalize").click()
    number = f"F-{datetime.now(PARIS).year}-0001"
    await expect(page.locator("h1")).to_contain_text(number)
    await invoice.refresh_from_db()
    assert invoice.status is InvoiceStatus.FINALIZED
    # It reaches her page without a reload, and its PDF is hers to open.
    await expect(portal.locator("[data-invoices]")).to_contain_text(number, timeout=3_000)
    href = await portal.locator("[data-invoices] a").first.get_attribute("href")
    response = await portal.request.get(f"{live_server.url}{href}")
    assert response.headers["content-type"] == "application/pdf"
    await portal_context.close()
    await context.close()
