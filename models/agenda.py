"""The agenda: services, locations, practitioners' availability, time off, appointments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.base import Timestamped
from models.clients import Client


class BuiltinCategory(StrEnum):
    # The three categories every practice has; they change how an appointment takes place.
    TELECONSULTATION = "teleconsultation"  # remote: a video link, no location
    HOME_VISIT = "home_visit"  # at the client's address
    GROUP = "group"  # several clients in one slot


class ServiceCategory(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="service_categories", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=100)
    # Set for the three built-in categories, which cannot be edited.
    builtin = fields.CharEnumField(BuiltinCategory, max_length=20, null=True)
    color = fields.CharField(max_length=7, default="#2563eb")

    class Meta:
        table = "service_category"
        unique_together = (("practice", "builtin"),)


class Service(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="services", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=120)
    duration_minutes = fields.SmallIntField()
    price = fields.DecimalField(max_digits=10, decimal_places=2)
    category: fields.ForeignKeyNullableRelation[ServiceCategory] = fields.ForeignKeyField(
        "models.ServiceCategory", related_name="services", null=True, on_delete=fields.SET_NULL
    )
    is_active = fields.BooleanField(default=True)

    class Meta:
        table = "service"


class Location(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="locations", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=120)
    address = fields.CharField(max_length=300, default="")
    is_active = fields.BooleanField(default=True)

    class Meta:
        table = "location"


class Availability(Timestamped):
    # Hours a practitioner works: every week on ``weekday`` (0 = Monday) between the valid
    # dates, or once on ``on_date`` (a one-off opening). Times are the practice's local
    # time, so a 9:00 start stays 9:00 across daylight-saving changes.
    id = fields.IntField(primary_key=True)
    practitioner: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="availabilities", on_delete=fields.RESTRICT
    )
    location: fields.ForeignKeyNullableRelation[Location] = fields.ForeignKeyField(
        "models.Location", related_name="availabilities", null=True, on_delete=fields.RESTRICT
    )
    weekday = fields.SmallIntField(null=True)
    on_date = fields.DateField(null=True)
    # Minutes after local midnight: a wall-clock time with no date and no zone attached
    # (Tortoise's TimeField binds a zone-aware time that SQLite cannot store).
    start_minute = fields.SmallIntField()
    end_minute = fields.SmallIntField()
    valid_from = fields.DateField(null=True)
    valid_until = fields.DateField(null=True)
    services: fields.ManyToManyRelation[Service] = fields.ManyToManyField(
        "models.Service", related_name="availabilities", through="availability_service"
    )
    # "This is a group slot": one slot for up to ``capacity`` clients of a group service.
    is_group_slot = fields.BooleanField(default=False)
    capacity = fields.SmallIntField(default=1)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "availability"


class TimeOff(Timestamped):
    # An exception that closes hours (holidays, a training day), in UTC.
    id = fields.IntField(primary_key=True)
    practitioner: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="time_off", on_delete=fields.RESTRICT
    )
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    reason = fields.CharField(max_length=200, default="")

    class Meta:
        table = "time_off"


class Attendance(StrEnum):
    SCHEDULED = "scheduled"
    ATTENDED = "attended"
    CANCELLED_BY_CLIENT = "cancelled_by_client"
    CANCELLED_BY_PRACTITIONER = "cancelled_by_practitioner"
    NO_SHOW = "no_show"
    MOVED = "moved"  # moved to another date: the slot is free again


# An appointment in one of these holds its slot; the others free it.
HOLDS_SLOT = (Attendance.SCHEDULED, Attendance.ATTENDED)


class Appointment(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="appointments", on_delete=fields.RESTRICT
    )
    practitioner: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="appointments", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="appointments", on_delete=fields.RESTRICT
    )
    service: fields.ForeignKeyRelation[Service] = fields.ForeignKeyField(
        "models.Service", related_name="appointments", on_delete=fields.RESTRICT
    )
    location: fields.ForeignKeyNullableRelation[Location] = fields.ForeignKeyField(
        "models.Location", related_name="appointments", null=True, on_delete=fields.RESTRICT
    )
    starts_at = fields.DatetimeField(db_index=True)
    ends_at = fields.DatetimeField()
    attendance = fields.CharEnumField(Attendance, max_length=30, default=Attendance.SCHEDULED)
    # Clients of one group slot share it: same practitioner, start and service.
    is_group = fields.BooleanField(default=False)
    # Unique per appointment, for the teleconsultation link built from the practice template.
    video_room = fields.CharField(max_length=64, default="")
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser",
        related_name="appointments_created",
        null=True,
        on_delete=fields.SET_NULL,
    )
    # Soft deletion keeps the record (and the log of it).
    deleted_at = fields.DatetimeField(null=True)
    # A move books a new appointment and marks this one MOVED; the new one points back, so
    # whatever followed the session (a questionnaire, an offer) can follow it to its new date.
    moved_from: fields.ForeignKeyNullableRelation[Appointment] = fields.ForeignKeyField(
        "models.Appointment", related_name="moved_to", null=True, on_delete=fields.SET_NULL
    )

    class Meta:
        table = "appointment"
        indexes = (("practitioner_id", "starts_at"),)


class DiscountKind(StrEnum):
    PERCENT = "percent"  # this much off the service's price
    FIXED_PRICE = "fixed_price"  # this price instead of the service's


class ServiceDiscount(Timestamped):
    # A client's own fee for one service (sliding scale, insurer agreement...).
    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="discounts", on_delete=fields.RESTRICT
    )
    service: fields.ForeignKeyRelation[Service] = fields.ForeignKeyField(
        "models.Service", related_name="discounts", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(DiscountKind, max_length=12)
    value = fields.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        table = "service_discount"
        unique_together = (("client", "service"),)


def is_upcoming(appointment: Appointment, now: datetime) -> bool:
    """Still to take place as booked: not removed, scheduled (not cancelled, moved, held),
    and later than ``now``. What reminders are sent for, and stop being sent for."""
    return (
        appointment.deleted_at is None
        and appointment.attendance is Attendance.SCHEDULED
        and appointment.starts_at > now
    )


def discounted_price(price: Decimal, discount: ServiceDiscount | None) -> Decimal:
    """What the client pays for a service: its price, less their discount if they have one."""
    if discount is None:
        return price
    if discount.kind is DiscountKind.FIXED_PRICE:
        return discount.value
    return (price * (Decimal(100) - discount.value) / Decimal(100)).quantize(Decimal("0.01"))
