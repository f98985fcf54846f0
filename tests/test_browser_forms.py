"""A consent form in real browsers: a therapist builds it, sends it from the client's file;
the client starts it on a phone, saves a draft, comes back, signs and submits it; the
therapist's open page shows that it was submitted, without a reload."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from models.forms import FormAssignment, FormStatus
from tests.conftest import DESKTOP, PHONE, Factory, LiveServer, signed_in


async def test_build_send_draft_and_submit_a_form(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    helene = await make.therapist(first_name="Hélène", last_name="Durand")
    camille = await make.client(helene, first_name="Camille", last_name="Martin")
    staff_ctx = await browser.new_context(locale="en-US", **DESKTOP)
    staff = await signed_in(staff_ctx, live_server, helene.email)
    await staff.get_by_role("link", name="Forms").first.click()
    await staff.locator("input[name=name]").fill("Consentement aux soins")
    await staff.locator("select[name=purpose]").select_option("consent")
    await staff.get_by_role("button", name="Create").click()
    add = staff.locator("#add-field")
    for kind, label, choices, required in (
        ("single_choice", "Séances enregistrées ?", "Oui\nNon", True),
        ("long_text", "Remarques", "", False),
        ("signature", "Signature", "", True),
    ):
        await add.locator("select[name=kind]").select_option(kind)
        await add.locator("input[name=label]").fill(label)
        if choices:
            await add.locator("textarea[name=choices]").fill(choices)
        if required:
            await add.locator("input[name=required]").check()
        await add.get_by_role("button", name="Add the field").click()
        await expect(staff.locator("[data-fields]")).to_contain_text(label)
    await staff.goto(f"{live_server.url}/staff/clients/{camille.id}/forms")
    await staff.locator("#send-form").get_by_role("button", name="Send").click()
    await expect(staff.locator("[data-sent-forms] [data-status=sent]")).to_have_count(1)
    await expect(staff.locator("html[data-live=live]")).to_have_count(1)
    await staff.evaluate("window.neverReloaded = true")

    phone_ctx = await browser.new_context(locale="en-US", **PHONE)
    phone = await signed_in(phone_ctx, live_server, camille.email or "", realm="portal")
    await phone.goto(f"{live_server.url}/portal/forms")
    await phone.get_by_role("link", name="Consentement aux soins").click()
    await phone.get_by_label("Remarques").fill("Je préfère le matin.")
    await phone.get_by_role("button", name="Save a draft").click()
    await expect(phone.locator("[data-draft-saved]")).to_be_visible()
    # Later: the draft is there; submitting without the required answers says what is missing.
    await phone.goto(f"{live_server.url}/portal/forms")
    await phone.get_by_role("link", name="Consentement aux soins").click()
    await expect(phone.get_by_label("Remarques")).to_have_value("Je préfère le matin.")
    await phone.get_by_role("button", name="Submit").click()
    await expect(phone.locator(".field-error")).to_have_count(2)
    await phone.get_by_label("Oui").check()
    await phone.get_by_label("Signature").fill("Camille Martin")
    await phone.get_by_role("button", name="Submit").click()
    await expect(phone.locator("[data-submitted]")).to_contain_text("your form was sent")
    await expect(phone.get_by_label("Remarques")).to_be_disabled()

    await expect(staff.locator("[data-sent-forms] [data-status=completed]")).to_have_count(1)
    notice = staff.locator(".live-notice")
    await expect(notice).to_contain_text(
        "Camille Martin submitted the form “Consentement aux soins”"
    )
    assert await staff.evaluate("window.neverReloaded") is True
    assignment = await FormAssignment.get(client_id=camille.id)
    assert assignment.status is FormStatus.COMPLETED
    await staff.goto(f"{live_server.url}/staff/clients/{camille.id}/forms")
    await staff.get_by_text("Answers").click()
    await expect(staff.locator("[data-sent-forms]")).to_contain_text("Je préfère le matin.")
    await staff.goto(f"{live_server.url}/staff/clients/{camille.id}/documents")
    await expect(staff.locator("[data-documents]")).to_contain_text("Consentement aux soins")
    # The submitted PDF is clinical content.
    await expect(staff.locator("[data-documents] [data-clinical]")).to_have_count(1)
    # Sent on a schedule: now, then every four weeks; listed, then stopped.
    await staff.goto(f"{live_server.url}/staff/clients/{camille.id}/forms")
    send = staff.locator("#send-form")
    await send.get_by_label("Now, then every").check()
    await send.get_by_label("Number of weeks").fill("4")
    await send.get_by_role("button", name="Send").click()
    schedules = staff.locator("#form-schedules")
    await expect(schedules).to_contain_text("Consentement aux soins: every 4 weeks")
    await expect(staff.locator("[data-sent-forms] [data-status=sent]")).to_have_count(1)
    await schedules.get_by_role("button", name="Stop").click()
    await expect(staff.locator("#form-schedules")).to_have_count(0)
    await staff_ctx.close()
    await phone_ctx.close()
