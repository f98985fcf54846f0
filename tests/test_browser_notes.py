"""A session note in the browser, written for longer than the idle timeout: typing keeps the
session alive, and a session that ends anyway does not reload the page over unsaved text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from playwright.async_api import Browser, expect

from models.accounts import AuthSession
from server.actions import agenda
from tests.conftest import Factory, LiveServer, signed_in


async def note_page(browser: Browser, live_server: LiveServer, make: Factory) -> tuple[Any, Any]:
    practice = await make.practice()
    helene = await make.therapist(first_name="Hélène")
    camille = await make.client(helene, first_name="Camille")
    service = await agenda.do_create_service(
        None, practice, name="Séance", duration_minutes=50, price=Decimal("70")
    )
    office = await agenda.do_create_location(None, practice, name="Lyon")
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    appt = await agenda.do_book_appointment(
        None, practitioner=helene, client=camille, service=service, starts_at=start, location=office
    )
    context = await browser.new_context(locale="en-US")
    # The page's clock is the test's to move: a minute of typing without waiting a minute.
    page = await context.new_page()
    await page.clock.install()
    await page.close()
    page = await signed_in(context, live_server, helene.email)
    await page.goto(f"{live_server.url}/staff/appointments/{appt.id}/note")
    await expect(page.locator("html[data-live=live]")).to_have_count(1)
    session = await AuthSession.get(staff_user_id=helene.id, revoked_at=None)
    return page, session


async def test_typing_a_note_keeps_the_session_alive(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    page, session = await note_page(browser, live_server, make)
    box = page.locator("textarea[name=section_note]")
    await box.type("Came in tired")
    # Twenty-five minutes into the note with nothing sent: the session is near its end.
    quiet = datetime.now(UTC) - timedelta(minutes=25)
    await AuthSession.filter(id=session.id).update(last_seen_at=quiet)
    await page.clock.fast_forward(61_000)
    async with page.expect_request(f"{page.url.split('/staff/')[0]}/api/me", timeout=3000):
        await box.type(", slept badly.")
    for _ in range(20):
        await session.refresh_from_db()
        if session.last_seen_at > quiet + timedelta(minutes=20):
            break
        await page.wait_for_timeout(100)
    assert session.last_seen_at > datetime.now(UTC) - timedelta(minutes=1)


async def test_a_session_that_ends_does_not_reload_the_page_over_unsaved_text(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    page, session = await note_page(browser, live_server, make)
    url = page.url
    box = page.locator("textarea[name=section_note]")
    await box.fill("Three paragraphs written and not saved yet.")
    await box.dispatch_event("input")
    # Away from the desk past the timeout: the session ends, the socket is closed (4001).
    await AuthSession.filter(id=session.id).update(revoked_at=datetime.now(UTC))
    notice = page.locator("[data-session-ended]")
    await expect(notice).to_be_visible(timeout=5000)
    await expect(notice).to_contain_text("copy it before you leave the page")
    assert page.url == url
    await expect(box).to_have_value("Three paragraphs written and not saved yet.")
    link = notice.get_by_role("link", name="Sign in again in a new tab")
    assert await link.get_attribute("target") == "_blank"


async def test_a_page_with_nothing_typed_goes_to_sign_in_when_the_session_ends(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    page, session = await note_page(browser, live_server, make)
    note = page.url.removeprefix(live_server.url)
    await AuthSession.filter(id=session.id).update(revoked_at=datetime.now(UTC))
    await expect(page).to_have_url(f"{live_server.url}/staff/login?next={note}", timeout=5000)
