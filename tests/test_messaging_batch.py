"""Group commit of messages: the sends that arrive together share one transaction, and
none of them is lost, repeated, reordered or announced before it is committed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tortoise.exceptions import IntegrityError

from models.accounts import PortalAccount
from models.clients import Client
from models.jobs import Job, JobStatus
from models.messaging import (
    Conversation,
    ConversationKind,
    Message,
    Participant,
    ParticipantRole,
)
from models.realtime import RealtimeCursor, RealtimeEvent
from realtime.events import PG_LOCK_CURSORS, events_after
from realtime.hub import hub
from server import db as dbmod
from server.actions import messaging
from server.auth.sessions import Caller
from server.sqlite import DiskFailed
from tests.conftest import DATABASE_URL, IS_POSTGRES, Factory, Flushes, postgres_connection

pytestmark = pytest.mark.usefixtures("settled_hub")


@pytest.fixture
async def chat(make: Factory, realtime: Any) -> dict[str, Any]:
    """Alice (therapist) and her client Hélène in one conversation, both as callers."""
    alice = await make.therapist(first_name="Alice")
    helene = await make.client(alice, first_name="Hélène")
    account = await PortalAccount.get(client_id=helene.id)
    staff_caller = Caller.acting_as(alice)
    conversation = await messaging.do_create_conversation(
        staff_caller, kind=ConversationKind.CLIENT, subject="Monday", client=helene
    )
    parts = await Participant.filter(conversation_id=conversation.id)
    return {
        "conversation": conversation,
        "staff": (staff_caller, next(p for p in parts if p.role is ParticipantRole.STAFF)),
        "client": (
            Caller.acting_as((account, helene)),
            next(p for p in parts if p.role is ParticipantRole.CLIENT),
        ),
        "recipients": sorted(p.recipient for p in parts),
    }


def fail_pg_send_at_the_end(patch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's send statements (one conversation, several) fail after every write:
    their last row divides by 0."""
    for name in ("_PG_SEND", "_PG_SEND_ONE"):
        failing = getattr(messaging, name) + " UNION ALL SELECT 1 / 0, NULL, NULL, NULL, NULL"
        patch.setattr(messaging, name, failing)


