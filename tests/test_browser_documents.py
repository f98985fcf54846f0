"""Documents in a real browser: a therapist uploads a file on the client's Documents tab and
shares it; the client finds it on the portal, on a phone.

Like test_browser.py, the tests launch Debian's Chromium (never ``playwright install``), skip
on a laptop without it and fail in CI (require_service).
"""

from __future__ import annotations

from playwright.async_api import Browser, expect

from models.clients import Document
from tests.conftest import (
    PHONE,
    Factory,
    LiveServer,
    signed_in,
)
from tests.test_documents import EXE, PDF


async def test_upload_on_the_documents_tab_and_find_it_on_the_portal(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    alice = await make.therapist(first_name="Alice")
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    staff = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    page = await signed_in(staff, live_server, alice.email)

    await page.goto(f"{live_server.url}/staff/clients/{helene.id}")
    await page.get_by_role("link", name="Documents").click()
    await expect(page).to_have_url(f"{live_server.url}/staff/clients/{helene.id}/documents")
    await expect(page.get_by_text("No documents on this file yet.")).to_be_visible()
    await expect(page.get_by_role("link", name="Export client")).to_be_visible()

    # A program dressed as a PDF is turned away with the reason.
    files = page.locator("input[type=file]")
    await files.set_input_files(
        {"name": "facture.pdf", "mimeType": "application/pdf", "buffer": EXE}
    )
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.locator(".field-error")).to_contain_text("Upload a PDF, an image")

    await files.set_input_files(
        {"name": "Exercices de respiration.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    await page.get_by_label("Share with the client on the portal").check()
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page).to_have_url(f"{live_server.url}/staff/clients/{helene.id}/documents?saved=1")
    row = page.locator("tr[data-document-id]")
    await expect(row).to_have_count(1)
    await expect(row.locator("[data-document-name]")).to_have_text("Exercices de respiration.pdf")
    await expect(row.locator("[data-shared]")).to_have_text("Shared")
    document = await Document.get(client_id=helene.id)
    assert (document.content_type, document.size) == ("application/pdf", len(PDF))

    # The download is the same bytes.
    async with page.expect_download() as info:
        await row.locator("[data-document-name]").click()
    download = await info.value
    assert download.suggested_filename == "Exercices de respiration.pdf"
    assert open(await download.path(), "rb").read() == PDF  # noqa: ASYNC230
    await staff.close()

    account = await make.portal_account(helene)
    phone = await browser.new_context(locale="en-US", **PHONE)
    client_page = await signed_in(phone, live_server, account.email, realm="portal")
    await client_page.get_by_role("link", name="Documents").first.click()
    await expect(client_page).to_have_url(f"{live_server.url}/portal/documents")
    await expect(client_page.locator("[data-document-id] a")).to_have_text(
        "Exercices de respiration.pdf"
    )
    overflow = await client_page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await phone.close()


async def test_a_clinical_upload_is_kept_from_the_front_desk(
    browser: Browser, live_server: LiveServer, make: Factory
) -> None:
    alice = await make.therapist(first_name="Alice")
    desk = await make.office_admin()
    helene = await make.client(alice, first_name="Hélène", last_name="Dubois")
    staff = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    page = await signed_in(staff, live_server, alice.email)
    await page.goto(f"{live_server.url}/staff/clients/{helene.id}/documents")
    files = page.locator("input[type=file]")
    await files.set_input_files(
        {"name": "Bilan psychologique.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    await page.get_by_label("Clinical content").check()
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page).to_have_url(f"{live_server.url}/staff/clients/{helene.id}/documents?saved=1")
    await files.set_input_files(
        {"name": "Facture.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    await page.get_by_role("button", name="Upload", exact=True).click()
    clinical_row = page.locator("tr[data-document-id]", has_text="Bilan psychologique.pdf")
    await expect(clinical_row.locator("[data-clinical]")).to_have_text("Clinical")
    secret = await Document.get(name="Bilan psychologique.pdf")
    assert secret.clinical is True
    await staff.close()

    front = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    page = await signed_in(front, live_server, desk.email)
    await page.goto(f"{live_server.url}/staff/clients/{helene.id}/documents")
    await expect(page.locator("tr[data-document-id]")).to_have_count(1)
    await expect(page.locator("[data-document-name]")).to_have_text("Facture.pdf")
    response = await page.goto(f"{live_server.url}/staff/clients/{helene.id}/documents/{secret.id}")
    assert response is not None and response.status == 404
    await front.close()
