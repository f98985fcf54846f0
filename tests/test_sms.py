"""The SMS adapter against a fake Twilio on loopback (real HTTP): what it posts, retries
with backoff, failure for good with the reason, and signed delivery reports."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest

from models.notifications import OutboxMessage, OutboxStatus
from models.reminders import MessagingSettings
from server.actions import reminders
from server.db import atomic
from server.settings import Settings, set_settings
from server.sms import deliver_due_sms, twilio_signature
from tests.conftest import Factory, session_booker


class FakeTwilio:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # status codes to answer with, in order
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["Content-Length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                outer.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "form": form}
                )
                if outer.fail_next:
                    code = outer.fail_next.pop(0)
                    body = {"code": 21211, "message": "The 'To' number is not valid."}
                else:
                    code, body = 201, {"sid": f"SM{len(outer.requests):032d}", "status": "queued"}
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def twilio(settings: Settings) -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    set_settings(
        replace(
            settings,
            twilio_account_sid="AC123",
            twilio_auth_token="secret-token",
            twilio_from="+33700000000",
            twilio_api_url=fake.url,
        )
    )
    try:
        yield fake
    finally:
        fake.server.shutdown()
        set_settings(settings)


def outbox_clock(monkeypatch: pytest.MonkeyPatch, start: datetime) -> list[datetime]:
    """The outbox's clock stopped at ``start``; the test moves it by setting item 0."""
    import server.outbox as outbox_module

    clock = [start.astimezone(UTC)]

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return clock[0] if tz is None else clock[0].astimezone(tz)

    monkeypatch.setattr(outbox_module, "datetime", Clock)
    return clock


async def queue(make: Factory, body: str = "Rappel : rendez-vous demain à 10:00") -> int:
    practice = await make.practice()
    # No quiet hours: a run in the evening would hold the reminder until the morning (they
    # have their own test below).
    settings = await reminders.messaging_settings(practice.id)
    await MessagingSettings.filter(id=settings.id).update(quiet_start_minute=0, quiet_end_minute=0)
    async with atomic():
        msg = await reminders.queue_sms(
            practice, "+33611111111", body, purpose="reminder", client_id=None, sender="Cabinet"
        )
    return msg.id


