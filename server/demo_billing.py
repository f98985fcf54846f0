"""The demo practice's billing: its invoice identity, a few invoices, payments and credit."""

from __future__ import annotations

from decimal import Decimal

from models.accounts import PortalAccount, Practice, StaffUser
from models.billing import Consultation, PaymentMethodUsed
from models.clients import Client
from server.actions import billing
from server.auth.sessions import Caller


async def create_demo_billing(
    practice: Practice, owner: StaffUser, people: list[tuple[PortalAccount, Client]]
) -> None:
    """Hélène: a finalized invoice partly paid; Marc: paid with an overpayment kept as
    credit; Amira: a draft; the others' sessions wait in "To bill"."""
    actor = Caller.acting_as(owner)
    await billing.do_update_profile(
        actor,
        practice,
        None,
        billing.ProfileChanges(
            legal_name="Cabinet Demo — Claire Rousseau, psychologue",
            address="12 rue de la République\n69002 Lyon",
            registration="SIRET 123 456 789 00012 · ADELI 69 93 0000 0",
            email="factures@demo.cabinet",
            prefix="CD-",
            yearly_reset=True,
            tax_rate=Decimal("0"),
            tax_exemption="TVA non applicable, article 261-4-1° du CGI",
            payment_days=30,
            footer="Cabinet Demo · 12 rue de la République, Lyon",
        ),
    )
    today = billing.practice_today(practice)
    for _account, client in people:
        await billing.do_ensure_consultations(actor, client)
    for i, (_account, client) in enumerate(people[:3]):
        consultations = await Consultation.filter(client_id=client.id, invoice_id=None)
        if not consultations:
            continue
        (invoice,) = await billing.do_bill(
            actor,
            practice,
            None,
            consultations,
            method=billing.BillingMethod.SINGLE,
            payer=billing.Payer(),
            finalize=i < 2,
        )
        if i == 0:
            await billing.do_record_payment(
                actor,
                invoice,
                # Paid once invoiced (a receipt is never older than its invoice).
                billing.PaymentIn(Decimal("50"), PaymentMethodUsed.CHEQUE, today, "CHQ 0421"),
            )
        elif i == 1:
            await billing.do_record_payment(
                actor,
                invoice,
                billing.PaymentIn(
                    Decimal(invoice.total) + Decimal("20"),
                    PaymentMethodUsed.TRANSFER,
                    today,
                    "VIR 7781",
                ),
            )
