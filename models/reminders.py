"""Reminders, confirmations and notices: the practice's texts and sending settings.

What was sent lives in the outbox (models/notifications.py); the scheduled work in jobs
(models/jobs.py). This module holds what the practice decides: the wording, when texts may
go out, how many SMS credits are left, and each practitioner's confirmation defaults.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.accounts import Practice, StaffUser
from models.base import Timestamped


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class MessagingSettings(Timestamped):
    # One row per practice, created on first use with the defaults below.
    id = fields.IntField(primary_key=True)
    practice: fields.OneToOneRelation[Practice] = fields.OneToOneField(
        "models.Practice", related_name="messaging_settings", on_delete=fields.RESTRICT
    )
    # Each SMS segment sent uses one credit; at zero no SMS goes out and the owner is told.
    sms_credits = fields.IntField(default=100)
    # When the owner was told the credits ran out (cleared when credits are added).
    credits_exhausted_at = fields.DatetimeField(null=True)
    # Quiet hours, minutes after local midnight: no SMS between them (21:00 to 08:00).
    quiet_start_minute = fields.SmallIntField(default=21 * 60)
    quiet_end_minute = fields.SmallIntField(default=8 * 60)
    # "Confirm by SMS" waits this long, so a mistaken booking can still be undone.
    confirmation_delay_minutes = fields.SmallIntField(default=5)
    # Online bookings from the portal also get an SMS confirmation.
    sms_on_online_booking = fields.BooleanField(default=False)
    # Earlier-slot offers also go by SMS (to the number marked for reminders), within quiet hours.
    sms_on_earlier_slot_offers = fields.BooleanField(default=False)
    # A secure message unread for this long sends one "you have a message" notice.
    unread_notice_minutes = fields.SmallIntField(default=60)

    class Meta:
        table = "messaging_settings"


class ReminderTemplate(Timestamped):
    # A practice's own wording of a reminder, per channel and language; the built-in text
    # applies where there is none.
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="reminder_templates", on_delete=fields.RESTRICT
    )
    channel = fields.CharEnumField(Channel, max_length=10)
    locale = fields.CharField(max_length=8)
    subject = fields.CharField(max_length=200, default="")
    body = fields.TextField()

    class Meta:
        table = "reminder_template"
        unique_together = (("practice", "channel", "locale"),)


class SmsTemplate(Timestamped):
    # A confirmation text staff pick when booking ("confirm by SMS").
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="sms_templates", on_delete=fields.RESTRICT
    )
    title = fields.CharField(max_length=100)
    description = fields.CharField(max_length=300, default="")
    # Shown as the sender on the client's phone where the provider allows it (11 characters).
    sender_name = fields.CharField(max_length=11, default="")
    body = fields.TextField()
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sms_template"


class PractitionerSms(Timestamped):
    # A practitioner's SMS preferences: default confirmation, and texts about online bookings.
    id = fields.IntField(primary_key=True)
    practitioner: fields.OneToOneRelation[StaffUser] = fields.OneToOneField(
        "models.StaffUser", related_name="sms_preferences", on_delete=fields.RESTRICT
    )
    default_template: fields.ForeignKeyNullableRelation[SmsTemplate] = fields.ForeignKeyField(
        "models.SmsTemplate", related_name="+", null=True, on_delete=fields.SET_NULL
    )
    mobile = fields.CharField(max_length=40, default="")
    notify_online_bookings = fields.BooleanField(default=False)
    # Unread-message notices for this practitioner go by SMS instead of email.
    notices_by_sms = fields.BooleanField(default=False)

    class Meta:
        table = "practitioner_sms"
