"""Billing pages under /staff/billing, the file's Billing tab and "Bill this client".

Who may bill: owners and office admins (the front desk) for the whole practice; a
therapist for the clients of their own caseload (and their supervisees'), in their own
name or the practice's. Everything is fetched through server/access.py, so an invoice or a
consultation the caller may not see is a 404.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from models.accounts import Practice, StaffRole, StaffUser
from models.agenda import Service
from models.billing import (
    BillingProfile,
    Consultation,
    DefaultService,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    InvoiceTemplate,
    PayerKind,
    Payment,
    PaymentMethodUsed,
)
from models.clients import Client, Contact
from models.notifications import OutboxMessage
from server.access import (
    access_client,
    access_consultations,
    access_contact,
    access_invoice,
    access_invoice_to_change,
    access_practitioner,
    access_receipt,
    visible_clients,
    visible_consultations,
    visible_invoices,
)
from server.actions import billing
from server.actions.billing import BillingMethod, LineIn, Payer, PaymentIn, ProfileChanges
from server.auth.sessions import Caller
from server.billing_pdf import (
    invoice_filename,
    invoice_pdf,
    parties,
    pdf_response,
    receipt_pdf,
    render_invoice,
    render_statement,
)
from server.errors import NotFound, ValidationFailed
from server.i18n import gettext as _
from server.i18n import lazy
from server.numbers import TypedDecimal
from server.queries import billing as queries
from server.web import id_or_none, parse_id, path_id, render, require_staff, validate
from staff.client_file import Tab, file_page, register_tab


async def _practice(caller: Caller) -> Practice:
    return await Practice.get(id=caller.practice_id)


def _ids(values: list[Any]) -> list[int]:
    return [parse_id(v) for v in values if isinstance(v, str) and v]


def _listed(raw: object) -> list[int]:
    """The consultations the billing form listed (its ``listed`` field, ids joined by
    commas), ticked or not; at most the 2,000 a list shows, ids that name no row left out."""
    found = (id_or_none(v) for v in str(raw or "").split(",")[:2000])
    return [i for i in found if i is not None]


# --- the billing form (from the file, the agenda, or the consultation list) ----------------


class BillForm(BaseModel):
    consultation: list[int] = Field(min_length=1)
    issuer: str = "practice"  # "practice" or a practitioner's id
    template: InvoiceTemplate = InvoiceTemplate.STANDARD
    method: BillingMethod = BillingMethod.PER_CLIENT
    payer_kind: PayerKind = PayerKind.CLIENT
    payer_client_id: int | None = None
    payer_contact_id: int | None = None
    payer_name: str = Field(default="", max_length=200)
    payer_address: str = Field(default="", max_length=1000)
    payer_email: str = Field(default="", max_length=254)
    finalize: bool = False


def _form_data(source: QueryParams | FormData) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in source.items() if k not in ("csrf_token", "n")}
    data["consultation"] = source.getlist("consultation")
    for key in ("payer_client_id", "payer_contact_id"):
        if not data.get(key):
            data.pop(key, None)
    data["finalize"] = source.get("finalize") in ("1", "on", "true")
    return data


# A batch may select every consultation the list shows (2,000) plus the form's own fields.
MAX_FIELDS = 2_100


async def _params(request: Request) -> QueryParams | FormData:
    """The billing form's fields: posted (a selection of a thousand consultations does not
    fit in an address), or in the query string."""
    if request.method == "POST":
        return await request.form(max_fields=MAX_FIELDS)
    return request.query_params


async def _issuer(caller: Caller, raw: str) -> StaffUser | None:
    """The practice (None) or a practitioner. A therapist bills in their own name or the
    practice's, not a colleague's."""
    if raw in ("", "practice"):
        return None
    issuer = await access_practitioner(caller, parse_id(raw))
    assert caller.staff is not None
    if caller.staff.role is StaffRole.THERAPIST and issuer.id != caller.staff.id:
        raise NotFound()
    return issuer


async def _payer(caller: Caller, form: BillForm) -> Payer:
    payer = Payer(
        kind=form.payer_kind,
        name=form.payer_name,
        address=form.payer_address,
        email=form.payer_email,
    )
    if form.payer_kind is PayerKind.CLIENT and form.payer_client_id:
        payer.client = await access_client(caller, form.payer_client_id)
    if form.payer_kind is PayerKind.CONTACT:
        if not form.payer_contact_id:
            raise ValidationFailed(
                _("Some fields are missing."), {"payer_contact_id": _("Choose a contact.")}
            )
        payer.contact = await access_contact(caller, form.payer_contact_id)
    return payer


async def _parsed(
    caller: Caller, source: QueryParams | FormData
) -> tuple[BillForm, list[Consultation], StaffUser | None, Payer]:
    form = validate(BillForm, _form_data(source))
    consultations = await access_consultations(caller, form.consultation)
    return form, consultations, await _issuer(caller, form.issuer), await _payer(caller, form)


async def _form_context(caller: Caller, consultation_ids: list[int]) -> dict[str, Any]:
    consultations = (
        await (await visible_consultations(caller))
        .filter(id__in=consultation_ids)
        .order_by("client_id", "on_date")
        .prefetch_related("client", "practitioner")
    )
    practitioners = StaffUser.filter(practice_id=caller.practice_id, is_active=True).exclude(
        role=StaffRole.OFFICE_ADMIN
    )
    assert caller.staff is not None
    if caller.staff.role is StaffRole.THERAPIST:
        practitioners = practitioners.filter(id=caller.staff.id)
    client_ids = {c.client_id for c in consultations}  # type: ignore[attr-defined]
    clients = await (await visible_clients(caller)).order_by("last_name").limit(500)
    contacts = (
        await Contact.filter(practice_id=caller.practice_id, deleted_at=None)
        .order_by("last_name")
        .limit(500)
    )
    return {
        "consultations": consultations,
        "practitioners": await practitioners.order_by("last_name"),
        "several_clients": len(client_ids) > 1,
        "all_clients": clients,
        "contacts": contacts,
        "templates": list(InvoiceTemplate),
        "methods": list(BillingMethod),
        "section": "billing",
    }


async def bill_client(request: Request) -> Response:
    """POST /staff/clients/{id}/bill ("Bill this client", from the file or the agenda):
    make the consultations missing for past appointments, then open the form."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    await billing.do_ensure_consultations(caller, client)
    return RedirectResponse(f"/staff/billing/new?client={client.id}", status_code=303)


