"""Outgoing email: queued in the caller's transaction, delivered by the worker.

With no ``SMTP_URL`` the worker "delivers" to the console and the message stays readable in
the outbox, so the embedded default shows what would have been sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import aiosmtplib

from models.agenda import Appointment
from models.notifications import OutboxAttachment, OutboxMessage
from server.outbox import deliver_outbox
from server.settings import get_settings

log = logging.getLogger("cabinet.mail")

MAX_ATTEMPTS = 6

# A one-time link in a message's text: the realm, the page, the token.
_ONE_TIME_LINK = re.compile(r"/(staff|portal)/(password/reset|invite)/[A-Za-z0-9_-]+")


def withhold_links(text: str) -> str:
    """A message's text with its one-time links (set a password, accept an invitation)
    cut short: whoever reads the practice's outbox, or a copy of the database, must not be
    able to use one and sign in as the colleague or client it was sent to."""
    return _ONE_TIME_LINK.sub(r"/\1/\2/…", text)


async def queue_email(
    to: str,
    subject: str,
    body_text: str,
    *,
    body_html: str | None = None,
    purpose: str = "",
    client_id: int | None = None,
    practice_id: int | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    appointment: Appointment | None = None,
) -> OutboxMessage:
    """Queue an email. Call inside ``atomic()``: a rolled-back change sends nothing.

    ``attachments``: (filename, content type, bytes), stored with the message. An email
    about ``appointment`` (a reminder) is not sent once it is cancelled, moved or has begun
    (server/outbox.py): the mail server may be down for hours.
    """
    message = await OutboxMessage.create(
        to=to,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        purpose=purpose,
        client_id=client_id,
        practice_id=practice_id,
        next_attempt_at=datetime.now(UTC),
        appointment_id=appointment.id if appointment else None,
        send_before=appointment.starts_at if appointment else None,
    )
    for filename, content_type, data in attachments:
        await OutboxAttachment.create(
            message=message, filename=filename, content_type=content_type, data=data
        )
    return message


async def _send_smtp(url: str, msg: OutboxMessage) -> None:
    parsed = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    email = EmailMessage()
    email["From"] = query.get("from", "Cabinet <no-reply@localhost>")
    email["To"] = msg.to
    email["Subject"] = msg.subject
    email.set_content(msg.body_text)
    if msg.body_html:
        email.add_alternative(msg.body_html, subtype="html")
    for attachment in await OutboxAttachment.filter(message_id=msg.id).order_by("id"):
        maintype, _slash, subtype = attachment.content_type.partition("/")
        email.add_attachment(
            bytes(attachment.data), maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    await aiosmtplib.send(
        email,
        hostname=parsed.hostname or "localhost",
        port=parsed.port or (465 if parsed.scheme == "smtps" else 25),
        username=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        use_tls=parsed.scheme == "smtps",
        start_tls=True if query.get("starttls") in {"1", "true"} else None,
        timeout=20,
    )


async def deliver_due(limit: int = 20) -> int:
    """Send queued emails whose time has come (server/outbox.py: claimed, retried)."""
    settings = get_settings()

    async def send(msg: OutboxMessage) -> dict[str, Any]:
        if settings.smtp_url:
            await _send_smtp(settings.smtp_url, msg)
        else:
            log.info(
                "outbox (no SMTP_URL): to=%s subject=%s\n%s", msg.to, msg.subject, msg.body_text
            )
            print(f"[outbox] to {msg.to}: {msg.subject}\n{msg.body_text}\n", flush=True)
        # Sent: the stored copy keeps its one-time link cut short. Links are stored as hashes
        # so that a copy of the database signs no one in; the email's text must not undo it.
        withheld = withhold_links(msg.body_text)
        return {"body_text": withheld} if withheld != msg.body_text else {}

    return await deliver_outbox("email", send, limit=limit, max_attempts=MAX_ATTEMPTS, log=log)
