"""The audit trail: who wrote what, and who read which client's record, and when."""

from __future__ import annotations

from tortoise import fields

from models.base import Timestamped


class AuditEntry(Timestamped):
    id = fields.BigIntField(primary_key=True)
    practice_id = fields.IntField(null=True, db_index=True)
    # "staff", "client" or "system"; ids are plain integers so entries outlive their subjects.
    actor_kind = fields.CharField(max_length=10)
    actor_id = fields.IntField(null=True)
    actor_label = fields.CharField(max_length=200, default="")
    action = fields.CharField(max_length=80, db_index=True)
    object_type = fields.CharField(max_length=40, default="")
    object_id = fields.CharField(max_length=40, default="")
    client_id = fields.IntField(null=True, db_index=True)
    # True for reads of clinical records, false for writes.
    is_read = fields.BooleanField(default=False)
    detail = fields.JSONField(default=dict)
    ip = fields.CharField(max_length=64, default="")

    class Meta:
        table = "audit_entry"