async def new_page(request: Request) -> Response:
    """The billing form for a client's unbilled consultations or a chosen selection."""
    caller = require_staff(request)
    params = await _params(request)
    if params.get("client"):
        client = await access_client(caller, parse_id(params.get("client")))
        ids = await Consultation.filter(
            client_id=client.id, invoice_id=None, billable=True
        ).values_list("id", flat=True)
        selected = [int(i) for i in ids]  # type: ignore[call-overload]
        method = BillingMethod.SINGLE
    else:
        selected = _ids(params.getlist("consultation"))
        raw = str(params.get("method", ""))
        method = BillingMethod(raw) if raw in set(BillingMethod) else BillingMethod.PER_CLIENT
    ctx = await _form_context(caller, selected)
    ctx.update(method=method, posted={})
    return render(request, "staff/billing_new.html", ctx)


async def preview_page(request: Request) -> Response:
    """What would be billed: each invoice's summary and its PDF as the payer gets it."""
    caller = require_staff(request)
    practice = await _practice(caller)
    params = await _params(request)
    try:
        form, consultations, issuer, payer = await _parsed(caller, params)
        profile = await billing.find_profile(practice, issuer)
        plans = await billing.plan_invoices(practice, profile, consultations, form.method, payer)
    except ValidationFailed as exc:
        # Listed again as the form listed them, the boxes unticked staying unticked: an
        # unticked consultation is one to bill later, not one to drop from the form.
        ticked = _ids(params.getlist("consultation"))
        ctx = await _form_context(caller, _listed(params.get("listed")) or ticked)
        ctx.update(
            error=exc.message,
            fields=exc.fields,
            posted={k: v for k, v in params.items() if k != "csrf_token"},
            method=params.get("method"),
            ticked=set(ticked),
        )
        return render(request, "staff/billing_new.html", ctx, status=422)
    hidden = [(k, v) for k, v in params.multi_items() if k not in ("csrf_token", "n")]
    return render(
        request,
        "staff/billing_preview.html",
        {
            "plans": plans,
            "profile": profile,
            "form": form,
            "hidden": hidden,
            "currency": practice.currency,
            "section": "billing",
        },
    )


