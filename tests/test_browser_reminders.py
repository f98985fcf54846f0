"""Booking with "confirm by SMS" from the agenda, in a real browser: the practitioner's
default template is preselected, the SMS goes out after the delay with its text, and a
client without a phone gets a clear error instead of a booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from models.agenda import Appointment
from models.clients import Client, PhoneNumber
from models.jobs import Job
from models.notifications import OutboxMessage
from server import jobs
from server.actions import (
    reminder_jobs,  # noqa: F401 - registers the job handlers
    reminders,
)
from server.auth.sessions import Caller
from tests.conftest import LiveServer
from tests.test_browser_agenda import MONDAY, agenda_page, practice  # noqa: F401

pytestmark = pytest.mark.usefixtures("settled_hub")


async def test_booking_with_confirm_by_sms_from_the_agenda(
    browser: Browser,
    live_server: LiveServer,
    practice: dict[str, Any],  # noqa: F811
) -> None:
    s = practice
    owner_like = Caller.acting_as(s["alice"])
    client: Client = s["noe"]
    # No quiet hours: run in the evening, the confirmation would wait for the morning.
    quiet = await reminders.messaging_settings(client.practice_id)  # type: ignore[attr-defined]
    quiet.quiet_start_minute = quiet.quiet_end_minute = 0
    await quiet.save()
    await PhoneNumber.create(client=client, number="+33612345678", is_primary=True, for_sms=True)
    standard = await reminders.do_save_sms_template(
        owner_like,
        await client.practice,
        None,
        title="Standard",
        description="",
        sender_name="Cabinet",
        body="Booked with {practitioner}: {date} {time}.",
    )
    await reminders.do_save_sms_template(
        owner_like,
        await client.practice,
        None,
        title="Another",
        description="",
        sender_name="",
        body="Other text {date}",
    )
    await reminders.do_set_practitioner_sms(
        owner_like,
        s["alice"],
        default_template=standard,
        mobile="",
        notify_online_bookings=False,
        notices_by_sms=False,
    )
    desk = await agenda_page(browser, live_server, s["fanny"], f"date={MONDAY}")
    await desk.locator(".agenda-open").click(position={"x": 20, "y": 10})
    dialog = desk.locator("#book-dialog")
    await expect(dialog).to_be_visible()
    # The practitioner's default is preselected.
    await expect(dialog.locator("select[name=sms_template_id]")).to_have_value(str(standard.id))
    await expect(dialog.locator(".confirm-sms")).to_contain_text("Sent 5 minutes after booking")

    # A client with no phone: refused, nothing booked.
    await dialog.locator("#book-client-search").fill("Roux")
    await dialog.locator("#book-client-results button", has_text="Camille Roux").click()
    await dialog.locator("input[name=confirm_sms]").check()
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_contain_text("This client has no phone number for SMS.")
    assert await Appointment.all().count() == 0

    await dialog.locator("#book-client-search").fill("noe")
    await dialog.locator("#book-client-results button", has_text="Noé Blanc").click()
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_be_hidden()
    await expect(desk.locator(".appt")).to_have_count(1)
    appointment = await Appointment.get(client_id=client.id)
    job = await Job.get(key=f"confirmation:{appointment.id}")
    assert job.payload["template"] == standard.id
    assert job.run_at - datetime.now(UTC) > timedelta(minutes=4)
    # Nothing before the delay; then one SMS with the template's words.
    await jobs.run_due("browser-test", now=datetime.now(UTC))
    assert await OutboxMessage.filter(channel="sms").count() == 0
    await jobs.run_due("browser-test", now=datetime.now(UTC) + timedelta(minutes=6))
    sms = await OutboxMessage.get(channel="sms")
    assert sms.to == "+33612345678" and sms.sender == "Cabinet"
    assert sms.body_text.startswith("Booked with Alice Martin: Monday, March 1, 2027")


@pytest.mark.parametrize(
    ("locale", "empty", "hello"),
    [
        (
            "fr-FR",
            "0 caractère, GSM-7, 0 segment (champs à remplacer comptés tels qu’écrits)",
            "7 caractères, GSM-7, 1 segment (champs à remplacer comptés tels qu’écrits)",
        ),
        (
            "en-US",
            "0 characters, GSM-7, 0 segments (placeholders counted as written)",
            "7 characters, GSM-7, 1 segment (placeholders counted as written)",
        ),
    ],
)
async def test_the_sms_counter_speaks_the_pages_language(
    browser: Browser, live_server: LiveServer, make: Any, locale: str, empty: str, hello: str
) -> None:
    # The counter was written in the script, outside the catalogs: "segment(s)", and a
    # French sentence with "placeholders" in it.
    from tests.conftest import DESKTOP, signed_in

    owner = await make.owner()
    page = await signed_in(browser, live_server, owner.email, locale=locale, **DESKTOP)
    await page.goto(f"{live_server.url}/staff/settings/sms")
    area = page.locator('textarea[data-sms-count="seg-new"]')
    await area.fill("Bonjour")
    await expect(page.locator("#seg-new")).to_have_text(hello)
    await area.fill("")
    await expect(page.locator("#seg-new")).to_have_text(empty)
    await page.close()
