"""Agenda setup: service categories, services, locations, availability and time off.

Pages under /staff/setup and JSON under /api/setup. Owners and office admins set up the
whole practice; a therapist reaches only their own availability and time off (another
practitioner's is a 404, like a missing id). Nothing here deletes: services and locations
are deactivated, availability is removed softly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator, model_validator
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import Practice, StaffRole, StaffUser
from models.agenda import (
    Availability,
    BuiltinCategory,
    Location,
    Service,
    ServiceCategory,
    TimeOff,
)
from server.actions import agenda
from server.auth.sessions import Caller
from server.errors import NotFound, ValidationFailed
from server.i18n import gettext as _
from server.numbers import TypedDecimal
from server.queries.agenda import minute_time
from server.web import id_or_none, parse_id, path_id, render, require_staff, validate
from staff.api import api

SETUP_ROLES = (StaffRole.OWNER, StaffRole.OFFICE_ADMIN)
# Who can have hours in the agenda: office admins see no clients.
PRACTITIONER_ROLES = (StaffRole.OWNER, StaffRole.THERAPIST)


def _is_setup_admin(caller: Caller) -> bool:
    return caller.staff is not None and caller.staff.role in SETUP_ROLES


# --- access (fetch-or-404 in the caller's practice) ------------------------------------------
# These follow server/access.py's rule; they sit here while that module is being changed
# by the documents work, and can move there as they are.


async def access_category(caller: Caller, category_id: int) -> ServiceCategory:
    category = await ServiceCategory.get_or_none(id=category_id, practice_id=caller.practice_id)
    if category is None:
        raise NotFound()
    return category


async def access_service(caller: Caller, service_id: int) -> Service:
    service = await Service.get_or_none(id=service_id, practice_id=caller.practice_id)
    if service is None:
        raise NotFound()
    return service


async def access_location(caller: Caller, location_id: int) -> Location:
    location = await Location.get_or_none(id=location_id, practice_id=caller.practice_id)
    if location is None:
        raise NotFound()
    return location


async def access_practitioner(caller: Caller, staff_id: int) -> StaffUser:
    """A practitioner whose hours the caller may edit: anyone's for owners and office
    admins, only their own for a therapist."""
    assert caller.staff is not None
    if not _is_setup_admin(caller) and staff_id != caller.staff.id:
        raise NotFound()
    user = await StaffUser.get_or_none(
        id=staff_id, practice_id=caller.practice_id, role__in=list(PRACTITIONER_ROLES)
    )
    if user is None:
        raise NotFound()
    return user


async def access_availability(caller: Caller, availability_id: int) -> Availability:
    availability = await Availability.get_or_none(
        id=availability_id,
        deleted_at=None,
        practitioner__practice_id=caller.practice_id,
    )
    if availability is None:
        raise NotFound()
    await access_practitioner(caller, availability.practitioner_id)  # type: ignore[attr-defined]
    return availability


async def access_time_off(caller: Caller, time_off_id: int) -> TimeOff:
    time_off = await TimeOff.get_or_none(
        id=time_off_id, practitioner__practice_id=caller.practice_id
    )
    if time_off is None:
        raise NotFound()
    await access_practitioner(caller, time_off.practitioner_id)  # type: ignore[attr-defined]
    return time_off


# --- bodies ----------------------------------------------------------------------------------

COLOR = r"^#[0-9a-fA-F]{6}$"


class CategoryIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    color: str = Field(default="#2563eb", pattern=COLOR)


class ServiceIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    duration_minutes: int = Field(ge=5, le=24 * 60)
    price: TypedDecimal = Field(ge=0, le=Decimal("99999999.99"), decimal_places=2)
    category_id: int | None = None
    is_active: bool = True


class LocationIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    address: str = Field(default="", max_length=300)
    is_active: bool = True


class AvailabilityIn(BaseModel):
    practitioner_id: int
    # Every week on ``weekday`` (0 = Monday), or once on ``on_date``.
    weekday: int | None = Field(default=None, ge=0, le=6)
    on_date: date | None = None
    start_time: time
    end_time: time
    location_id: int | None = None
    service_ids: list[int] = Field(min_length=1, max_length=100)
    valid_from: date | None = None
    valid_until: date | None = None
    is_group_slot: bool = False
    capacity: int = Field(default=1, ge=1, le=500)

    @field_validator("start_time", "end_time")
    @classmethod
    def _local(cls, value: time) -> time:
        # Weekly hours are the practice's wall-clock times, whatever the date's offset: a
        # time with one ("09:00+05:00") means nothing here, and compared with one without
        # it was a 500.
        if value.tzinfo is not None:
            raise ValueError(_("Enter a time such as 21:00."))
        return value

    @model_validator(mode="after")
    def _dates(self) -> AvailabilityIn:
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValidationFailed(
                _("Some fields are not valid."),
                {"valid_until": _("The end comes after the start.")},
            )
        return self


class TimeOffIn(BaseModel):
    practitioner_id: int
    # Local times of the practice (an offset, when given, is honoured).
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(default="", max_length=200)


class CategoryOut(BaseModel):
    id: int
    name: str
    color: str
    builtin: BuiltinCategory | None
    editable: bool


class ServiceOut(BaseModel):
    id: int
    name: str
    duration_minutes: int
    price: Decimal
    category_id: int | None
    is_active: bool


class LocationOut(BaseModel):
    id: int
    name: str
    address: str
    is_active: bool


class AvailabilityOut(BaseModel):
    id: int
    practitioner_id: int
    weekday: int | None
    on_date: date | None
    start_time: str
    end_time: str
    location_id: int | None
    service_ids: list[int]
    valid_from: date | None
    valid_until: date | None
    is_group_slot: bool
    capacity: int


class TimeOffOut(BaseModel):
    id: int
    practitioner_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str


def category_out(c: ServiceCategory) -> CategoryOut:
    return CategoryOut(
        id=c.id, name=c.name, color=c.color, builtin=c.builtin, editable=c.builtin is None
    )


def service_out(s: Service) -> ServiceOut:
    return ServiceOut(
        id=s.id,
        name=s.name,
        duration_minutes=s.duration_minutes,
        price=s.price,
        category_id=s.category_id,  # type: ignore[attr-defined]
        is_active=s.is_active,
    )


def location_out(loc: Location) -> LocationOut:
    return LocationOut(id=loc.id, name=loc.name, address=loc.address, is_active=loc.is_active)


def _hhmm(minute: int) -> str:
    return minute_time(minute).strftime("%H:%M")


async def availability_out(a: Availability) -> AvailabilityOut:
    return AvailabilityOut(
        id=a.id,
        practitioner_id=a.practitioner_id,  # type: ignore[attr-defined]
        weekday=a.weekday,
        on_date=a.on_date,
        start_time=_hhmm(a.start_minute),
        end_time=_hhmm(a.end_minute),
        location_id=a.location_id,  # type: ignore[attr-defined]
        service_ids=sorted(s.id for s in await a.services.all()),
        valid_from=a.valid_from,
        valid_until=a.valid_until,
        is_group_slot=a.is_group_slot,
        capacity=a.capacity,
    )


def time_off_out(t: TimeOff) -> TimeOffOut:
    return TimeOffOut(
        id=t.id,
        practitioner_id=t.practitioner_id,  # type: ignore[attr-defined]
        starts_at=t.starts_at,
        ends_at=t.ends_at,
        reason=t.reason,
    )


# --- the work shared by the pages and the API ------------------------------------------------


async def _practice(caller: Caller) -> Practice:
    return await Practice.get(id=caller.practice_id)


async def _category_for(caller: Caller, category_id: int | None) -> ServiceCategory | None:
    if category_id is None:
        return None
    await agenda.ensure_builtin_categories(await _practice(caller))
    return await access_category(caller, category_id)


async def create_category(caller: Caller, body: CategoryIn) -> ServiceCategory:
    return await agenda.do_create_category(
        caller, await _practice(caller), name=body.name, color=body.color
    )


async def update_category(caller: Caller, category_id: int, body: CategoryIn) -> ServiceCategory:
    category = await access_category(caller, category_id)
    return await agenda.do_update_category(caller, category, name=body.name, color=body.color)


async def create_service(caller: Caller, body: ServiceIn) -> Service:
    service = await agenda.do_create_service(
        caller,
        await _practice(caller),
        name=body.name,
        duration_minutes=body.duration_minutes,
        price=body.price,
        category=await _category_for(caller, body.category_id),
    )
    if not body.is_active:
        service = await _update_service(caller, service, body)
    return service


async def _update_service(caller: Caller, service: Service, body: ServiceIn) -> Service:
    return await agenda.do_update_service(
        caller,
        service,
        name=body.name,
        duration_minutes=body.duration_minutes,
        price=body.price,
        category=await _category_for(caller, body.category_id),
        is_active=body.is_active,
    )


async def update_service(caller: Caller, service_id: int, body: ServiceIn) -> Service:
    return await _update_service(caller, await access_service(caller, service_id), body)


async def create_location(caller: Caller, body: LocationIn) -> Location:
    location = await agenda.do_create_location(
        caller, await _practice(caller), name=body.name, address=body.address
    )
    if not body.is_active:
        location = await update_location(caller, location.id, body)
    return location


async def update_location(caller: Caller, location_id: int, body: LocationIn) -> Location:
    location = await access_location(caller, location_id)
    return await agenda.do_update_location(
        caller, location, name=body.name, address=body.address, is_active=body.is_active
    )


async def _availability_args(caller: Caller, body: AvailabilityIn) -> dict[str, Any]:
    """The action's arguments, with the ids resolved in the caller's practice."""
    practitioner = await access_practitioner(caller, body.practitioner_id)
    services = [await access_service(caller, i) for i in dict.fromkeys(body.service_ids)]
    location = await access_location(caller, body.location_id) if body.location_id else None
    if any(not s.is_active for s in services):
        raise ValidationFailed(
            _("Some fields are not valid."), {"service_ids": _("This service is not offered.")}
        )
    if location is not None and not location.is_active:
        raise ValidationFailed(
            _("Some fields are not valid."), {"location_id": _("This location is closed.")}
        )
    groups = await agenda.ensure_builtin_categories(await _practice(caller))
    group_id = groups[BuiltinCategory.GROUP].id
    in_group = [s.category_id == group_id for s in services]  # type: ignore[attr-defined]
    # Group services are booked into group slots only (that is where their capacity is).
    if body.is_group_slot and not all(in_group):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"service_ids": _("A group slot offers group services only.")},
        )
    if not body.is_group_slot and any(in_group):
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"is_group_slot": _("A group service needs a group slot.")},
        )
    # Hours without a location are for what takes place elsewhere: a session at the
    # practice offered there showed on the portal, and every booking of it was refused
    # ("Choose a location"). Hours saved before this check are flagged on the page.
    if location is None and await agenda.needing_a_location(services):
        raise ValidationFailed(
            _("Some fields are not valid."), {"location_id": _("Choose a location.")}
        )
    return {
        "practitioner": practitioner,
        "services": services,
        "start_time": body.start_time,
        "end_time": body.end_time,
        "weekday": body.weekday,
        "on_date": body.on_date,
        "location": location,
        "valid_from": body.valid_from,
        "valid_until": body.valid_until,
        "is_group_slot": body.is_group_slot,
        "capacity": body.capacity,
    }


async def create_availability(caller: Caller, body: AvailabilityIn) -> Availability:
    args = await _availability_args(caller, body)
    return await agenda.do_add_availability(caller, args.pop("practitioner"), **args)


async def update_availability(
    caller: Caller, availability_id: int, body: AvailabilityIn
) -> Availability:
    availability = await access_availability(caller, availability_id)
    args = await _availability_args(caller, body)
    if args.pop("practitioner").id != availability.practitioner_id:  # type: ignore[attr-defined]
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"practitioner_id": _("Hours cannot move to another practitioner.")},
        )
    return await agenda.do_update_availability(caller, availability, **args)


def _utc(value: datetime, tz: ZoneInfo) -> datetime:
    """A local time of the practice (or an aware time) as an aware datetime."""
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


async def create_time_off(caller: Caller, body: TimeOffIn) -> TimeOff:
    practitioner = await access_practitioner(caller, body.practitioner_id)
    tz = ZoneInfo((await _practice(caller)).time_zone)
    return await agenda.do_add_time_off(
        caller,
        practitioner,
        starts_at=_utc(body.starts_at, tz),
        ends_at=_utc(body.ends_at, tz),
        reason=body.reason,
    )


async def update_time_off(caller: Caller, time_off_id: int, body: TimeOffIn) -> TimeOff:
    time_off = await access_time_off(caller, time_off_id)
    if body.practitioner_id != time_off.practitioner_id:  # type: ignore[attr-defined]
        raise ValidationFailed(
            _("Some fields are not valid."),
            {"practitioner_id": _("Time off cannot move to another practitioner.")},
        )
    tz = ZoneInfo((await _practice(caller)).time_zone)
    return await agenda.do_update_time_off(
        caller,
        time_off,
        starts_at=_utc(body.starts_at, tz),
        ends_at=_utc(body.ends_at, tz),
        reason=body.reason,
    )


# --- listings --------------------------------------------------------------------------------


async def categories(caller: Caller) -> list[ServiceCategory]:
    await agenda.ensure_builtin_categories(await _practice(caller))
    # The built-in ones first, in a fixed order, then the practice's own by name.
    rows = await ServiceCategory.filter(practice_id=caller.practice_id).order_by("name")
    order = list(BuiltinCategory)
    return sorted(
        rows, key=lambda c: (c.builtin is None, order.index(c.builtin) if c.builtin else 0)
    )


async def services(caller: Caller) -> list[Service]:
    return await Service.filter(practice_id=caller.practice_id).order_by("-is_active", "name")


async def locations(caller: Caller) -> list[Location]:
    return await Location.filter(practice_id=caller.practice_id).order_by("-is_active", "name")


async def practitioners(caller: Caller) -> list[StaffUser]:
    """Whose hours the caller may set: everyone's for admins, their own for a therapist."""
    assert caller.staff is not None
    if not _is_setup_admin(caller):
        return [caller.staff]
    return await StaffUser.filter(
        practice_id=caller.practice_id, is_active=True, role__in=list(PRACTITIONER_ROLES)
    ).order_by("last_name", "first_name")