async def preview_pdf(request: Request) -> Response:
    caller = require_staff(request)
    practice = await _practice(caller)
    params = await _params(request)
    form, consultations, issuer, payer = await _parsed(caller, params)
    profile = await billing.find_profile(practice, issuer)
    plans = await billing.plan_invoices(practice, profile, consultations, form.method, payer)
    raw = str(params.get("n", "0"))
    n = int(raw) if raw.isascii() and raw.isdigit() else -1
    if not 0 <= n < len(plans):
        raise NotFound()
    return pdf_response(render_invoice(_plan_doc(plans[n], profile, practice, form)), "preview.pdf")


def _plan_doc(
    plan: billing.InvoicePlan, profile: BillingProfile, practice: Practice, form: BillForm
) -> Any:
    from server.billing_pdf import DocLine, InvoiceDoc

    t = plan.totals
    today = billing.practice_today(practice)
    return InvoiceDoc(
        kind=InvoiceKind.INVOICE,
        status=InvoiceStatus.FINALIZED if form.finalize else InvoiceStatus.DRAFT,
        number=None,
        issuer_name=profile.legal_name,
        issuer_address=profile.address,
        issuer_registration=profile.registration,
        issuer_email=profile.email,
        payer_name=plan.payer_name,
        payer_address=plan.payer_address,
        client_name=plan.client.full_name if plan.client else "",
        client_health_id=plan.client.health_id if plan.client else "",
        issued_on=today if form.finalize else None,
        due_on=today + timedelta(days=profile.payment_days) if form.finalize else None,
        currency=practice.currency,
        lines=[
            DocLine(
                line.on_date,
                line.description,
                line.quantity,
                line.unit_price,
                line.discount,
                line.amount,
                line.tax_rate,
            )
            for line in plan.lines
        ],
        subtotal=t.subtotal,
        discount_total=t.discount_total,
        tax_total=t.tax_total,
        total=t.total,
        tax_exemption=profile.tax_exemption if not t.tax_total else "",
        footer=profile.footer,
        template=form.template,
    )


async def create_invoices(request: Request) -> Response:
    caller = require_staff(request)
    practice = await _practice(caller)
    form_data = await request.form(max_fields=MAX_FIELDS)
    form, consultations, issuer, payer = await _parsed(caller, form_data)
    invoices = await billing.do_bill(
        caller,
        practice,
        issuer,
        consultations,
        method=form.method,
        payer=payer,
        template=form.template,
        finalize=form.finalize,
    )
    if len(invoices) == 1:
        return RedirectResponse(f"/staff/billing/invoices/{invoices[0].id}", status_code=303)
    return RedirectResponse(f"/staff/billing?created={len(invoices)}", status_code=303)


# --- lists -----------------------------------------------------------------------------------


async def billing_home(request: Request) -> Response:
    """Invoices (filter by status), and the unpaid ones with their ageing."""
    caller = require_staff(request)
    practice = await _practice(caller)
    status = request.query_params.get("status", "")
    invoices = await visible_invoices(caller)
    listed = invoices
    if status in ("draft", "finalized"):
        listed = listed.filter(status=InvoiceStatus(status))
    elif status == "unpaid":
        listed = listed.filter(status=InvoiceStatus.FINALIZED, kind=InvoiceKind.INVOICE)
    rows = await listed.order_by("-id").limit(200)
    if status == "unpaid":
        rows = [i for i in rows if i.balance > 0]
    ageing = await queries.unpaid(await visible_invoices(caller), billing.practice_today(practice))
    return render(
        request,
        "staff/billing.html",
        {
            "invoices": rows,
            "ageing": ageing,
            "buckets": queries.BUCKETS,
            "status": status,
            "currency": practice.currency,
            "section": "billing",
        },
    )


