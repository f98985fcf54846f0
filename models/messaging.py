"""Secure messaging: conversations, their participants, messages and read receipts."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.accounts import PortalAccount, Practice, StaffUser
from models.base import Timestamped
from models.clients import Client


class ConversationKind(StrEnum):
    CLIENT = "client"  # staff with one client (and that client's linked accounts)
    OFFICE = "office"  # staff only


class ParticipantRole(StrEnum):
    STAFF = "staff"
    CLIENT = "client"
    LINKED = "linked"  # a linked account from the client's circle of care


class Conversation(Timestamped):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="conversations", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(ConversationKind, max_length=10)
    subject = fields.CharField(max_length=200)
    group_name = fields.CharField(max_length=120, null=True)
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="conversations", null=True, on_delete=fields.RESTRICT
    )
    created_by: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="+", null=True, on_delete=fields.SET_NULL
    )
    last_activity_at = fields.DatetimeField(db_index=True)
    # True while the last message came from a client: the "waiting for a staff reply" filter.
    awaiting_staff = fields.BooleanField(default=False)

    class Meta:
        table = "conversation"


class Participant(Timestamped):
    # Participants are never deleted (their messages name them). A linked account unlinked
    # from the client (a parent after a custody change) leaves: ``left_at`` is set, and from
    # then on they neither reach the conversation nor receive its events. Adding them again
    # clears it.
    id = fields.IntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="participants", on_delete=fields.RESTRICT
    )
    role = fields.CharEnumField(ParticipantRole, max_length=10)
    staff_user: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="participations", null=True, on_delete=fields.RESTRICT
    )
    portal_account: fields.ForeignKeyNullableRelation[PortalAccount] = fields.ForeignKeyField(
        "models.PortalAccount",
        related_name="participations",
        null=True,
        on_delete=fields.RESTRICT,
    )
    display_name = fields.CharField(max_length=200)
    added_by_label = fields.CharField(max_length=200, default="")
    left_at = fields.DatetimeField(null=True)

    class Meta:
        table = "conversation_participant"
        unique_together = (("conversation", "staff_user"), ("conversation", "portal_account"))

    @property
    def recipient(self) -> str:
        if self.staff_user_id is not None:  # type: ignore[attr-defined]
            return f"s:{self.staff_user_id}"  # type: ignore[attr-defined]
        return f"c:{self.portal_account_id}"  # type: ignore[attr-defined]


class Message(Timestamped):
    id = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="messages", on_delete=fields.RESTRICT
    )
    sender: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name="messages", on_delete=fields.RESTRICT
    )
    body = fields.TextField()
    # Chosen by the sender's browser: sending the same one twice creates one message.
    client_uid = fields.CharField(max_length=64)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "message"
        unique_together = (("sender", "client_uid"),)
        indexes = (("conversation_id", "id"),)


class MessageRead(Timestamped):
    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="reads", on_delete=fields.RESTRICT
    )
    participant: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name="reads", on_delete=fields.RESTRICT
    )

    class Meta:
        table = "message_read"
        unique_together = (("message", "participant"),)
