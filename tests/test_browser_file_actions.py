"""The client file's action bar in the browser: "New secure message" opens the messaging
dialog with the client already chosen."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, expect

from tests.conftest import DESKTOP, PASSWORD, PHONE, LiveServer, sign_in, signed_in
from tests.test_browser_messaging import people

__all__ = ["people"]  # the fixture, re-used


async def test_new_secure_message_from_the_file(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    camille = people["camille"]
    page = await browser.new_page(locale="en-US")
    await sign_in(page, f"{live_server.url}/staff/login", people["helene"].email, PASSWORD)
    await page.goto(f"{live_server.url}/staff/clients/{camille.id}/contact")
    await page.get_by_role("link", name="New secure message").click()
    dialog = page.locator("#new-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#chosen-client")).to_have_text("Camille Martin")
    await dialog.locator("input[name=subject]").fill("Your forms")
    await dialog.locator("textarea[name=body]").fill("Here are the forms we discussed.")
    await dialog.get_by_role("button", name="Start the conversation").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#messages .msg")).to_contain_text("Here are the forms")


async def test_every_file_tab_is_on_screen_on_a_phone(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    # The tabs used to run off the right edge of a phone, the later ones out of sight.
    camille = people["camille"]
    page = await signed_in(browser, live_server, people["helene"].email, locale="fr-FR", **PHONE)
    await page.goto(f"{live_server.url}/staff/clients/{camille.id}/contact")
    tabs = page.locator("nav.tabs a")
    assert await tabs.count() >= 8
    width = page.viewport_size["width"]
    for i in range(await tabs.count()):
        box = await tabs.nth(i).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (
            await tabs.nth(i).inner_text(),
            box,
        )
    # The page itself does not scroll sideways either.
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    await page.close()


async def test_every_file_tab_is_on_screen_at_desktop_width(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    # At 1280px the French tabs needed 1469px on one row: the later ones, even the current one,
    # were cut off by the edge of the file with no scrollbar to reach them.
    camille = people["camille"]
    page = await signed_in(browser, live_server, people["helene"].email, locale="fr-FR", **DESKTOP)
    await page.goto(f"{live_server.url}/staff/clients/{camille.id}/logs")
    nav = await page.locator("nav.tabs").bounding_box()
    assert nav is not None
    tabs = page.locator("nav.tabs a")
    for i in range(await tabs.count()):
        box = await tabs.nth(i).bounding_box()
        assert box is not None and box["x"] + box["width"] <= nav["x"] + nav["width"] + 1, (
            await tabs.nth(i).inner_text(),
            box,
        )
    await expect(page.locator("nav.tabs a[aria-current=page]")).to_be_in_viewport()
    await page.close()


async def test_labelled_fields_keep_their_height(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    # A field inside a <label> in a .row took the row's 12rem flex basis as its height: the
    # "New client" form showed 192px-tall boxes.
    page = await signed_in(browser, live_server, people["helene"].email, locale="fr-FR", **DESKTOP)
    await page.goto(f"{live_server.url}/staff/clients")
    heights = await page.evaluate(
        """() => [...document.querySelectorAll('.row label input, .row label select')]
          .filter(e => e.type !== 'checkbox' && e.type !== 'hidden')
          .map(e => { e.closest('details, dialog')?.setAttribute('open', '');
                      return [e.name, e.getBoundingClientRect().height]; })"""
    )
    assert heights, "the page has labelled fields in a row"
    assert all(h < 60 for _, h in heights), heights
    await page.close()
