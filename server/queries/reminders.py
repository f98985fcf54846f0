"""Reads for the reminder and SMS screens."""

from __future__ import annotations

from typing import Any

from models.reminders import PractitionerSms, SmsTemplate
from server.actions.reminders import messaging_settings


async def agenda_sms_config(practice_id: int) -> dict[str, Any]:
    """What the agenda's booking dialog needs for "confirm by SMS": the templates, each
    practitioner's default, and the delay before the text goes out."""
    templates = await SmsTemplate.filter(practice_id=practice_id, deleted_at=None).order_by("title")
    defaults = await PractitionerSms.filter(
        practitioner__practice_id=practice_id, default_template_id__not_isnull=True
    ).values_list("practitioner_id", "default_template_id")
    settings = await messaging_settings(practice_id)
    return {
        "sms_templates": [{"id": t.id, "title": t.title} for t in templates],
        "sms_defaults": {str(p): t for p, t in defaults},
        "confirmation_delay": settings.confirmation_delay_minutes,
    }
