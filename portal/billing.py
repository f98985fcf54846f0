"""The client's invoices and receipts on the portal.

A client sees the finalized invoices and credit notes on their account or addressed to them
(server.access.visible_invoices), never drafts; anything else is a 404 like a missing id.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from models.accounts import Practice
from models.billing import Payment
from server.access import access_invoice, access_receipt, visible_invoices
from server.billing_pdf import invoice_filename, invoice_pdf, pdf_response, receipt_pdf
from server.web import path_id, render, require_client


async def invoices_page(request: Request) -> Response:
    caller = require_client(request)
    practice = await Practice.get(id=caller.practice_id)
    invoices = await (await visible_invoices(caller)).order_by("-issued_on", "-id").limit(500)
    paid = await Payment.filter(invoice_id__in=[i.id for i in invoices]).order_by("-paid_on", "-id")
    payments = [p for p in paid if p.has_receipt]
    return render(
        request,
        "portal/invoices.html",
        {
            "section": "invoices",
            "invoices": invoices,
            "payments": payments,
            "numbers": {i.id: i.number for i in invoices},
            "currency": practice.currency,
        },
    )


async def invoice_pdf_view(request: Request) -> Response:
    caller = require_client(request)
    invoice = await access_invoice(caller, path_id(request, "invoice_id"))
    return pdf_response(await invoice_pdf(invoice), invoice_filename(invoice))


async def receipt_view(request: Request) -> Response:
    caller = require_client(request)
    payment = await access_receipt(caller, path_id(request, "payment_id"))
    return pdf_response(await receipt_pdf(payment), f"receipt-R-{payment.id:06d}.pdf")
