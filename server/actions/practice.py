"""The practice's own settings (owner only)."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from zoneinfo import available_timezones

from pydantic import BaseModel, Field, field_validator

from models.accounts import Practice
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict
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


SETTINGS_FIELDS = tuple(f for f in PracticeSettingsIn.model_fields if f != "version")


def settings_version(practice: Practice) -> str:
    """A fingerprint of the settings this form edits, which the form posts back: the form
    sends every field, so a stale one (another tab, a colleague's session) would silently
    put back what was changed since it was shown."""
    values = json.dumps([str(getattr(practice, f)) for f in SETTINGS_FIELDS])
    return hashlib.sha256(values.encode()).hexdigest()


async def do_update_settings(actor: Caller, practice: Practice, data: PracticeSettingsIn) -> None:
    """Save the settings; Conflict when ``data.version`` is not the current one (someone
    changed them since the form was shown)."""
    values = data.model_dump(exclude_none=True, exclude={"version"})
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
        for k in changed:
            setattr(locked, k, values[k])
            setattr(practice, k, values[k])
        await locked.save(update_fields=[*changed, "updated_at"])
        await audit.record(
            actor,
            "practice.settings_changed",
            object_type="practice",
            object_id=practice.id,
            detail={"fields": changed},
        )