def count_transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many outermost transactions the batcher opens, from now on."""
    opened: list[int] = []
    original = messaging.atomic

    @asynccontextmanager
    async def counting(*a: Any, **k: Any) -> AsyncIterator[Any]:
        opened.append(1)
        async with original(*a, **k) as conn:
            yield conn

    monkeypatch.setattr(messaging, "atomic", counting)
    return opened


async def test_concurrent_sends_share_a_commit_and_arrive_once_in_order(
    chat: dict[str, Any],
    capture_events: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conversation: Conversation = chat["conversation"]
    captured = capture_events()
    opened = count_transactions(monkeypatch)
    sends = []
    for i in range(30):
        caller, me = chat["staff"] if i % 3 else chat["client"]
        sends.append(messaging.do_send_message(caller, conversation, me, f"m{i}", f"u{i}"))
    results = await asyncio.gather(*sends)

    assert len(opened) < len(sends)  # they did not commit one by one
    assert all(created for _m, created in results)
    stored = await Message.filter(conversation_id=conversation.id).order_by("id")
    assert sorted(m.body for m in stored) == sorted(f"m{i}" for i in range(30))
    assert {m.id for m, _ in results} == {m.id for m in stored}
    history = [m.id for m in stored]
    for recipient in chat["recipients"]:
        live = [e for e in captured.of_type("message.created") if e.recipient == recipient]
        # Each participant got every message once, in the history's order, with gapless seqs.
        assert [e.payload["id"] for e in live] == history
        assert [e.seq for e in live] == list(range(live[0].seq, live[0].seq + len(live)))
        replay = [e for e in await events_after(recipient, 0) if e.type == "message.created"]
        assert [(e.seq, e.payload["id"]) for e in replay] == [
            (e.seq, e.payload["id"]) for e in live
        ]
    reloaded = await Conversation.get(id=conversation.id)
    assert reloaded.last_activity_at == stored[-1].created_at
    assert reloaded.awaiting_staff is (stored[-1].body in {f"m{i}" for i in range(0, 30, 3)})
    # One unread notice for each side, whatever the batches: the staff for the client's
    # messages, the client for the staff's.
    _client_caller, client_p = chat["client"]
    notices = await Job.filter(key__startswith="notice:").order_by("key")
    assert [(j.key, j.payload, j.status) for j in notices] == [
        (
            f"notice:{conversation.id}:p{client_p.id}",
            {"conversation": conversation.id, "participant": client_p.id},
            JobStatus.PENDING,
        ),
        (
            f"notice:{conversation.id}:staff",
            {"conversation": conversation.id, "participant": None},
            JobStatus.PENDING,
        ),
    ]


async def test_same_client_uid_twice_in_one_batch_is_one_message(
    chat: dict[str, Any], capture_events: Callable[..., Any]
) -> None:
    conversation: Conversation = chat["conversation"]
    caller, me = chat["client"]
    captured = capture_events()
    results = await asyncio.gather(
        messaging.do_send_message(caller, conversation, me, "once", "dup"),
        messaging.do_send_message(caller, conversation, me, "once", "dup"),
        messaging.do_send_message(caller, conversation, me, "other", "not-dup"),
    )
    (first, c1), (second, c2), (_other, c3) = results
    assert first.id == second.id and sorted([c1, c2]) == [False, True] and c3
    assert await Message.filter(conversation_id=conversation.id, client_uid="dup").count() == 1
    announced = [e.payload["id"] for e in captured.of_type("message.created")]
    assert announced.count(first.id) == len(chat["recipients"])
    # And a retry after the batch committed gets the same message, announced no more.
    again, created = await messaging.do_send_message(caller, conversation, me, "once", "dup")
    assert again.id == first.id and not created
    assert [e.payload["id"] for e in captured.of_type("message.created")] == announced


async def test_one_batch_over_several_conversations_sets_each_ones_activity(
    chat: dict[str, Any],
) -> None:
    """Each conversation takes its last new message's time and who it awaits; a message sent
    again (same client_uid) changes nothing. PostgreSQL does this in the insert's statement."""
    first: Conversation = chat["conversation"]
    staff_caller, _ = chat["staff"]
    client = await Client.get(id=first.client_id)  # type: ignore[attr-defined]
    others = [
        await messaging.do_create_conversation(
            staff_caller, kind=ConversationKind.CLIENT, subject=subject, client=client
        )
        for subject in ("Tuesday", "Wednesday")
    ]
    second, third = others
    me: dict[tuple[int, ParticipantRole], Participant] = {
        (p.conversation_id, p.role): p  # type: ignore[attr-defined]
        for p in await Participant.filter(conversation_id__in=[c.id for c in (first, *others)])
    }
    staff, patient = ParticipantRole.STAFF, ParticipantRole.CLIENT

    def send(conversation: Conversation, role: ParticipantRole, body: str) -> Any:
        return messaging.PendingSend(conversation, me[(conversation.id, role)], body, body)

    # The third conversation: a client's message, then the staff's answer (awaits nobody).
    async with dbmod.atomic():
        await messaging._write_sends([send(third, patient, "c1")])
    async with dbmod.atomic():
        await messaging._write_sends([send(third, staff, "c2")])
    before = await Conversation.get(id=third.id)
    assert before.awaiting_staff is False

    async with dbmod.atomic():
        results = await messaging._write_sends(
            [
                send(first, patient, "a1"),
                send(second, patient, "b1"),
                send(first, staff, "a2"),
                send(third, patient, "c1"),  # sent again: already stored
                send(second, staff, "b2"),
                send(first, patient, "a3"),
            ]
        )
    assert [created for _m, created in results] == [True, True, True, False, True, True]
    by_body = {m.body: m for m, _created in results}
    for conversation, last, awaiting in ((first, "a3", True), (second, "b2", False)):
        reloaded = await Conversation.get(id=conversation.id)
        assert reloaded.last_activity_at == by_body[last].created_at
        assert reloaded.awaiting_staff is awaiting
    after = await Conversation.get(id=third.id)
    assert (after.last_activity_at, after.awaiting_staff) == (before.last_activity_at, False)