async def consultations_page(request: Request) -> Response:
    """Billable consultations not yet billed, of any client the caller may see: select and
    bill them together (batch billing)."""
    caller = require_staff(request)
    query = (await visible_consultations(caller)).filter(invoice_id=None, billable=True)
    rows = (
        await query.order_by("on_date", "id").limit(2000).prefetch_related("client", "practitioner")
    )
    return render(
        request,
        "staff/billing_consultations.html",
        {"consultations": rows, "methods": list(BillingMethod), "section": "billing"},
    )


class BillableForm(BaseModel):
    billable: bool


async def set_billable(request: Request) -> Response:
    caller = require_staff(request)
    (consultation,) = await access_consultations(caller, [path_id(request, "consultation_id")])
    form = await request.form()
    body = validate(BillableForm, {"billable": form.get("billable", "false")})
    await billing.do_set_billable(caller, consultation, body.billable)
    back = form.get("back")
    target = (
        back
        if isinstance(back, str) and back.startswith("/staff/")
        else "/staff/billing/consultations"
    )
    return RedirectResponse(target, status_code=303)


# --- one invoice -----------------------------------------------------------------------------


async def _invoice_context(caller: Caller, invoice: Invoice) -> dict[str, Any]:
    practice = await _practice(caller)
    lines = await InvoiceLine.filter(invoice_id=invoice.id).order_by("position", "id")
    payments = await Payment.filter(invoice_id=invoice.id).order_by("paid_on", "id")
    outbox = await OutboxMessage.get_or_none(id=invoice.outbox_id) if invoice.outbox_id else None
    client = await Client.get_or_none(id=invoice.client_id) if invoice.client_id else None  # type: ignore[attr-defined]
    credit_notes = await Invoice.filter(credited_invoice_id=invoice.id).order_by("id")
    holder = billing.account_holder(invoice)
    credited = (
        await Invoice.get_or_none(id=invoice.credited_invoice_id)  # type: ignore[attr-defined]
        if invoice.credited_invoice_id  # type: ignore[attr-defined]
        else None
    )
    return {
        "invoice": invoice,
        "lines": lines,
        "payments": payments,
        "outbox": outbox,
        "client": client,
        # Who it is from and for, as it prints them (as issued, once finalized).
        "parties": await parties(invoice),
        "credit_notes": credit_notes,
        "credited": credited,
        # What "client credit" may use: the account this invoice's payments go to.
        "credit": await billing.client_credit(holder) if holder else Decimal(0),
        "methods": [m for m in PaymentMethodUsed],
        # One key per page shown: the payment form sent twice records one payment.
        "request_key": secrets.token_urlsafe(16),
        "currency": invoice.currency or practice.currency,
        "today": billing.practice_today(practice),
        "section": "billing",
        # Whether the write forms show (access_invoice_to_change answers them all).
        "can_change": await _may_change(caller, invoice),
    }


async def _may_change(caller: Caller, invoice: Invoice) -> bool:
    try:
        await access_invoice_to_change(caller, invoice.id)
    except NotFound:
        return False
    return True


async def invoice_page(request: Request) -> Response:
    caller = require_staff(request)
    invoice = await access_invoice(caller, path_id(request, "invoice_id"))
    return render(request, "staff/billing_invoice.html", await _invoice_context(caller, invoice))


async def invoice_pdf_view(request: Request) -> Response:
    caller = require_staff(request)
    invoice = await access_invoice(caller, path_id(request, "invoice_id"))
    return pdf_response(await invoice_pdf(invoice), invoice_filename(invoice))


async def receipt_view(request: Request) -> Response:
    caller = require_staff(request)
    payment = await access_receipt(caller, path_id(request, "payment_id"))
    return pdf_response(await receipt_pdf(payment), f"receipt-R-{payment.id:06d}.pdf")


class LineForm(BaseModel):
    description: str = Field(min_length=1, max_length=300)
    quantity: TypedDecimal = Field(default=Decimal(1), gt=0, le=10000, decimal_places=2)
    unit_price: TypedDecimal = Field(ge=0, le=1000000, decimal_places=2)
    discount: TypedDecimal = Field(default=Decimal(0), ge=0, le=1000000, decimal_places=2)
    on_date: date | None = None


