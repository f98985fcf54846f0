"""Billing endpoints of the staff API (/api) and the portal API (/portal/api).

Both read through ``visible_invoices`` and ``access_invoice``: staff see what the billing
pages show them (the whole practice for owners and the front desk, their caseload's and
their own name's invoices for a therapist), a client only their finalized invoices, as the
client or the payer. Writes (finalize, payments, sending) are the staff API's only, reach
the invoice through ``access_invoice_to_change`` (a therapist never writes to one in a
colleague's name), and each is one action of server/actions/billing.py, as the pages call
them.

Money is a decimal string ("70.00") in the invoice's currency, never a float.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from models.billing import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    PayerKind,
    Payment,
    PaymentKind,
    PaymentMethodUsed,
)
from server.access import (
    access_client,
    access_invoice,
    access_invoice_to_change,
    access_receipt,
    visible_invoices,
)
from server.actions import billing
from server.actions.billing import PaymentIn
from server.api import Api
from server.billing_pdf import invoice_filename, invoice_pdf, pdf_response, receipt_pdf
from server.web import path_id, require_caller, require_staff, validate

# A list is a page of the newest; `before` (an id) pages further back.
PAGE = 100


class InvoiceOut(BaseModel):
    id: int
    kind: InvoiceKind
    status: InvoiceStatus
    number: str | None
    client_id: int | None
    payer_kind: PayerKind
    payer_name: str
    issued_on: date | None
    due_on: date | None
    currency: str
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal
    paid: Decimal
    credited: Decimal
    balance: Decimal
    credited_invoice_id: int | None
    sent_at: datetime | None
    sent_to: str


class LineOut(BaseModel):
    id: int
    on_date: date | None
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    tax_rate: Decimal
    amount: Decimal
    tax: Decimal
    consultation_id: int | None


class PaymentOut(BaseModel):
    id: int
    kind: PaymentKind
    method: PaymentMethodUsed
    paid_on: date
    amount: Decimal
    reference: str


class InvoiceDetailOut(InvoiceOut):
    payer_address: str
    payer_email: str
    tax_exemption: str
    notes: str
    lines: list[LineOut]
    payments: list[PaymentOut]


class InvoiceFilters(BaseModel):
    status: InvoiceStatus | None = None
    client_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    unpaid: bool = False
    before: int | None = Field(default=None, ge=1, le=2**31 - 1)


class PaymentBody(BaseModel):
    amount: Decimal = Field(gt=0, le=1000000, decimal_places=2)
    method: PaymentMethodUsed
    paid_on: date
    reference: str = Field(default="", max_length=120)
    # Any key of yours for this one payment: sent again with it, the first is returned.
    request_key: str = Field(default="", max_length=64)


class SendBody(BaseModel):
    to: str = Field(min_length=3, max_length=254)


class CreditNoteBody(BaseModel):
    reason: str = Field(default="", max_length=500)


def _summary(invoice: Invoice) -> dict[str, object]:
    return {
        "id": invoice.id,
        "kind": invoice.kind,
        "status": invoice.status,
        "number": invoice.number,
        "client_id": invoice.client_id,  # type: ignore[attr-defined]
        "payer_kind": invoice.payer_kind,
        "payer_name": invoice.payer_name,
        "issued_on": invoice.issued_on,
        "due_on": invoice.due_on,
        "currency": invoice.currency,
        "subtotal": invoice.subtotal,
        "discount_total": invoice.discount_total,
        "tax_total": invoice.tax_total,
        "total": invoice.total,
        "paid": invoice.paid,
        "credited": invoice.credited,
        "balance": invoice.balance,
        "credited_invoice_id": invoice.credited_invoice_id,  # type: ignore[attr-defined]
        "sent_at": invoice.sent_at,
        "sent_to": invoice.sent_to,
    }


async def invoice_detail(invoice: Invoice) -> InvoiceDetailOut:
    lines = await InvoiceLine.filter(invoice_id=invoice.id).order_by("position", "id")
    payments = await Payment.filter(invoice_id=invoice.id).order_by("paid_on", "id")
    return InvoiceDetailOut(
        **_summary(invoice),  # type: ignore[arg-type]
        payer_address=invoice.payer_address,
        payer_email=invoice.payer_email,
        tax_exemption=invoice.tax_exemption,
        notes=invoice.notes,
        lines=[
            LineOut(
                id=ln.id,
                on_date=ln.on_date,
                description=ln.description,
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                discount=ln.discount,
                tax_rate=ln.tax_rate,
                amount=ln.amount,
                tax=ln.tax,
                consultation_id=ln.consultation_id,  # type: ignore[attr-defined]
            )
            for ln in lines
        ],
        payments=[
            PaymentOut(
                id=p.id,
                kind=p.kind,
                method=p.method,
                paid_on=p.paid_on,
                amount=p.amount,
                reference=p.reference,
            )
            for p in payments
        ],
    )


def add_billing_endpoints(api: Api, realm: Literal["staff", "portal"]) -> None:
    @api.route("GET", "/invoices", response=InvoiceOut, response_list=True)
    async def list_invoices(request: Request) -> list[InvoiceOut]:
        """Invoices and credit notes I may see, newest first, 100 at a time (filters:
        status, client_id, unpaid=true, before=<id> for the next page)"""
        caller = require_caller(request)
        filters = validate(InvoiceFilters, dict(request.query_params))
        query = await visible_invoices(caller)
        if filters.client_id is not None:
            # A client the caller may not see is a 404, as everywhere else.
            await access_client(caller, filters.client_id)
            query = query.filter(client_id=filters.client_id)
        if filters.status is not None:
            query = query.filter(status=filters.status)
        if filters.before is not None:
            query = query.filter(id__lt=filters.before)
        if filters.unpaid:
            # The balance is a difference of three columns: the few finalized invoices
            # are read and the paid ones dropped here, before the page is cut.
            query = query.filter(status=InvoiceStatus.FINALIZED, kind=InvoiceKind.INVOICE)
            rows = [i for i in await query.order_by("-id") if i.balance > 0][:PAGE]
        else:
            rows = await query.order_by("-id").limit(PAGE)
        return [InvoiceOut(**_summary(i)) for i in rows]  # type: ignore[arg-type]

    @api.route("GET", "/invoices/{invoice_id}", response=InvoiceDetailOut)
    async def get_invoice(request: Request) -> InvoiceDetailOut:
        """One invoice or credit note with its lines and payments"""
        caller = require_caller(request)
        return await invoice_detail(await access_invoice(caller, path_id(request, "invoice_id")))

    @api.route("GET", "/invoices/{invoice_id}/pdf", response=None)
    async def get_invoice_pdf(request: Request) -> Response:
        """The invoice as the payer gets it (PDF)"""
        caller = require_caller(request)
        invoice = await access_invoice(caller, path_id(request, "invoice_id"))
        return pdf_response(await invoice_pdf(invoice), invoice_filename(invoice))

    @api.route("GET", "/payments/{payment_id}/receipt", response=None)
    async def get_receipt(request: Request) -> Response:
        """The receipt of a payment (PDF)"""
        caller = require_caller(request)
        payment = await access_receipt(caller, path_id(request, "payment_id"))
        return pdf_response(await receipt_pdf(payment), f"receipt-R-{payment.id:06d}.pdf")

    if realm == "portal":
        return

    @api.route(
        "POST",
        "/invoices/{invoice_id}/finalize",
        response=InvoiceDetailOut,
        statuses=(401, 404, 409, 422),
    )
    async def finalize(request: Request) -> InvoiceDetailOut:
        """Finalize a draft: it takes the next number of its issuer's sequence and can no
        longer change (409 if it is not a draft, 422 if it has no line)"""
        caller = require_staff(request)
        invoice = await access_invoice_to_change(caller, path_id(request, "invoice_id"))
        return await invoice_detail(await billing.do_finalize(caller, invoice))

    @api.route(
        "POST",
        "/invoices/{invoice_id}/payments",
        body=PaymentBody,
        response=InvoiceDetailOut,
        statuses=(401, 404, 409, 422),
    )
    async def record_payment(request: Request, body: PaymentBody) -> InvoiceDetailOut:
        """Record a full or partial payment of a finalized invoice; what is paid above the
        balance becomes the paying client's credit (422 when a contact or someone typed in
        pays, who has no account to keep it; 409 if a credit note cancelled it)"""
        caller = require_staff(request)
        invoice = await access_invoice_to_change(caller, path_id(request, "invoice_id"))
        await billing.do_record_payment(
            caller,
            invoice,
            PaymentIn(body.amount, body.method, body.paid_on, body.reference, body.request_key),
        )
        await invoice.refresh_from_db()  # the paid total the payment just changed
        return await invoice_detail(invoice)

    @api.route(
        "POST",
        "/invoices/{invoice_id}/send",
        body=SendBody,
        response=InvoiceDetailOut,
        statuses=(401, 404, 409, 422),
    )
    async def send(request: Request, body: SendBody) -> InvoiceDetailOut:
        """Email a finalized invoice with its PDF (through the outbox); sent_at and sent_to
        say when and to whom"""
        caller = require_staff(request)
        invoice = await access_invoice_to_change(caller, path_id(request, "invoice_id"))
        return await invoice_detail(await billing.do_send_invoice(caller, invoice, body.to))

    @api.route(
        "POST",
        "/invoices/{invoice_id}/credit-note",
        body=CreditNoteBody,
        response=InvoiceDetailOut,
        statuses=(401, 404, 409, 422),
    )
    async def credit_note(request: Request, body: CreditNoteBody) -> InvoiceDetailOut:
        """Cancel a finalized invoice by a credit note for what it still owes (the new
        credit note is returned)"""
        caller = require_staff(request)
        invoice = await access_invoice_to_change(caller, path_id(request, "invoice_id"))
        return await invoice_detail(
            await billing.do_credit_note(caller, invoice, reason=body.reason)
        )
