"""iCalendar feeds (RFC 5545): a practitioner's appointments, or a client's own.

The URL holds a secret instead of a session, because calendar apps (Google, Apple, Outlook)
fetch it on their own. What a feed says is chosen for a phone's lock screen: a
practitioner's feed shows the client's initials and the service, never a full name or
anything clinical; a client's feed shows their practitioner and service.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import PortalAccount, StaffUser
from models.agenda import Appointment, Attendance
from server.actions import feeds
from server.auth.sessions import Caller
from server.errors import NotFound
from server.settings import get_settings
from server.web import render, require_caller

PAST = timedelta(days=90)
FUTURE = timedelta(days=400)


def initials(first: str, last: str) -> str:
    return "".join(f"{p[:1].upper()}." for p in (first, last) if p)


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", "-//Cabinet//Cabinet calendar feed//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    return cal


def _event(appt: Appointment, summary: str, location: str) -> Event:
    host = get_settings().public_url.split("//", 1)[-1]
    event = Event()
    # Stable per appointment, so a calendar updates the event rather than duplicating it.
    event.add("uid", f"appointment-{appt.id}@{host}")
    event.add("dtstamp", appt.updated_at.astimezone(UTC))
    event.add("dtstart", appt.starts_at.astimezone(UTC))
    event.add("dtend", appt.ends_at.astimezone(UTC))
    event.add("summary", summary)
    if location:
        event.add("location", location)
    cancelled = appt.attendance not in (Attendance.SCHEDULED, Attendance.ATTENDED)
    event.add("status", "CANCELLED" if cancelled or appt.deleted_at else "CONFIRMED")
    event.add("sequence", int(appt.updated_at.timestamp()) % 2_000_000_000)
    return event


async def _appointments(**filters: object) -> list[Appointment]:
    now = datetime.now(UTC)
    return (
        await Appointment.filter(
            deleted_at=None, starts_at__gte=now - PAST, starts_at__lte=now + FUTURE, **filters
        )
        .prefetch_related("client", "service", "location", "practitioner")
        .order_by("starts_at")
    )


def _ics(cal: Calendar) -> Response:
    return Response(
        cal.to_ical(),
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "X-Robots-Tag": "noindex"},
    )


def _token(request: Request) -> str:
    token = str(request.path_params["token"]).removesuffix(".ics")
    if not token or len(token) > 64:
        raise NotFound()
    return token


async def staff_feed(request: Request) -> Response:
    user = await StaffUser.get_or_none(calendar_token=_token(request), is_active=True)
    if user is None:
        raise NotFound()
    cal = _calendar(f"Cabinet · {user.full_name}")
    for appt in await _appointments(practitioner_id=user.id):
        who = initials(appt.client.first_name, appt.client.last_name)
        place = appt.location.name if appt.location else ""
        cal.add_component(_event(appt, f"{who} · {appt.service.name}", place))
    return _ics(cal)


async def client_feed(request: Request) -> Response:
    account = await PortalAccount.get_or_none(calendar_token=_token(request), is_active=True)
    if account is None:
        raise NotFound()
    cal = _calendar("Cabinet")
    for appt in await _appointments(client_id=account.client_id):  # type: ignore[attr-defined]
        place = appt.location.address or appt.location.name if appt.location else ""
        summary = f"{appt.service.name} · {appt.practitioner.full_name}"
        cal.add_component(_event(appt, summary, place))
    return _ics(cal)


# --- the page where people find (and renew) their feed's address ------------------------------


def feed_url(caller: Caller, token: str) -> str:
    kind = "staff" if caller.staff is not None else "client"
    return f"{get_settings().public_url}/feeds/{kind}/{token}.ics"


async def feed_page(request: Request) -> Response:
    caller = require_caller(request)
    owner = caller.staff if caller.staff is not None else caller.account
    assert owner is not None
    token = owner.calendar_token
    return render(
        request,
        "common/calendar_feed.html",
        {
            "url": feed_url(caller, token) if token else None,
            "prefix": "/staff" if caller.staff is not None else "/portal",
            "section": "account",
        },
    )


async def renew_feed(request: Request) -> Response:
    caller = require_caller(request)
    owner = caller.staff if caller.staff is not None else caller.account
    assert owner is not None
    await feeds.do_new_calendar_token(caller, owner)
    prefix = "/staff" if caller.staff is not None else "/portal"
    return RedirectResponse(f"{prefix}/calendar-feed", status_code=303)
