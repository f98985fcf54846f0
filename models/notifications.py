"""Outgoing email and SMS, queued in the transaction that causes them."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.base import Timestamped


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    # The provider reported it reached the phone (SMS status callbacks).
    DELIVERED = "delivered"
    FAILED = "failed"
    # Never handed over: it had stopped being true or useful before it could go (a reminder
    # of a session cancelled, moved or begun while it waited for the morning or a retry).
    DROPPED = "dropped"


class OutboxMessage(Timestamped):
    id = fields.BigIntField(primary_key=True)
    practice_id = fields.IntField(null=True)
    channel = fields.CharField(max_length=10, default="email")
    to = fields.CharField(max_length=254)
    subject = fields.CharField(max_length=300, default="")
    body_text = fields.TextField()
    body_html = fields.TextField(null=True)
    purpose = fields.CharField(max_length=40, default="")
    client_id = fields.IntField(null=True, db_index=True)
    status = fields.CharEnumField(OutboxStatus, max_length=10, default=OutboxStatus.QUEUED)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True)
    error = fields.TextField(default="")
    # SMS: segments it uses (each costs a credit), the sender name, the provider's id for it.
    segments = fields.SmallIntField(default=0, db_default=0)
    sender = fields.CharField(max_length=20, default="", db_default="")
    provider_ref = fields.CharField(max_length=64, default="", db_default="", db_index=True)
    delivered_at = fields.DatetimeField(null=True)
    # What a reminder, a confirmation or an offer speaks of, checked again at each try
    # (server/outbox.py): not sent from ``send_before`` on (the session's start, the offer's
    # end), nor once the appointment is no longer upcoming at that time.
    appointment_id = fields.IntField(null=True)
    send_before = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_message"


class OutboxAttachment(Timestamped):
    # A file sent with a queued email (an invoice's PDF), stored with it so the worker sends
    # exactly what was queued.
    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[OutboxMessage] = fields.ForeignKeyField(
        "models.OutboxMessage", related_name="attachments", on_delete=fields.CASCADE
    )
    filename = fields.CharField(max_length=200)
    content_type = fields.CharField(max_length=100)
    data = fields.BinaryField()

    class Meta:
        table = "outbox_attachment"
