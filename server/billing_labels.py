"""How billing's enum values read on pages and PDFs (merged into server.web.LABELS)."""

from __future__ import annotations

from enum import StrEnum

from models.billing import InvoiceKind, InvoiceStatus, InvoiceTemplate, PayerKind, PaymentKind
from models.billing import PaymentMethodUsed as Method
from server.i18n import lazy

BILLING_LABELS: dict[StrEnum, str] = {
    InvoiceStatus.DRAFT: lazy("Draft"),
    InvoiceStatus.FINALIZED: lazy("Finalized"),
    InvoiceKind.INVOICE: lazy("Invoice"),
    InvoiceKind.CREDIT_NOTE: lazy("Credit note"),
    InvoiceTemplate.STANDARD: lazy("Standard"),
    InvoiceTemplate.DETAILED: lazy("With the health id (for insurers)"),
    PayerKind.CLIENT: lazy("A client"),
    PayerKind.CONTACT: lazy("A contact"),
    PayerKind.OTHER: lazy("Another person"),
    PaymentKind.PAYMENT: lazy("Payment"),
    PaymentKind.REFUND: lazy("Refund"),
    Method.CASH: lazy("Cash"),
    Method.CARD: lazy("Card"),
    Method.TRANSFER: lazy("Bank transfer"),
    Method.CHEQUE: lazy("Cheque"),
    Method.INSURANCE: lazy("Insurance"),
    Method.CREDIT: lazy("Client credit"),
    Method.OTHER: lazy("Other"),
}
