"""Delivery of the outbox (server/outbox.py): a message is claimed before it is sent, the
claim lasts from its own start, and a message whose worker stopped during its last try is
not sent again."""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.notifications import OutboxMessage, OutboxStatus
from server import outbox
from tests.conftest import Factory

log = logging.getLogger("tests.outbox")


async def queue(make: Factory, n: int, **fields: Any) -> list[OutboxMessage]:
    practice = await make.practice()
    return [
        await OutboxMessage.create(
            channel="email",
            to=f"person{i}@example.org",
            body_text="Hello",
            purpose="test",
            practice_id=practice.id,
            **fields,
        )
        for i in range(n)
    ]


async def test_a_claim_lasts_from_its_own_start_not_the_batchs(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first send is slow. When the second message is being sent, its claim must still
    hold, or another worker would take it and send it a second time."""
    monkeypatch.setattr(outbox, "LEASE", timedelta(seconds=0.5))
    await queue(make, 2, next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    held: list[bool] = []

    async def send(msg: OutboxMessage) -> dict[str, Any]:
        row = await OutboxMessage.get(id=msg.id)
        held.append(row.next_attempt_at > datetime.now(UTC))
        if len(held) == 1:
            await asyncio.sleep(0.6)  # longer than the lease
        return {}

    sent = await outbox.deliver_outbox("email", send, limit=10, max_attempts=3, log=log)
    assert sent == 2 and held == [True, True]


async def test_a_message_whose_worker_stopped_on_its_last_try_is_not_sent_again(
    make: Factory,
) -> None:
    """Killed mid-send (or the provider took it and "sent" was never written): the claim
    runs out and the message is due again, with every try used. It fails, visibly, rather
    than going out a second time."""
    past = datetime.now(UTC) - timedelta(minutes=5)
    spent, fresh = await queue(make, 2, next_attempt_at=past)
    await OutboxMessage.filter(id=spent.id).update(attempts=3)
    sent_to: list[str] = []

    async def send(msg: OutboxMessage) -> dict[str, Any]:
        sent_to.append(msg.to)
        return {}

    assert await outbox.deliver_outbox("email", send, limit=10, max_attempts=3, log=log) == 1
    assert sent_to == [fresh.to]
    spent = await OutboxMessage.get(id=spent.id)
    assert spent.status is OutboxStatus.FAILED and "may have been sent" in spent.error


async def test_the_outbox_page_names_the_status_in_the_readers_language(
    http: Any, make: Factory
) -> None:
    # The page printed the stored value: "sent" on a French page.
    from tests.conftest import login

    await queue(make, 1, status=OutboxStatus.SENT)
    await queue(make, 1, status=OutboxStatus.FAILED)
    await login(http, await make.owner())
    page = (await http.get("/staff/outbox", headers={"Accept-Language": "fr-FR"})).text
    assert '<strong data-status="sent">envoyé</strong>' in page
    assert '<strong data-status="failed">échec</strong>' in page
    assert ">sent<" not in page and ">failed<" not in page


async def test_a_message_another_worker_held_meanwhile_is_not_claimed(make: Factory) -> None:
    """Between this worker's read and its claim, another one held the message (quiet hours
    began): the claim must not take it, or the text would go out in the night."""
    [msg] = await queue(make, 1, next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    morning = datetime.now(UTC) + timedelta(hours=9)
    sent: list[int] = []

    async def send(m: OutboxMessage) -> dict[str, Any]:
        sent.append(m.id)
        return {}

    async def other_worker_holds_it(m: OutboxMessage, now: datetime) -> datetime | None:
        await OutboxMessage.filter(id=m.id).update(next_attempt_at=morning)
        return None  # this worker, a moment earlier, saw no reason to wait

    assert (
        await outbox.deliver_outbox(
            "email", send, limit=10, max_attempts=3, log=log, hold=other_worker_holds_it
        )
        == 0
    )
    assert sent == []
    row = await OutboxMessage.get(id=msg.id)
    assert row.status is OutboxStatus.QUEUED and row.attempts == 0
    assert row.next_attempt_at == morning


async def test_why_a_message_failed_or_was_dropped_reads_in_french(
    http: Any, make: Factory
) -> None:
    """The reasons Cabinet itself gives (no credits left, the worker stopped, too late, the
    session called off) were stored in English and printed as they were on a French
    clinician's Outbox page and client Logs tab. They are translated where they are shown;
    a provider's own words still show as the provider gave them."""
    from server import i18n
    from tests.conftest import login

    owner = await make.owner()
    client = await make.client(await make.therapist())
    reasons = [
        (OutboxStatus.FAILED, outbox.NO_CREDITS),
        (OutboxStatus.FAILED, outbox.WORKER_STOPPED),
        (OutboxStatus.DROPPED, outbox.TOO_LATE),
        (OutboxStatus.DROPPED, outbox.CALLED_OFF),
        # A provider's words: shown as they are, escaped, and never formatted.
        (OutboxStatus.FAILED, "Twilio: 21211 <invalid> number, 100% sure"),
    ]
    for status, error in reasons:  # to the client, as their Logs tab lists
        await queue(make, 1, status=status, error=error, client_id=client.id)
    await OutboxMessage.all().update(to=client.email)
    await login(http, owner)
    french = {"Accept-Language": "fr-FR"}
    pages = [
        (await http.get("/staff/outbox", headers=french)).text,
        (await http.get(f"/staff/clients/{client.id}/logs", headers=french)).text,
    ]
    i18n.set_locale("fr")
    try:
        for page in pages:
            for _status, error in reasons[:-1]:
                assert error not in page
                assert html.escape(i18n.gettext(error), quote=False) in page
            assert "Twilio: 21211 &lt;invalid&gt; number, 100% sure" in page
    finally:
        i18n.set_locale("en")
