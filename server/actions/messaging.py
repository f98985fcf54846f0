"""Secure messaging: conversations, participants, messages, read receipts.

Every function here writes in one ``atomic()`` block and emits its realtime events to every
participant; the events are published only once the block has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from models.accounts import PortalAccount, StaffRole, StaffUser
from models.clients import Client
from models.messaging import (
    Conversation,
    ConversationKind,
    Message,
    MessageRead,
    Participant,
    ParticipantRole,
)
from models.realtime import RealtimeEvent
from realtime.events import emit, lock_cursors
from realtime.hub import hub
from server.actions import audit, reminders
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _

MAX_BODY = 10_000


# --- payloads (what screens need, never more) ----------------------------------------------


def participant_payload(p: Participant) -> dict[str, Any]:
    return {
        "id": p.id,
        "role": p.role.value,
        "name": p.display_name,
        "staff_id": p.staff_user_id,  # type: ignore[attr-defined]
        "portal_account_id": p.portal_account_id,  # type: ignore[attr-defined]
    }


def message_payload(m: Message, sender: Participant) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,  # type: ignore[attr-defined]
        "body": m.body,
        "client_uid": m.client_uid,
        "sender": participant_payload(sender),
        "created_at": m.created_at.isoformat(),
    }


def conversation_payload(c: Conversation, participants: Sequence[Participant]) -> dict[str, Any]:
    return {
        "id": c.id,
        "kind": c.kind.value,
        "subject": c.subject,
        "group_name": c.group_name,
        "client_id": c.client_id,  # type: ignore[attr-defined]
        "last_activity_at": c.last_activity_at.isoformat(),
        "participants": [participant_payload(p) for p in participants],
    }


async def _recipients(conversation: Conversation) -> list[str]:
    parts = await Participant.filter(conversation_id=conversation.id)
    return [p.recipient for p in parts]


# --- rules ---------------------------------------------------------------------------------


def check_subject(subject: str, group_name: str | None, participant_count: int) -> None:
    fields: dict[str, str] = {}
    if not subject.strip():
        fields["subject"] = _("A subject is required.")
    if participant_count > 2 and not (group_name or "").strip():
        fields["group_name"] = _("A group name is required when more than two people take part.")
    if fields:
        raise ValidationFailed(_("Some fields are missing."), fields)


async def check_portal_account(client: Client, field: str) -> PortalAccount:
    account = await PortalAccount.get_or_none(client_id=client.id)
    if account is None or not account.is_active or not account.password_hash:
        raise ValidationFailed(
            _("%(name)s has no active portal account: create one from the client file first.")
            % {"name": client.full_name},
            {field: _("No active portal account.")},
        )
    return account


def check_staff_for_client_conversation(staff: Sequence[StaffUser]) -> None:
    if not any(s.role is not StaffRole.OFFICE_ADMIN and s.portal_enabled for s in staff):
        raise ValidationFailed(
            _("A client conversation needs a clinician allowed to use the client portal."),
            {"staff_ids": _("Add a clinician who may use the client portal.")},
        )


def _staff_participant(conversation: Conversation, user: StaffUser, by: str) -> Participant:
    return Participant(
        conversation=conversation,
        role=ParticipantRole.STAFF,
        staff_user=user,
        display_name=user.full_name,
        added_by_label=by,
    )


def _client_participant(
    conversation: Conversation,
    account: PortalAccount,
    client: Client,
    role: ParticipantRole,
    by: str,
) -> Participant:
    return Participant(
        conversation=conversation,
        role=role,
        portal_account=account,
        display_name=client.full_name,
        added_by_label=by,
    )


# --- conversations -------------------------------------------------------------------------


async def do_create_conversation(
    actor: Caller,
    *,
    kind: ConversationKind,
    subject: str,
    group_name: str | None = None,
    client: Client | None = None,
    linked_clients: Sequence[Client] = (),
    staff: Sequence[StaffUser] = (),
    first_message: str | None = None,
    client_uid: str | None = None,
) -> Conversation:
    """Start a conversation. The actor (staff) always takes part.

    Preconditions: ``client``, ``linked_clients`` and ``staff`` were fetched through access
    checks (the client is visible to the actor, linked clients are linked to that client,
    staff belong to the practice).
    """
    assert actor.staff is not None
    members: dict[int, StaffUser] = {actor.staff.id: actor.staff}
    for s in staff:
        if s.is_active:
            members[s.id] = s
    accounts: list[tuple[PortalAccount, Client, ParticipantRole]] = []
    if kind is ConversationKind.CLIENT:
        if client is None:
            raise ValidationFailed(_("Choose a client."), {"client_id": _("Choose a client.")})
        accounts.append(
            (await check_portal_account(client, "client_id"), client, ParticipantRole.CLIENT)
        )
        for linked in linked_clients:
            accounts.append(
                (
                    await check_portal_account(linked, "linked_client_ids"),
                    linked,
                    ParticipantRole.LINKED,
                )
            )
        check_staff_for_client_conversation(list(members.values()))
    elif client is not None or linked_clients:
        raise ValidationFailed(
            _("Office conversations are for staff only."), {"client_id": _("Not allowed here.")}
        )
    count = len(members) + len(accounts)
    if count < 2:
        raise ValidationFailed(
            _("Add at least one other participant."), {"staff_ids": _("Add someone.")}
        )
    check_subject(subject, group_name, count)
    if first_message is not None and not first_message.strip():
        first_message = None

    now = datetime.now(UTC)
    async with atomic():
        conversation = await Conversation.create(
            practice_id=actor.practice_id,
            kind=kind,
            subject=subject.strip(),
            group_name=(group_name or "").strip() or None,
            client=client,
            created_by=actor.staff,
            last_activity_at=now,
        )
        by = actor.label
        parts = [_staff_participant(conversation, s, by) for s in members.values()]
        parts += [_client_participant(conversation, a, c, r, by) for a, c, r in accounts]
        await Participant.bulk_create(parts)
        parts = await Participant.filter(conversation_id=conversation.id).order_by("id")
        me = next(p for p in parts if p.staff_user_id == actor.staff.id)  # type: ignore[attr-defined]
        await emit(
            [p.recipient for p in parts],
            "conversation.created",
            conversation_payload(conversation, parts),
        )
        if first_message:
            await _send(conversation, me, first_message, client_uid or f"first-{conversation.id}")
        await audit.record(
            actor,
            "conversation.created",
            object_type="conversation",
            object_id=conversation.id,
            client_id=client.id if client else None,
        )
    return conversation


async def do_add_participants(
    actor: Caller,
    conversation: Conversation,
    *,
    staff: Sequence[StaffUser] = (),
    linked_clients: Sequence[Client] = (),
    group_name: str | None = None,
) -> list[Participant]:
    """Add people to a conversation. Nobody is ever removed; newcomers see the whole history."""
    existing = await Participant.filter(conversation_id=conversation.id)
    staff_ids = {p.staff_user_id for p in existing}  # type: ignore[attr-defined]
    account_ids = {p.portal_account_id for p in existing}  # type: ignore[attr-defined]
    new_staff = [s for s in staff if s.id not in staff_ids and s.is_active]
    new_accounts: list[tuple[PortalAccount, Client]] = []
    if linked_clients and conversation.kind is not ConversationKind.CLIENT:
        raise ValidationFailed(
            _("Office conversations are for staff only."),
            {"linked_client_ids": _("Not allowed here.")},
        )
    for linked in linked_clients:
        account = await check_portal_account(linked, "linked_client_ids")
        if account.id not in account_ids:
            new_accounts.append((account, linked))
    if not new_staff and not new_accounts:
        raise ValidationFailed(
            _("Everyone chosen already takes part."), {"staff_ids": _("Nobody new to add.")}
        )
    total = len(existing) + len(new_staff) + len(new_accounts)
    name = (group_name or "").strip() or conversation.group_name
    check_subject(conversation.subject, name, total)

    async with atomic():
        if name != conversation.group_name:
            conversation.group_name = name
            await conversation.save(update_fields=["group_name", "updated_at"])
        by = actor.label
        parts = [_staff_participant(conversation, s, by) for s in new_staff]
        parts += [
            _client_participant(conversation, a, c, ParticipantRole.LINKED, by)
            for a, c in new_accounts
        ]
        await Participant.bulk_create(parts)
        everyone = await Participant.filter(conversation_id=conversation.id).order_by("id")
        added = [p for p in everyone if p.id not in {e.id for e in existing}]
        await emit(
            [p.recipient for p in everyone],
            "conversation.participants_added",
            {
                "conversation": conversation_payload(conversation, everyone),
                "added": [participant_payload(p) for p in added],
            },
        )
        await audit.record(
            actor,
            "conversation.participants_added",
            object_type="conversation",
            object_id=conversation.id,
            client_id=conversation.client_id,  # type: ignore[attr-defined]
            detail={"participants": [p.display_name for p in added]},
        )
    return added


# --- messages ------------------------------------------------------------------------------


async def _send(
    conversation: Conversation,
    me: Participant,
    body: str,
    client_uid: str,
    recipients: list[str] | None = None,
) -> Message:
    if recipients is None:
        recipients = await _recipients(conversation)
    # Before the insert: message ids then follow the order the recipients receive them.
    await lock_cursors(recipients)
    message = await Message.create(
        conversation=conversation, sender=me, body=body, client_uid=client_uid
    )
    conversation.last_activity_at = message.created_at
    conversation.awaiting_staff = me.role is not ParticipantRole.STAFF
    await Conversation.filter(id=conversation.id).update(
        last_activity_at=message.created_at, awaiting_staff=conversation.awaiting_staff
    )
    await emit(recipients, "message.created", message_payload(message, me))
    await reminders.on_message_sent(conversation, me)
    return message


def check_body(body: str) -> str:
    text = body.strip()
    if not text:
        raise ValidationFailed(_("Write a message first."), {"body": _("The message is empty.")})
    if len(text) > MAX_BODY:
        raise ValidationFailed(
            _("This message is too long."), {"body": _("At most 10,000 characters.")}
        )
    return text


async def do_send_message(
    actor: Caller, conversation: Conversation, me: Participant, body: str, client_uid: str
) -> tuple[Message, bool]:
    """Send a message; returns (message, created). Idempotent on ``client_uid``: a retry of
    the same send returns the message already stored, and publishes nothing new."""
    text = check_body(body)
    existing = await Message.get_or_none(sender_id=me.id, client_uid=client_uid)
    if existing is not None:
        return existing, False
    # Read before the transaction: on SQLite a transaction that reads first and writes
    # second cannot wait for another process's write lock (it fails "database is locked").
    recipients = await _recipients(conversation)
    try:
        async with atomic():
            message = await _send(conversation, me, text, client_uid, recipients)
    except IntegrityError:
        # Two identical sends raced: the other one won, and that is the message.
        existing = await Message.get_or_none(sender_id=me.id, client_uid=client_uid)
        if existing is None:
            raise
        return existing, False
    return message, True


async def do_mark_read(
    actor: Caller, conversation: Conversation, me: Participant, up_to: int | None = None
) -> list[int]:
    """Mark every message from the others (up to ``up_to``) as read by me; tell everyone."""
    query = Message.filter(conversation_id=conversation.id, deleted_at=None).exclude(
        sender_id=me.id
    )
    if up_to is not None:
        query = query.filter(id__lte=up_to)
    already = MessageRead.filter(participant_id=me.id, message__conversation_id=conversation.id)
    read_ids = set(await already.values_list("message_id", flat=True))
    unread: list[int] = sorted(
        int(str(i)) for i in await query.values_list("id", flat=True) if i not in read_ids
    )
    if not unread:
        return []
    now = datetime.now(UTC)
    async with atomic():
        await MessageRead.bulk_create(
            [MessageRead(message_id=i, participant_id=me.id) for i in unread],
            ignore_conflicts=True,
        )
        await reminders.on_messages_read(conversation, me)
        await emit(
            await _recipients(conversation),
            "message.read",
            {
                "conversation_id": conversation.id,
                "message_ids": unread,
                "reader": participant_payload(me),
                "read_at": now.isoformat(),
            },
        )
    return unread


async def _scrub_stored_event(message: Message, recipients: list[str]) -> None:
    """Blank the text in the stored ``message.created`` events: a tab resuming from before
    the deletion replays them, and must not see what its sender took back."""
    since = message.created_at - timedelta(seconds=5)
    rows = await RealtimeEvent.filter(
        type="message.created", recipient__in=recipients, created_at__gte=since
    )
    for row in rows:
        if row.payload.get("id") == message.id:
            scrubbed = {**row.payload, "body": "", "deleted": True}
            await RealtimeEvent.filter(id=row.id).update(payload=scrubbed)


async def do_delete_message(actor: Caller, message: Message, me: Participant) -> None:
    """Delete my own message while nobody else has read it; once read it stays (409)."""
    if message.sender_id != me.id:  # type: ignore[attr-defined]
        raise Conflict(_("Only the sender can delete a message."))
    if message.deleted_at is not None:
        return
    async with atomic():
        # Lock the message row so a concurrent read cannot slip between check and delete.
        locked = await Message.filter(id=message.id).select_for_update().first()
        assert locked is not None
        if await MessageRead.filter(message_id=message.id).exclude(participant_id=me.id).exists():
            raise Conflict(_("This message was already read: it can no longer be deleted."))
        now = datetime.now(UTC)
        await Message.filter(id=message.id).update(deleted_at=now)
        message.deleted_at = now
        conversation = await Conversation.get(id=message.conversation_id)  # type: ignore[attr-defined]
        recipients = await _recipients(conversation)
        await _scrub_stored_event(message, recipients)
        await emit(
            recipients,
            "message.deleted",
            {"conversation_id": conversation.id, "message_id": message.id},
        )
        await audit.record(
            actor,
            "message.deleted",
            object_type="message",
            object_id=message.id,
            client_id=conversation.client_id,  # type: ignore[attr-defined]
        )


async def notify_typing(actor: Caller, conversation: Conversation, me: Participant) -> None:
    """Typing is ephemeral: not stored, no seq; a missed one is harmless."""
    recipients = [r for r in await _recipients(conversation) if r != me.recipient]
    await hub.publish_ephemeral(
        recipients,
        {
            "type": "typing",
            "data": {
                # Ids only: this push crosses Redis, and the tab already knows the names.
                "conversation_id": conversation.id,
                "participant_id": me.id,
            },
        },
    )
