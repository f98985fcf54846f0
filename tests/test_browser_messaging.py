"""Secure messaging in a real browser: a clinician on the staff app and a client on a phone,
two Chromium pages in separate browser contexts, talking through uvicorn and the live socket.

Nothing is reloaded: every change the other person makes must appear on its own. Like
test_browser.py, the tests launch Debian's Chromium, skip on a laptop without it and fail in
CI (require_service).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Dialog, Locator, Page, expect

from models.accounts import StaffUser
from models.clients import Client, Relationship
from models.messaging import Conversation, Message, MessageRead
from server.actions.circle import do_unlink_clients
from server.actions.clients import do_link_clients
from server.settings import get_settings
from tests.conftest import (
    DESKTOP,
    PASSWORD,
    PHONE,
    Factory,
    LiveServer,
    login,
    sign_in,
    until,
)

# A phone whose screen is off, or whose browser is in the background: document.hidden is
# true until the test "turns the screen on". Headless Chromium always reports visible pages.
SCREEN_SWITCH = """
(() => {
  let hidden = false;
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(document, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible"),
  });
  window.setScreenOff = (off) => {
    hidden = off;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


@pytest.fixture
async def people(make: Factory) -> dict[str, Any]:
    """Hélène, a therapist allowed on the portal; Bruno, a colleague; Camille, her client with a
    portal account; Noé, a client without one."""
    helene = await make.therapist(first_name="Hélène", last_name="Durand")
    bruno = await make.therapist(first_name="Bruno", last_name="Lefort")
    camille = await make.client(helene, first_name="Camille", last_name="Martin")
    noe = await make.client(helene, portal=False, first_name="Noé", last_name="Sansportail")
    return {"helene": helene, "bruno": bruno, "camille": camille, "noe": noe}


async def messages_page(
    browser: Browser,
    server: LiveServer,
    who: StaffUser | Client,
    *,
    open_id: int | None = None,
    phone: bool = False,
    init_script: str | None = None,
    locale: str = "en-US",
    **context_options: Any,
) -> Page:
    """Sign ``who`` in, in a browser context of their own, and open the messages page live."""
    context = await browser.new_context(
        locale=locale, **(PHONE if phone else DESKTOP), **context_options
    )
    if init_script:
        await context.add_init_script(init_script)
    page = await context.new_page()
    if isinstance(who, StaffUser):
        realm, email = "staff", who.email
    else:
        realm, email = "portal", who.email
    await sign_in(page, f"{server.url}/{realm}/login", email or "", PASSWORD)
    await expect(page).to_have_url(f"{server.url}/{realm}/")
    await page.goto(f"{server.url}/{realm}/messages" + (f"?c={open_id}" if open_id else ""))
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    # Cleared by any reload: checked at the end to prove that everything arrived live.
    await page.evaluate("window.neverReloaded = true")
    return page


async def never_reloaded(*pages: Page) -> None:
    for page in pages:
        assert await page.evaluate("window.neverReloaded") is True


async def start_conversation(
    new_http: Callable[..., httpx.AsyncClient],
    therapist: StaffUser,
    client: Client,
    subject: str,
    **more: Any,
) -> int:
    """An existing conversation (made through the API), for the tests about what follows;
    ``more``: other fields of the request (linked_client_ids, group_name)."""
    async with new_http("10.9.0.1") as http:
        await login(http, therapist)
        r = await http.post(
            "/api/conversations",
            json={"kind": "client", "subject": subject, "client_id": client.id, **more},
        )
        assert r.status_code == 200, r.text
        return int(r.json()["id"])


async def client_says(portal: httpx.AsyncClient, cid: int, body: str) -> None:
    """A message from the client signed in on ``portal``, sent through the API."""
    r = await portal.post(
        f"/portal/api/conversations/{cid}/messages",
        json={"body": body, "client_uid": uuid.uuid4().hex},
    )
    assert r.status_code == 200, r.text


def message(page: Page, text: str) -> Locator:
    return page.locator("#messages .msg").filter(has_text=text)


def conversation_in_list(page: Page, subject: str) -> Locator:
    return page.locator("#conv-list .conv").filter(has_text=subject)


async def write(page: Page, text: str) -> None:
    """Type like a person (one key at a time, so the typing indicator goes out)."""
    await page.locator("#composer-text").press_sequentially(text)


async def test_clinician_and_client_talk_live(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    clinician = await messages_page(browser, live_server, people["helene"])
    client = await messages_page(browser, live_server, people["camille"], phone=True)
    await expect(client.locator("#conv-list")).to_have_text("No conversations yet.")

    # The clinician starts the conversation from the dialog: client, subject, first message.
    await clinician.get_by_role("button", name="New conversation").click()
    dialog = clinician.locator("#new-dialog")
    await dialog.locator("#client-search").fill("Mart")
    await dialog.locator("#client-results").get_by_role("button", name="Camille Martin").click()
    await expect(dialog.locator("#chosen-client")).to_have_text("Camille Martin")
    await dialog.get_by_label("Subject", exact=True).fill("Sleep diary")
    await dialog.get_by_label("First message").fill("How were your nights this week?")
    await dialog.get_by_role("button", name="Start the conversation").click()
    await expect(dialog).to_be_hidden()
    await expect(clinician.locator(".thread-head h2")).to_have_text("Sleep diary")
    sent = message(clinician, "How were your nights this week?")
    await expect(sent.locator(".status")).to_have_text("Unread")

    # It appears on the client's phone by itself, counted unread, and opens with a tap.
    entry = conversation_in_list(client, "Sleep diary")
    await expect(entry.locator("[data-unread]")).to_have_text("1")
    await expect(client.locator("#unread-total")).to_have_text("1")
    await entry.get_by_role("button").click()
    await expect(message(client, "How were your nights this week?")).to_be_visible()
    await expect(client.locator("#unread-total")).to_be_hidden()

    # Reading it turns the clinician's receipt to Read, live.
    await expect(sent.locator(".status")).to_have_text("Read")
    await expect(sent.locator(".status")).to_have_attribute("data-status", "read")

    # The client types: the clinician sees it; Send (on the phone) sends, the reply arrives live.
    await write(client, "Better, thank you")
    await expect(clinician.locator("#typing")).to_have_text("Camille Martin is typing…")
    await client.get_by_role("button", name="Send").click()
    await expect(message(clinician, "Better, thank you")).to_be_visible()
    await expect(clinician.locator("#typing")).to_have_text("")
    await expect(client.locator("#composer-text")).to_have_value("")
    await expect(message(client, "Better, thank you").locator(".status")).to_have_text("Read")

    # And the other way round.
    await write(clinician, "Good")
    await expect(client.locator("#typing")).to_have_text("Hélène Durand is typing…")

    # Everything fits the phone: no sideways scrolling.
    overflow = await client.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await never_reloaded(clinician, client)


async def test_new_conversation_dialog_explains_what_is_missing(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    clinician = await messages_page(browser, live_server, people["helene"])
    await clinician.get_by_role("button", name="New conversation").click()
    dialog = clinician.locator("#new-dialog")
    results = dialog.locator("#client-results")

    # A client without a portal account is shown, marked, cannot be chosen, and their file is
    # one click away (that is where an account is created).
    noe = results.locator("li").filter(has_text="Noé Sansportail")
    await expect(noe.get_by_role("button", name="Noé Sansportail")).to_be_disabled()
    await expect(noe).to_contain_text("No portal account, so no secure messages.")
    link = noe.get_by_role("link", name="Open the client file")
    await expect(link).to_have_attribute("href", f"/staff/clients/{people['noe'].id}")
    await expect(results.get_by_role("button", name="Camille Martin")).to_be_enabled()

    await dialog.locator("#client-search").fill("Sans")
    await expect(results.get_by_role("button")).to_have_count(1)
    await dialog.locator("#client-search").fill("Cam")
    await results.get_by_role("button", name="Camille Martin").click()

    # No subject: the error is said next to the subject field, which gets the focus.
    start = dialog.get_by_role("button", name="Start the conversation")
    await start.click()
    subject = dialog.get_by_label("Subject", exact=True)
    await expect(dialog.locator('.field-error[data-field="subject"]')).to_have_text(
        "A subject is required."
    )
    await expect(subject).to_have_attribute("aria-invalid", "true")
    await expect(subject).to_be_focused()
    await expect(dialog.get_by_role("alert")).to_have_text("Some fields are missing.")

    # Three people (a colleague added): a group name is required.
    await subject.fill("Appointment change")
    await dialog.get_by_label("Bruno Lefort (therapist)").check()
    await start.click()
    group = dialog.get_by_label("Group name (required with more than two participants)")
    await expect(dialog.locator('.field-error[data-field="group_name"]')).to_have_text(
        "A group name is required when more than two people take part."
    )
    await expect(dialog.locator('.field-error[data-field="subject"]')).to_have_count(0)
    await expect(group).to_be_focused()

    await group.fill("Care team")
    await start.click()
    await expect(dialog).to_be_hidden()
    await expect(clinician.locator(".thread-head h2")).to_have_text(
        "Care team · Appointment change"
    )
    await expect(conversation_in_list(clinician, "Appointment change")).to_have_count(1)

    # Opened again, the dialog starts clean.
    await clinician.get_by_role("button", name="New conversation").click()
    await expect(dialog.locator(".field-error")).to_have_count(0)
    await expect(dialog.get_by_role("alert")).to_have_count(0)


async def test_message_menu_copies_and_deletes_until_read(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Next session")
    clinician = await messages_page(
        browser,
        live_server,
        people["helene"],
        open_id=cid,
        permissions=["clipboard-read", "clipboard-write"],
    )
    client = await messages_page(
        browser, live_server, people["camille"], open_id=cid, phone=True, init_script=SCREEN_SWITCH
    )
    await client.evaluate("setScreenOff(true)")

    # Sent while the client's screen is off: it arrives on the phone but is not read.
    await write(clinician, "Sent to the wrong person")
    await clinician.get_by_role("button", name="Send").click()
    await expect(message(client, "Sent to the wrong person")).to_be_visible()
    wrong = message(clinician, "Sent to the wrong person")
    await asyncio.sleep(0.3)
    await expect(wrong.locator(".status")).to_have_text("Unread")
    assert not await MessageRead.filter(message__body="Sent to the wrong person").exists()

    # Copy text: in the clipboard, and the page says so.
    await wrong.get_by_label("Message actions").click()
    await wrong.get_by_role("button", name="Copy text").click()
    await expect(clinician.locator("#thread-notice")).to_have_text("Text copied.")
    assert await clinician.evaluate("navigator.clipboard.readText()") == "Sent to the wrong person"

    # Delete while unread: asked first, then gone from both pages.
    asked: list[str] = []

    async def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    clinician.once("dialog", accept)
    await wrong.get_by_label("Message actions").click()
    await wrong.get_by_role("button", name="Delete").click()
    await expect(wrong).to_have_count(0)
    await expect(message(client, "Sent to the wrong person")).to_have_count(0)
    assert asked == ["Delete this message? Nobody has read it yet."]
    assert await Message.filter(body="Sent to the wrong person", deleted_at=None).count() == 0

    # Delete refused once read: the client reads it while the clinician is confirming.
    await write(clinician, "Second thoughts")
    await clinician.locator("#composer-text").press("Enter")
    await expect(message(client, "Second thoughts")).to_be_visible()
    second = message(clinician, "Second thoughts")

    async def read_then_accept(dialog: Dialog) -> None:
        await client.evaluate("setScreenOff(false)")
        await until(lambda: MessageRead.filter(message__body="Second thoughts").exists())
        await dialog.accept()

    clinician.once("dialog", read_then_accept)
    await second.get_by_label("Message actions").click()
    await second.get_by_role("button", name="Delete").click()
    await expect(clinician.get_by_role("alert")).to_have_text(
        "This message was already read: it can no longer be deleted."
    )
    await expect(second.locator(".status")).to_have_text("Read")
    await expect(message(client, "Second thoughts")).to_be_visible()
    # Once read, Delete is no longer offered.
    await second.get_by_label("Message actions").click()
    await expect(second.get_by_role("button", name="Copy text")).to_be_visible()
    await expect(second.get_by_role("button", name="Delete")).to_have_count(0)
    await never_reloaded(clinician, client)


async def test_adding_participants_warns_they_stay_for_good(
    browser: Browser,
    live_server: LiveServer,
    make: Factory,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    lucas = await make.client(people["helene"], first_name="Lucas", last_name="Martin")
    await do_link_clients(None, people["camille"], lucas, Relationship.PARENT)
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Weekly check-in")
    clinician = await messages_page(browser, live_server, people["helene"], open_id=cid)
    client = await messages_page(browser, live_server, people["camille"], open_id=cid, phone=True)

    for page in (clinician, client):
        await page.get_by_text("Show participants").click()
        panel = page.locator(".participants .panel")
        await expect(panel.locator("p")).to_have_text("1 client(s) and linked account(s), 1 staff")
        await expect(panel.locator("li")).to_have_count(2)
    await expect(client.get_by_role("button", name="Add participants")).to_have_count(0)
    # The client is halfway through a message: adding people must not lose it.
    await client.get_by_text("Show participants").click()
    await write(client, "Half-written")

    await clinician.get_by_role("button", name="Add participants").click()
    dialog = clinician.locator("#add-dialog")
    await expect(dialog).to_contain_text("Participants can never be removed later")
    await expect(dialog.get_by_label("Hélène Durand (therapist)")).to_have_count(0)
    await dialog.get_by_label("Bruno Lefort (therapist)").check()
    await dialog.get_by_label("Lucas Martin (parent)").check()
    await dialog.get_by_label("Group name (required with more than two participants)").fill(
        "Care team"
    )

    asked: list[str] = []

    async def answer(dialog: Dialog, yes: bool) -> None:
        asked.append(dialog.message)
        await (dialog.accept() if yes else dialog.dismiss())

    # Declining the confirmation adds nobody.
    clinician.once("dialog", lambda d: answer(d, False))
    await dialog.get_by_role("button", name="Add", exact=True).click()
    await expect(dialog).to_be_visible()
    clinician.once("dialog", lambda d: answer(d, True))
    await dialog.get_by_role("button", name="Add", exact=True).click()
    await expect(dialog).to_be_hidden()
    assert len(asked) == 2
    assert "can never be removed" in asked[0]
    assert asked[0] == asked[1]

    for page in (clinician, client):
        await expect(page.locator(".thread-head h2")).to_have_text("Care team · Weekly check-in")
        await page.get_by_text("Show participants").click()
        panel = page.locator(".participants .panel")
        await expect(panel.locator("p")).to_have_text("2 client(s) and linked account(s), 2 staff")
        await expect(panel).to_contain_text("Bruno Lefort")
        await expect(panel).to_contain_text("Lucas Martin")
    await expect(client.locator("#composer-text")).to_have_value("Half-written")
    await never_reloaded(clinician, client)


async def test_an_open_menu_stays_open_while_the_thread_is_redrawn(
    browser: Browser,
    live_server: LiveServer,
    make: Factory,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    """Back live or people added, the open thread is drawn again: what someone has open in it
    (a message's menu, the participants) must not close under their pointer. CI caught the
    menu closing when the page's first load and its socket's resync both drew the thread."""
    lucas = await make.client(people["helene"], first_name="Lucas", last_name="Martin")
    await do_link_clients(None, people["camille"], lucas, Relationship.PARENT)
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Paperwork")
    async with new_http("10.9.0.2") as portal, new_http("10.9.0.1") as staff:
        await login(portal, people["camille"])
        await login(staff, people["helene"])
        await client_says(portal, cid, "Could you call me back?")
        page = await messages_page(browser, live_server, people["helene"], open_id=cid)

        asked = message(page, "Could you call me back?")
        await asked.get_by_label("Message actions").click()
        r = await staff.post(
            f"/api/conversations/{cid}/participants",
            json={"staff_ids": [people["bruno"].id], "group_name": "Care team"},
        )
        assert r.status_code == 200, r.text
        await expect(page.locator(".thread-head h2")).to_have_text("Care team · Paperwork")
        await expect(asked.get_by_role("button", name="Create a task")).to_be_visible()
        await page.locator(".thread-head h2").click()  # a click elsewhere closes it
        await expect(asked.get_by_role("button", name="Create a task")).to_be_hidden()

        await page.get_by_text("Show participants").click()
        r = await staff.post(
            f"/api/conversations/{cid}/participants", json={"linked_client_ids": [lucas.id]}
        )
        assert r.status_code == 200, r.text
        panel = page.locator(".participants .panel")
        await expect(panel).to_contain_text("Lucas Martin")
        await expect(panel).to_be_visible()

        # Read while its menu is open: the menu stays, without Delete (read: no longer offered).
        await page.locator("#composer-text").fill("Tomorrow at ten?")
        await page.get_by_role("button", name="Send").click()
        mine = message(page, "Tomorrow at ten?")
        await mine.get_by_label("Message actions").click()
        await expect(mine.get_by_role("button", name="Delete")).to_be_visible()
        r = await portal.post(f"/portal/api/conversations/{cid}/read", json={})
        assert r.status_code == 200, r.text
        await expect(mine.locator(".status")).to_contain_text("Read by Camille Martin")
        await expect(mine.get_by_role("button", name="Copy text")).to_be_visible()
        await expect(mine.get_by_role("button", name="Delete")).to_have_count(0)
    await never_reloaded(page)


async def test_unread_counts_follow_live(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    diary = await start_conversation(new_http, people["helene"], people["camille"], "Sleep diary")
    await start_conversation(new_http, people["helene"], people["camille"], "Invoice question")
    clinician = await messages_page(browser, live_server, people["helene"], open_id=diary)
    client = await messages_page(browser, live_server, people["camille"], phone=True)
    total = client.locator("#unread-total")
    diary_entry = conversation_in_list(client, "Sleep diary")
    invoice_entry = conversation_in_list(client, "Invoice question")
    await expect(total).to_be_hidden()

    for text in ("First note", "Second note"):
        await write(clinician, text)
        await clinician.locator("#composer-text").press("Enter")
        await expect(message(clinician, text)).to_be_visible()
    await expect(diary_entry.locator("[data-unread]")).to_have_text("2")
    await expect(total).to_have_text("2")
    await expect(client).to_have_title("(2) Messages · Cabinet")

    await conversation_in_list(clinician, "Invoice question").get_by_role("button").click()
    await expect(clinician.locator(".thread-head h2")).to_have_text("Invoice question")
    await write(clinician, "Your invoice is ready")
    await clinician.locator("#composer-text").press("Enter")
    await expect(invoice_entry.locator("[data-unread]")).to_have_text("1")
    await expect(total).to_have_text("3")

    # Reading one conversation takes its messages off the total; back on the list it shows.
    await diary_entry.get_by_role("button").click()
    await expect(message(client, "Second note")).to_be_visible()
    await client.get_by_role("button", name="Back to the conversations").click()
    await expect(diary_entry.locator("[data-unread]")).to_have_count(0)
    await expect(invoice_entry.locator("[data-unread]")).to_have_text("1")
    await expect(total).to_have_text("1")

    # A message deleted before it was read no longer counts.
    clinician.once("dialog", lambda d: d.accept())
    invoice = message(clinician, "Your invoice is ready")
    await invoice.get_by_label("Message actions").click()
    await invoice.get_by_role("button", name="Delete").click()
    await expect(invoice_entry.locator("[data-unread]")).to_have_count(0)
    await expect(total).to_be_hidden()
    await expect(client).to_have_title("Messages · Cabinet")

    # Back on the list, a new message in a conversation read before counts again.
    await write(clinician, "One more thing")
    await clinician.locator("#composer-text").press("Enter")
    await expect(total).to_have_text("1")

    # The client replies: on the clinician's list (another conversation open) it counts.
    await diary_entry.get_by_role("button").click()
    await write(client, "Noted")
    await client.get_by_role("button", name="Send").click()
    staff_diary = conversation_in_list(clinician, "Sleep diary")
    await expect(staff_diary.locator("[data-unread]")).to_have_text("1")
    await expect(clinician.locator("#unread-total")).to_have_text("1")
    await staff_diary.get_by_role("button").click()
    await expect(message(clinician, "Noted")).to_be_visible()
    await expect(staff_diary.locator("[data-unread]")).to_have_count(0)
    await expect(clinician.locator("#unread-total")).to_be_hidden()
    await never_reloaded(clinician, client)


async def test_what_is_typed_while_a_send_is_on_its_way_is_kept(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # The recipients' tabs may show a message before its sender hears it is stored (the
    # answer waits for the disk): a fast typist's next message must survive that answer.
    diary = await start_conversation(new_http, people["helene"], people["camille"], "Sleep diary")
    clinician = await messages_page(browser, live_server, people["helene"], open_id=diary)
    held = asyncio.Event()
    answers = 0

    async def hold(route: Any) -> None:
        nonlocal answers
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch()  # stored now; answered when the test says so
        await held.wait()
        answers += 1
        if answers == 1:
            await route.fulfill(response=response)
        else:
            await route.abort()

    await clinician.route("**/api/conversations/*/messages", hold)
    await write(clinician, "First note")
    await clinician.locator("#composer-text").press("Enter")
    await expect(clinician.locator("#composer-text")).to_have_value("")
    await write(clinician, "Second half-typed")
    held.set()
    await expect(message(clinician, "First note")).to_be_visible()
    await expect(clinician.locator("#composer-text")).to_have_value("Second half-typed")
    # A send that fails is put back, to be sent again.
    await clinician.locator("#composer-text").press("Enter")
    await expect(clinician.locator("#composer-text")).to_have_value("Second half-typed")
    await expect(clinician.locator("#thread-notice")).to_be_visible()


async def test_a_late_answer_keeps_a_later_failed_send_and_its_uid(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # The first send's answer comes after a second send has failed (a slow network): the
    # second's error stays on screen, and its retry is stored once, with its own uid. CI
    # caught a late answer hiding the error; it also forgot the uid to retry with.
    diary = await start_conversation(new_http, people["helene"], people["camille"], "Sleep diary")
    clinician = await messages_page(browser, live_server, people["helene"], open_id=diary)
    release_first = asyncio.Event()
    broke = False

    async def slow_then_broken(route: Any) -> None:
        nonlocal broke
        body = (
            (route.request.post_data_json or {}).get("body")
            if route.request.method == "POST"
            else None
        )
        if body == "Early note":
            response = await route.fetch()
            await release_first.wait()
            await route.fulfill(response=response)
        elif body == "Late note" and not broke:
            broke = True
            await route.fetch()  # stored on the server; the page never hears of it
            await route.abort()
        else:
            await route.continue_()

    await clinician.route("**/api/conversations/*/messages", slow_then_broken)
    await write(clinician, "Early note")
    await clinician.locator("#composer-text").press("Enter")
    await write(clinician, "Late note")
    await clinician.locator("#composer-text").press("Enter")
    await expect(clinician.locator("#composer-text")).to_have_value("Late note")
    await expect(clinician.locator("#thread-notice")).to_be_visible()

    async with clinician.expect_event(
        "requestfinished", predicate=lambda r: "Early note" in (r.post_data or "")
    ):
        release_first.set()
    await clinician.wait_for_timeout(200)  # the answer's handler has run
    await expect(clinician.locator("#thread-notice")).to_be_visible()

    async with clinician.expect_response(lambda r: "Late note" in (r.request.post_data or "")):
        await clinician.locator("#composer-text").press("Enter")
    await expect(clinician.locator("#composer-text")).to_have_value("")
    assert await Message.filter(body="Late note").count() == 1
    assert await Message.filter(body="Early note").count() == 1


async def test_times_are_written_the_way_the_readers_region_writes_them(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # An English-speaking client in Britain reads 7 December as 07/12, not as 12/7.
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Dates")
    page = await messages_page(browser, live_server, people["camille"], phone=True, locale="en-GB")
    assert await page.evaluate("document.documentElement.lang") == "en-GB"
    conversation = await Conversation.get(id=cid)
    local = conversation.last_activity_at.astimezone(ZoneInfo(get_settings().time_zone))
    await expect(conversation_in_list(page, "Dates").locator(".conv-time")).to_have_text(
        local.strftime("%d/%m/%Y, %H:%M")
    )


async def test_an_unlinked_parent_s_open_conversation_goes_from_their_screen(
    browser: Browser,
    live_server: LiveServer,
    make: Factory,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    """Unlinked from the child's file while the conversation is open on their phone: it goes,
    live, and the therapist's participants list marks them as having left."""
    parent = await make.client(people["helene"], first_name="Lucas", last_name="Martin")
    await do_link_clients(None, people["camille"], parent, Relationship.PARENT)
    cid = await start_conversation(
        new_http,
        people["helene"],
        people["camille"],
        "Family",
        linked_client_ids=[parent.id],
        group_name="Family",
    )
    phone = await messages_page(browser, live_server, parent, open_id=cid, phone=True)
    clinician = await messages_page(browser, live_server, people["helene"], open_id=cid)
    await expect(conversation_in_list(phone, "Family")).to_have_count(1)
    await do_unlink_clients(None, people["camille"], parent)
    await expect(conversation_in_list(phone, "Family")).to_have_count(0)
    await expect(phone.locator("#thread")).not_to_have_attribute("data-conv", str(cid))
    await clinician.get_by_text("Show participants").click()
    await expect(clinician.locator(".participants li[data-left]")).to_contain_text("Lucas Martin")


async def test_a_client_writes_first_from_the_phone(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    """A client with no conversation yet writes to their therapist from the portal: the
    dialog names who will read it and says messages are not for emergencies; the therapist's
    open page shows the new conversation live, waiting for a reply."""
    clinician = await messages_page(browser, live_server, people["helene"])
    client = await messages_page(browser, live_server, people["camille"], phone=True)
    await expect(client.locator("#conv-list")).to_have_text("No conversations yet.")
    await client.get_by_role("button", name="New message").click()
    dialog = client.locator("#write-dialog")
    await expect(dialog).to_contain_text("Hélène Durand")
    await expect(dialog).to_contain_text("emergency")
    # Nothing typed: the form says which field, and nothing is sent.
    await dialog.get_by_role("button", name="Send").click()
    await expect(dialog.locator(".form-errors")).to_contain_text("Some fields are missing.")
    await dialog.get_by_label("Subject").fill("Thursday")
    await dialog.get_by_label("Message").fill("Could we move Thursday to the afternoon?")
    await dialog.get_by_role("button", name="Send").click()
    await expect(dialog).to_be_hidden()
    await expect(client.locator(".thread-head h2")).to_have_text("Thursday")
    await expect(message(client, "Could we move Thursday")).to_be_visible()

    entry = conversation_in_list(clinician, "Thursday")
    await expect(entry.locator("[data-unread]")).to_have_text("1")
    await entry.get_by_role("button").click()
    await expect(message(clinician, "Could we move Thursday")).to_be_visible()
    await expect(message(client, "Could we move Thursday").locator(".status")).to_have_text("Read")
    await never_reloaded(clinician, client)


async def test_a_send_lost_on_the_network_is_explained_in_french(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # A client on a French phone losing the network while sending read the browser's own
    # English ("Failed to fetch") under the conversation; a proxy's bare 502 gave its
    # English status text ("Bad Gateway"). Both now say the page's own words.
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Réseau")
    page = await messages_page(
        browser, live_server, people["camille"], open_id=cid, phone=True, locale="fr-FR"
    )
    said = "Cabinet est momentanément indisponible. Veuillez réessayer dans un instant."
    lost = True

    async def lost_then_bare_502(route: Any) -> None:
        if route.request.method != "POST":
            await route.continue_()
        elif lost:
            await route.abort("internetdisconnected")
        else:
            await route.fulfill(status=502, body="<html>Bad Gateway</html>")

    await page.route("**/portal/api/conversations/*/messages", lost_then_bare_502)
    for _attempt in range(2):
        await write(page, "Bonjour")
        await page.get_by_role("button", name="Envoyer").click()
        await expect(page.locator("#thread-notice")).to_have_text(said)
        await page.locator("#composer-text").fill("")
        lost = False


async def staff_says(
    new_http: Callable[..., httpx.AsyncClient], who: StaffUser, cid: int, body: str
) -> None:
    """A message from ``who``, sent through the staff API."""
    async with new_http("10.9.0.2") as http:
        await login(http, who)
        r = await http.post(
            f"/api/conversations/{cid}/messages",
            json={"body": body, "client_uid": uuid.uuid4().hex},
        )
        assert r.status_code == 200, r.text


async def staff_writes_many(
    http: httpx.AsyncClient, cid: int, count: int, special: dict[int, str] | None = None
) -> None:
    """``count`` messages "Message 0", "Message 1"... from the clinician signed in on
    ``http``, some of them (by number) written otherwise."""
    for n in range(count):
        r = await http.post(
            f"/api/conversations/{cid}/messages",
            json={"body": (special or {}).get(n, f"Message {n}"), "client_uid": uuid.uuid4().hex},
        )
        assert r.status_code == 200


async def test_a_long_word_or_address_stays_on_the_phone_screen(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # One long unbroken word (a pasted reference, a long address) made the whole portal page
    # tens of thousands of pixels wide: the client saw an empty screen and had to scroll
    # sideways to find the conversation. Every message now wraps inside the phone's width.
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Lien")
    await staff_says(new_http, people["helene"], cid, "Référence : " + "x" * 400)
    await staff_says(
        new_http,
        people["helene"],
        cid,
        "https://example.org/" + "chemin-tres-long/" * 20 + "?avec=des&parametres=1",
    )
    page = await messages_page(browser, live_server, people["camille"], open_id=cid, phone=True)
    await expect(message(page, "Référence")).to_be_visible()
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    for bubble in await page.locator("#messages .msg").all():
        box = await bubble.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    await expect(page.locator("#composer-text")).to_be_in_viewport()
    await page.screenshot(path="/tmp/chat_long_word.png")


async def test_addresses_in_a_message_are_links_that_open_safely(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # An address in a message was plain text: on a phone, the client had to select it by
    # hand and paste it. It is now a link, opened in a new tab without handing the page to
    # the site (noopener, noreferrer); anything else in the message stays text.
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Ressources")
    body = (
        "Voici l'exercice : https://example.org/respiration?x=1&y=2, "
        "et la vidéo (https://video.example.net/v/42).\n"
        "<b>gras</b> <img src=x onerror=alert(1)> javascript:alert(1) http:// ftp://x.org"
    )
    await staff_says(new_http, people["helene"], cid, body)
    page = await messages_page(browser, live_server, people["camille"], open_id=cid, phone=True)
    bubble = message(page, "Voici l'exercice")
    links = bubble.locator(".msg-body a")
    await expect(links).to_have_count(2)
    await expect(links.nth(0)).to_have_attribute("href", "https://example.org/respiration?x=1&y=2")
    await expect(links.nth(1)).to_have_attribute("href", "https://video.example.net/v/42")
    for i in range(2):
        await expect(links.nth(i)).to_have_attribute("target", "_blank")
        await expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
    assert await bubble.locator(".msg-body").inner_text() == body
    assert await bubble.locator("b, img, script").count() == 0
    # The same in the sender's own copy, shown as soon as it is sent.
    clinician = await messages_page(browser, live_server, people["helene"], open_id=cid)
    await write(clinician, "Et celle-ci : https://example.com/fiche")
    await clinician.locator("#composer-text").press("Enter")
    await expect(
        message(clinician, "Et celle-ci").locator('a[href="https://example.com/fiche"]')
    ).to_be_visible()
    await expect(
        message(page, "Et celle-ci").locator('a[href="https://example.com/fiche"]')
    ).to_be_visible()
    await page.screenshot(path="/tmp/chat_links.png")


async def test_a_blank_or_too_long_message_is_refused_and_kept_in_the_box(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # Enter on a box of spaces did nothing at all, without a word; a text pasted past the
    # 10,000-character limit was cut short by the box, silently, and the cut part was lost.
    # Now both are refused with the reason, and the box keeps everything that was typed.
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Limite")
    page = await messages_page(
        browser, live_server, people["camille"], open_id=cid, phone=True, locale="fr-FR"
    )
    box = page.locator("#composer-text")
    await box.fill("   ")
    await page.get_by_role("button", name="Envoyer").click()
    await expect(page.locator("#thread-notice")).to_have_text("Écrivez d’abord un message.")
    await expect(box).to_be_focused()

    too_long = "a" * 9_999 + " b"
    await box.fill("")
    await box.focus()
    await page.keyboard.insert_text(too_long)
    await expect(box).to_have_value(too_long)
    await page.get_by_role("button", name="Envoyer").click()
    await expect(page.locator("#thread-notice")).to_have_text(
        "Ce message est trop long. 10 000 caractères au maximum."
    )
    await expect(box).to_have_value(too_long)
    await page.screenshot(path="/tmp/chat_too_long.png")

    # Exactly at the limit (the spaces around do not count): it goes.
    await box.fill("  " + "c" * 10_000 + "  ")
    await page.get_by_role("button", name="Envoyer").click()
    await expect(box).to_have_value("")
    await expect(page.locator("#messages .msg")).to_have_count(1)
    await until(lambda: Message.filter(conversation_id=cid, body="c" * 10_000).exists())
    assert await Message.filter(conversation_id=cid).count() == 1


async def test_the_message_list_is_announced_as_a_log_not_the_whole_thread(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # The whole thread panel was a live region: opening a conversation, or any redraw,
    # made a screen reader read out the header, every message and the composer. Now the
    # messages are a labelled log (new ones are announced, not the whole history).
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Lecteur")
    page = await messages_page(browser, live_server, people["camille"], open_id=cid, phone=True)
    await expect(page.locator("#thread")).not_to_have_attribute("aria-live", "polite")
    log = page.get_by_role("log", name="Messages")
    await expect(log).to_have_attribute("aria-live", "polite")
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    # After a click on Send, the cursor is back in the box for the next message.
    await page.locator("#composer-text").fill("Bonjour")
    await page.get_by_role("button", name="Send").click()
    await expect(message(page, "Bonjour")).to_be_visible()
    await expect(page.locator("#composer-text")).to_be_focused()


async def test_a_first_message_past_the_limit_is_refused_and_kept(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    # The portal's "New message" box cut a long paste at 10,000 characters without a word.
    client = await messages_page(browser, live_server, people["camille"], phone=True)
    await client.get_by_role("button", name="New message").click()
    dialog = client.locator("#write-dialog")
    await dialog.get_by_label("Subject").fill("Long")
    await dialog.get_by_label("Message").focus()
    await client.keyboard.insert_text("d" * 10_001)
    await expect(dialog.get_by_label("Message")).to_have_value("d" * 10_001)
    await dialog.get_by_role("button", name="Send").click()
    await expect(dialog.locator(".field-error[data-field=body]")).to_have_text(
        "At most 10000 characters."
    )
    await expect(dialog.get_by_label("Message")).to_have_value("d" * 10_001)
    assert await Conversation.filter(subject="Long").count() == 0


async def test_on_a_phone_enter_starts_a_new_line_and_the_button_sends(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # A phone's keyboard has no Shift+Enter: its return key sent the message, so a client
    # could never write two paragraphs, and a slip of the thumb sent half a sentence. On a
    # touch screen, return is a new line and the Send button sends; the box says nothing
    # about Enter there. At a desk, Enter still sends.
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Paragraphes")
    phone = await messages_page(browser, live_server, people["camille"], open_id=cid, phone=True)
    box = phone.locator("#composer-text")
    await expect(box).to_have_attribute("placeholder", "Write a message…")
    await write(phone, "Bonjour,")
    await box.press("Enter")
    await box.press("Enter")
    await write(phone, "Deux paragraphes.")
    await expect(box).to_have_value("Bonjour,\n\nDeux paragraphes.")
    await expect(phone.locator("#messages .msg")).to_have_count(0)
    await phone.get_by_role("button", name="Send").click()
    sent = message(phone, "Deux paragraphes.")
    await expect(sent.locator(".msg-body")).to_have_text("Bonjour,\n\nDeux paragraphes.")
    await expect(box).to_have_value("")
    await phone.screenshot(path="/tmp/chat_phone_paragraphs.png")

    clinician = await messages_page(browser, live_server, people["helene"], open_id=cid)
    await expect(clinician.locator("#composer-text")).to_have_attribute(
        "placeholder", "Write a message… (Enter to send, Shift+Enter for a new line)"
    )
    await write(clinician, "Merci")
    await clinician.locator("#composer-text").press("Enter")
    await expect(message(clinician, "Merci")).to_be_visible()


async def test_a_long_conversation_is_divided_by_day_in_the_practice_s_zone(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # Every message repeated its full date, and nothing marked where a day began: in a
    # conversation of weeks, a client scrolling back could not see when things were said
    # without reading every date. The days are now headings (today, yesterday, then the
    # date, in the practice's time zone), and each message shows its time only.
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Semaines")
    zone = ZoneInfo(get_settings().time_zone)
    now = datetime.now(zone)
    # 23:30 in the practice's zone three days ago: a different UTC date in many zones.
    days = [
        (now - timedelta(days=3)).replace(hour=23, minute=30, second=0, microsecond=0),
        (now - timedelta(days=1)).replace(hour=9, minute=5, second=0, microsecond=0),
        now.replace(hour=0, minute=1, second=0, microsecond=0),
    ]
    for n in range(62):
        await staff_says(new_http, people["helene"], cid, f"Message {n}")
    stored = await Message.filter(conversation_id=cid).order_by("id")
    for n, m in enumerate(stored):
        when = days[0] if n < 20 else days[1] if n < 40 else days[2]
        await Message.filter(id=m.id).update(created_at=when.astimezone(UTC))

    page = await messages_page(
        browser, live_server, people["camille"], open_id=cid, phone=True, locale="fr-FR"
    )
    await expect(message(page, "Message 61")).to_be_in_viewport()
    separators = page.locator("#messages .day")
    await expect(separators).to_have_count(3)
    await expect(separators.nth(1)).to_have_text("Hier")
    await expect(separators.nth(2)).to_have_text("Aujourd’hui")
    assert (await separators.nth(0).inner_text()).startswith(
        ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"][days[0].weekday()]
    )
    # (The newest 50 are loaded: 12 to 61.)
    await expect(message(page, "Message 12").locator("time")).to_have_text("23:30")
    await expect(message(page, "Message 61").locator("time")).to_have_text("00:01")
    await expect(message(page, "Message 61").locator("time")).to_have_attribute(
        "datetime", days[2].astimezone(UTC).isoformat()
    )
    # A new message today joins today's messages, without a heading of its own.
    await staff_says(new_http, people["helene"], cid, "Encore un")
    await expect(message(page, "Encore un")).to_be_visible()
    await expect(separators).to_have_count(3)
    await separators.nth(1).scroll_into_view_if_needed()
    await page.screenshot(path="/tmp/chat_days.png")


async def test_older_messages_load_when_scrolling_up_and_the_reader_stays_put(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # A conversation of years came whole, every time it was opened. It opens at its newest
    # 50 messages; scrolling to the top brings the 50 before, the message being read staying
    # where it was on the screen; a button does the same for the keyboard.
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Années")
    async with new_http("10.9.0.3") as http:
        await login(http, people["helene"])
        await staff_writes_many(http, cid, 120)
    page = await messages_page(browser, live_server, people["camille"], open_id=cid, phone=True)
    msgs = page.locator("#messages .msg")
    await expect(message(page, "Message 119")).to_be_in_viewport()
    await expect(msgs).to_have_count(50)

    await page.locator("#messages").evaluate("l => { l.scrollTop = 0; }")
    await expect(msgs).to_have_count(100)
    reading = message(page, "Message 70")
    await expect(reading).to_be_in_viewport()
    y = (await reading.bounding_box() or {})["y"]

    # A message arriving while the client reads older ones does not move them.
    await staff_says(new_http, people["helene"], cid, "Nouveau")
    await expect(msgs).to_have_count(101)
    assert (await reading.bounding_box() or {})["y"] == y

    await page.get_by_role("button", name="Show earlier messages").click()
    await expect(msgs).to_have_count(121)
    await expect(page.get_by_role("button", name="Show earlier messages")).to_have_count(0)
    await expect(page.locator("#messages .day")).to_have_count(1)
    bodies = await page.locator("#messages .msg-body").all_inner_texts()
    assert bodies == [f"Message {n}" for n in range(120)] + ["Nouveau"]
    await page.screenshot(path="/tmp/chat_older.png")


async def test_a_redrawn_thread_keeps_the_older_pages_and_the_readers_place(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    """The thread is drawn again when the socket comes back after a drop, or when people are
    added: that dropped the older pages the reader had scrolled up to and threw them back to
    the newest message, on a phone's flaky network again and again."""
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Années")
    async with new_http("10.9.0.4") as http:
        await login(http, people["helene"])
        await staff_writes_many(http, cid, 120)
        page = await messages_page(browser, live_server, people["camille"], open_id=cid, phone=True)
        msgs = page.locator("#messages .msg")
        await page.locator("#messages").evaluate("l => { l.scrollTop = 0; }")
        await expect(msgs).to_have_count(100)
        reading = message(page, "Message 40")
        await reading.scroll_into_view_if_needed()

        async def place() -> float:
            # Within the list: the thread's header grows with the new title.
            box = await reading.bounding_box() or {}
            return float(box["y"]) - float(
                await msgs.first.evaluate("m => m.parentElement.getBoundingClientRect().top")
            )

        y = await place()
        # People added: the thread is drawn again (its title changes).
        r = await http.post(
            f"/api/conversations/{cid}/participants",
            json={"staff_ids": [people["bruno"].id], "group_name": "Care team"},
        )
        assert r.status_code == 200, r.text
    await expect(page.locator(".thread-head h2")).to_have_text("Care team · Années")
    await expect(msgs).to_have_count(100)
    assert abs(await place() - y) < 2
    await never_reloaded(page)


async def test_a_search_opens_the_conversation_at_the_message_it_found(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    """Searching "lithium" found the conversation, which then opened at its newest message,
    70 messages below the one about lithium, in a page not even loaded."""
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Suivi")
    await start_conversation(new_http, people["helene"], people["camille"], "Facture")
    async with new_http("10.9.0.5") as http:
        await login(http, people["helene"])
        await staff_writes_many(http, cid, 100, {30: "What about the lithium dose?"})
    page = await messages_page(browser, live_server, people["helene"])
    await expect(page.locator("#conv-list .conv")).to_have_count(2)
    await page.locator("#conv-search").fill("lithium")
    await expect(page.locator("#conv-list .conv")).to_have_count(1)
    await conversation_in_list(page, "Suivi").get_by_role("button").click()
    found = message(page, "What about the lithium dose?")
    await expect(found).to_be_in_viewport()
    await expect(found).to_have_class(re.compile(r"\bmatch\b"))
    # Its neighbours are there to read, and the newest ones below.
    await expect(message(page, "Message 29")).to_be_attached()
    await expect(message(page, "Message 99")).to_be_attached()
    await never_reloaded(page)


async def test_a_message_written_offline_goes_when_the_network_is_back(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    # In the metro, a client's send failed with "Cabinet is briefly unavailable", the text
    # back in the box, and nothing more: once the network was back they had to notice and
    # send again. The page now says the phone is offline and that the message will go, and
    # it goes by itself when the network is back (once: the same client_uid).
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Métro")
    clinician = await messages_page(browser, live_server, people["helene"], open_id=cid)
    phone = await messages_page(browser, live_server, people["camille"], open_id=cid, phone=True)
    await phone.context.set_offline(True)
    await write(phone, "Je serai en retard")
    await phone.get_by_role("button", name="Send").click()
    await expect(phone.locator("#thread-notice")).to_have_text(
        "You are offline. Your message is kept and will be sent when the connection is back."
    )
    await expect(phone.locator("#composer-text")).to_have_value("Je serai en retard")
    await phone.screenshot(path="/tmp/chat_offline.png")
    await phone.context.set_offline(False)
    await expect(message(clinician, "Je serai en retard")).to_be_visible()
    await expect(phone.locator("#composer-text")).to_have_value("")
    await expect(message(phone, "Je serai en retard")).to_have_count(1)
    await expect(phone.locator("#thread-notice")).to_be_hidden()
    await until(lambda: Message.filter(conversation_id=cid, body="Je serai en retard").exists())
    assert await Message.filter(conversation_id=cid, body="Je serai en retard").count() == 1


async def test_a_message_on_a_screen_left_untouched_is_read_when_someone_comes_back(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    """A conversation left open on a screen nobody was at (the clinician in a session, the
    phone on a table) marked every new message read the moment it arrived, and its sender
    was told "Read". Now it waits for a key, a click, a touch or a scroll."""
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Dosage")
    clinician = await messages_page(browser, live_server, people["helene"], open_id=cid)
    # A minute without input, shortened for the test.
    await clinician.evaluate("CabinetLive.idle.after = 300")
    await asyncio.sleep(0.6)
    async with new_http("10.9.0.77") as portal:
        await login(portal, people["camille"])
        await client_says(portal, cid, "Is it two tablets or one?")
    await expect(message(clinician, "Is it two tablets or one?")).to_be_visible()
    await asyncio.sleep(1.0)  # the screen's chance to mark it read by itself
    assert not await MessageRead.filter(message__body="Is it two tablets or one?").exists()
    # Someone is back at the screen: it is read now, once.
    await clinician.locator("#composer-text").press("Shift")
    await until(lambda: MessageRead.filter(message__body="Is it two tablets or one?").exists())
    await never_reloaded(clinician)


async def test_the_live_status_follows_the_network_at_once(
    browser: Browser, live_server: LiveServer, people: dict[str, Any]
) -> None:
    """With the phone's network gone, the page kept saying "Live updates: on" until the
    socket's heartbeat was missed (up to 50 s), so a client waited for an answer that could
    not come; back on the network, it waited out a backoff grown while away."""
    phone = await messages_page(browser, live_server, people["camille"], phone=True)
    status = phone.locator("#live-status")
    await phone.context.set_offline(True)
    await expect(status).not_to_have_attribute("data-state", "live", timeout=2000)
    await asyncio.sleep(3)  # away long enough for the backoff to grow
    await phone.context.set_offline(False)
    await expect(status).to_have_attribute("data-state", "live", timeout=2000)
    await never_reloaded(phone)
