"""Sign-in flows in a real browser: Debian's Chromium driven by Playwright, against uvicorn.

Playwright's own browser downloads are never used (no ``playwright install``): the tests
launch the system Chromium, skip on a laptop without it, and fail in CI (require_service).
"""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, expect

from tests.conftest import (
    PASSWORD,
    PHONE,
    Factory,
    LiveServer,
    sign_in,
)


async def test_staff_signs_in_and_live_updates_come_on(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    owner = await make.owner(first_name="Hélène")
    page = await browser.new_page(locale="en-US")

    await sign_in(page, f"{live_server.url}/staff/login", owner.email, PASSWORD)

    await expect(page).to_have_url(f"{live_server.url}/staff/")
    await expect(page.locator("h1")).to_have_text("Hello, Hélène")
    status = page.locator("#live-status")
    await expect(status).to_have_attribute("data-state", "live", timeout=10_000)
    await expect(status).to_have_text("Live updates: on")


async def test_client_signs_in_on_a_phone(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    client = await make.client(await make.therapist(), first_name="Camille")
    account = await make.portal_account(client)
    context = await browser.new_context(locale="fr-FR", **PHONE)
    page = await context.new_page()

    await sign_in(page, f"{live_server.url}/portal/login", account.email, PASSWORD)

    await expect(page).to_have_url(f"{live_server.url}/portal/")
    await expect(page.locator("h1")).to_have_text("Bonjour Camille")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    # Nothing wider than the phone: no sideways scrolling to read the page.
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await context.close()


async def test_a_wrong_password_is_refused_with_a_message(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    owner = await make.owner()
    page = await browser.new_page(locale="en-US")

    await sign_in(page, f"{live_server.url}/staff/login", owner.email, "not my password")

    await expect(page.get_by_role("alert")).to_have_text("The email or password is incorrect.")
    await expect(page.locator("input[name=email]")).to_have_value(owner.email)
    assert "/staff/login" in page.url


async def test_a_signed_out_visitor_is_sent_to_the_sign_in_form(
    browser: Browser, live_server: LiveServer
) -> None:
    page = await browser.new_page(locale="en-US")

    await page.goto(f"{live_server.url}/staff/")

    await expect(page).to_have_url(f"{live_server.url}/staff/login?next=/staff/")
    await expect(page.locator("input[name=password]")).to_be_visible()


async def test_the_nav_badge_counts_unread_messages_live_on_any_page(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    import httpx

    from tests.conftest import login

    alice = await make.therapist(first_name="Alice")
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    page = await browser.new_page(locale="en-US")
    await sign_in(page, f"{live_server.url}/staff/login", alice.email, PASSWORD)
    await page.goto(f"{live_server.url}/staff/clients")
    badge = page.locator("nav [data-unread-badge]")
    await expect(page.locator("html")).to_have_attribute("data-live", "live", timeout=10_000)
    await expect(badge).to_be_hidden()
    async with (
        httpx.AsyncClient(base_url=live_server.url) as staff,
        httpx.AsyncClient(base_url=live_server.url) as portal,
    ):
        await login(staff, alice)
        r = await staff.post(
            "/api/conversations",
            json={"kind": "client", "subject": "Hello", "client_id": helene.id},
        )
        cid = r.json()["id"]
        await login(portal, helene)
        for i in range(2):
            await portal.post(
                f"/portal/api/conversations/{cid}/messages",
                json={"body": f"question {i}", "client_uid": f"q{i}"},
            )
        # Counted live on a page that has nothing to do with messaging.
        await expect(badge).to_have_text("2")
        # Read from another device: this tab's badge clears too.
        await staff.post(f"/api/conversations/{cid}/read", json={})
        await expect(badge).to_be_hidden()


async def test_the_tab_shows_cabinets_icon(browser: Browser, live_server: LiveServer) -> None:
    page = await browser.new_page(locale="en-US")
    async with page.expect_response(lambda r: "favicon" in r.url) as icon:
        await page.goto(f"{live_server.url}/portal/login")
    response = await icon.value
    assert response.url == f"{live_server.url}/static/favicon.svg"
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    await page.close()


async def test_the_icon_is_where_browsers_look_without_a_link(http: httpx.AsyncClient) -> None:
    # A PDF or a JSON answer names no icon: the browser asks for /favicon.ico.
    r = await http.get("/favicon.ico", follow_redirects=True)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.text.startswith("<svg")
