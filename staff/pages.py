"""Staff pages: home, team, audit trail. Handlers stay thin: parse, check access, act, render."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import Practice, StaffRole, StaffUser
from models.agenda import Appointment
from models.audit import AuditEntry
from server.access import access_staff_user, visible_clients
from server.actions import accounts
from server.actions.client_file import blank_to_none
from server.auth.sessions import Caller
from server.errors import Conflict, NotFound, ValidationFailed
from server.queries.tasks import my_open_counts
from server.web import id_or_none, parse_body, path_id, posted_fields, render, require_staff

OWNER = (StaffRole.OWNER,)


class NewStaffForm(BaseModel):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    role: StaffRole
    supervisor_id: int | None = None
    portal_enabled: bool = False
    # The form's "—" (no supervisor) posts an empty string.
    _blank = field_validator("supervisor_id", mode="before")(blank_to_none)


async def home(request: Request) -> Response:
    caller = require_staff(request)
    assert caller.staff is not None
    practice = await Practice.get(id=caller.practice_id)
    # Today, in the practice's time zone: a clinician's own sessions; the front desk's
    # whole practice (it runs the day's agenda).
    tz = ZoneInfo(practice.time_zone)
    day = datetime.now(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz)
    today = Appointment.filter(
        practice_id=practice.id,
        deleted_at=None,
        starts_at__gte=start,
        starts_at__lt=start + timedelta(days=1),
    )
    desk = caller.staff.role is StaffRole.OFFICE_ADMIN
    if not desk:
        today = today.filter(practitioner_id=caller.staff.id)
    open_tasks, late_tasks = await my_open_counts(caller, day)
    sessions = await today.prefetch_related("client", "service", "practitioner").order_by(
        "starts_at", "id"
    )
    # A colleague's client whose session one covers: the file is a 404 for them, the
    # session's note page is theirs (access_note).
    client_ids = sorted({a.client.id for a in sessions})
    seen = (
        await (await visible_clients(caller)).filter(id__in=client_ids).values_list("id", flat=True)
    )
    ctx = {
        "practice": practice,
        "section": "home",
        "today": sessions,
        "seen_clients": set(seen),
        "desk": desk,
        "open_tasks": open_tasks,
        "late_tasks": late_tasks,
    }
    return render(request, "staff/home.html", ctx)


class StaffChangesForm(BaseModel):
    role: StaffRole
    supervisor_id: int | None = None
    portal_enabled: bool = False
    _blank = field_validator("supervisor_id", mode="before")(blank_to_none)


async def _team_context(caller: Caller) -> dict[str, object]:
    members = await StaffUser.filter(practice_id=caller.practice_id).order_by(
        "last_name", "first_name"
    )
    return {"members": members, "roles": list(StaffRole), "section": "team"}


async def team(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    ctx = await _team_context(caller)
    if request.method == "POST":
        try:
            data = await parse_body(request, NewStaffForm)
            supervisor = (
                await access_staff_user(caller, data.supervisor_id) if data.supervisor_id else None
            )
            practice = await Practice.get(id=caller.practice_id)
            await accounts.do_create_staff_user(
                caller,
                practice,
                email=data.email,
                first_name=data.first_name,
                last_name=data.last_name,
                role=data.role,
                supervisor=supervisor,
                portal_enabled=data.portal_enabled,
            )
        except ValidationFailed as exc:
            posted = await posted_fields(request)
            ctx.update(error=exc.message, fields=exc.fields, posted=posted)
            return render(request, "staff/team.html", ctx, status=422)
        return RedirectResponse("/staff/team", status_code=303)
    return render(request, "staff/team.html", ctx)


async def edit_staff(request: Request) -> Response:
    """A team member's role, supervisor and portal messaging (the team page's "Change")."""
    caller = require_staff(request, OWNER)
    user = await access_staff_user(caller, path_id(request, "staff_id"))
    try:
        data = await parse_body(request, StaffChangesForm)
        supervisor = (
            await access_staff_user(caller, data.supervisor_id) if data.supervisor_id else None
        )
        await accounts.do_update_staff_user(
            caller,
            user,
            role=data.role,
            supervisor=supervisor,
            portal_enabled=data.portal_enabled,
        )
    except (ValidationFailed, Conflict) as exc:
        posted = await posted_fields(request)
        ctx = await _team_context(caller)
        ctx.update(
            edit_error=exc.message, edit_fields=exc.fields, editing=user.id, edit_posted=posted
        )
        return render(request, "staff/team.html", ctx, status=exc.status_code)
    return RedirectResponse("/staff/team", status_code=303)


async def set_staff_active(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    user = await access_staff_user(caller, path_id(request, "staff_id"))
    state = request.path_params["state"]
    if state not in {"activate", "deactivate"}:
        # Only the two words the team page posts: a typo must not mean "deactivate".
        raise NotFound()
    active = state == "activate"
    await accounts.do_set_staff_active(caller, user, active)
    return RedirectResponse("/staff/team", status_code=303)


async def audit_trail(request: Request) -> Response:
    caller = require_staff(request, OWNER)
    try:
        # Capped: a page past the last is empty, one past any offset the database takes
        # would be a 500.
        page = min(max(1, int(request.query_params.get("page", "1"))), 1_000_000)
    except ValueError:
        page = 1
    query = AuditEntry.filter(practice_id=caller.practice_id)
    if request.query_params.get("reads") == "1":
        query = query.filter(is_read=True)
    client_id = id_or_none(request.query_params.get("client", ""))
    if client_id is not None:
        query = query.filter(client_id=client_id)
    entries = await query.order_by("-id").offset((page - 1) * 50).limit(50)
    return render(
        request, "staff/audit.html", {"entries": entries, "page": page, "section": "audit"}
    )