async def availabilities(caller: Caller, practitioner: StaffUser) -> list[Availability]:
    return (
        await Availability.filter(practitioner_id=practitioner.id, deleted_at=None)
        .order_by("on_date", "weekday", "start_minute")
        .prefetch_related("services", "location")
    )


async def time_off(caller: Caller, practitioner: StaffUser) -> list[TimeOff]:
    return await TimeOff.filter(practitioner_id=practitioner.id).order_by("-starts_at")


# --- API -------------------------------------------------------------------------------------


@api.route("GET", "/setup/categories", response=CategoryOut, response_list=True)
async def api_categories(request: Request) -> list[CategoryOut]:
    """Service categories: the three built-in ones, then the practice's own"""
    caller = require_staff(request)
    return [category_out(c) for c in await categories(caller)]


@api.route("POST", "/setup/categories", body=CategoryIn, response=CategoryOut)
async def api_create_category(request: Request, body: CategoryIn) -> CategoryOut:
    """Add a service category (owners and office admins)"""
    caller = require_staff(request, SETUP_ROLES)
    return category_out(await create_category(caller, body))


@api.route(
    "PUT",
    "/setup/categories/{category_id}",
    body=CategoryIn,
    response=CategoryOut,
    statuses=(401, 404, 409, 422),
)
async def api_update_category(request: Request, body: CategoryIn) -> CategoryOut:
    """Rename or recolour a category of the practice (409 for a built-in one)"""
    caller = require_staff(request, SETUP_ROLES)
    return category_out(await update_category(caller, path_id(request, "category_id"), body))


