"""Outgoing SMS: segment counting, the provider adapter, and delivery of the SMS outbox.

An SMS is queued in the outbox (``channel="sms"``) by an action or a job handler, in its
transaction, with its segments counted and its credits taken. The worker then hands it to
the provider: Twilio's REST API when ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and
``TWILIO_FROM`` are set, otherwise the console (the message stays readable in the outbox,
as with email). Twilio reports delivery to ``/hooks/sms/twilio``, signed with the auth token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from tortoise.expressions import F

from models.accounts import Practice
from models.notifications import OutboxMessage
from models.reminders import MessagingSettings
from server.outbox import deliver_outbox
from server.quiet_hours import DEFAULT_END, DEFAULT_START, HELD_PURPOSES, next_allowed
from server.settings import Settings, get_settings

log = logging.getLogger("cabinet.sms")

MAX_ATTEMPTS = 6

# The GSM 03.38 alphabet: texts made only of these go as 7-bit (160 characters a segment).
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# These need an escape character: two septets each.
GSM_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    count: int
    per_segment: int


def count_segments(text: str) -> Segments:
    """How many SMS segments ``text`` uses. GSM-7: 160 in one, 153 each when split; anything
    outside the GSM alphabet (most emoji, œ, curly quotes) makes it UCS-2: 70, then 67."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return Segments(encoding, units, 1 if units else 0, single)
    return Segments(encoding, units, math.ceil(units / multi), multi)


# Look-alikes that would turn a whole text into UCS-2 (half the characters per segment):
# babel's narrow no-break space in "9:00 AM", typographic quotes and dashes.
_LOOKALIKES = str.maketrans(
    {
        "\u202f": " ",
        "\xa0": " ",
        "\u2009": " ",
        "’": "'",
        "‘": "'",
        "“": '"',
        "”": '"',
        "–": "-",
        "—": "-",
        "…": "...",
    }
)


def gsm_friendly(text: str) -> str:
    return text.translate(_LOOKALIKES)


class SmsProvider(Protocol):
    name: str

    async def send(self, to: str, body: str, sender: str) -> str:
        """Send; returns the provider's id for the message. Raises on failure."""
        ...


class ConsoleProvider:
    """The default with no provider configured: print it, keep it in the outbox."""

    name = "console"

    async def send(self, to: str, body: str, sender: str) -> str:
        log.info("outbox (no SMS provider): to=%s\n%s", to, body)
        print(f"[outbox] SMS to {to}{' from ' + sender if sender else ''}:\n{body}\n", flush=True)
        return ""


class SmsRejected(Exception):
    """The provider refused the message for good (a bad number): no point retrying."""


class TwilioProvider:
    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, body: str, sender: str) -> str:
        s = self.settings
        url = f"{s.twilio_api_url}/2010-04-01/Accounts/{s.twilio_account_sid}/Messages.json"
        # An alphanumeric sender name where the practice set one (not every country allows
        # it; Twilio then refuses, and the message fails visibly).
        data = {
            "To": to,
            "From": sender or s.twilio_from,
            "Body": body,
            "StatusCallback": f"{s.public_url}/hooks/sms/twilio",
        }
        async with httpx.AsyncClient(timeout=20) as http:
            response = await http.post(
                url, data=data, auth=(s.twilio_account_sid, s.twilio_auth_token)
            )
        if response.status_code >= 400:
            try:
                detail = response.json().get("message", response.text)
            except ValueError:
                detail = response.text
            reason = f"Twilio {response.status_code}: {detail}"[:500]
            if 400 <= response.status_code < 500 and response.status_code != 429:
                raise SmsRejected(reason)
            raise RuntimeError(reason)
        return str(response.json().get("sid", ""))


def provider(settings: Settings | None = None) -> SmsProvider:
    settings = settings or get_settings()
    if settings.sms_configured:
        return TwilioProvider(settings)
    return ConsoleProvider()


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's request signature: HMAC-SHA1 of the URL followed by the sorted parameters."""
    payload = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid_twilio_signature(settings: Settings, signature: str, params: dict[str, str]) -> bool:
    if not settings.twilio_auth_token or not signature:
        return False
    expected = twilio_signature(
        settings.twilio_auth_token, f"{settings.public_url}/hooks/sms/twilio", params
    )
    return hmac.compare_digest(expected, signature)


async def deliver_due_sms(limit: int = 20) -> int:
    """Hand queued SMS to the provider (server/outbox.py: claimed, retried). A refusal for
    good (``SmsRejected``) is not retried.

    Quiet hours are checked again here, not only when the job queued the text: a retry (the
    provider down, the worker restarting) may come in the night. A text they hold waits
    for their end without using an attempt."""
    sender = provider()
    quiet: dict[int, tuple[ZoneInfo, time, time]] = {}  # per practice, for this batch

    async def send(msg: OutboxMessage) -> dict[str, Any]:
        ref = await sender.send(msg.to, msg.body_text, msg.sender)
        return {"provider_ref": ref, "error": ""}

    async def hold(msg: OutboxMessage, now: datetime) -> datetime | None:
        practice_id: int | None = msg.practice_id  # type: ignore[attr-defined]
        if msg.purpose not in HELD_PURPOSES or practice_id is None:
            return None
        if practice_id not in quiet:
            quiet[practice_id] = await _quiet_hours(practice_id)
        allowed = next_allowed(now, *quiet[practice_id])
        return allowed if allowed > now else None

    async def give_back(msg: OutboxMessage) -> None:
        # Its segments were paid when it was queued; a text never sent costs nothing.
        if msg.practice_id is not None and msg.segments:
            await MessagingSettings.filter(practice_id=msg.practice_id).update(
                sms_credits=F("sms_credits") + msg.segments
            )

    return await deliver_outbox(
        "sms",
        send,
        limit=limit,
        max_attempts=MAX_ATTEMPTS,
        log=log,
        permanent=(SmsRejected,),
        name_empty_errors=True,
        hold=hold,
        dropped=give_back,
    )


async def _quiet_hours(practice_id: int) -> tuple[ZoneInfo, time, time]:
    """The practice's time zone and quiet hours (the defaults where it has not set them),
    read without creating its settings row, as ``reminders.sms_allowed_from`` reads them."""
    practice = await Practice.get(id=practice_id)
    settings = await MessagingSettings.get_or_none(practice_id=practice_id)
    if settings is None:
        return ZoneInfo(practice.time_zone), DEFAULT_START, DEFAULT_END
    start, end = settings.quiet_start_minute, settings.quiet_end_minute
    return ZoneInfo(practice.time_zone), time(start // 60, start % 60), time(end // 60, end % 60)
