"""Settings > Reminders and Settings > SMS (owner only), and the outbox (owner, front desk).

Reminders: the practice's wording per channel and language, previewed with sample values
and their SMS segment count; quiet hours; the confirmation delay; unread-message notices.
SMS: the credits balance, the confirmation templates, each practitioner's defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from models.accounts import Practice, StaffRole, StaffUser
from models.notifications import OutboxMessage
from models.reminders import Channel, PractitionerSms, SmsTemplate
from server.access import access_practitioner, access_sms_template, can_see_clinical
from server.actions import reminders
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _
from server.mail import withhold_links
from server.queries.logs import CLINICAL_PURPOSES
from server.reminder_texts import LOCALES, PLACEHOLDERS, SAMPLE, Text, render, when_values
from server.settings import get_settings
from server.sms import count_segments, gsm_friendly
from server.web import path_id, require_staff, validate
from server.web import render as render_page
from staff.pages import OWNER

DESK = (StaffRole.OWNER, StaffRole.OFFICE_ADMIN)


def _minute(value: str, field: str) -> int:
    try:
        hours, minutes = (int(part) for part in value.split(":"))
        # "9:75" would be 10:15 and "25:00" a minute past midnight's day, refused by the
        # action under its own column name, which the form cannot show beside the field.
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError(value)
        return hours * 60 + minutes
    except ValueError:
        raise ValidationFailed(
            _("Some fields are not valid."), {field: _("Enter a time such as 21:00.")}
        ) from None


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


class ReminderSettingsIn(BaseModel):
    quiet_start: str = Field(default="21:00", max_length=5)
    quiet_end: str = Field(default="08:00", max_length=5)
    confirmation_delay_minutes: int = Field(default=5, ge=0, le=120)
    unread_notice_minutes: int = Field(default=60, ge=5, le=7 * 24 * 60)
    sms_on_online_booking: bool = False
    sms_on_earlier_slot_offers: bool = False


async def _texts(practice_id: int) -> dict[tuple[Channel, str], Text]:
    return {
        (channel, locale): await reminders.reminder_text(practice_id, channel, locale)
        for channel in Channel
        for locale in LOCALES
    }


def _previews(
    texts: dict[tuple[Channel, str], Text], practice: Practice
) -> dict[str, dict[str, Any]]:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    sample_start = datetime.now(UTC) + timedelta(days=1)
    out: dict[str, dict[str, Any]] = {}
    for (channel, locale), text in texts.items():
        values = {**SAMPLE, **when_values(sample_start, ZoneInfo(practice.time_zone), locale)}
        body = render(text.body, values)
        entry: dict[str, Any] = {"subject": render(text.subject, values), "body": body}
        if channel is Channel.SMS:
            entry["segments"] = count_segments(gsm_friendly(body))
        out[f"{channel.value}_{locale}"] = entry
    return out


async def reminders_page(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    practice = await Practice.get(id=caller.practice_id)
    status = 200
    ctx: dict[str, Any] = {"section": "practice", "page": "reminders", "practice": practice}
    texts = await _texts(practice.id)
    if request.method == "POST":
        form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
        posted: dict[tuple[Channel, str], Text] = {}
        for (channel, locale), current in texts.items():
            name = f"{channel.value}_{locale}"
            posted[(channel, locale)] = Text(
                form.get(f"{name}_subject", current.subject).strip(),
                form.get(f"{name}_body", current.body).replace("\r\n", "\n").strip(),
            )
        form.setdefault("sms_on_online_booking", "false")
        form.setdefault("sms_on_earlier_slot_offers", "false")
        try:
            data = validate(ReminderSettingsIn, form)
            values = {
                "quiet_start_minute": _minute(data.quiet_start, "quiet_start"),
                "quiet_end_minute": _minute(data.quiet_end, "quiet_end"),
                "confirmation_delay_minutes": data.confirmation_delay_minutes,
                "unread_notice_minutes": data.unread_notice_minutes,
                "sms_on_online_booking": data.sms_on_online_booking,
                "sms_on_earlier_slot_offers": data.sms_on_earlier_slot_offers,
            }
            await reminders.do_save_reminder_settings(
                caller, practice, posted, values, version=form.get("version") or None
            )
        except ValidationFailed as exc:
            ctx.update(
                error=exc.message, fields=exc.fields, version=form.get("version"), posted=form
            )
            texts = posted
            status = 422
        except Conflict as exc:
            # Shown as they are now, with their new version: saving again is a choice.
            ctx.update(error=exc.message)
            texts = await _texts(practice.id)
            status = 409
        else:
            return RedirectResponse("/staff/settings/reminders?saved=1", status_code=303)
    settings = await reminders.messaging_settings(practice.id)
    ctx.setdefault("version", await reminders.reminder_settings_version(practice.id))
    ctx.update(
        texts={f"{c.value}_{loc}": t for (c, loc), t in texts.items()},
        previews=_previews(texts, practice),
        placeholders=PLACEHOLDERS,
        settings=settings,
        # After a 422, the times as typed, not as saved.
        quiet_start=ctx.get("posted", {}).get("quiet_start", _hhmm(settings.quiet_start_minute)),
        quiet_end=ctx.get("posted", {}).get("quiet_end", _hhmm(settings.quiet_end_minute)),
        locales=LOCALES,
    )
    return render_page(request, "staff/settings_reminders.html", ctx, status=status)


class SmsTemplateIn(BaseModel):
    title: str = Field(max_length=100)
    description: str = Field(default="", max_length=300)
    sender_name: str = Field(default="", max_length=11)
    body: str = Field(max_length=1000)


class CreditsIn(BaseModel):
    credits: int = Field(ge=1, le=100_000)


class PractitionerSmsIn(BaseModel):
    default_template_id: int | None = None
    mobile: str = Field(default="", max_length=40)
    notify_online_bookings: bool = False
    notices_by_sms: bool = False


async def _sms_context(practice: Practice) -> dict[str, Any]:
    templates = await SmsTemplate.filter(practice_id=practice.id, deleted_at=None).order_by("title")
    people = await StaffUser.filter(
        practice_id=practice.id,
        is_active=True,
        role__in=[StaffRole.OWNER, StaffRole.THERAPIST],
    ).order_by("last_name", "first_name")
    prefs = {
        p.practitioner_id: p  # type: ignore[attr-defined]
        for p in await PractitionerSms.filter(practitioner_id__in=[s.id for s in people])
    }
    return {
        "section": "practice",
        "page": "sms",
        "practice": practice,
        "settings": await reminders.messaging_settings(practice.id),
        "templates": [(t, count_segments(gsm_friendly(t.body))) for t in templates],
        "people": [(s, prefs.get(s.id)) for s in people],
        "placeholders": PLACEHOLDERS,
        "provider": "Twilio" if get_settings().sms_configured else "",
    }


async def sms_page(request: Request, ctx_extra: dict[str, Any] | None = None) -> Response:
    caller = require_staff(request, OWNER)
    practice = await Practice.get(id=caller.practice_id)
    ctx = await _sms_context(practice)
    status = 200
    if ctx_extra:
        ctx.update(ctx_extra)
        status = 422
    if request.method == "POST" and not ctx_extra:
        return await save_sms_template(request)
    return render_page(request, "staff/settings_sms.html", ctx, status=status)


async def _form(request: Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}


async def save_sms_template(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    practice = await Practice.get(id=caller.practice_id)
    template = None
    if "template_id" in request.path_params:
        template = await access_sms_template(caller, path_id(request, "template_id"))
    form = await _form(request)
    try:
        data = validate(SmsTemplateIn, form)
        await reminders.do_save_sms_template(
            caller,
            practice,
            template,
            title=data.title,
            description=data.description,
            sender_name=data.sender_name,
            body=data.body,
        )
    except ValidationFailed as exc:
        return await sms_page(request, {"error": exc.message, "fields": exc.fields, "posted": form})
    return RedirectResponse("/staff/settings/sms?saved=1", status_code=303)


async def delete_sms_template(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    template = await access_sms_template(caller, path_id(request, "template_id"))
    await reminders.do_delete_sms_template(caller, template)
    return RedirectResponse("/staff/settings/sms?saved=1", status_code=303)


async def add_credits(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    practice = await Practice.get(id=caller.practice_id)
    form = await _form(request)
    try:
        data = validate(CreditsIn, form)
        await reminders.do_add_sms_credits(caller, practice, data.credits)
    except ValidationFailed as exc:
        # The number as typed, its error beside it (not ``posted``: that refills the new
        # template's form).
        return await sms_page(
            request,
            {"error": exc.message, "credits_fields": exc.fields, "credits_posted": form},
        )
    return RedirectResponse("/staff/settings/sms?saved=1", status_code=303)


async def save_practitioner(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    practitioner = await access_practitioner(caller, path_id(request, "staff_id"))
    form = await _form(request)
    form.setdefault("notify_online_bookings", "false")
    form.setdefault("notices_by_sms", "false")
    if form.get("default_template_id") == "":
        form.pop("default_template_id")
    try:
        data = validate(PractitionerSmsIn, form)
        template = (
            await access_sms_template(caller, data.default_template_id)
            if data.default_template_id
            else None
        )
        await reminders.do_set_practitioner_sms(
            caller,
            practitioner,
            default_template=template,
            mobile=data.mobile,
            notify_online_bookings=data.notify_online_bookings,
            notices_by_sms=data.notices_by_sms,
        )
    except ValidationFailed as exc:
        # The row as it was sent, with its errors beside it (row_fields): the other rows
        # and forms on the page are shown as saved.
        return await sms_page(
            request,
            {
                "error": exc.message,
                "row_fields": exc.fields,
                "row_posted": {**form, "staff_id": practitioner.id},
            },
        )
    return RedirectResponse("/staff/settings/sms?saved=1", status_code=303)


async def outbox_page(request: Request) -> Response:
    """What was (or, with no SMTP or SMS provider, would have been) sent."""
    caller = require_staff(request, DESK)
    query = OutboxMessage.filter(practice_id=caller.practice_id)
    if not can_see_clinical(caller, await Practice.get(id=caller.practice_id)):
        query = query.exclude(purpose__in=sorted(CLINICAL_PURPOSES))
    messages = await query.order_by("-id").limit(200)
    # Shown without their one-time links: the front desk would otherwise sign in as the
    # therapist it just watched being invited.
    bodies = {m.id: withhold_links(m.body_text) for m in messages}
    settings = get_settings()
    return render_page(
        request,
        "staff/outbox.html",
        {
            "section": "outbox",
            "messages": messages,
            "bodies": bodies,
            "smtp": bool(settings.smtp_url),
            "sms_provider": settings.sms_configured,
        },
    )


routes = [
    Route("/settings/reminders", reminders_page, methods=["GET", "POST"]),
    Route("/settings/sms", sms_page, methods=["GET", "POST"]),
    Route("/settings/sms/templates/{template_id:int}", save_sms_template, methods=["POST"]),
    Route(
        "/settings/sms/templates/{template_id:int}/delete",
        delete_sms_template,
        methods=["POST"],
    ),
    Route("/settings/sms/credits", add_credits, methods=["POST"]),
    Route("/settings/sms/practitioners/{staff_id:int}", save_practitioner, methods=["POST"]),
    Route("/outbox", outbox_page),
]