@api.route("GET", "/setup/services", response=ServiceOut, response_list=True)
async def api_services(request: Request) -> list[ServiceOut]:
    """The practice's services, active ones first"""
    caller = require_staff(request)
    return [service_out(s) for s in await services(caller)]


@api.route("POST", "/setup/services", body=ServiceIn, response=ServiceOut)
async def api_create_service(request: Request, body: ServiceIn) -> ServiceOut:
    """Add a service (owners and office admins)"""
    caller = require_staff(request, SETUP_ROLES)
    return service_out(await create_service(caller, body))


@api.route("PUT", "/setup/services/{service_id}", body=ServiceIn, response=ServiceOut)
async def api_update_service(request: Request, body: ServiceIn) -> ServiceOut:
    """Change a service; is_active=false deactivates it"""
    caller = require_staff(request, SETUP_ROLES)
    return service_out(await update_service(caller, path_id(request, "service_id"), body))


@api.route("GET", "/setup/locations", response=LocationOut, response_list=True)
async def api_locations(request: Request) -> list[LocationOut]:
    """The practice's locations, active ones first"""
    caller = require_staff(request)
    return [location_out(loc) for loc in await locations(caller)]


@api.route("POST", "/setup/locations", body=LocationIn, response=LocationOut)
async def api_create_location(request: Request, body: LocationIn) -> LocationOut:
    """Add a location (owners and office admins)"""
    caller = require_staff(request, SETUP_ROLES)
    return location_out(await create_location(caller, body))


