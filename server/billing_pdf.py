"""Invoices, credit notes, receipts and account statements as PDF (fpdf2, offline).

The document and its fonts are server/pdf.py's. Text, dates and money follow the current
locale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from models.accounts import Practice
from models.billing import (
    BillingProfile,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    InvoiceTemplate,
    Payment,
)
from models.clients import Client
from server.i18n import format_date, format_money
from server.i18n import gettext as _
from server.pdf import FONT, new_document


def pdf_response(data: bytes, filename: str) -> Response:
    """A PDF shown in the browser (inline), never cached: it is someone's bill."""
    # A header is Latin-1: a name beyond plain ASCII (an invoice prefix from "Łoś") goes
    # percent-encoded in filename*, as Starlette's FileResponse writes it.
    quoted = quote(filename)
    disposition = (
        f'inline; filename="{filename}"'
        if quoted == filename
        else f"inline; filename*=utf-8''{quoted}"
    )
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@dataclass
class DocLine:
    on_date: date | None
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    amount: Decimal
    tax_rate: Decimal


@dataclass
class InvoiceDoc:
    """What an invoice PDF prints: built from a saved invoice or from a plan (preview)."""

    kind: InvoiceKind
    status: InvoiceStatus
    number: str | None
    issuer_name: str
    issuer_address: str
    issuer_registration: str
    issuer_email: str
    payer_name: str
    payer_address: str
    client_name: str
    client_health_id: str
    issued_on: date | None
    due_on: date | None
    currency: str
    lines: list[DocLine]
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal
    paid: Decimal = Decimal("0.00")
    credited: Decimal = Decimal("0.00")
    tax_exemption: str = ""
    footer: str = ""
    notes: str = ""
    credited_number: str = ""
    template: InvoiceTemplate = InvoiceTemplate.STANDARD
    payments: list[tuple[date, str, Decimal]] = field(default_factory=list)


def _new_pdf() -> Any:
    return new_document(page_break_margin=20, margins=18, footer_text="")


def _money(amount: Decimal, currency: str) -> str:
    return format_money(Decimal(amount), currency)


def _header(pdf: Any, title: str, issuer: list[str], right: list[tuple[str, str]]) -> None:
    top = pdf.get_y()
    pdf.set_font(FONT, "B", 18)
    pdf.set_text_color(37, 99, 235)
    pdf.cell(0, 8, title, align="R")
    # The issuer's name takes what the title leaves, on as many lines as it needs: a long
    # one ("Cabinet … — Claire Rousseau, psychologue") ran under the title.
    room = pdf.epw - pdf.get_string_width(title) - 6
    pdf.set_xy(pdf.l_margin, top)
    pdf.set_text_color(20, 20, 20)
    pdf.set_font(FONT, "B", 14)
    pdf.multi_cell(room, 6.5, issuer[0], new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(pdf.get_y(), top + 8))
    pdf.set_text_color(60, 60, 60)
    y = pdf.get_y()
    pdf.set_font(FONT, "", 8.5)
    pdf.multi_cell(95, 4.2, "\n".join(p for p in issuer[1:] if p), new_x="LMARGIN", new_y="NEXT")
    end_left = pdf.get_y()
    pdf.set_xy(120, y)
    for label_text, value in right:
        pdf.set_x(120)
        pdf.set_font(FONT, "", 8.5)
        pdf.cell(32, 5, label_text)
        pdf.set_font(FONT, "B", 8.5)
        pdf.cell(0, 5, value, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(end_left, pdf.get_y()) + 6)
    pdf.set_text_color(20, 20, 20)


