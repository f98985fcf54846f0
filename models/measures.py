"""Outcome measures (PHQ-9, GAD-7): what was sent to a client, their answers and scores, and
the schedules that send the next one.

The questionnaires themselves are fixed published texts (server/instruments.py); a row holds
only which one, the answers given (choice values, in item order) and the score computed when
it was completed, so a later change of wording never rewrites an old result.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.agenda import Appointment
from models.base import Timestamped
from models.clients import Client


class MeasureKind(StrEnum):
    PHQ9 = "phq9"
    GAD7 = "gad7"


class AdministrationStatus(StrEnum):
    SENT = "sent"  # waiting for the client on the portal
    COMPLETED = "completed"  # answered and scored; never changes afterwards
    CANCELLED = "cancelled"  # withdrawn by staff before it was answered


class MeasureSchedule(Timestamped):
    # Sends a measure again and again: every ``every_weeks`` weeks from ``next_due_at``, or
    # ``hours_before`` each of the client's upcoming appointments. Stopped schedules stay.
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="measure_schedules", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="measure_schedules", on_delete=fields.RESTRICT
    )
    measure = fields.CharEnumField(MeasureKind, max_length=10)
    every_weeks = fields.SmallIntField(null=True)
    # For "before every session": null, or not before this time (a send that failed is
    # tried again later, server/actions/schedules.py).
    next_due_at = fields.DatetimeField(null=True, db_index=True)
    # Set for "before every session"; every_weeks is then null.
    hours_before = fields.SmallIntField(null=True)
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="measure_schedules", null=True, on_delete=fields.SET_NULL
    )
    stopped_at = fields.DatetimeField(null=True)

    class Meta:
        table = "measure_schedule"


class MeasureAdministration(Timestamped):
    # One sending of a measure to a client (or one filling-in during a session).
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="measure_administrations", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="measure_administrations", on_delete=fields.RESTRICT
    )
    measure = fields.CharEnumField(MeasureKind, max_length=10)
    status = fields.CharEnumField(
        AdministrationStatus, max_length=12, default=AdministrationStatus.SENT
    )
    sent_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="measures_sent", null=True, on_delete=fields.SET_NULL
    )
    schedule: fields.ForeignKeyNullableRelation[MeasureSchedule] = fields.ForeignKeyField(
        "models.MeasureSchedule",
        related_name="administrations",
        null=True,
        on_delete=fields.RESTRICT,
    )
    # The session this one was sent before (schedules "before every session").
    appointment: fields.ForeignKeyNullableRelation[Appointment] = fields.ForeignKeyField(
        "models.Appointment",
        related_name="measure_administrations",
        null=True,
        on_delete=fields.RESTRICT,
    )
    # The scored items' choice values in item order, then any unscored ones by key.
    answers = fields.JSONField(null=True)
    score = fields.SmallIntField(null=True)
    band = fields.CharField(max_length=30, default="")
    # PHQ-9 item 9 (thoughts of self-harm) answered anything but "not at all".
    safety_alert = fields.BooleanField(default=False)
    completed_at = fields.DatetimeField(null=True)
    # Staff who filled it in with the client during a session; null when the client did.
    filled_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="measures_filled", null=True, on_delete=fields.SET_NULL
    )
    reminded_at = fields.DatetimeField(null=True)
    # The key of the form that made it (server/actions/retries.py): the in-session fill-in
    # sent twice makes one score on the chart and one safety alert, not two; "Send" (once)
    # pressed twice, one questionnaire. Unique per client (Meta).
    request_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "measure_administration"
        indexes = (("client_id", "measure", "completed_at"),)
        # A schedule sends once per session: several workers may look at the same one.
        unique_together = (("schedule", "appointment"), ("client", "request_key"))
