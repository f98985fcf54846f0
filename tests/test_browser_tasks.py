"""A task from a client's message, in the browser: the menu item, the note prefilled and
edited, the task then on the client's file and in "My tasks"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.async_api import Browser, expect

from models.tasks import Task
from tests.conftest import LiveServer, login
from tests.test_browser_messaging import (
    client_says,
    message,
    messages_page,
    people,
    start_conversation,
)

__all__ = ["people"]  # the fixture, re-used


async def test_create_a_task_from_a_client_message(
    browser: Browser,
    live_server: LiveServer,
    people: dict[str, Any],
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    cid = await start_conversation(new_http, people["helene"], people["camille"], "Paperwork")
    async with new_http("10.9.0.2") as portal:
        await login(portal, people["camille"])
        await client_says(portal, cid, "Could you send me a receipt for my insurer?")
    page = await messages_page(browser, live_server, people["helene"], open_id=cid)
    asked = message(page, "receipt for my insurer")
    await asked.get_by_label("Message actions").click()
    await asked.get_by_role("button", name="Create a task").click()
    dialog = page.locator("#task-dialog")
    note = dialog.locator("textarea[name=note]")
    # Only who may open Camille's file: Bruno may not, a task for him would be lost.
    options = dialog.locator("select[name=assignee_id] option")
    await expect(options).to_have_text(["Hélène Durand"])
    # Prefilled with the message, editable before saving.
    await expect(note).to_have_value("Could you send me a receipt for my insurer?")
    await note.fill("Send Camille the receipt for March")
    await dialog.locator("input[name=due_date]").fill("2026-12-04")
    await dialog.get_by_role("button", name="Save the task").click()
    done = page.locator("#task-done")
    await expect(done).to_be_visible()
    await expect(done).to_contain_text("Camille Martin")
    task = await Task.get(note="Send Camille the receipt for March")
    assert task.client_id == people["camille"].id  # type: ignore[attr-defined]
    assert task.assignee_id == people["helene"].id  # type: ignore[attr-defined]
    link = done.get_by_role("link", name="Open the client file")
    file_url = await link.get_attribute("href")
    assert file_url == f"/staff/clients/{people['camille'].id}/tasks"
    await done.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()
    # Staff messages offer no such item: a task is about a client's request.
    await page.locator("#composer-text").fill("I will send it today.")
    await page.get_by_role("button", name="Send").click()
    mine = message(page, "I will send it today.")
    await expect(mine).to_be_visible()
    await mine.get_by_label("Message actions").click()
    await expect(mine.get_by_role("button", name="Create a task")).to_have_count(0)
    # The link leads to the file's tasks, where the task is listed; "My tasks" has it too.
    await page.goto(f"{live_server.url}{file_url}")
    await expect(page.locator("[data-tasks]")).to_contain_text("Send Camille the receipt")
    await page.goto(f"{live_server.url}/staff/tasks")
    await expect(page.locator("[data-tasks]")).to_contain_text("Camille Martin")
