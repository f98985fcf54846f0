"""Billing read models: the unpaid list with ageing, a client's account statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models.billing import (
    ZERO,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    PayerKind,
    Payment,
    PaymentKind,
)
from server.billing_pdf import StatementRow
from server.i18n import gettext as _
from server.web import label

# Days past the due date: the usual ageing buckets of an accounts-receivable report.
BUCKETS: list[tuple[str, int, int | None]] = [
    ("current", -100000, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("90+", 91, None),
]


def bucket_of(days_late: int) -> str:
    for name, low, high in BUCKETS:
        if days_late >= low and (high is None or days_late <= high):
            return name
    return "current"


@dataclass
class UnpaidRow:
    invoice: Invoice
    balance: Decimal
    days_late: int
    bucket: str


@dataclass
class Ageing:
    rows: list[UnpaidRow]
    totals: dict[str, Decimal]
    total: Decimal

    def bar_widths(self, width: int = 100) -> dict[str, int]:
        top = max(self.totals.values(), default=ZERO)
        if top <= 0:
            return {k: 0 for k in self.totals}
        return {k: int(v * width / top) for k, v in self.totals.items()}


async def unpaid(invoices: QuerySet[Invoice], today: date) -> Ageing:
    """Finalized invoices still owing something, oldest due first, with ageing."""
    found = await invoices.filter(
        status=InvoiceStatus.FINALIZED, kind=InvoiceKind.INVOICE
    ).order_by("due_on", "id")
    rows = []
    totals = {name: ZERO for name, _low, _high in BUCKETS}
    for invoice in found:
        balance = invoice.balance
        if balance <= 0:
            continue
        days = (today - invoice.due_on).days if invoice.due_on else 0
        bucket = bucket_of(days)
        totals[bucket] += balance
        rows.append(UnpaidRow(invoice, balance, days, bucket))
    return Ageing(rows, totals, sum(totals.values(), ZERO))


@dataclass
class Statement:
    opening: Decimal
    rows: list[StatementRow]
    closing: Decimal


async def statement(client_id: int, start: date, end: date) -> Statement:
    """What the client was charged (finalized invoices and credit notes on their account)
    and paid (money received, refunds) between two dates, with the running balance.
    Credit moves between invoices and the account are internal and not listed.

    An invoice is on the account its payments go to (``actions.billing.account_holder``):
    the paying client's (a parent paying for their child, or for several clients at once),
    else its client's; listing only the invoices of client_id showed a payer their payment
    and not what it paid."""
    invoices = await Invoice.filter(
        Q(payer_kind=PayerKind.CLIENT, payer_client_id=client_id)
        | Q(client_id=client_id, payer_kind__not=PayerKind.CLIENT)
        | Q(client_id=client_id, payer_client_id=None),
        status=InvoiceStatus.FINALIZED,
        issued_on__lte=end,
    ).order_by("issued_on", "id")
    payments = await Payment.filter(client_id=client_id, paid_on__lte=end).order_by("paid_on", "id")
    entries: list[tuple[date, int, str, Decimal, Decimal]] = []
    for invoice in invoices:
        what = (
            _("Credit note %s") if invoice.kind is InvoiceKind.CREDIT_NOTE else _("Invoice %s")
        ) % invoice.number
        assert invoice.issued_on is not None
        entries.append((invoice.issued_on, 0, what, Decimal(invoice.total), ZERO))
    for payment in payments:
        if payment.parent_id is not None or payment.method.value == "credit":  # type: ignore[attr-defined]
            continue  # the split or move of a payment already listed
        amount = Decimal(payment.amount)
        if payment.kind is PaymentKind.REFUND:
            entries.append(
                (payment.paid_on, 1, _("Refund (%s)") % label(payment.method), -amount, ZERO)
            )
            continue
        total = amount + sum(
            (
                Decimal(p.amount)
                for p in payments
                if p.parent_id == payment.id and p.method == payment.method  # type: ignore[attr-defined]
            ),
            ZERO,
        )
        what = _("Payment (%s)") % label(payment.method)
        if payment.reference:
            what += f" {payment.reference}"
        entries.append((payment.paid_on, 1, what, ZERO, total))
    entries.sort(key=lambda e: (e[0], e[1]))
    opening = ZERO
    rows: list[StatementRow] = []
    balance = ZERO
    for on, _order, what, charge, credit in entries:
        if on < start:
            opening += charge - credit
            balance = opening
            continue
        balance += charge - credit
        rows.append(StatementRow(on, what, charge, credit, balance))
    return Statement(opening, rows, balance if rows else opening)