async def test_a_message_sent_again_on_its_own_leaves_its_conversations_activity(
    chat: dict[str, Any],
) -> None:
    """A batch of one conversation (PostgreSQL names it by its id in the statement) touches
    the conversation for a message it stores, and not for one already stored."""
    conversation: Conversation = chat["conversation"]
    _, staff = chat["staff"]
    _, patient = chat["client"]

    async def send_alone(me: Participant, body: str) -> bool:
        async with dbmod.atomic():
            [(_message, created)] = await messaging._write_sends(
                [messaging.PendingSend(conversation, me, body, body)]
            )
        return created

    assert await send_alone(patient, "question")
    assert (await Conversation.get(id=conversation.id)).awaiting_staff is True
    assert await send_alone(staff, "answer")
    before = await Conversation.get(id=conversation.id)
    assert before.awaiting_staff is False
    assert not await send_alone(patient, "question")  # sent again: already stored
    after = await Conversation.get(id=conversation.id)
    assert (after.last_activity_at, after.awaiting_staff) == (before.last_activity_at, False)


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's plans")
async def test_a_send_reaches_its_rows_through_their_indexes(chat: dict[str, Any]) -> None:
    """PostgreSQL keeps one generic plan per prepared statement. With the conversation
    reached only by a join to the inserted rows, that plan scanned every conversation at
    every send (or PostgreSQL planned again each time), and the cursor locks, found by
    ``= ANY`` of an array, scanned every cursor; named by their keys one by one, each is an
    index lookup whatever the tables hold."""
    conversation: Conversation = chat["conversation"]
    conn = await postgres_connection(DATABASE_URL)
    plans: list[str] = []
    try:
        # A small practice's conversations and people (with a few hundred, a scan is the
        # cheaper plan).
        await conn.execute(
            "INSERT INTO conversation (created_at, updated_at, kind, subject, last_activity_at, "
            "awaiting_staff, practice_id) SELECT now(), now(), 'office', 'x' || i, now(), "
            "false, practice_id FROM conversation, generate_series(1, 1000) AS i WHERE id = $1",
            conversation.id,
        )
        await conn.execute(
            "INSERT INTO realtime_cursor (recipient, last_seq) "
            "SELECT 'x:' || i, 0 FROM generate_series(1, 2000) AS i"
        )
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE send AS {messaging._PG_SEND_ONE}")
        # Without statistics (autovacuum off, as on CI's server), then with them.
        for analyze in ("", "ANALYZE conversation, realtime_cursor"):
            if analyze:
                await conn.execute(analyze)
            rows = await conn.fetch(f"EXPLAIN EXECUTE send({', '.join(['NULL'] * 16)})")
            plans.append("\n".join(row[0] for row in rows))
    finally:
        await conn.close()
    for plan in plans:
        touched = plan[plan.index("Update on conversation") :]
        assert "conversation_pkey on conversation" in touched, plan
        assert "Seq Scan on conversation" not in plan, plan
        assert "Seq Scan on realtime_cursor" not in plan, plan


@asynccontextmanager
async def send_holding_cursors(recipients: list[str]) -> AsyncIterator[Any]:
    """PostgreSQL: a connection in the middle of a send, holding the recipients' cursor rows
    (its first step); the block takes the send's next locks, and the send commits at its end."""
    sender = await postgres_connection(DATABASE_URL)
    try:
        async with sender.transaction():
            await sender.execute(PG_LOCK_CURSORS.format(recipients="$1::text[]"), recipients)
            yield sender
    finally:
        await sender.close()


async def wait_for_a_lock(sender: Any, what: str) -> None:
    """Until some other transaction waits for a lock (the one ``sender`` holds)."""
    for _attempt in range(200):
        if await sender.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"{what} never waited for the send")


