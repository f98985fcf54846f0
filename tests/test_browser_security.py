"""The pages under their Content-Security-Policy, in a real browser: no page's own script is
refused, the form behaviours that replaced inline handlers work, and a script that is not
ours does not run (server/security_headers.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from models.accounts import Practice
from tests.conftest import (
    PASSWORD,
    Factory,
    LiveServer,
    login,
    session_booker,
    sign_in,
)

# Records every violation of the page's policy, from before its first script.
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || ""));
});
"""


async def tour(page: Page, base: str, paths: list[str]) -> list[str]:
    found: list[str] = []
    for path in paths:
        response = await page.goto(f"{base}{path}")
        assert response is not None and response.status == 200, path
        await page.wait_for_load_state("networkidle")
        found += [f"{path}: {v}" for v in await page.evaluate("window.__violations")]
    return found


async def test_no_page_of_ours_breaks_its_own_policy(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    practice: Practice = await make.practice()
    alice = await make.therapist(first_name="Alice")
    client = await make.client(alice, first_name="Camille")
    account = await make.portal_account(client)
    book = await session_booker(practice, alice, client)
    await book(datetime.now(UTC) + timedelta(days=2))
    async with httpx.AsyncClient(base_url=live_server.url) as api:
        await login(api, alice)
        r = await api.post(
            "/api/conversations",
            json={"kind": "client", "subject": "Hello", "client_id": client.id, "body": "Hi"},
        )
        assert r.status_code == 200, r.text
    context = await browser.new_context(locale="en-US")
    await context.add_init_script(WATCH)
    staff = await context.new_page()
    await sign_in(staff, f"{live_server.url}/staff/login", alice.email, PASSWORD)
    await expect(staff).to_have_url(f"{live_server.url}/staff/")
    base = f"/staff/clients/{client.id}"
    found = await tour(
        staff,
        live_server.url,
        [
            "/staff/",
            "/staff/agenda",
            "/staff/messages",
            "/staff/clients",
            f"{base}/contact",
            f"{base}/sessions",
            f"{base}/documents",
            f"{base}/measures",
            f"{base}/logs",
            "/staff/billing",
            "/staff/tasks",
        ],
    )
    portal_context = await browser.new_context(locale="fr-FR")
    await portal_context.add_init_script(WATCH)
    portal = await portal_context.new_page()
    await sign_in(portal, f"{live_server.url}/portal/login", account.email, PASSWORD)
    await expect(portal).to_have_url(f"{live_server.url}/portal/")
    found += await tour(
        portal,
        live_server.url,
        [
            "/portal/",
            "/portal/messages",
            "/portal/appointments",
            "/portal/invoices",
        ],
    )
    assert found == []
    # Live updates still come on (realtime.js, its socket allowed by connect-src 'self').
    await portal.goto(f"{live_server.url}/portal/")
    await expect(portal.locator("#live-status")).to_have_attribute("data-state", "live")

    # A script that is not ours, slipped into a page, does not run.
    ran = await staff.evaluate(
        """() => new Promise(done => {
             const s = document.createElement("script");
             s.textContent = "window.__injected = true";
             document.body.appendChild(s);
             setTimeout(() => done(window.__injected === true), 100);
           })"""
    )
    assert ran is False
    assert any("script-src" in v for v in await staff.evaluate("window.__violations"))
    # Nor does a style sheet slipped in (a page restyled to hide a warning, or to lay a
    # fake sign-in form over it); our own style attributes (the agenda's) still apply.
    hidden = await staff.evaluate(
        """() => new Promise(done => {
             const s = document.createElement("style");
             s.textContent = "body { visibility: hidden }";
             document.head.appendChild(s);
             setTimeout(() => done(getComputedStyle(document.body).visibility === "hidden"), 100);
           })"""
    )
    assert hidden is False
    assert any("style-src" in v for v in await staff.evaluate("window.__violations"))

    # The behaviours that replaced inline handlers: a confirmation, then a cancel sends nothing.
    await portal.goto(f"{live_server.url}/portal/appointments")
    answers: list[str] = []

    async def decline(dialog: Any) -> None:
        answers.append(dialog.message)
        await dialog.dismiss()

    portal.on("dialog", decline)
    cancel = portal.locator("form[data-confirm] button[type=submit]").first
    await cancel.click()
    await expect(portal).to_have_url(f"{live_server.url}/portal/appointments")
    assert answers and "Annuler" in answers[0]
    # A filter sends itself when it changes (the invoices' status).
    await staff.goto(f"{live_server.url}/staff/billing")
    await staff.locator("select[name=status][data-autosubmit]").select_option("unpaid")
    await expect(staff).to_have_url(f"{live_server.url}/staff/billing?status=unpaid")
    # "Select all" ticks what its selector finds (the consultations to bill).
    await staff.evaluate(
        """() => document.body.insertAdjacentHTML("beforeend",
             '<input type="checkbox" id="all" data-select-all=".pick">' +
             '<input type="checkbox" class="pick"><input type="checkbox" class="pick">')"""
    )
    await staff.locator("#all").click()
    assert await staff.evaluate("[...document.querySelectorAll('.pick')].every(b => b.checked)")
    await context.close()
    await portal_context.close()
