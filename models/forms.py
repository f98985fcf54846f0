"""Forms the practice builds (intake, consent...), their versions, and the ones sent to
clients with their answers.

A form's fields live in its versions. A version that was ever sent never changes: editing
the form then makes the next version, so every sent form keeps the questions it was
answered against. A completed form is fixed too, and kept on the file as a PDF document.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.agenda import Appointment
from models.base import Timestamped
from models.clients import Client, Document


class FormPurpose(StrEnum):
    INTAKE = "intake"
    CONSENT = "consent"
    OTHER = "other"


class FieldKind(StrEnum):
    SECTION = "section"  # a heading with an optional text; asks nothing
    SHORT_TEXT = "short_text"
    LONG_TEXT = "long_text"
    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"
    DATE = "date"
    NUMBER = "number"
    YES_NO = "yes_no"
    SIGNATURE = "signature"  # the signer's typed full name, dated when the form is submitted


class FormStatus(StrEnum):
    SENT = "sent"  # waiting for the client (who may have saved a draft)
    COMPLETED = "completed"  # submitted; never changes afterwards
    CANCELLED = "cancelled"  # withdrawn by staff before it was submitted


class FormTemplate(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="form_templates", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=200)
    purpose = fields.CharEnumField(FormPurpose, max_length=10, default=FormPurpose.OTHER)
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="form_templates", null=True, on_delete=fields.SET_NULL
    )
    archived_at = fields.DatetimeField(null=True)

    class Meta:
        table = "form_template"


class FormVersion(Timestamped):
    # ``fields``: a list of {"key", "kind", "label", "help", "required", "choices"}; keys
    # stay the same from one version to the next, so answers can be compared.
    id = fields.IntField(primary_key=True)
    template: fields.ForeignKeyRelation[FormTemplate] = fields.ForeignKeyField(
        "models.FormTemplate", related_name="versions", on_delete=fields.RESTRICT
    )
    number = fields.SmallIntField()
    fields_spec = fields.JSONField(default=list)
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="form_versions", null=True, on_delete=fields.SET_NULL
    )

    class Meta:
        table = "form_version"
        unique_together = (("template", "number"),)


class FormSchedule(Timestamped):
    # A form sent again every N weeks, or before each session, like a MeasureSchedule
    # (models/measures.py): exactly one of every_weeks and hours_before is set. Each send
    # takes the form's latest version at that time.
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="form_schedules", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="form_schedules", on_delete=fields.RESTRICT
    )
    template: fields.ForeignKeyRelation[FormTemplate] = fields.ForeignKeyField(
        "models.FormTemplate", related_name="schedules", on_delete=fields.RESTRICT
    )
    every_weeks = fields.SmallIntField(null=True)
    # For "before every session": null, or not before this time (a send that failed is
    # tried again later, server/actions/schedules.py).
    next_due_at = fields.DatetimeField(null=True, db_index=True)
    hours_before = fields.SmallIntField(null=True)
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="form_schedules", null=True, on_delete=fields.SET_NULL
    )
    stopped_at = fields.DatetimeField(null=True)

    class Meta:
        table = "form_schedule"


class FormAssignment(Timestamped):
    # One form sent to one client: the draft they are writing, then their submitted answers.
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="form_assignments", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="form_assignments", on_delete=fields.RESTRICT
    )
    version: fields.ForeignKeyRelation[FormVersion] = fields.ForeignKeyField(
        "models.FormVersion", related_name="assignments", on_delete=fields.RESTRICT
    )
    status = fields.CharEnumField(FormStatus, max_length=12, default=FormStatus.SENT)
    sent_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="forms_sent", null=True, on_delete=fields.SET_NULL
    )
    draft = fields.JSONField(null=True)
    draft_saved_at = fields.DatetimeField(null=True)
    answers = fields.JSONField(null=True)
    completed_at = fields.DatetimeField(null=True)
    # The PDF of the submitted form on the client's file.
    document: fields.ForeignKeyNullableRelation[Document] = fields.ForeignKeyField(
        "models.Document", related_name="form_assignments", null=True, on_delete=fields.RESTRICT
    )
    reminded_at = fields.DatetimeField(null=True)
    schedule: fields.ForeignKeyNullableRelation[FormSchedule] = fields.ForeignKeyField(
        "models.FormSchedule", related_name="assignments", null=True, on_delete=fields.RESTRICT
    )
    # The session a "before each session" send was for.
    appointment: fields.ForeignKeyNullableRelation[Appointment] = fields.ForeignKeyField(
        "models.Appointment",
        related_name="form_assignments",
        null=True,
        on_delete=fields.RESTRICT,
    )

    # The "Send" form's own key (server/actions/retries.py): pressed twice, one form.
    request_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "form_assignment"
        indexes = (("client_id", "status"),)
        # One send per session per schedule, even with several workers; one per form key.
        unique_together = (("schedule", "appointment"), ("client", "request_key"))
