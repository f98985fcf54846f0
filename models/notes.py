"""Session notes: a draft until signed; then only dated addenda by the author."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.accounts import StaffUser
from models.agenda import Appointment
from models.base import Timestamped


class NoteTemplate(StrEnum):
    BLANK = "blank"
    SOAP = "soap"  # Subjective, Objective, Assessment, Plan
    DAP = "dap"  # Data, Assessment, Plan


# The sections each template starts with, in order.
TEMPLATE_SECTIONS: dict[NoteTemplate, tuple[str, ...]] = {
    NoteTemplate.BLANK: ("note",),
    NoteTemplate.SOAP: ("subjective", "objective", "assessment", "plan"),
    NoteTemplate.DAP: ("data", "assessment", "plan"),
}


class SessionNote(Timestamped):
    id = fields.IntField(primary_key=True)
    appointment: fields.OneToOneRelation[Appointment] = fields.OneToOneField(
        "models.Appointment", related_name="note", on_delete=fields.RESTRICT
    )
    author: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="notes", on_delete=fields.RESTRICT
    )
    template = fields.CharEnumField(NoteTemplate, max_length=10)
    # {"subjective": "...", ...}: one text per section of the template.
    sections: dict[str, str] = fields.JSONField(default=dict)  # type: ignore[assignment]
    signed_at = fields.DatetimeField(null=True)
    # A supervised therapist's signed note, countersigned by their supervisor.
    cosigned_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="cosigned_notes", null=True, on_delete=fields.RESTRICT
    )
    cosigned_at = fields.DatetimeField(null=True)

    class Meta:
        table = "session_note"


class NoteAddendum(Timestamped):
    # Added to a signed note by its author; never edited or removed.
    id = fields.IntField(primary_key=True)
    note: fields.ForeignKeyRelation[SessionNote] = fields.ForeignKeyField(
        "models.SessionNote", related_name="addenda", on_delete=fields.RESTRICT
    )
    author: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="addenda", on_delete=fields.RESTRICT
    )
    text = fields.TextField()
    # The addendum form's own key (server/actions/retries.py): an addendum can never be
    # removed, so a form sent twice must not add it twice.
    request_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "note_addendum"
        unique_together = (("note", "request_key"),)
