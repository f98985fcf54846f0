"""Realtime events, stored before they are published so a reconnecting tab can catch up."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class RealtimeCursor(Model):
    # The last sequence number given to a recipient; its row lock orders the recipient's events.

    recipient = fields.CharField(primary_key=True, max_length=40)
    last_seq = fields.BigIntField(default=0)

    class Meta:
        table = "realtime_cursor"


class RealtimeEvent(Model):
    id = fields.BigIntField(primary_key=True)
    # "s:<staff id>" or "c:<portal account id>".
    recipient = fields.CharField(max_length=40)
    seq = fields.BigIntField()
    type = fields.CharField(max_length=60)
    payload = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "realtime_event"
        unique_together = (("recipient", "seq"),)
