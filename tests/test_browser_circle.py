"""The circle of care in a real browser: a clinician opens a client file, starts the circle
from its empty state, adds a contact and links another client, as a person would click.

Debian's Chromium driven by Playwright (never ``playwright install``); skips on a laptop
without Chromium and fails in CI (require_service).
"""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.conftest import Factory, LiveServer, signed_in


async def test_adding_someone_to_the_circle_of_care(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    alice = await make.therapist(first_name="Alice")
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    await make.client(alice, first_name="Paul", last_name="Dubois")
    page = await signed_in(browser, live_server, alice.email, locale="en-US")

    # Open the file from the client list, then its circle-of-care tab.
    await page.goto(f"{live_server.url}/staff/clients")
    await page.get_by_role("link", name="Dubois, Hélène").click()
    await (
        page.get_by_role("navigation", name="Client file")
        .get_by_role("link", name="Circle of care")
        .click()
    )
    await expect(page).to_have_url(f"{live_server.url}/staff/clients/{helene.id}/circle")
    await expect(page.locator("[data-circle-empty]")).to_contain_text(
        "This client has no other contacts."
    )

    await page.get_by_role("link", name="Add someone to the circle of care").click()
    form = page.locator("#add-contact form[data-circle-form]")
    await form.get_by_label("First name").fill("Marie")
    await form.get_by_label("Last name").fill("Dubois")
    await form.get_by_label("Relationship").fill("Mother")
    await form.get_by_label("Number").first.fill("06 11 22 33 44")
    await form.get_by_label("Emergency contact").check()
    await form.get_by_role("button", name="Add to the circle of care").click()

    await expect(page.get_by_role("status")).to_have_text("Saved.")
    member = page.locator("[data-circle-contact]")
    await expect(member).to_have_count(1)
    await expect(member.locator("h3")).to_contain_text("Marie Dubois")
    await expect(member.locator("[data-emergency]")).to_have_text("Emergency contact")
    await expect(member).to_contain_text("Mother")
    await expect(member).to_contain_text("06 11 22 33 44")
    await expect(page.locator("[data-circle-empty]")).to_have_count(0)

    # Link Paul, found without typing the accent, as Hélène's sibling.
    await page.get_by_placeholder("Find a client to link, by name").fill("dubois")
    await page.locator("#linked-accounts").get_by_role("button", name="Search").click()
    results = page.locator("[data-client-results]")
    await expect(results).to_contain_text("Paul Dubois")
    await results.get_by_label("What Paul Dubois is to Hélène").select_option("sibling")
    await results.get_by_role("button", name="Link").click()
    await expect(page.locator("[data-linked-accounts]")).to_contain_text("Paul Dubois")
    await expect(page.locator("[data-linked-accounts]")).to_contain_text("Sibling")