class DetailsForm(BaseModel):
    payer_name: str = Field(min_length=1, max_length=200)
    payer_address: str = Field(default="", max_length=1000)
    payer_email: str = Field(default="", max_length=254)
    notes: str = Field(default="", max_length=2000)


class SendForm(BaseModel):
    to: str = Field(min_length=3, max_length=254)


class PaymentForm(BaseModel):
    amount: TypedDecimal = Field(gt=0, le=1000000, decimal_places=2)
    method: PaymentMethodUsed
    paid_on: date
    reference: str = Field(default="", max_length=120)
    request_key: str = Field(default="", max_length=64)


class CreditForm(BaseModel):
    reason: str = Field(default="", max_length=500)


def _clean(form: FormData) -> dict[str, Any]:
    return {k: v for k, v in form.items() if k != "csrf_token" and v != ""}


async def invoice_action(request: Request) -> Response:
    """POST /staff/billing/invoices/{id}/{change}: one form per change of the invoice."""
    caller = require_staff(request)
    invoice = await access_invoice_to_change(caller, path_id(request, "invoice_id"))
    change = request.path_params["change"]
    form = _clean(await request.form())
    back = f"/staff/billing/invoices/{invoice.id}"
    try:
        if change == "lines":
            line = validate(LineForm, form)
            await billing.do_add_line(
                caller,
                invoice,
                LineIn(
                    line.description, line.unit_price, line.quantity, line.discount, line.on_date
                ),
            )
        elif change == "details":
            details = validate(DetailsForm, form)
            await billing.do_update_draft(caller, invoice, **details.model_dump())
        elif change == "finalize":
            await billing.do_finalize(caller, invoice)
        elif change == "delete":
            await billing.do_delete_draft(caller, invoice)
            return RedirectResponse("/staff/billing?deleted=1", status_code=303)
        elif change == "send":
            await billing.do_send_invoice(caller, invoice, validate(SendForm, form).to)
        elif change == "payments":
            p = validate(PaymentForm, form)
            await billing.do_record_payment(
                caller,
                invoice,
                PaymentIn(p.amount, p.method, p.paid_on, p.reference, p.request_key),
            )
        elif change == "credit-note":
            note = await billing.do_credit_note(
                caller, invoice, reason=validate(CreditForm, form).reason
            )
            return RedirectResponse(f"/staff/billing/invoices/{note.id}", status_code=303)
        else:
            raise NotFound()
    except ValidationFailed as exc:
        ctx = await _invoice_context(caller, invoice)
        ctx.update(error=exc.message, fields=exc.fields, posted=form, failed=change)
        return render(request, "staff/billing_invoice.html", ctx, status=422)
    return RedirectResponse(f"{back}?saved=1", status_code=303)


async def remove_line(request: Request) -> Response:
    caller = require_staff(request)
    invoice = await access_invoice_to_change(caller, path_id(request, "invoice_id"))
    line = await InvoiceLine.get_or_none(id=path_id(request, "line_id"), invoice_id=invoice.id)
    if line is None:
        raise NotFound()
    await billing.do_remove_line(caller, invoice, line)
    return RedirectResponse(f"/staff/billing/invoices/{invoice.id}?saved=1", status_code=303)


# --- a client's account: the file's Billing tab, statements, refunds -------------------------