def _payer_box(pdf: Any, heading: str, name: str, address: str, extra: str = "") -> None:
    y = pdf.get_y()
    pdf.set_fill_color(243, 244, 246)
    pdf.rect(110, y, 82, 28, style="F")
    pdf.set_xy(113, y + 2)
    pdf.set_font(FONT, "", 7.5)
    pdf.set_text_color(100, 100, 100)
    pdf.cell(0, 4, heading.upper(), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(20, 20, 20)
    pdf.set_x(113)
    pdf.set_font(FONT, "B", 10)
    pdf.cell(0, 5, name, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 8.5)
    for line in [*address.splitlines(), extra]:
        if line:
            pdf.set_x(113)
            pdf.cell(76, 4.2, line, new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(y + 34)


def render_invoice(doc: InvoiceDoc) -> bytes:
    pdf = _new_pdf()
    pdf.footer_text = doc.footer
    pdf.alias_nb_pages()
    pdf.add_page()
    title = _("CREDIT NOTE") if doc.kind is InvoiceKind.CREDIT_NOTE else _("INVOICE")
    right = [
        (_("Number"), doc.number or _("Draft")),
        (_("Date"), format_date(doc.issued_on) if doc.issued_on else "—"),
    ]
    if doc.due_on and doc.kind is InvoiceKind.INVOICE:
        right.append((_("Due"), format_date(doc.due_on)))
    if doc.credited_number:
        right.append((_("Cancels"), doc.credited_number))
    issuer = [
        doc.issuer_name,
        doc.issuer_address,
        doc.issuer_registration,
        doc.issuer_email,
    ]
    _header(pdf, title, issuer, right)
    extra = ""
    if doc.client_name and doc.client_name != doc.payer_name:
        extra = _("For: %s") % doc.client_name
    _payer_box(pdf, _("Billed to"), doc.payer_name, doc.payer_address, extra)
    if doc.status is InvoiceStatus.DRAFT:
        pdf.set_font(FONT, "B", 9)
        pdf.set_text_color(185, 28, 28)
        pdf.cell(
            0, 6, _("Draft: not a valid invoice until finalized."), new_x="LMARGIN", new_y="NEXT"
        )
        pdf.set_text_color(20, 20, 20)
    if doc.template is InvoiceTemplate.DETAILED and doc.client_health_id:
        pdf.set_font(FONT, "", 8.5)
        pdf.cell(0, 5, _("Health id: %s") % doc.client_health_id, new_x="LMARGIN", new_y="NEXT")
    # Lines
    widths = (24, 70, 14, 24, 22, 20)
    heads = (_("Date"), _("Description"), _("Qty"), _("Unit price"), _("Discount"), _("Amount"))
    pdf.set_font(FONT, "B", 8.5)
    pdf.set_fill_color(37, 99, 235)
    pdf.set_text_color(255, 255, 255)
    for w, h in zip(widths, heads, strict=True):
        pdf.cell(w, 7, h, fill=True, align="L" if h in heads[:2] else "R")
    pdf.ln()
    pdf.set_text_color(20, 20, 20)
    pdf.set_font(FONT, "", 8.5)
    for i, line in enumerate(doc.lines):
        fill = i % 2 == 1
        pdf.set_fill_color(248, 250, 252)
        desc = line.description if len(line.description) <= 48 else line.description[:47] + "…"
        cells = (
            format_date(line.on_date, "short") if line.on_date else "",
            desc,
            f"{line.quantity.normalize():f}",
            _money(line.unit_price, doc.currency),
            _money(line.discount, doc.currency) if line.discount else "",
            _money(line.amount, doc.currency),
        )
        for j, (w, text) in enumerate(zip(widths, cells, strict=True)):
            pdf.cell(w, 6, text, fill=fill, align="L" if j < 2 else "R")
        pdf.ln()
    pdf.ln(3)
    rows = [(_("Subtotal"), doc.subtotal)]
    if doc.discount_total:
        rows.append((_("Discounts"), -doc.discount_total))
    rows.append((_("Tax"), doc.tax_total))
    rows.append((_("Total"), doc.total))
    if doc.kind is InvoiceKind.INVOICE and doc.status is InvoiceStatus.FINALIZED:
        if doc.paid:
            rows.append((_("Already paid"), -doc.paid))
        if doc.credited:
            rows.append((_("Credited"), -doc.credited))
        rows.append((_("Balance due"), doc.total - doc.paid - doc.credited))
    for label_text, value in rows:
        bold = label_text in (_("Total"), _("Balance due"))
        pdf.set_x(120)
        pdf.set_font(FONT, "B" if bold else "", 9.5 if bold else 9)
        pdf.cell(42, 6, label_text)
        pdf.cell(0, 6, _money(value, doc.currency), align="R", new_x="LMARGIN", new_y="NEXT")
    if doc.kind is InvoiceKind.INVOICE and doc.status is InvoiceStatus.FINALIZED:
        balance = doc.total - doc.paid - doc.credited
        status = _("PAID") if balance <= 0 else (_("PARTLY PAID") if doc.paid else _("UNPAID"))
        pdf.set_x(120)
        pdf.set_font(FONT, "B", 11)
        pdf.set_text_color(21, 128, 61) if balance <= 0 else pdf.set_text_color(185, 28, 28)
        pdf.cell(0, 8, status, align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(20, 20, 20)
    pdf.ln(4)
    pdf.set_font(FONT, "", 8.5)
    if doc.payments:
        pdf.set_font(FONT, "B", 9)
        pdf.cell(0, 5, _("Payments received"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 8.5)
        for on, method, amount in doc.payments:
            pdf.cell(
                0,
                4.5,
                f"{format_date(on)} · {method} · {_money(amount, doc.currency)}",
                new_x="LMARGIN",
                new_y="NEXT",
            )
        pdf.ln(2)
    if doc.tax_exemption and not doc.tax_total:
        pdf.multi_cell(0, 4.5, doc.tax_exemption, new_x="LMARGIN", new_y="NEXT")
    if doc.notes:
        pdf.multi_cell(0, 4.5, doc.notes, new_x="LMARGIN", new_y="NEXT")
    if doc.kind is InvoiceKind.INVOICE and doc.due_on:
        pdf.multi_cell(
            0,
            4.5,
            _("Payment due by %(date)s. No discount for early payment.")
            % {"date": format_date(doc.due_on)},
            new_x="LMARGIN",
            new_y="NEXT",
        )
    return bytes(pdf.output())


@dataclass
class Parties:
    """Who an invoice is from and for, as it prints them."""

    issuer_name: str
    issuer_address: str
    issuer_registration: str
    issuer_email: str
    footer: str
    client_name: str
    client_health_id: str

    @property
    def issuer_lines(self) -> list[str]:
        return [self.issuer_name, self.issuer_address, self.issuer_registration, self.issuer_email]


async def parties(invoice: Invoice) -> Parties:
    """A finalized invoice's (or credit note's) copies, made when it was issued (or by the
    migration that brought them, for one issued before); a draft's issuer and client as they
    are now."""
    if invoice.status is InvoiceStatus.FINALIZED:
        return Parties(
            invoice.issuer_name,
            invoice.issuer_address,
            invoice.issuer_registration,
            invoice.issuer_email,
            invoice.issuer_footer,
            invoice.client_name,
            invoice.client_health_id,
        )
    profile = await BillingProfile.get(id=invoice.profile_id)  # type: ignore[attr-defined]
    client = await Client.get_or_none(id=invoice.client_id) if invoice.client_id else None  # type: ignore[attr-defined]
    return Parties(
        profile.legal_name,
        profile.address,
        profile.registration,
        profile.email,
        profile.footer,
        client.full_name if client else "",
        client.health_id if client else "",
    )


async def invoice_doc(invoice: Invoice) -> InvoiceDoc:
    from server.web import label

    who = await parties(invoice)
    lines = await InvoiceLine.filter(invoice_id=invoice.id).order_by("position", "id")
    credited = (
        await Invoice.get(id=invoice.credited_invoice_id)  # type: ignore[attr-defined]
        if invoice.credited_invoice_id  # type: ignore[attr-defined]
        else None
    )
    payments = await Payment.filter(invoice_id=invoice.id, amount__gt=0).order_by("paid_on", "id")
    return InvoiceDoc(
        kind=invoice.kind,
        status=invoice.status,
        number=invoice.number,
        issuer_name=who.issuer_name,
        issuer_address=who.issuer_address,
        issuer_registration=who.issuer_registration,
        issuer_email=who.issuer_email,
        payer_name=invoice.payer_name,
        payer_address=invoice.payer_address,
        client_name=who.client_name,
        client_health_id=who.client_health_id,
        issued_on=invoice.issued_on,
        due_on=invoice.due_on,
        currency=invoice.currency,
        lines=[
            DocLine(
                line.on_date,
                line.description,
                Decimal(line.quantity),
                Decimal(line.unit_price),
                Decimal(line.discount),
                Decimal(line.amount),
                Decimal(line.tax_rate),
            )
            for line in lines
        ],
        subtotal=Decimal(invoice.subtotal),
        discount_total=Decimal(invoice.discount_total),
        tax_total=Decimal(invoice.tax_total),
        total=Decimal(invoice.total),
        paid=Decimal(invoice.paid),
        credited=Decimal(invoice.credited),
        tax_exemption=invoice.tax_exemption,
        footer=who.footer,
        notes=invoice.notes,
        credited_number=credited.number or "" if credited else "",
        template=invoice.template,
        payments=[(p.paid_on, label(p.method), Decimal(p.amount)) for p in payments],
    )


async def invoice_pdf(invoice: Invoice) -> bytes:
    return render_invoice(await invoice_doc(invoice))


def invoice_filename(invoice: Invoice) -> str:
    stem = invoice.number or f"draft-{invoice.id}"
    prefix = "credit-note" if invoice.kind is InvoiceKind.CREDIT_NOTE else "invoice"
    return f"{prefix}-{stem}.pdf".replace("/", "-")


async def receipt_pdf(payment: Payment) -> bytes:
    """A receipt for one payment received."""
    from server.web import label

    invoice = await Invoice.get(id=payment.invoice_id) if payment.invoice_id else None  # type: ignore[attr-defined]
    practice = await Practice.get(id=payment.practice_id)  # type: ignore[attr-defined]
    client = await Client.get_or_none(id=payment.client_id) if payment.client_id else None  # type: ignore[attr-defined]
    currency = invoice.currency if invoice else practice.currency
    pdf = _new_pdf()
    pdf.alias_nb_pages()
    if invoice is not None:
        # From the issuer the invoice names, as it names them.
        who = await parties(invoice)
        issuer, pdf.footer_text = who.issuer_lines, who.footer
    else:
        # Money on account, for no invoice: the practice as it is now (nothing was issued).
        profile = await BillingProfile.get_or_none(practice_id=practice.id, practitioner_id=None)
        issuer = (
            [profile.legal_name, profile.address, profile.registration, profile.email]
            if profile
            else [practice.name]
        )
        pdf.footer_text = profile.footer if profile else ""
    pdf.add_page()
    _header(
        pdf,
        _("RECEIPT"),
        issuer,
        [(_("Receipt"), f"R-{payment.id:06d}"), (_("Date"), format_date(payment.paid_on))],
    )
    payer = invoice.payer_name if invoice else (client.full_name if client else "")
    address = invoice.payer_address if invoice else ""
    _payer_box(pdf, _("Received from"), payer, address)
    pdf.set_font(FONT, "", 10)
    # What was handed over: this row and the part of it kept as credit (an overpayment).
    kept = sum(
        (
            Decimal(p.amount)
            for p in await Payment.filter(parent_id=payment.id, invoice_id=None, amount__gt=0)
            if p.method == payment.method
        ),
        Decimal("0.00"),
    )
    rows = [
        (_("Amount received"), _money(Decimal(payment.amount) + kept, currency)),
        (_("Method"), label(payment.method)),
        (_("Reference"), payment.reference or "—"),
        (_("For invoice"), invoice.number or "" if invoice else _("Credit on account")),
    ]
    if kept:
        rows.append((_("Kept as credit"), _money(kept, currency)))
    if invoice is not None:
        rows.append((_("Balance still due"), _money(invoice.balance, currency)))
    for label_text, value in rows:
        pdf.set_font(FONT, "", 10)
        pdf.cell(55, 8, label_text)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(0, 8, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(0, 5, _("Thank you. This receipt confirms the payment above."))
    return bytes(pdf.output())


@dataclass
class StatementRow:
    on: date
    what: str
    charge: Decimal
    credit: Decimal
    balance: Decimal


def render_statement(
    *,
    issuer: list[str],
    client_name: str,
    client_address: str,
    start: date,
    end: date,
    opening: Decimal,
    rows: list[StatementRow],
    closing: Decimal,
    credit: Decimal,
    currency: str,
) -> bytes:
    pdf = _new_pdf()
    pdf.alias_nb_pages()
    pdf.add_page()
    _header(
        pdf,
        _("STATEMENT"),
        issuer,
        [(_("From"), format_date(start)), (_("To"), format_date(end))],
    )
    _payer_box(pdf, _("Account of"), client_name, client_address)
    widths = (24, 76, 24, 24, 26)  # the 174 mm between the margins
    heads = (_("Date"), _("Description"), _("Charges"), _("Payments"), _("Balance"))
    pdf.set_font(FONT, "B", 8.5)
    pdf.set_fill_color(37, 99, 235)
    pdf.set_text_color(255, 255, 255)
    for w, h in zip(widths, heads, strict=True):
        pdf.cell(w, 7, h, fill=True, align="L" if h in heads[:2] else "R")
    pdf.ln()
    pdf.set_text_color(20, 20, 20)
    pdf.set_font(FONT, "", 8.5)
    pdf.cell(100, 6, _("Opening balance"))
    pdf.cell(74, 6, _money(opening, currency), align="R", new_x="LMARGIN", new_y="NEXT")
    for row in rows:
        cells = (
            format_date(row.on, "short"),
            row.what[:55],
            _money(row.charge, currency) if row.charge else "",
            _money(row.credit, currency) if row.credit else "",
            _money(row.balance, currency),
        )
        for j, (w, text) in enumerate(zip(widths, cells, strict=True)):
            pdf.cell(w, 6, text, align="L" if j < 2 else "R")
        pdf.ln()
    pdf.set_font(FONT, "B", 9.5)
    pdf.cell(100, 8, _("Closing balance"))
    pdf.cell(74, 8, _money(closing, currency), align="R", new_x="LMARGIN", new_y="NEXT")
    if credit:
        pdf.set_font(FONT, "", 9)
        pdf.cell(
            0,
            6,
            _("Credit on account: %s") % _money(credit, currency),
            new_x="LMARGIN",
            new_y="NEXT",
        )
    return bytes(pdf.output())
