"""Billing: consultations (what is billed), invoices and credit notes, their numbering,
payments, and each issuer's billing profile."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.agenda import Appointment, Service
from models.base import Timestamped
from models.clients import Client, Contact

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


class Consultation(Timestamped):
    # The clinical act that gets billed. Independent from the booking: an appointment may
    # produce none, and a consultation may exist without an appointment.
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="consultations", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="consultations", on_delete=fields.RESTRICT
    )
    practitioner: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="consultations", on_delete=fields.RESTRICT
    )
    appointment: fields.ForeignKeyNullableRelation[Appointment] = fields.ForeignKeyField(
        "models.Appointment", related_name="consultations", null=True, on_delete=fields.SET_NULL
    )
    # The day it took place, in the practice's time zone.
    on_date = fields.DateField()
    title = fields.CharField(max_length=200)
    billable = fields.BooleanField(default=True)
    # Set when an invoice bills it; cleared only when that invoice is deleted as a draft or
    # cancelled by a credit note, so a consultation is billed at most once.
    invoice: fields.ForeignKeyNullableRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="consultations", null=True, on_delete=fields.SET_NULL
    )
    # The form's own key, for one added by hand (one per page shown): sent again, after an
    # answer that never came, it finds this one instead of making a second to bill.
    request_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "consultation"
        indexes = (("client_id", "on_date"), ("practice_id", "invoice_id", "billable"))
        unique_together = (("client", "request_key"),)


class DefaultService(Timestamped):
    # A practitioner's usual service(s): what a consultation without an appointment bills.
    id = fields.IntField(primary_key=True)
    practitioner: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="default_services", on_delete=fields.CASCADE
    )
    service: fields.ForeignKeyRelation[Service] = fields.ForeignKeyField(
        "models.Service", related_name="defaulted_by", on_delete=fields.CASCADE
    )

    class Meta:
        table = "default_service"
        unique_together = (("practitioner", "service"),)


class BillingProfile(Timestamped):
    # Who an invoice comes from: the practice (practitioner unset) or one practitioner billing
    # in their own name. Identity, numbering and tax settings printed on their invoices.
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="billing_profiles", on_delete=fields.RESTRICT
    )
    practitioner: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="billing_profiles", null=True, on_delete=fields.RESTRICT
    )
    legal_name = fields.CharField(max_length=200, default="")
    address = fields.TextField(default="")
    # Registration numbers as the country wants them printed (SIRET, ADELI, RPPS, VAT...).
    registration = fields.TextField(default="")
    email = fields.CharField(max_length=254, default="")
    prefix = fields.CharField(max_length=20, default="F-")
    # Numbers restart at 1 each calendar year (the year is then part of the number).
    yearly_reset = fields.BooleanField(default=True)
    tax_rate = fields.DecimalField(max_digits=5, decimal_places=2, default=ZERO)
    # Printed when no tax is charged ("VAT exempt, article 261-4-1° CGI").
    tax_exemption = fields.CharField(max_length=300, default="")
    payment_days = fields.SmallIntField(default=30)
    footer = fields.TextField(default="")

    class Meta:
        table = "billing_profile"
        unique_together = (("practice", "practitioner"),)


class InvoiceSequence(Timestamped):
    # The counter behind gapless numbers: one row per issuer and year (0 without yearly
    # reset). Finalizing locks it (FOR UPDATE on PostgreSQL, the write lock on SQLite).
    id = fields.IntField(primary_key=True)
    profile: fields.ForeignKeyRelation[BillingProfile] = fields.ForeignKeyField(
        "models.BillingProfile", related_name="sequences", on_delete=fields.RESTRICT
    )
    year = fields.SmallIntField()
    last_number = fields.IntField(default=0)

    class Meta:
        table = "invoice_sequence"
        unique_together = (("profile", "year"),)


class InvoiceKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"  # editable, deletable, no number
    FINALIZED = "finalized"  # numbered, never edited again


class PayerKind(StrEnum):
    CLIENT = "client"
    CONTACT = "contact"
    OTHER = "other"  # someone typed in: name and address


class InvoiceTemplate(StrEnum):
    STANDARD = "standard"
    DETAILED = "detailed"  # also prints the client's health id (for their insurer)


class Invoice(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="invoices", on_delete=fields.RESTRICT
    )
    profile: fields.ForeignKeyRelation[BillingProfile] = fields.ForeignKeyField(
        "models.BillingProfile", related_name="invoices", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(InvoiceKind, max_length=12, default=InvoiceKind.INVOICE)
    status = fields.CharEnumField(InvoiceStatus, max_length=10, default=InvoiceStatus.DRAFT)
    template = fields.CharEnumField(
        InvoiceTemplate, max_length=10, default=InvoiceTemplate.STANDARD
    )
    number = fields.CharField(max_length=40, null=True)
    # The client whose account it is on (unset for one invoice to an organisation covering
    # several clients).
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="invoices", null=True, on_delete=fields.RESTRICT
    )
    payer_kind = fields.CharEnumField(PayerKind, max_length=10, default=PayerKind.CLIENT)
    payer_client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="invoices_paid", null=True, on_delete=fields.RESTRICT
    )
    payer_contact: fields.ForeignKeyNullableRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="invoices", null=True, on_delete=fields.RESTRICT
    )
    # The payer as printed, copied when the invoice is made so a later change of address
    # does not rewrite an invoice already sent.
    payer_name = fields.CharField(max_length=200, default="")
    payer_address = fields.TextField(default="")
    payer_email = fields.CharField(max_length=254, default="")
    # The issuer and the client as printed, copied when the invoice is finalized (the payer is
    # copied when it is made): an issued invoice reads the same for good, whatever its
    # issuer's settings or the client's file say later. Empty on a draft, which prints them as
    # they are.
    issuer_name = fields.CharField(max_length=200, default="", db_default="")
    issuer_address = fields.TextField(default="", db_default="")
    issuer_registration = fields.TextField(default="", db_default="")
    issuer_email = fields.CharField(max_length=254, default="", db_default="")
    issuer_footer = fields.TextField(default="", db_default="")
    client_name = fields.CharField(max_length=201, default="", db_default="")
    client_health_id = fields.CharField(max_length=60, default="", db_default="")
    issued_on = fields.DateField(null=True)
    due_on = fields.DateField(null=True)
    currency = fields.CharField(max_length=3, default="EUR")
    subtotal = fields.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    discount_total = fields.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    tax_total = fields.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    total = fields.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    # Payments and credit notes applied; the balance is total - paid - credited.
    paid = fields.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    credited = fields.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    tax_exemption = fields.CharField(max_length=300, default="")
    notes = fields.TextField(default="")
    credited_invoice: fields.ForeignKeyNullableRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="credit_notes", null=True, on_delete=fields.RESTRICT
    )
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="invoices_created", null=True, on_delete=fields.SET_NULL
    )
    finalized_at = fields.DatetimeField(null=True)
    # The last time it was sent by email, and to whom: nobody sends it twice by doubt.
    sent_at = fields.DatetimeField(null=True)
    sent_to = fields.CharField(max_length=254, default="")
    outbox_id = fields.BigIntField(null=True)

    class Meta:
        table = "invoice"
        unique_together = (("profile", "number"),)
        indexes = (("practice_id", "status", "issued_on"),)

    @property
    def balance(self) -> Decimal:
        return Decimal(self.total) - Decimal(self.paid) - Decimal(self.credited)


class InvoiceLine(Timestamped):
    id = fields.IntField(primary_key=True)
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="lines", on_delete=fields.CASCADE
    )
    position = fields.SmallIntField(default=0)
    consultation: fields.ForeignKeyNullableRelation[Consultation] = fields.ForeignKeyField(
        "models.Consultation", related_name="lines", null=True, on_delete=fields.SET_NULL
    )
    service: fields.ForeignKeyNullableRelation[Service] = fields.ForeignKeyField(
        "models.Service", related_name="invoice_lines", null=True, on_delete=fields.SET_NULL
    )
    on_date = fields.DateField(null=True)
    description = fields.CharField(max_length=300)
    quantity = fields.DecimalField(max_digits=8, decimal_places=2, default=Decimal("1.00"))
    unit_price = fields.DecimalField(max_digits=10, decimal_places=2)
    # Money off this line (the client's service fee discount, or one typed in).
    discount = fields.DecimalField(max_digits=10, decimal_places=2, default=ZERO)
    tax_rate = fields.DecimalField(max_digits=5, decimal_places=2, default=ZERO)
    amount = fields.DecimalField(max_digits=12, decimal_places=2, default=ZERO)  # before tax
    tax = fields.DecimalField(max_digits=12, decimal_places=2, default=ZERO)

    class Meta:
        table = "invoice_line"


class PaymentMethodUsed(StrEnum):
    CASH = "cash"
    CARD = "card"
    TRANSFER = "transfer"
    CHEQUE = "cheque"
    INSURANCE = "insurance"
    CREDIT = "credit"  # the client's credit, from an earlier overpayment
    OTHER = "other"


class PaymentKind(StrEnum):
    PAYMENT = "payment"  # money received
    REFUND = "refund"  # money given back out of the client's credit


class Payment(Timestamped):
    # Money in (or out, for a refund). On an invoice, or on the client's account as credit
    # when unallocated (the part of a payment above what the invoice still owed).
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="payments", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="payments", null=True, on_delete=fields.RESTRICT
    )
    invoice: fields.ForeignKeyNullableRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="payments", null=True, on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(PaymentKind, max_length=10, default=PaymentKind.PAYMENT)
    method = fields.CharEnumField(PaymentMethodUsed, max_length=12)
    paid_on = fields.DateField()
    amount = fields.DecimalField(max_digits=12, decimal_places=2)
    reference = fields.CharField(max_length=120, default="")
    # The payment this row split from (its overpayment, kept as credit).
    parent: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "models.Payment", related_name="parts", null=True, on_delete=fields.RESTRICT
    )
    recorded_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="payments_recorded", null=True, on_delete=fields.SET_NULL
    )
    # The form's own key (one per page shown): the same payment sent again, after an answer
    # that never came, is found instead of recorded twice (a payment is never deleted).
    request_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "payment"
        indexes = (("client_id", "paid_on"),)
        unique_together = (("practice", "request_key"),)

    @property
    def has_receipt(self) -> bool:
        """Money received: a receipt says so. Not a refund (money given back), nor a use or
        move of credit (the money was received, and had its receipt, before)."""
        return (
            self.kind is PaymentKind.PAYMENT
            and self.method is not PaymentMethodUsed.CREDIT
            and self.amount > 0
        )
