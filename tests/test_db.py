"""server/db.py's hand-written reads: ``from_row`` builds the very model Tortoise would, on
SQLite (datetimes as text) and PostgreSQL (datetimes as values) alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tortoise.fields import DatetimeField
from tortoise.models import Model

from models.accounts import AuthSession, PortalAccount, Realm, StaffUser
from models.clients import Client
from models.messaging import Conversation, ConversationKind, Message, Participant
from server.actions import messaging
from server.auth.sessions import Caller, hash_token
from server.db import _to_datetime, connection, from_row, placeholders, select_columns
from tests.conftest import Factory


async def row_of(model: type[Model], alias: str, pk: Any) -> dict[str, Any]:
    rows = await connection().execute_query_dict(
        f"SELECT {select_columns(model, alias)} FROM {model._meta.db_table} {alias} "
        f'WHERE {alias}."{model._meta.db_pk_column}" = {placeholders(1)[0]}',
        [pk],
    )
    assert len(rows) == 1
    return rows[0]


def state(instance: Model) -> dict[str, Any]:
    """Everything an instance holds, with each value's type (an enum member is not its text,
    and an aware datetime in one zone is not the same value as in another)."""
    return {k: (v, type(v), getattr(v, "tzinfo", None)) for k, v in vars(instance).items()}


async def test_from_row_builds_what_tortoise_builds_for_every_model_a_send_reads(
    make: Factory,
) -> None:
    alice = await make.therapist(first_name="Alice")
    helene = await make.client(alice, first_name="Hélène")
    await Client.filter(id=helene.id).update(diagnosis_keywords=["anxiety", "sleep"])
    account = await PortalAccount.get(client_id=helene.id)
    conversation = await messaging.do_create_conversation(
        Caller.acting_as(alice), kind=ConversationKind.CLIENT, subject="Monday", client=helene
    )
    participant = await Participant.filter(conversation_id=conversation.id).first()
    assert participant is not None
    now = datetime.now(UTC)
    session = await AuthSession.create(
        id=hash_token("t"),
        realm=Realm.STAFF,
        staff_user_id=alice.id,
        csrf_token="c",
        last_seen_at=now,
        expires_at=now + timedelta(days=1),
        idle_seconds=600,
    )

    for model, pk in [
        (StaffUser, alice.id),
        (PortalAccount, account.id),
        (Client, helene.id),
        (Conversation, conversation.id),
        (Participant, participant.id),
        (AuthSession, session.id),
    ]:
        built = from_row(model, await row_of(model, "x", pk), "x")
        fetched = await model.get(pk=pk)
        assert state(built) == state(fetched), model.__name__
        assert built._saved_in_db and not built._partial
        # and it behaves as a model: it saves, and the change is read back
        await built.save(update_fields=["updated_at"])
        assert (await model.get(pk=pk)).updated_at == built.updated_at


async def test_a_sent_message_is_the_model_tortoise_reads_back(make: Factory) -> None:
    alice = await make.therapist(first_name="Alice")
    helene = await make.client(alice, first_name="Hélène")
    caller = Caller.acting_as(alice)
    conversation = await messaging.do_create_conversation(
        caller, kind=ConversationKind.CLIENT, subject="Monday", client=helene
    )
    me = await Participant.get(conversation_id=conversation.id, staff_user_id=alice.id)
    sent, created = await messaging.do_send_message(caller, conversation, me, "Hello", "uid-1")
    assert created
    assert state(sent) == state(await Message.get(id=sent.id))
    assert sent._saved_in_db and not sent._partial


async def test_a_row_with_some_columns_builds_a_partial_model(make: Factory) -> None:
    alice = await make.therapist(first_name="Alice")
    row = await row_of(StaffUser, "u", alice.id)
    del row["u__email"]
    built = from_row(StaffUser, row, "u")
    assert built._partial
    assert built.first_name == "Alice" and built.id == alice.id
    assert built.created_at.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-06 05:15:00.123456+00:00",  # what Tortoise writes to SQLite
        "2026-12-06T06:15:00.123456+01:00",
        "2026-12-06 05:15:00.123456",  # naive: taken as UTC, as Tortoise does
        datetime(2026, 12, 6, 5, 15, 0, 123456, tzinfo=UTC),  # asyncpg's
        datetime(2026, 12, 6, 6, 15, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_datetimes_come_back_aware_in_utc(value: Any) -> None:
    got = _to_datetime(value)
    assert got == datetime(2026, 12, 6, 5, 15, 0, 123456, tzinfo=UTC)
    assert got.utcoffset() == timedelta(0)
    # Exactly Tortoise's value: the same zone object, the same fields.
    tortoise = DatetimeField(null=True).to_python_value(value)
    assert (got, got.tzinfo, got.fold) == (tortoise, tortoise.tzinfo, tortoise.fold)


def test_missing_datetimes_stay_missing() -> None:
    assert _to_datetime(None) is None