@pytest.mark.skipif(
    not IS_POSTGRES, reason="SQLite's writers take turns for a whole transaction: no lock order"
)
async def test_renaming_while_adding_people_waits_for_a_send_instead_of_deadlocking(
    chat: dict[str, Any], make: Factory
) -> None:
    """A send holds its recipients' cursor rows, then updates the conversation's activity.
    Adding people under a new group name must take the same rows in the same order; when it
    renamed first, the two waited for each other and PostgreSQL aborted one."""
    conversation: Conversation = chat["conversation"]
    staff_caller, _ = chat["staff"]
    colleague = await make.therapist(first_name="Bruno")
    async with send_holding_cursors(chat["recipients"]) as sender:
        adding = asyncio.create_task(
            messaging.do_add_participants(
                staff_caller, conversation, staff=[colleague], group_name="Care team"
            )
        )
        await wait_for_a_lock(sender, "adding people")
        await sender.execute(
            "UPDATE conversation SET last_activity_at = now() WHERE id = $1", conversation.id
        )
    added = await asyncio.wait_for(adding, 10)
    assert [p.staff_user_id for p in added] == [colleague.id]  # type: ignore[attr-defined]
    assert (await Conversation.get(id=conversation.id)).group_name == "Care team"


@pytest.mark.skipif(
    not IS_POSTGRES, reason="SQLite's writers take turns for a whole transaction: no lock order"
)
async def test_reading_waits_for_a_send_that_schedules_the_unread_notice(
    chat: dict[str, Any],
) -> None:
    """A send holds its recipients' cursor rows when it schedules the unread notice. Reading
    cancels that notice: it must take the cursors first too, or the two deadlock."""
    conversation: Conversation = chat["conversation"]
    staff_caller, staff_me = chat["staff"]
    client_caller, client_me = chat["client"]
    await messaging.do_send_message(staff_caller, conversation, staff_me, "Hello", "h1")
    notice = await Job.get(key=f"notice:{conversation.id}:p{client_me.id}")
    async with send_holding_cursors(chat["recipients"]) as sender:
        reading = asyncio.create_task(
            messaging.do_mark_read(client_caller, conversation, client_me)
        )
        await wait_for_a_lock(sender, "reading")
        # The send's notice: the job row, as its upsert locks it.
        await sender.execute("SELECT 1 FROM job WHERE id = $1 FOR UPDATE", notice.id)
    read = await asyncio.wait_for(reading, 10)
    assert len(read) == 1
    assert (await Job.get(id=notice.id)).status is JobStatus.CANCELLED


async def test_a_message_sent_again_after_it_was_read_brings_no_new_notice(
    chat: dict[str, Any],
) -> None:
    """Only a new message schedules an unread notice: a retry of one already read (the same
    client_uid) must not revive the notice its reading cancelled."""
    conversation: Conversation = chat["conversation"]
    staff_caller, staff_me = chat["staff"]
    client_caller, client_me = chat["client"]
    key = f"notice:{conversation.id}:p{client_me.id}"
    await messaging.do_send_message(staff_caller, conversation, staff_me, "Hello", "h1")
    assert (await Job.get(key=key)).status is JobStatus.PENDING
    await messaging.do_mark_read(client_caller, conversation, client_me)
    assert (await Job.get(key=key)).status is JobStatus.CANCELLED
    _again, created = await messaging.do_send_message(
        staff_caller, conversation, staff_me, "Hello", "h1"
    )
    assert not created
    assert (await Job.get(key=key)).status is JobStatus.CANCELLED


async def test_a_recipient_without_a_cursor_row_still_gets_the_message(
    chat: dict[str, Any],
) -> None:
    """Every participant gets a cursor row when the conversation is created; one that has
    none (a database restored in part, say) is given one, and the message still goes out."""
    conversation: Conversation = chat["conversation"]
    caller, me = chat["staff"]
    client = next(r for r in chat["recipients"] if r.startswith("c:"))
    await RealtimeEvent.filter(recipient=client).delete()
    await RealtimeCursor.filter(recipient=client).delete()
    message, created = await messaging.do_send_message(caller, conversation, me, "Hi", "nc1")
    assert created
    [event] = await events_after(client, 0)
    assert (event.seq, event.type, event.payload["id"]) == (1, "message.created", message.id)
    assert await Message.filter(client_uid="nc1").count() == 1


