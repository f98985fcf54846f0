"""The billing endpoints of the staff and portal JSON APIs: lists and details that follow the
same access as the pages, finalizing, payments, sending, credit notes, PDFs, and the errors
that change nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from models.billing import Invoice, InvoiceStatus, Payment
from server.actions import billing
from tests.conftest import Factory, login
from tests.test_billing import appointment, bill, service, setup


async def test_staff_list_finalize_pay_send_and_credit_through_the_api(
    make: Factory, http: Any
) -> None:
    practice, owner, therapist, client = await setup(make)
    svc = await service(price="70.00")
    await appointment(therapist, client, svc, 3)
    (draft,) = await bill(owner, await billing.do_ensure_consultations(None, client))
    await login(http, owner)

    listed = (await http.get("/api/invoices")).json()
    assert [i["id"] for i in listed] == [draft.id]
    assert listed[0]["status"] == "draft" and listed[0]["number"] is None
    # Money is a decimal string, never a float.
    assert listed[0]["total"] == "70.00" and listed[0]["balance"] == "70.00"
    assert (await http.get("/api/invoices?status=finalized")).json() == []
    detail = (await http.get(f"/api/invoices/{draft.id}")).json()
    assert [ln["unit_price"] for ln in detail["lines"]] == ["70.00"]
    assert detail["lines"][0]["consultation_id"] is not None and detail["payments"] == []

    # A payment on a draft is refused (409) and records nothing.
    pay = {"amount": "30.00", "method": "card", "paid_on": "2026-11-30"}
    r = await http.post(f"/api/invoices/{draft.id}/payments", json=pay)
    assert r.status_code == 409 and await Payment.all().count() == 0

    r = await http.post(f"/api/invoices/{draft.id}/finalize")
    assert r.status_code == 200, r.text
    final = r.json()
    assert final["status"] == "finalized" and final["number"] and final["issued_on"]
    assert (await http.post(f"/api/invoices/{draft.id}/finalize")).status_code == 409
    assert (await Invoice.get(id=draft.id)).number == final["number"]

    # Bad input: the field is named, nothing is recorded.
    r = await http.post(f"/api/invoices/{draft.id}/payments", json={**pay, "amount": "0"})
    assert r.status_code == 422 and "amount" in r.json()["error"]["fields"]
    r = await http.post(f"/api/invoices/{draft.id}/payments", json={**pay, "method": "gold"})
    assert r.status_code == 422 and "method" in r.json()["error"]["fields"]
    assert await Payment.all().count() == 0

    r = await http.post(f"/api/invoices/{draft.id}/payments", json=pay)
    assert r.status_code == 200, r.text
    paid = r.json()
    assert (paid["paid"], paid["balance"]) == ("30.00", "40.00")
    assert [(p["amount"], p["method"]) for p in paid["payments"]] == [("30.00", "card")]
    unpaid = (await http.get("/api/invoices?unpaid=true")).json()
    assert [i["id"] for i in unpaid] == [draft.id]
    # Paying above the balance: the invoice is settled, the rest is the client's credit.
    r = await http.post(f"/api/invoices/{draft.id}/payments", json={**pay, "amount": "50.00"})
    assert r.json()["balance"] == "0.00"
    assert await billing.client_credit(client.id) == Decimal("10.00")
    assert (await http.get("/api/invoices?unpaid=1")).json() == []

    receipt_id = paid["payments"][0]["id"]
    for url in (f"/api/invoices/{draft.id}/pdf", f"/api/payments/{receipt_id}/receipt"):
        r = await http.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF")

    r = await http.post(f"/api/invoices/{draft.id}/send", json={"to": "not an address"})
    assert r.status_code == 422 and "to" in r.json()["error"]["fields"]
    r = await http.post(f"/api/invoices/{draft.id}/send", json={"to": "payeur@example.org"})
    assert r.status_code == 200 and r.json()["sent_to"] == "payeur@example.org"
    assert r.json()["sent_at"] is not None

    # A second invoice, credited: the credit note comes back, and the list shows both.
    await appointment(therapist, client, svc, 2)
    (second,) = await bill(
        owner, await billing.do_ensure_consultations(None, client), finalize=True
    )
    r = await http.post(f"/api/invoices/{second.id}/credit-note", json={"reason": "Erreur"})
    assert r.status_code == 200, r.text
    note = r.json()
    assert note["kind"] == "credit_note" and note["credited_invoice_id"] == second.id
    ids = [i["id"] for i in (await http.get(f"/api/invoices?client_id={client.id}")).json()]
    assert ids == [note["id"], second.id, draft.id]  # newest first
    assert [i["id"] for i in (await http.get(f"/api/invoices?before={second.id}")).json()] == [
        draft.id
    ]


async def test_each_caller_reaches_only_their_invoices_through_the_api(
    make: Factory, http: Any, new_http: Any
) -> None:
    practice, owner, therapist, client = await setup(make)
    other_therapist = await make.therapist()
    other_client = await make.client(other_therapist)
    svc = await service()
    await appointment(therapist, client, svc, 2)
    (invoice,) = await bill(
        owner, await billing.do_ensure_consultations(None, client), finalize=True
    )
    await appointment(therapist, client, svc, 4)
    (draft,) = await bill(owner, await billing.do_ensure_consultations(None, client))

    # The therapist of the caseload sees both; another therapist neither, and a wrong or
    # foreign id is the same 404.
    mine = new_http()
    await login(mine, therapist)
    assert {i["id"] for i in (await mine.get("/api/invoices")).json()} == {invoice.id, draft.id}
    theirs = new_http()
    await login(theirs, other_therapist)
    assert (await theirs.get("/api/invoices")).json() == []
    for url in (
        f"/api/invoices/{invoice.id}",
        f"/api/invoices/{invoice.id}/pdf",
        "/api/invoices/999999",
        f"/api/invoices?client_id={client.id}",
    ):
        assert (await theirs.get(url)).status_code == 404, url
    pay = {"amount": "10.00", "method": "cash", "paid_on": "2026-11-30"}
    assert (await theirs.post(f"/api/invoices/{invoice.id}/payments", json=pay)).status_code == 404
    assert (await theirs.post(f"/api/invoices/{draft.id}/finalize")).status_code == 404
    assert await Payment.all().count() == 0
    assert (await Invoice.get(id=draft.id)).status is InvoiceStatus.DRAFT

    # The client sees their finalized invoice, never the draft, and cannot write.
    portal = new_http()
    await login(portal, client)
    listed = (await portal.get("/portal/api/invoices")).json()
    assert [i["id"] for i in listed] == [invoice.id]
    assert (await portal.get(f"/portal/api/invoices/{invoice.id}")).json()["number"] == (
        invoice.number
    )
    r = await portal.get(f"/portal/api/invoices/{invoice.id}/pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert (await portal.get(f"/portal/api/invoices/{draft.id}")).status_code == 404
    r = await portal.post(f"/portal/api/invoices/{invoice.id}/payments", json=pay)
    assert r.status_code in (404, 405) and await Payment.all().count() == 0
    # Another client sees nothing of it; nobody signed in gets a 401.
    stranger = new_http()
    await login(stranger, other_client)
    assert (await stranger.get("/portal/api/invoices")).json() == []
    assert (await stranger.get(f"/portal/api/invoices/{invoice.id}")).status_code == 404
    assert (await new_http().get("/api/invoices")).status_code == 401
    assert (await new_http().get("/portal/api/invoices")).status_code == 401
