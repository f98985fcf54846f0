"""Tasks on a client's file: made by hand or from a client's message, assigned to staff."""

from __future__ import annotations

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.base import Timestamped
from models.clients import Client
from models.messaging import Message


class Task(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="tasks", on_delete=fields.RESTRICT
    )
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="tasks", on_delete=fields.RESTRICT
    )
    note = fields.TextField()
    assignee: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="tasks", null=True, on_delete=fields.SET_NULL
    )
    due_date = fields.DateField(null=True)
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="tasks_created", null=True, on_delete=fields.SET_NULL
    )
    # The client's message the task was made from, so the file can point back to it.
    source_message: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="tasks", null=True, on_delete=fields.SET_NULL
    )
    done_at = fields.DatetimeField(null=True)
    done_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="tasks_done", null=True, on_delete=fields.SET_NULL
    )
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "task"
        indexes = (("assignee_id", "done_at"),)