async def _load_billing_tab(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    invoices = (await visible_invoices(caller)).filter(client_id=client.id)
    return {
        "invoices": await invoices.order_by("-id").limit(100),
        "unbilled": await Consultation.filter(
            client_id=client.id, invoice_id=None, billable=True
        ).count(),
        "consultations": await Consultation.filter(client_id=client.id)
        .order_by("-on_date")
        .limit(50),
        "credit": await billing.client_credit(client.id),
        "payments": await Payment.filter(client_id=client.id, parent_id=None)
        .order_by("-paid_on", "-id")
        .limit(50),
        "methods": [m for m in PaymentMethodUsed if m is not PaymentMethodUsed.CREDIT],
        "practitioners": await StaffUser.filter(practice_id=practice.id, is_active=True)
        .exclude(role=StaffRole.OFFICE_ADMIN)
        .order_by("last_name"),
        "currency": practice.currency,
        "today": billing.practice_today(practice),
        # One key per page shown, for its forms (each kind of row keeps its own keys): the
        # consultation or the refund sent twice is recorded once.
        "request_key": secrets.token_urlsafe(16),
    }


register_tab(
    Tab("billing", lazy("Billing"), "staff/file_billing.html", _load_billing_tab, order=55)
)


class ConsultationForm(BaseModel):
    practitioner_id: int
    on_date: date
    title: str = Field(min_length=1, max_length=200)
    billable: bool = True
    request_key: str = Field(default="", max_length=64)


async def add_consultation(request: Request) -> Response:
    """A consultation without an appointment (a phone session, a report...)."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    form = _clean(await request.form())
    form.setdefault("billable", "false")
    try:
        body = validate(ConsultationForm, form)
        practitioner = await access_practitioner(caller, body.practitioner_id)
        await billing.do_create_consultation(
            caller,
            client,
            practitioner,
            on_date=body.on_date,
            title=body.title,
            billable=body.billable,
            request_key=body.request_key,
        )
    except ValidationFailed as exc:
        ctx: dict[str, object] = {
            "error": exc.message,
            "fields": exc.fields,
            "posted": form,
            "failed": "consultation",
        }
        return await file_page(request, ctx, status=422, tab_name="billing")
    return RedirectResponse(f"/staff/clients/{client.id}/billing?saved=1", status_code=303)


async def refund_form(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    form = _clean(await request.form())
    try:
        p = validate(PaymentForm, form)
        await billing.do_refund(
            caller, client, PaymentIn(p.amount, p.method, p.paid_on, p.reference, p.request_key)
        )
    except ValidationFailed as exc:
        ctx: dict[str, object] = {
            "error": exc.message,
            "fields": exc.fields,
            "posted": form,
            "failed": "refund",
        }
        return await file_page(request, ctx, status=422, tab_name="billing")
    return RedirectResponse(f"/staff/clients/{client.id}/billing?saved=1", status_code=303)


class PeriodForm(BaseModel):
    start: date
    end: date


async def statement_view(request: Request) -> Response:
    """GET /staff/clients/{id}/statement?start=&end=[&format=pdf]: the account summary."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    practice = await _practice(caller)
    today = billing.practice_today(practice)
    params = dict(request.query_params)
    params.setdefault("start", date(today.year, 1, 1).isoformat())
    params.setdefault("end", today.isoformat())
    period = validate(PeriodForm, params)
    if period.end < period.start:
        raise ValidationFailed(_("Some fields are not valid."), {"end": _("After the start.")})
    result = await queries.statement(client.id, period.start, period.end)
    credit = await billing.client_credit(client.id)
    if request.query_params.get("format") == "pdf":
        profile = await billing.find_profile(practice, None)
        data = render_statement(
            issuer=[profile.legal_name, profile.address, profile.registration, profile.email],
            client_name=client.full_name,
            client_address=billing.client_address(client),
            start=period.start,
            end=period.end,
            opening=result.opening,
            rows=result.rows,
            closing=result.closing,
            credit=credit,
            currency=practice.currency,
        )
        return pdf_response(data, f"statement-{client.id}-{period.start}-{period.end}.pdf")
    return render(
        request,
        "staff/billing_statement.html",
        {
            "client": client,
            "period": period,
            "statement": result,
            "credit": credit,
            "currency": practice.currency,
            "section": "billing",
        },
    )


# --- settings: the issuer's profile and a practitioner's default services --------------------


class ProfileForm(BaseModel):
    legal_name: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=1000)
    registration: str = Field(default="", max_length=1000)
    email: str = Field(default="", max_length=254)
    prefix: str = Field(default="", max_length=20, pattern=r"^[A-Za-z0-9/_\-]*$")
    yearly_reset: bool = False
    tax_rate: TypedDecimal = Field(default=Decimal(0), ge=0, lt=100, decimal_places=2)
    tax_exemption: str = Field(default="", max_length=300)
    payment_days: int = Field(default=30, ge=0, le=365)
    footer: str = Field(default="", max_length=1000)


