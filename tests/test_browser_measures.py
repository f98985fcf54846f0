"""A PHQ-9 in real browsers: the therapist sends it from the client's file, the client opens
the emailed link on a phone, signs in and answers it, and the therapist's open Measures tab
shows the new score on the chart, and the safety alert, without a reload."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.async_api import Browser, expect

from models.measures import MeasureAdministration
from models.notifications import OutboxMessage
from tests.conftest import DESKTOP, PASSWORD, PHONE, Factory, LiveServer, sign_in, signed_in
from tests.test_browser_messaging import messages_page, start_conversation


async def test_client_answers_a_phq9_and_the_therapist_sees_it_live(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    helene = await make.therapist(first_name="Hélène", last_name="Durand")
    camille = await make.client(helene, first_name="Camille", last_name="Martin")

    staff_ctx = await browser.new_context(locale="en-US", **DESKTOP)
    staff = await signed_in(staff_ctx, live_server, helene.email)
    await staff.goto(f"{live_server.url}/staff/clients/{camille.id}")
    await staff.get_by_role("link", name="Send a measure").click()
    send = staff.locator("#send")
    await send.locator("select[name=measure]").select_option("phq9")
    await send.get_by_role("button", name="Send").click()
    await expect(staff.locator("[data-administrations] [data-status=sent]")).to_have_count(1)
    await expect(staff.locator("html[data-live=live]")).to_have_count(1)
    await staff.evaluate("window.neverReloaded = true")

    email = await OutboxMessage.get(purpose="measure_sent")
    link = next(w for w in email.body_text.split() if "/portal/measures/" in w)
    phone_ctx = await browser.new_context(locale="en-US", **PHONE)
    phone = await phone_ctx.new_page()
    # The emailed link asks the client to sign in, then opens the questionnaire.
    await phone.goto(link)
    await expect(phone).to_have_url(f"{live_server.url}/portal/login?next=/portal/measures/1")
    await phone.locator("input[name=email]").fill(camille.email or "")
    await phone.locator("input[name=password]").fill(PASSWORD)
    await phone.locator("form button[type=submit]").click()
    await expect(phone).to_have_url(f"{live_server.url}/portal/measures/1")
    # Items 1-8 "More than half the days" (2 each), item 9 "Several days": 17 in all.
    for n in range(1, 9):
        await phone.locator(f"[data-item='{n}']").get_by_label("More than half the days").check()
    # Sending with an item unanswered: the browser asks for it and nothing is sent.
    await phone.get_by_role("button", name="Send my answers").click()
    assert (await MeasureAdministration.get(id=1)).completed_at is None
    await phone.locator("[data-item='9']").get_by_label("Several days").check()
    await phone.get_by_role("button", name="Send my answers").click()
    await expect(phone.locator("[data-answered]")).to_contain_text("your answers were sent")
    # Item 9 above "not at all": the crisis message with emergency numbers.
    await expect(phone.locator("[data-crisis]")).to_contain_text("3114")

    # On the therapist's page, without a reload: the score on the chart and the list...
    point = staff.locator("[data-chart=phq9] [data-point]")
    await expect(point).to_have_attribute("data-score", "17")
    await expect(staff.locator("[data-latest-score]")).to_contain_text("17 of 27")
    await expect(staff.locator("[data-administrations] [data-status=completed]")).to_have_count(1)
    # ... and the safety alert, which stays until dismissed.
    alert = staff.locator(".live-notice.urgent")
    await expect(alert).to_contain_text("Safety alert: Camille Martin")
    await expect(alert.get_by_role("link")).to_have_attribute(
        "href", f"/staff/clients/{camille.id}/measures"
    )
    assert await staff.evaluate("window.neverReloaded") is True
    await alert.get_by_role("button", name="Dismiss").click()
    await expect(alert).to_have_count(0)
    await staff_ctx.close()
    await phone_ctx.close()


async def test_a_completed_measure_shows_a_notice_on_any_staff_page(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    from server.actions import measures
    from server.auth.sessions import Caller
    from server.instruments import GAD7
    from tests.test_measures import form

    helene = await make.therapist(first_name="Hélène", last_name="Durand")
    camille = await make.client(helene, first_name="Camille", last_name="Martin")
    ctx = await browser.new_context(locale="en-US", **DESKTOP)
    page = await ctx.new_page()
    await sign_in(page, f"{live_server.url}/staff/login", helene.email, PASSWORD)
    await page.goto(f"{live_server.url}/staff/tasks")
    await expect(page.locator("html[data-live=live]")).to_have_count(1)
    from models.measures import MeasureKind

    administration, _ = await measures.do_send_measure(
        Caller.acting_as(helene), camille, MeasureKind.GAD7
    )
    assert administration is not None
    account = await make.portal_account(camille)
    await measures.do_complete_measure(
        Caller.acting_as((account, camille)), administration, form(GAD7, 10)
    )
    notice = page.locator(".live-notice")
    await expect(notice).to_contain_text("Camille Martin answered the GAD-7: 10 of 21 (Moderate)")
    await expect(page.locator(".live-notice.urgent")).to_have_count(0)
    await ctx.close()


async def test_send_a_measure_from_a_conversation(
    browser: Browser,
    live_server: LiveServer,
    make: Factory,
    new_http: Callable[..., httpx.AsyncClient],
) -> None:
    helene = await make.therapist(first_name="Hélène", last_name="Durand")
    camille = await make.client(helene, first_name="Camille", last_name="Martin")
    cid = await start_conversation(new_http, helene, camille, "How are you?")
    # The client has the portal's questionnaires open on a phone: what is sent appears there.
    phone = await (await browser.new_context(locale="en-US", **PHONE)).new_page()
    await sign_in(phone, f"{live_server.url}/portal/login", camille.email or "", PASSWORD)
    await expect(phone).to_have_url(f"{live_server.url}/portal/")
    await phone.goto(f"{live_server.url}/portal/measures")
    await expect(phone.locator("html[data-live=live]")).to_have_count(1)
    await expect(phone.locator("[data-waiting]")).to_contain_text("Nothing to fill in")
    page = await messages_page(browser, live_server, helene, open_id=cid)
    # A form can be sent the same way.
    await expect(page.locator("#thread [data-send-form]")).to_have_attribute(
        "href", f"/staff/clients/{camille.id}/forms#send-form"
    )
    await page.locator("#thread [data-send-measure]").click()
    await expect(page).to_have_url(f"{live_server.url}/staff/clients/{camille.id}/measures#send")
    await page.locator("#send select[name=measure]").select_option("gad7")
    await page.locator("#send").get_by_role("button", name="Send").click()
    await expect(page.locator("[data-administrations] [data-status=sent]")).to_have_count(1)
    assert (await MeasureAdministration.get(client_id=camille.id)).measure.value == "gad7"
    await expect(phone.locator("[data-waiting]")).to_contain_text("GAD-7")