async def test_an_sms_goes_to_twilio_with_its_sender_and_callback(
    db: None, make: Factory, twilio: FakeTwilio
) -> None:
    msg_id = await queue(make)
    assert await deliver_due_sms() == 1
    [req] = twilio.requests
    assert req["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    assert req["auth"] == "Basic " + base64.b64encode(b"AC123:secret-token").decode()
    assert req["form"] == {
        "To": "+33611111111",
        "From": "Cabinet",
        "Body": "Rappel : rendez-vous demain à 10:00",
        "StatusCallback": "http://testserver/hooks/sms/twilio",
    }
    msg = await OutboxMessage.get(id=msg_id)
    assert msg.status == OutboxStatus.SENT and msg.provider_ref.startswith("SM")
    assert await deliver_due_sms() == 0  # sent once


async def test_a_provider_outage_is_retried_with_backoff_and_a_bad_number_fails_for_good(
    db: None, make: Factory, twilio: FakeTwilio
) -> None:
    msg_id = await queue(make)
    twilio.fail_next = [503]
    assert await deliver_due_sms() == 0
    msg = await OutboxMessage.get(id=msg_id)
    assert msg.status == OutboxStatus.QUEUED and "Twilio 503" in msg.error
    assert msg.next_attempt_at is not None and msg.next_attempt_at > datetime.now(UTC) + timedelta(
        seconds=50
    )
    await OutboxMessage.filter(id=msg_id).update(next_attempt_at=datetime.now(UTC))
    twilio.fail_next = [400]
    assert await deliver_due_sms() == 0
    msg = await OutboxMessage.get(id=msg_id)
    assert msg.status == OutboxStatus.FAILED
    assert msg.error == "Twilio 400: The 'To' number is not valid."
    assert len(twilio.requests) == 2


async def test_delivery_reports_need_twilios_signature(
    db: None, make: Factory, http: Any, twilio: FakeTwilio
) -> None:
    msg_id = await queue(make)
    await deliver_due_sms()
    ref = (await OutboxMessage.get(id=msg_id)).provider_ref
    url = "http://testserver/hooks/sms/twilio"
    form = {"MessageSid": ref, "MessageStatus": "delivered", "AccountSid": "AC123"}
    forged = await http.post(url, data=form, headers={"X-Twilio-Signature": "bogus"})
    assert forged.status_code == 403
    unsigned = await http.post(url, data=form)
    assert unsigned.status_code == 403
    assert (await OutboxMessage.get(id=msg_id)).status == OutboxStatus.SENT
    signed = await http.post(
        url, data=form, headers={"X-Twilio-Signature": twilio_signature("secret-token", url, form)}
    )
    assert signed.status_code == 200
    msg = await OutboxMessage.get(id=msg_id)
    assert msg.status == OutboxStatus.DELIVERED and msg.delivered_at is not None
    # A late "sent" report does not undo "delivered"; "undelivered" on another is a failure.
    late = {**form, "MessageStatus": "sent"}
    await http.post(
        url, data=late, headers={"X-Twilio-Signature": twilio_signature("secret-token", url, late)}
    )
    assert (await OutboxMessage.get(id=msg_id)).status == OutboxStatus.DELIVERED
    other = await queue(make, "Autre")
    await deliver_due_sms()
    ref2 = (await OutboxMessage.get(id=other)).provider_ref
    bad = {"MessageSid": ref2, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    await http.post(
        url, data=bad, headers={"X-Twilio-Signature": twilio_signature("secret-token", url, bad)}
    )
    failed = await OutboxMessage.get(id=other)
    assert failed.status == OutboxStatus.FAILED and "30003" in failed.error


async def test_without_a_provider_texts_stay_in_the_outbox_and_print(
    db: None, make: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    msg_id = await queue(make)
    assert await deliver_due_sms() == 1
    assert "[outbox] SMS to +33611111111 from Cabinet" in capsys.readouterr().out
    assert (await OutboxMessage.get(id=msg_id)).status == OutboxStatus.SENT


async def test_a_text_whose_try_falls_in_quiet_hours_waits_for_their_end(
    db: None, make: Factory, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quiet hours were checked only when the job queued the text: a reminder queued at 20:58
    whose try came at 23:30 (the provider down, the worker restarting) woke the client up."""
    paris = ZoneInfo("Europe/Paris")
    practice = await make.practice()
    practice.time_zone = "Europe/Paris"
    await practice.save()
    queued_at = datetime(2027, 1, 12, 20, 58, tzinfo=paris).astimezone(UTC)
    clock = outbox_clock(monkeypatch, datetime(2027, 1, 12, 23, 30, tzinfo=paris))
    async with atomic():
        reminder = await OutboxMessage.create(
            channel="sms",
            to="+33611111111",
            body_text="Reminder: tomorrow 10:00",
            purpose="reminder",
            practice_id=practice.id,
            next_attempt_at=queued_at,
            attempts=1,  # its first try failed
        )
        # A text quiet hours do not hold goes out all the same.
        other = await OutboxMessage.create(
            channel="sms",
            to="+33622222222",
            body_text="Test",
            practice_id=practice.id,
            next_attempt_at=queued_at,
        )
    assert await deliver_due_sms() == 1
    assert [r["form"]["To"] for r in twilio.requests] == ["+33622222222"]
    held = await OutboxMessage.get(id=reminder.id)
    assert held.status is OutboxStatus.QUEUED and held.attempts == 1
    assert held.next_attempt_at == datetime(2027, 1, 13, 8, 0, tzinfo=paris)
    assert (await OutboxMessage.get(id=other.id)).status is OutboxStatus.SENT
    # In the morning it goes.
    clock[0] = datetime(2027, 1, 13, 8, 0, 5, tzinfo=paris).astimezone(UTC)
    assert await deliver_due_sms() == 1
    sent = await OutboxMessage.get(id=reminder.id)
    assert sent.status is OutboxStatus.SENT and sent.attempts == 2


async def test_a_reminder_that_quiet_hours_would_hold_past_its_session_is_dropped(
    db: None, make: Factory, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reminder of a 07:30 session, queued at 20:58, its try at 23:30: quiet hours held it
    until 08:00, and the client was reminded of their session half an hour after it began.
    It is dropped instead, and its credit given back."""
    from server.actions import reminder_jobs  # noqa: F401 - the queue's jobs

    paris = ZoneInfo("Europe/Paris")
    practice = await make.practice()
    practice.time_zone = "Europe/Paris"
    await practice.save()
    therapist = await make.therapist()
    book = await session_booker(practice, therapist, await make.client(therapist))
    session = await book(datetime(2027, 1, 13, 7, 30, tzinfo=paris).astimezone(UTC))
    clock = outbox_clock(monkeypatch, datetime(2027, 1, 12, 23, 30, tzinfo=paris))
    async with atomic():
        msg = await reminders.queue_sms(
            practice,
            "+33611111111",
            "Reminder: tomorrow 07:30",
            purpose="reminder",
            client_id=None,
            appointment=session,
        )
    credits = (await reminders.messaging_settings(practice.id)).sms_credits
    await OutboxMessage.filter(id=msg.id).update(
        next_attempt_at=datetime(2027, 1, 12, 20, 58, tzinfo=paris), attempts=1
    )
    assert await deliver_due_sms() == 0
    assert twilio.requests == []
    dropped = await OutboxMessage.get(id=msg.id)
    assert dropped.status is OutboxStatus.DROPPED and "too late" in dropped.error
    assert (await reminders.messaging_settings(practice.id)).sms_credits == credits + 1
    # Dropped for good: a later run leaves it be.
    clock[0] = datetime(2027, 1, 13, 8, 0, 5, tzinfo=paris).astimezone(UTC)
    assert await deliver_due_sms() == 0
    assert twilio.requests == []