async def settings_page(request: Request) -> Response:
    """GET/POST /staff/billing/settings[?issuer=practice|<id>]: what an issuer prints and
    how its invoices are numbered. Owners edit every issuer; a therapist their own."""
    caller = require_staff(request)
    assert caller.staff is not None
    practice = await _practice(caller)
    is_owner = caller.staff.role is StaffRole.OWNER
    default_issuer = "practice" if is_owner else str(caller.staff.id)
    raw = request.query_params.get("issuer", default_issuer)
    issuer = await _issuer(caller, raw) if raw != "practice" else None
    if not is_owner and (issuer is None or issuer.id != caller.staff.id):
        raise NotFound()
    ctx: dict[str, Any] = {
        "issuer_key": raw,
        "issuer": issuer,
        "section": "billing",
        "is_owner": is_owner,
        "practitioners": await StaffUser.filter(practice_id=practice.id, is_active=True)
        .exclude(role=StaffRole.OFFICE_ADMIN)
        .order_by("last_name"),
        "services": await Service.filter(practice_id=practice.id, is_active=True).order_by("id"),
    }
    if request.method == "POST":
        form = await request.form()
        data = _clean(form)
        data.setdefault("yearly_reset", "false")
        try:
            if form.get("what") == "defaults":
                if issuer is None:
                    raise NotFound()
                ids = _ids(form.getlist("service"))
                services = await Service.filter(id__in=ids, practice_id=practice.id)
                if len(services) != len(set(ids)):
                    raise NotFound()
                await billing.do_set_default_services(caller, issuer, services)
            else:
                body = validate(ProfileForm, data)
                await billing.do_update_profile(
                    caller, practice, issuer, ProfileChanges(**body.model_dump())
                )
        except ValidationFailed as exc:
            ctx.update(error=exc.message, fields=exc.fields, posted=data)
            ctx["profile"] = await billing.find_profile(practice, issuer)
            ctx["defaults"] = await _defaults(issuer)
            return render(request, "staff/billing_settings.html", ctx, status=422)
        return RedirectResponse(f"/staff/billing/settings?issuer={raw}&saved=1", status_code=303)
    ctx["profile"] = await billing.find_profile(practice, issuer)
    ctx["defaults"] = await _defaults(issuer)
    return render(request, "staff/billing_settings.html", ctx)


async def _defaults(issuer: StaffUser | None) -> set[int]:
    if issuer is None:
        return set()
    ids = await DefaultService.filter(practitioner_id=issuer.id).values_list(
        "service_id", flat=True
    )
    return {int(i) for i in ids}  # type: ignore[call-overload]


routes = [
    Route("/billing", billing_home),
    # Read-only, but also POST: the selection can be a thousand consultations long.
    Route("/billing/new", new_page, methods=["GET", "POST"]),
    Route("/billing/preview", preview_page, methods=["GET", "POST"]),
    Route("/billing/preview.pdf", preview_pdf, methods=["GET", "POST"]),
    Route("/billing/create", create_invoices, methods=["POST"]),
    Route("/billing/consultations", consultations_page),
    Route("/billing/consultations/{consultation_id:int}/billable", set_billable, methods=["POST"]),
    Route("/billing/settings", settings_page, methods=["GET", "POST"]),
    Route("/billing/invoices/{invoice_id:int}", invoice_page),
    Route("/billing/invoices/{invoice_id:int}.pdf", invoice_pdf_view),
    Route(
        "/billing/invoices/{invoice_id:int}/lines/{line_id:int}/remove",
        remove_line,
        methods=["POST"],
    ),
    Route("/billing/invoices/{invoice_id:int}/{change:str}", invoice_action, methods=["POST"]),
    Route("/billing/payments/{payment_id:int}/receipt.pdf", receipt_view),
    Route("/clients/{client_id:int}/bill", bill_client, methods=["POST"]),
    Route("/clients/{client_id:int}/refund", refund_form, methods=["POST"]),
    Route("/clients/{client_id:int}/consultations", add_consultation, methods=["POST"]),
    Route("/clients/{client_id:int}/statement", statement_view),
]