async def test_one_failing_message_leaves_the_others_of_its_batch_stored(
    chat: dict[str, Any], capture_events: Callable[..., Any]
) -> None:
    conversation: Conversation = chat["conversation"]
    caller, me = chat["staff"]
    captured = capture_events()
    # A sender row that does not exist: its insert breaks the foreign key.
    ghost = Participant(
        id=999_999,
        conversation_id=conversation.id,
        role=ParticipantRole.STAFF,
        staff_user_id=me.staff_user_id,  # type: ignore[attr-defined]
        display_name="Ghost",
    )
    sends = [
        messaging.do_send_message(caller, conversation, me, f"ok{i}", f"ok{i}") for i in range(4)
    ]
    sends.insert(2, messaging.do_send_message(caller, conversation, ghost, "bad", "bad"))
    results = await asyncio.gather(*sends, return_exceptions=True)

    assert isinstance(results[2], IntegrityError)
    good = [r for i, r in enumerate(results) if i != 2]
    assert all(isinstance(r, tuple) and r[1] for r in good)
    stored = await Message.filter(conversation_id=conversation.id).order_by("id")
    assert [m.body for m in stored] == ["ok0", "ok1", "ok2", "ok3"]
    announced = {e.payload["body"] for e in captured.of_type("message.created")}
    assert announced == {"ok0", "ok1", "ok2", "ok3"}


async def test_nothing_is_published_or_kept_when_the_commit_fails(
    chat: dict[str, Any],
    capture_events: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conversation: Conversation = chat["conversation"]
    captured = capture_events()
    async with dbmod.atomic() as conn:
        wrapper = type(conn)

    async def failing_commit(self: Any) -> None:
        await self.rollback()
        raise OSError("disk I/O error")

    with monkeypatch.context() as patch:
        if IS_POSTGRES:  # one statement, committed on its own: it fails at its very end
            fail_pg_send_at_the_end(patch)
        else:
            patch.setattr(wrapper, "commit", failing_commit)
        sends = []
        for i in range(6):
            caller, me = chat["staff"] if i % 2 else chat["client"]
            sends.append(messaging.do_send_message(caller, conversation, me, f"lost{i}", f"l{i}"))
        results = await asyncio.gather(*sends, return_exceptions=True)

    if IS_POSTGRES:
        assert all(isinstance(r, Exception) and "division by zero" in str(r) for r in results)
    else:
        assert all(isinstance(r, OSError) for r in results)
    assert captured.events == []
    assert await Message.filter(conversation_id=conversation.id).count() == 0
    # The next sends go through: the batcher is not stuck on the failure.
    caller, me = chat["staff"]
    message, created = await messaging.do_send_message(caller, conversation, me, "back", "l1")
    assert created and await Message.filter(conversation_id=conversation.id).count() == 1
    assert {e.payload["id"] for e in captured.of_type("message.created")} == {message.id}


@pytest.mark.skipif(
    IS_POSTGRES, reason="PostgreSQL's commit returns once durable: there is no flush to overlap"
)
async def test_the_tabs_get_a_message_during_its_fsync_and_its_sender_after(
    chat: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation: Conversation = chat["conversation"]
    caller, me = chat["client"]
    flushes = Flushes(delay=0.2)
    monkeypatch.setattr(os, "fdatasync", flushes)
    published: list[int] = []
    original = hub.publish

    async def spy(events: Any) -> None:
        published.append(flushes.finished)  # how many flushes had finished by then
        await original(events)

    monkeypatch.setattr(hub, "publish", spy)
    message, created = await messaging.do_send_message(caller, conversation, me, "hi", "u-d")
    assert created and published == [0]  # the recipients' tabs had it before the flush ended
    assert flushes.finished == 1  # and the sender was answered once it had
    # A sender whose flush fails hears so, though the tabs may have seen the message.
    monkeypatch.setattr(os, "fdatasync", Flushes(fail=OSError(5, "I/O error")))
    with pytest.raises(DiskFailed):
        await messaging.do_send_message(caller, conversation, me, "lost?", "u-e")