@api.route("PUT", "/setup/locations/{location_id}", body=LocationIn, response=LocationOut)
async def api_update_location(request: Request, body: LocationIn) -> LocationOut:
    """Change a location; is_active=false deactivates it"""
    caller = require_staff(request, SETUP_ROLES)
    return location_out(await update_location(caller, path_id(request, "location_id"), body))


def _query_id(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    return parse_id(raw)


@api.route("GET", "/setup/availability", response=AvailabilityOut, response_list=True)
async def api_availability(request: Request) -> list[AvailabilityOut]:
    """Availability of a practitioner (?practitioner_id=; a therapist's own by default)"""
    caller = require_staff(request)
    assert caller.staff is not None
    wanted = _query_id(request, "practitioner_id")
    if wanted is None and _is_setup_admin(caller):
        people = await practitioners(caller)
    else:
        people = [await access_practitioner(caller, wanted or caller.staff.id)]
    return [await availability_out(a) for p in people for a in await availabilities(caller, p)]


@api.route("POST", "/setup/availability", body=AvailabilityIn, response=AvailabilityOut)
async def api_create_availability(request: Request, body: AvailabilityIn) -> AvailabilityOut:
    """Add weekly hours or a one-off opening (a therapist: their own only)"""
    caller = require_staff(request)
    return await availability_out(await create_availability(caller, body))


@api.route(
    "PUT", "/setup/availability/{availability_id}", body=AvailabilityIn, response=AvailabilityOut
)
async def api_update_availability(request: Request, body: AvailabilityIn) -> AvailabilityOut:
    """Replace hours, services and validity of an availability"""
    caller = require_staff(request)
    availability_id = path_id(request, "availability_id")
    return await availability_out(await update_availability(caller, availability_id, body))


@api.route("DELETE", "/setup/availability/{availability_id}", statuses=(401, 404))
async def api_remove_availability(request: Request) -> dict[str, bool]:
    """Remove an availability (kept on record, no longer offered)"""
    caller = require_staff(request)
    availability = await access_availability(caller, path_id(request, "availability_id"))
    await agenda.do_remove_availability(caller, availability)
    return {"ok": True}


@api.route("GET", "/setup/time-off", response=TimeOffOut, response_list=True)
async def api_time_off(request: Request) -> list[TimeOffOut]:
    """Time off of a practitioner (?practitioner_id=; a therapist's own by default)"""
    caller = require_staff(request)
    assert caller.staff is not None
    wanted = _query_id(request, "practitioner_id")
    if wanted is None and _is_setup_admin(caller):
        people = await practitioners(caller)
    else:
        people = [await access_practitioner(caller, wanted or caller.staff.id)]
    return [time_off_out(t) for p in people for t in await time_off(caller, p)]


@api.route("POST", "/setup/time-off", body=TimeOffIn, response=TimeOffOut)
async def api_create_time_off(request: Request, body: TimeOffIn) -> TimeOffOut:
    """Add time off; times without an offset are the practice's local time"""
    caller = require_staff(request)
    return time_off_out(await create_time_off(caller, body))


@api.route("PUT", "/setup/time-off/{time_off_id}", body=TimeOffIn, response=TimeOffOut)
async def api_update_time_off(request: Request, body: TimeOffIn) -> TimeOffOut:
    """Change time off"""
    caller = require_staff(request)
    return time_off_out(await update_time_off(caller, path_id(request, "time_off_id"), body))


@api.route("DELETE", "/setup/time-off/{time_off_id}", statuses=(401, 404))
async def api_remove_time_off(request: Request) -> dict[str, bool]:
    """Remove time off"""
    caller = require_staff(request)
    await agenda.do_remove_time_off(
        caller, await access_time_off(caller, path_id(request, "time_off_id"))
    )
    return {"ok": True}


# --- pages -----------------------------------------------------------------------------------

Work = Callable[[Caller, dict[str, Any]], Awaitable[object]]


def _form_values(form: Any) -> dict[str, Any]:
    """A posted form as a body: empty fields are absent, checkboxes true when present."""
    data: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key == "csrf_token" or value == "":
            continue
        if key == "service_ids":
            data.setdefault("service_ids", []).append(value)
        else:
            data[key] = value
    data["is_group_slot"] = "is_group_slot" in data
    if "price" in data:
        # A French keyboard types 70,50.
        data["price"] = str(data["price"]).replace(",", ".").strip()
    return data


async def setup_home(request: Request) -> Response:
    caller = require_staff(request)
    if not _is_setup_admin(caller):
        return RedirectResponse("/staff/setup/availability", status_code=303)
    return RedirectResponse("/staff/setup/services", status_code=303)


async def _render(
    request: Request,
    caller: Caller,
    page: str,
    ctx: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "section": "setup",
        "page": page,
        "is_admin": _is_setup_admin(caller),
    }
    if page in {"categories", "services"}:
        context["categories"] = await categories(caller)
    if page == "services":
        context["services"] = await services(caller)
    if page == "locations":
        context["locations"] = await locations(caller)
    if page in {"availability", "time_off"}:
        assert caller.staff is not None
        people = await practitioners(caller)
        raw = request.query_params.get("practitioner") or (ctx or {}).get("practitioner_id")
        wanted = id_or_none(raw)
        chosen = (
            await access_practitioner(caller, wanted)
            if wanted is not None
            else (caller.staff if caller.staff in people or not people else people[0])
        )
        context.update(practitioners=people, practitioner=chosen)
        if page == "availability":
            hours = await availabilities(caller, chosen)
            context.update(
                availabilities=hours,
                unbookable=await _unbookable(hours),
                services=[s for s in await services(caller) if s.is_active],
                locations=[loc for loc in await locations(caller) if loc.is_active],
                weekdays=_weekdays(),
            )
        else:
            context.update(
                time_off=await time_off(caller, chosen),
                practice_zone=(await _practice(caller)).time_zone,
            )
    context.update(ctx or {})
    return render(request, f"staff/agenda_setup_{page}.html", context, status=status)


async def _unbookable(hours: list[Availability]) -> dict[int, list[str]]:
    """The services that hours without a location offer in vain, by hours: saved before a
    location was required for them, no booking of them there goes through."""
    out: dict[int, list[str]] = {}
    for a in hours:
        if a.location_id is None:  # type: ignore[attr-defined]
            if vain := await agenda.needing_a_location(list(a.services)):
                out[a.id] = [s.name for s in vain]
    return out


def _weekdays() -> list[str]:
    return [
        _("Monday"),
        _("Tuesday"),
        _("Wednesday"),
        _("Thursday"),
        _("Friday"),
        _("Saturday"),
        _("Sunday"),
    ]


async def _post(
    request: Request, page: str, work: Work, roles: Any = SETUP_ROLES, row: int | None = None
) -> Response:
    """Run a page's form; on a validation error show the page again with a 422, the form
    that failed as it was sent: the "Add" form (``values``), or the row ``row`` of the list
    (``row_values``), which until then refilled the "Add" form with the row's changes."""
    caller = require_staff(request, roles)
    form = await request.form()
    data = _form_values(form)
    try:
        await work(caller, data)
    except ValidationFailed as exc:
        ctx: dict[str, Any] = {"error": exc.message, "fields": exc.fields}
        if row is None:
            ctx["values"] = data
        else:
            # As typed (a price with its comma), for the row's few single fields.
            ctx.update(row_values=dict(form.items()), editing=row)
        if "practitioner_id" in data:
            ctx["practitioner_id"] = data["practitioner_id"]
        return await _render(request, caller, page, ctx, status=422)
    back = f"/staff/setup/{page.replace('_', '-')}?saved=1"
    if "practitioner_id" in data:
        back += f"&practitioner={data['practitioner_id']}"
    return RedirectResponse(back, status_code=303)


async def categories_page(request: Request) -> Response:
    if request.method == "POST":

        async def work(caller: Caller, data: dict[str, Any]) -> None:
            await create_category(caller, validate(CategoryIn, data))

        return await _post(request, "categories", work)
    return await _render(request, require_staff(request, SETUP_ROLES), "categories")


async def category_form(request: Request) -> Response:
    category_id = path_id(request, "category_id")

    async def work(caller: Caller, data: dict[str, Any]) -> None:
        await update_category(caller, category_id, validate(CategoryIn, data))

    return await _post(request, "categories", work, row=category_id)


async def services_page(request: Request) -> Response:
    if request.method == "POST":

        async def work(caller: Caller, data: dict[str, Any]) -> None:
            await create_service(caller, validate(ServiceIn, data))

        return await _post(request, "services", work)
    return await _render(request, require_staff(request, SETUP_ROLES), "services")


async def service_form(request: Request) -> Response:
    """Save a service's row; its Deactivate and Reactivate buttons post ``is_active``."""
    service_id = path_id(request, "service_id")

    async def work(caller: Caller, data: dict[str, Any]) -> None:
        await update_service(caller, service_id, validate(ServiceIn, data))

    return await _post(request, "services", work, row=service_id)


async def locations_page(request: Request) -> Response:
    if request.method == "POST":

        async def work(caller: Caller, data: dict[str, Any]) -> None:
            await create_location(caller, validate(LocationIn, data))

        return await _post(request, "locations", work)
    return await _render(request, require_staff(request, SETUP_ROLES), "locations")


async def location_form(request: Request) -> Response:
    location_id = path_id(request, "location_id")

    async def work(caller: Caller, data: dict[str, Any]) -> None:
        await update_location(caller, location_id, validate(LocationIn, data))

    return await _post(request, "locations", work, row=location_id)


async def availability_page(request: Request) -> Response:
    if request.method == "POST":

        async def work(caller: Caller, data: dict[str, Any]) -> None:
            await create_availability(caller, validate(AvailabilityIn, data))

        return await _post(request, "availability", work, roles=None)
    return await _render(request, require_staff(request), "availability")


class HoursLocationIn(BaseModel):
    location_id: int


async def availability_location_form(request: Request) -> Response:
    """Give hours a location, the rest unchanged: the form on hours flagged by _unbookable."""
    availability_id = path_id(request, "availability_id")

    async def work(caller: Caller, data: dict[str, Any]) -> None:
        chosen = validate(HoursLocationIn, data)
        current = await availability_out(await access_availability(caller, availability_id))
        body = AvailabilityIn.model_validate(
            {**current.model_dump(), "location_id": chosen.location_id}
        )
        await update_availability(caller, availability_id, body)

    return await _post(request, "availability", work, roles=None)


async def remove_availability_form(request: Request) -> Response:
    caller = require_staff(request)
    availability = await access_availability(caller, path_id(request, "availability_id"))
    await agenda.do_remove_availability(caller, availability)
    practitioner = availability.practitioner_id  # type: ignore[attr-defined]
    return RedirectResponse(
        f"/staff/setup/availability?saved=1&practitioner={practitioner}", status_code=303
    )


async def time_off_page(request: Request) -> Response:
    if request.method == "POST":

        async def work(caller: Caller, data: dict[str, Any]) -> None:
            await create_time_off(caller, validate(TimeOffIn, data))

        return await _post(request, "time_off", work, roles=None)
    return await _render(request, require_staff(request), "time_off")


async def remove_time_off_form(request: Request) -> Response:
    caller = require_staff(request)
    item = await access_time_off(caller, path_id(request, "time_off_id"))
    practitioner = item.practitioner_id  # type: ignore[attr-defined]
    await agenda.do_remove_time_off(caller, item)
    return RedirectResponse(
        f"/staff/setup/time-off?saved=1&practitioner={practitioner}", status_code=303
    )
