"""The practice's own settings (owner only)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, Field, field_validator

from models.accounts import Practice
from models.agenda import Appointment, Attendance, TimeOff
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict
from server.i18n import format_datetime, ngettext, zone_city
from server.i18n import gettext as _


@cache
def time_zones() -> list[str]:
    """The zones a practice may be in: the IANA regions ("Europe/Paris"), and UTC."""
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/")) + [
        "UTC"
    ]


class PracticeSettingsIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    cancellation_notice_hours: int = Field(ge=0, le=14 * 24)
    online_booking: bool = False
    # Upcoming appointments a client may hold booked online (0: no limit). Absent: unchanged.
    online_bookings_per_client: int | None = Field(default=None, ge=0, le=100)
    office_admins_see_clinical: bool = False
    video_url_template: str = Field(min_length=8, max_length=300)
    clients_see_measure_trend: bool = False
    # What a client at risk reads (local emergency numbers); empty: the built-in text.
    crisis_message: str = Field(default="", max_length=2000)
    # Earlier-slot alerts (server/actions/offers.py).
    earlier_slot_alerts: bool = False
    earlier_slot_min_days: int = Field(default=10, ge=1, le=365)
    # Where the practice's days and hours are: open hours, online slots, reminders, and every
    # date and time its staff and clients see. Absent: unchanged.
    time_zone: str | None = Field(default=None, max_length=64)
    # settings_version() of what the form showed; absent: not checked.
    version: str | None = Field(default=None, max_length=64)
    # "Change the time zone anyway": upcoming appointments will show at other clock times.
    confirm_time_zone: bool = False

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value.strip() not in time_zones():
            raise ValueError(_("Choose a time zone from the list."))
        return value.strip() if value is not None else None

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        # Checked trimmed: "   " passed the length check and became an empty practice name
        # on every page, email and invoice that shows it.
        value = value.strip()
        if not value:
            raise ValueError(_("This field is required."))
        return value

    @field_validator("video_url_template")
    @classmethod
    def _room_in_link(cls, value: str) -> str:
        value = value.strip()
        # Without {room} every teleconsultation would share one room: a privacy breach.
        if "{room}" not in value or not value.startswith("https://"):
            raise ValueError(_("An https:// address containing {room}."))
        return value


NOT_SETTINGS = {"version", "confirm_time_zone"}
SETTINGS_FIELDS = tuple(f for f in PracticeSettingsIn.model_fields if f not in NOT_SETTINGS)


def settings_version(practice: Practice) -> str:
    """A fingerprint of the settings this form edits, which the form posts back: the form
    sends every field, so a stale one (another tab, a colleague's session) would silently
    put back what was changed since it was shown."""
    values = json.dumps([str(getattr(practice, f)) for f in SETTINGS_FIELDS])
    return hashlib.sha256(values.encode()).hexdigest()


class TimeZoneChangeUnconfirmed(Conflict):
    """A new time zone would show upcoming appointments at other clock times; the form asks
    for ``confirm_time_zone`` and posts again."""

    code = "confirm_time_zone"


def _wall_clock(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None)


@dataclass(frozen=True)
class ZoneChange:
    """What a new time zone does to what is already planned. Appointments and time off are
    moments (UTC): they stay when they are, so their clock time in the new zone differs
    wherever the two zones' offsets do. Open hours and quiet hours are clock times: they
    stay at 9:00, 21:00, now read in the new zone. Reminders are due a number of hours
    before their session: they follow it."""

    appointments: list[datetime]  # the upcoming ones shown at another clock time, in order
    time_off: int  # upcoming periods of time off shown at other clock times


async def zone_change(practice: Practice, new_zone: str) -> ZoneChange:
    old, new = ZoneInfo(practice.time_zone), ZoneInfo(new_zone)
    now = datetime.now(UTC)
    upcoming = Appointment.filter(
        practice_id=practice.id,
        deleted_at=None,
        attendance=Attendance.SCHEDULED,
        starts_at__gt=now,
    ).order_by("starts_at")
    starts: list[datetime] = await upcoming.values_list("starts_at", flat=True)  # type: ignore[assignment]
    offs: list[tuple[datetime, datetime]] = list(
        await TimeOff.filter(practitioner__practice_id=practice.id, ends_at__gt=now).values_list(
            "starts_at", "ends_at"
        )
    )

    def moves(at: datetime) -> bool:
        return _wall_clock(at, old) != _wall_clock(at, new)

    return ZoneChange(
        appointments=[at for at in starts if moves(at)],
        time_off=sum(1 for start, end in offs if moves(start) or moves(end)),
    )


def _unconfirmed(practice: Practice, new_zone: str, change: ZoneChange) -> Conflict:
    first, n = change.appointments[0], len(change.appointments)
    old, new = ZoneInfo(practice.time_zone), ZoneInfo(new_zone)
    message = ngettext(
        "%(num)d upcoming appointment will show at a different time in %(zone)s: %(before)s "
        "in %(old_zone)s becomes %(after)s.",
        "%(num)d upcoming appointments will show at a different time in %(zone)s: the first, "
        "%(before)s in %(old_zone)s, becomes %(after)s.",
        n,
    ) % {
        "num": n,
        "zone": zone_city(new_zone),
        "old_zone": zone_city(practice.time_zone),
        "before": format_datetime(first, "medium", tz=old),
        "after": format_datetime(first, "medium", tz=new),
    }
    if change.time_off:
        message += " " + ngettext(
            "%(num)d upcoming period of time off will show at other times too.",
            "%(num)d upcoming periods of time off will show at other times too.",
            change.time_off,
        ) % {"num": change.time_off}
    message += " " + _(
        "Open hours keep their clock times. If the sessions were booked at the right clock "
        "time in the wrong zone, move them after the change. Tick the box to change the zone."
    )
    return TimeZoneChangeUnconfirmed(
        message, {"confirm_time_zone": _("Confirm the change of time zone.")}
    )


async def do_update_settings(actor: Caller, practice: Practice, data: PracticeSettingsIn) -> None:
    """Save the settings; Conflict when ``data.version`` is not the current one (someone
    changed them since the form was shown); TimeZoneChangeUnconfirmed when a new time zone
    would show upcoming appointments at another clock time and ``data.confirm_time_zone``
    is not set."""
    values = data.model_dump(exclude_none=True, exclude=NOT_SETTINGS)
    values["name"] = values["name"].strip()
    values["crisis_message"] = values["crisis_message"].strip()
    async with atomic():
        locked = await Practice.filter(id=practice.id).select_for_update().first()
        assert locked is not None
        if data.version is not None and data.version != settings_version(locked):
            raise Conflict(
                _("These settings were changed meanwhile: see them below, then save again.")
            )
        changed = [k for k, v in values.items() if getattr(locked, k) != v]
        if not changed:
            return
        detail: dict[str, object] = {"fields": changed}
        if "time_zone" in changed:
            change = await zone_change(locked, values["time_zone"])
            if change.appointments and not data.confirm_time_zone:
                raise _unconfirmed(locked, values["time_zone"], change)
            detail["time_zone"] = [locked.time_zone, values["time_zone"]]
            detail["appointments_shown_at_another_time"] = len(change.appointments)
        for k in changed:
            setattr(locked, k, values[k])
            setattr(practice, k, values[k])
        await locked.save(update_fields=[*changed, "updated_at"])
        await audit.record(
            actor,
            "practice.settings_changed",
            object_type="practice",
            object_id=practice.id,
            detail=detail,
        )
