"""Secure messaging: conversations, participants, messages, read receipts.

Every function here writes in one ``atomic()`` block and emits its realtime events to every
participant; the events are published only once the block has committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import Subquery

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
from realtime.events import (
    PG_LOCK_CURSORS,
    client_recipient,
    dump_payload,
    emit,
    emit_many,
    numbered,
    pg_number_and_store,
    plan,
    publisher,
    staff_recipient,
)
from realtime.hub import hub
from server.actions import audit, reminders
from server.auth.sessions import Caller
from server.db import (
    AfterCommit,
    atomic,
    connection,
    dialect,
    durable,
    from_row,
    in_atomic,
    on_commit,
    placeholders,
    values_rows,
)
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _

MAX_BODY = 10_000
log = logging.getLogger(__name__)


# --- payloads (what screens need, never more) ----------------------------------------------


def participant_payload(p: Participant) -> dict[str, Any]:
    return {
        "id": p.id,
        "role": p.role.value,
        "name": p.display_name,
        "staff_id": p.staff_user_id,  # type: ignore[attr-defined]
        "portal_account_id": p.portal_account_id,  # type: ignore[attr-defined]
        "left": p.left_at is not None,
    }


def present(participants: Iterable[Participant]) -> list[Participant]:
    """Those still in the conversation: who hears of it (left ones keep their name on the
    messages they wrote, nothing more)."""
    return [p for p in participants if p.left_at is None]


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
    parts = await Participant.filter(conversation_id=conversation.id, left_at=None)
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
    if first_message is not None and client_uid:
        earlier = await _started_before(actor, client_uid)
        if earlier is not None:
            return earlier
    return await _open_conversation(
        actor,
        kind=kind,
        subject=subject,
        group_name=group_name,
        client=client,
        staff=list(members.values()),
        accounts=accounts,
        first_message=first_message,
        client_uid=client_uid,
    )


async def _started_before(actor: Caller, client_uid: str) -> Conversation | None:
    """Sent again (the answer was lost, the dialog submitted twice): the conversation the
    first request started, found by its first message's ``client_uid``, not a second one
    with the same message, which the others would read twice."""
    sender = (
        {"sender__staff_user_id": actor.staff.id}
        if actor.staff is not None
        else {"sender__portal_account_id": actor.account.id if actor.account else None}
    )
    earlier = await Message.filter(client_uid=client_uid, **sender).first()
    if earlier is None:
        return None
    return await Conversation.get(id=earlier.conversation_id)  # type: ignore[attr-defined]


async def _open_conversation(
    actor: Caller,
    *,
    kind: ConversationKind,
    subject: str,
    group_name: str | None,
    client: Client | None,
    staff: Sequence[StaffUser],
    accounts: Sequence[tuple[PortalAccount, Client, ParticipantRole]],
    first_message: str | None,
    client_uid: str | None,
) -> Conversation:
    """Write a new conversation, its participants (the actor among them) and the actor's
    first message; its events go out once committed. Call with everything checked."""
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
        parts = [_staff_participant(conversation, s, by) for s in staff]
        parts += [_client_participant(conversation, a, c, r, by) for a, c, r in accounts]
        await Participant.bulk_create(parts)
        parts = await Participant.filter(conversation_id=conversation.id).order_by("id")
        await emit(
            [p.recipient for p in parts],
            "conversation.created",
            conversation_payload(conversation, parts),
        )
        if first_message:
            me = next(p for p in parts if p.recipient == actor.recipient)
            await _send(conversation, me, first_message, client_uid or f"first-{conversation.id}")
        await audit.record(
            actor,
            "conversation.created",
            object_type="conversation",
            object_id=conversation.id,
            client_id=client.id if client else None,
        )
    return conversation


async def who_hears_a_client(client: Client) -> list[StaffUser]:
    """Whom a conversation a client starts goes to: their therapist, where the therapist may
    use the portal; else the practice's owners who may (a client with no therapist yet, or
    whose therapist left or keeps off the portal, still reaches someone responsible for
    their file). Empty when nobody may."""
    therapist = await StaffUser.get_or_none(
        id=client.therapist_id,  # type: ignore[attr-defined]
        is_active=True,
        portal_enabled=True,
    )
    if therapist is not None and therapist.role is not StaffRole.OFFICE_ADMIN:
        return [therapist]
    return await StaffUser.filter(
        practice_id=client.practice_id,  # type: ignore[attr-defined]
        role=StaffRole.OWNER,
        is_active=True,
        portal_enabled=True,
    ).order_by("id")


async def do_client_starts_conversation(
    actor: Caller, *, subject: str, first_message: str, client_uid: str
) -> Conversation:
    """A client writes first, from the portal: a conversation about their own file with
    ``who_hears_a_client``. Nobody else is added (a linked parent is added by the staff,
    as in a conversation the staff start). Sent again with the same ``client_uid`` (the
    answer was lost), the conversation the first request started."""
    assert actor.account is not None and actor.client is not None
    client, account = actor.client, actor.account
    missing: dict[str, str] = {}
    if not subject.strip():
        missing["subject"] = _("A subject is required.")
    if not first_message.strip():
        missing["body"] = _("The message is empty.")
    if missing:  # both at once: the dialog marks each field that needs something
        raise ValidationFailed(_("Some fields are missing."), missing)
    body = check_body(first_message)
    earlier = await _started_before(actor, client_uid)
    if earlier is not None:
        return earlier
    staff = await who_hears_a_client(client)
    if not staff:
        raise Conflict(
            _(
                "Your practice cannot receive secure messages yet. Please contact it by "
                "phone or email."
            )
        )
    return await _open_conversation(
        actor,
        kind=ConversationKind.CLIENT,
        subject=subject,
        group_name=None,
        client=client,
        staff=staff,
        accounts=[(account, client, ParticipantRole.CLIENT)],
        first_message=body,
        client_uid=client_uid,
    )


async def hand_over_conversations(actor: Caller, leaving: StaffUser) -> int:
    """A client conversation whose only staff member leaves the practice gets
    ``who_hears_a_client``: otherwise the client's next message there (their portal still
    lists it and takes it) would reach no one, and nobody would be told. Those added see
    the history, as anyone added does. Call inside ``atomic()``, once ``leaving`` is
    inactive. Returns how many conversations were handed over."""
    handed = 0
    conversations = await Conversation.filter(
        kind=ConversationKind.CLIENT,
        participants__staff_user_id=leaving.id,
        participants__left_at=None,
    ).distinct()
    for conversation in conversations:
        handed += await _give_heirs_if_unheard(actor, conversation)
    return handed


async def _give_heirs_if_unheard(actor: Caller, conversation: Conversation) -> int:
    """A client conversation with no active staff member in it gets ``who_hears_a_client``.
    Returns 1 when it did."""
    staff_ids = await Participant.filter(
        conversation_id=conversation.id, role=ParticipantRole.STAFF, left_at=None
    ).values_list("staff_user_id", flat=True)
    if await StaffUser.filter(id__in=list(staff_ids), is_active=True).exists():
        return 0
    client = await Client.get_or_none(id=conversation.client_id, deleted_at=None)  # type: ignore[attr-defined]
    heirs = await who_hears_a_client(client) if client is not None else []
    if not heirs:
        return 0
    await _add_staff(actor, conversation, heirs)
    return 1


async def _add_staff(actor: Caller, conversation: Conversation, staff: Sequence[StaffUser]) -> None:
    """Staff added by the practice's own rules (a hand-over), not by someone's choice: those
    already in are left as they are, and one who had left comes back."""
    existing = await Participant.filter(
        conversation_id=conversation.id, staff_user_id__in=[s.id for s in staff]
    )
    gone = [p.id for p in existing if p.left_at is not None]
    if gone:
        await Participant.filter(id__in=gone).update(left_at=None, updated_at=datetime.now(UTC))
        everyone = await Participant.filter(conversation_id=conversation.id).order_by("id")
        back = [p for p in everyone if p.id in gone]
        await emit(
            [p.recipient for p in present(everyone)],
            "conversation.participants_added",
            {
                "conversation": conversation_payload(conversation, everyone),
                "added": [participant_payload(p) for p in back],
            },
        )
    known = {p.staff_user_id for p in existing}  # type: ignore[attr-defined]
    new = [s for s in staff if s.id not in known and s.is_active]
    if new:
        await do_add_participants(
            actor, conversation, staff=new, group_name=conversation.group_name or _("Care team")
        )


async def hand_over_client(
    actor: Caller, client: Client, previous: StaffUser | None, therapist: StaffUser | None
) -> None:
    """The client went from ``previous`` to ``therapist`` (client_file.do_assign_therapist):
    their conversations follow. The new therapist joins each and sees its history, as anyone
    added does; the previous one leaves those they may no longer see the client of (not a
    supervisor of the new one, nor an owner), and what their tabs could replay of them is
    withdrawn. Without this the client's next message, perhaps about how they are doing,
    went to the therapist who could no longer open the file, and the one now responsible
    was never told. A conversation left with no one on staff gets ``who_hears_a_client``.
    Call inside ``atomic()``, after the client's therapist is saved."""
    from server.access import visible_clients  # the access checks import the actions' models

    conversations = await Conversation.filter(kind=ConversationKind.CLIENT, client_id=client.id)
    if not conversations:
        return
    if therapist is not None:
        for conversation in conversations:
            await _add_staff(actor, conversation, [therapist])
    if previous is None:
        return
    who = Caller.acting_as(previous)
    if await (await visible_clients(who)).filter(id=client.id).exists():
        return
    leaving = await Participant.filter(
        conversation_id__in=[c.id for c in conversations],
        staff_user_id=previous.id,
        left_at=None,
    )
    if not leaving:
        return
    await _leave(staff_recipient(previous.id), leaving)
    for conversation in conversations:
        await _give_heirs_if_unheard(actor, conversation)


async def do_add_participants(
    actor: Caller,
    conversation: Conversation,
    *,
    staff: Sequence[StaffUser] = (),
    linked_clients: Sequence[Client] = (),
    group_name: str | None = None,
) -> list[Participant]:
    """Add people to a conversation; newcomers see the whole history. A linked account that
    left it (unlinked from the client) and is added again comes back."""
    existing = await Participant.filter(conversation_id=conversation.id)
    still_in = present(existing)
    staff_ids = {p.staff_user_id for p in existing}  # type: ignore[attr-defined]
    account_ids = {p.portal_account_id for p in still_in}  # type: ignore[attr-defined]
    gone = {p.portal_account_id: p for p in existing if p.left_at is not None}  # type: ignore[attr-defined]
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
    total = len(still_in) + len(new_staff) + len(new_accounts)
    name = (group_name or "").strip() or conversation.group_name
    check_subject(conversation.subject, name, total)

    async with atomic():
        renamed = name != conversation.group_name
        conversation.group_name = name
        by = actor.label
        parts = [_staff_participant(conversation, s, by) for s in new_staff]
        parts += [
            _client_participant(conversation, a, c, ParticipantRole.LINKED, by)
            for a, c in new_accounts
            if a.id not in gone
        ]
        await Participant.bulk_create(parts)
        back = [gone[a.id].id for a, _c in new_accounts if a.id in gone]
        if back:
            await Participant.filter(id__in=back).update(left_at=None, updated_at=datetime.now(UTC))
        everyone = await Participant.filter(conversation_id=conversation.id).order_by("id")
        was_in = {e.id for e in still_in}
        added = [p for p in present(everyone) if p.id not in was_in]
        await emit(
            [p.recipient for p in present(everyone)],
            "conversation.participants_added",
            {
                "conversation": conversation_payload(conversation, everyone),
                "added": [participant_payload(p) for p in added],
            },
        )
        # The conversation row after the cursors, as a send takes them (PostgreSQL): a send
        # holds its recipients' cursors and then updates the conversation's activity, so
        # renaming it first could deadlock with one.
        if renamed:
            await conversation.save(update_fields=["group_name", "updated_at"])
        await audit.record(
            actor,
            "conversation.participants_added",
            object_type="conversation",
            object_id=conversation.id,
            client_id=conversation.client_id,  # type: ignore[attr-defined]
            detail={"participants": [p.display_name for p in added]},
        )
    return added


async def leave_client_conversations(account: PortalAccount, client: Client) -> int:
    """A linked account unlinked from ``client`` leaves the client's conversations it is in:
    from now on it hears of them no more and reaches them no more (``left_at``). Everyone
    in each, the leaver included (its open tab drops it), is told. Call inside ``atomic()``.
    Returns how many it left."""
    leaving = await Participant.filter(
        conversation_id__in=Subquery(Conversation.filter(client_id=client.id).values("id")),
        role=ParticipantRole.LINKED,
        portal_account_id=account.id,
        left_at=None,
    )
    if not leaving:
        return 0
    await _leave(client_recipient(account.id), leaving)
    return len(leaving)


async def _leave(recipient: str, leaving: Sequence[Participant]) -> None:
    """``leaving`` (one person's rows) leave their conversations: they hear of them no more
    and reach them no more. What their tabs could still replay of them goes too (a socket
    resuming from an old seq would otherwise read messages it no longer may), and everyone
    in each, the leaver included (its open tab drops it), is told."""
    now = datetime.now(UTC)
    await Participant.filter(id__in=[p.id for p in leaving]).update(left_at=now, updated_at=now)
    await _withdraw_stored_events(
        recipient,
        {gone.conversation_id for gone in leaving},  # type: ignore[attr-defined]
    )
    for gone in leaving:
        gone.left_at = now
        others = await Participant.filter(conversation_id=gone.conversation_id, left_at=None)  # type: ignore[attr-defined]
        await emit(
            [gone.recipient, *(p.recipient for p in others)],
            "conversation.participant_left",
            {
                "conversation_id": gone.conversation_id,  # type: ignore[attr-defined]
                "participant": participant_payload(gone),
            },
        )


# --- messages ------------------------------------------------------------------------------


@dataclass(slots=True)
class PendingSend:
    """One message on its way into a group commit."""

    conversation: Conversation
    me: Participant
    body: str
    client_uid: str
    # Everyone in the conversation, when the caller read them with the access check.
    participants: Sequence[Participant] | None = None


async def _participants_of(sends: Sequence[PendingSend]) -> dict[int, list[Participant]]:
    """Each conversation's participants: as the sends carry them, or read."""
    found = {s.conversation.id: present(s.participants) for s in sends if s.participants}
    missing = {s.conversation.id for s in sends} - found.keys()
    if missing:
        for p in await Participant.filter(conversation_id__in=sorted(missing), left_at=None):
            found.setdefault(p.conversation_id, []).append(p)  # type: ignore[attr-defined]
    return found


# PostgreSQL writes a group of messages in one statement, which commits on its own when no
# transaction is open (the group commit's case: no BEGIN and no COMMIT to wait for). In
# order: the recipients' cursor locks (realtime.events.PG_LOCK_CURSORS); the messages, whose
# rows pass a filter on the locks that PostgreSQL evaluates once, before the first row, so
# every id is drawn under the locks (and nothing is written when a recipient has no cursor
# row yet); each conversation's activity, from its last new message (``$7``/``$8``: whether
# each sender's message leaves it awaiting the staff); the ``message.created`` events of
# the new messages, numbered under the locks, their payload's id filled in from the row; the
# unread notices of the new messages (server/actions/reminders.py). A conversation row, and a
# notice's job row, is locked while the cursors of all its participants are held, so two
# writers cannot lock them in opposite orders. It returns the new messages, each
# recipient's new last seq, and a row of NULLs when a recipient had no cursor row.
def _pg_send(which: str) -> str:
    return (
        "WITH locked AS (" + PG_LOCK_CURSORS.format(recipients="$1::text[]") + "), sends AS ("
        "SELECT * FROM unnest($2::integer[], $3::integer[], $4::text[], $5::text[], $9::text[]) "
        "WITH ORDINALITY AS m(c, s, b, u, p, i)"
        "), inserted AS ("
        "INSERT INTO message (conversation_id, sender_id, body, client_uid, created_at, "
        "updated_at) "
        "SELECT m.c, m.s, m.b, m.u, $6::timestamptz, $6::timestamptz FROM sends m "
        "WHERE (SELECT count(*) FROM locked) = cardinality($1::text[]) ORDER BY m.i "
        "ON CONFLICT (sender_id, client_uid) DO NOTHING "
        "RETURNING id, conversation_id, sender_id, client_uid"
        "), new AS ("
        "SELECT n.id, n.conversation_id, m.i, m.p FROM inserted n "
        "JOIN sends m ON m.s = n.sender_id AND m.u = n.client_uid"
        "), latest AS ("
        "SELECT DISTINCT ON (n.conversation_id) n.conversation_id, w.waiting FROM inserted n "
        "JOIN unnest($7::integer[], $8::boolean[]) AS w(s, waiting) ON w.s = n.sender_id "
        "ORDER BY n.conversation_id, n.id DESC"
        "), touched AS ("
        "UPDATE conversation SET last_activity_at = $6::timestamptz, awaiting_staff = latest.waiting "
        f"FROM latest WHERE {which}"
        "), planned AS ("
        "SELECT e.r AS recipient, 'message.created' AS type, "
        "jsonb_set(n.p::jsonb, '{id}', to_jsonb(n.id)) AS payload, "
        "row_number() OVER (PARTITION BY e.r ORDER BY n.id) AS k, "
        "count(*) OVER (PARTITION BY e.r) AS total "
        "FROM new n JOIN unnest($10::integer[], $11::text[]) AS e(i, r) ON e.i = n.i"
        "), "
        + pg_number_and_store("planned", "$6::timestamptz")
        + ", notices AS ("
        + reminders.pg_schedule_unread_notices(
            "SELECT DISTINCT ON (j.k) j.k AS key, j.p::jsonb AS payload, j.pr AS practice_id "
            "FROM unnest($12::text[], $13::integer[], $14::text[], $15::integer[]) "
            "AS j(k, i, p, pr) JOIN new n ON n.i = j.i ORDER BY j.k",
            "$6::timestamptz",
        )
        + ") SELECT n.id, n.sender_id, n.client_uid, NULL AS recipient, NULL::bigint AS last_seq "
        "FROM inserted n "
        "UNION ALL SELECT NULL, NULL, NULL, a.recipient, a.last_seq FROM advanced a "
        "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL "
        "WHERE (SELECT count(*) FROM locked) < cardinality($1::text[])"
    )


# The conversations to touch. Messages of several conversations: joined to what was
# inserted. Messages of one conversation (a send on its own, nearly every batch below
# saturation): also named by its id, ``$16``, an equality on the primary key. PostgreSQL
# keeps one generic plan per prepared statement, and with only the join it did badly on
# every send: with no statistics on the tables (autovacuum off, or a young database) the
# generic plan scanned the whole conversation table, dead rows included; with statistics,
# the generic plan's guess at the arrays' lengths made it dearer than a plan for the
# values at hand, so PostgreSQL planned the statement again at every send. A primary-key
# equality is a one-row index lookup in every plan (docs/performance.md, fifteenth round).
_PG_SEND = _pg_send("conversation.id = latest.conversation_id")
_PG_SEND_ONE = _pg_send(
    "conversation.id = $16::integer AND latest.conversation_id = conversation.id"
)


def _leaves_waiting(item: PendingSend) -> bool:
    """Whether the conversation awaits the staff after this message: a client's does."""
    return item.me.role is not ParticipantRole.STAFF


def _announced(
    message: Message,
    item: PendingSend,
    participants: dict[int, list[Participant]],
    recipients: list[str] | None,
) -> tuple[list[str], str, dict[str, Any]]:
    """The ``message.created`` notice of a new message: to everyone in its conversation, or
    to ``recipients`` where the caller names them."""
    who = (
        recipients
        if recipients is not None
        else [p.recipient for p in participants.get(item.conversation.id, [])]
    )
    return who, "message.created", message_payload(message, item.me)


def _stored_message(item: PendingSend, id: int, now: datetime) -> Message:
    return from_row(
        Message,
        {
            "id": id,
            "conversation_id": item.conversation.id,
            "sender_id": item.me.id,
            "body": item.body,
            "client_uid": item.client_uid,
            "deleted_at": None,
            "created_at": now,
            "updated_at": now,
        },
        "",
    )


def _new_ids(unique: Sequence[PendingSend], rows: Sequence[dict[str, Any]]) -> dict[int, int]:
    """{index in ``unique``: id} of the messages the insert returned (rows with an id)."""
    index = {(item.me.id, item.client_uid): i for i, item in enumerate(unique)}
    return {
        index[(int(r["sender_id"]), str(r["client_uid"]))]: int(r["id"])
        for r in rows
        if r["id"] is not None
    }


class _NoCursor(Exception):
    """A recipient of the messages had no cursor row (PostgreSQL's send statement)."""


async def _write_sends_pg(
    unique: Sequence[PendingSend],
    recipients: list[str] | None,
    now: datetime,
    deferred: list[AfterCommit] | None,
) -> tuple[dict[int, int], list[Message | None]]:
    """PostgreSQL: ``_write_sends``' writes, in one statement (``_PG_SEND``); its events are
    published after commit (``deferred``: handed over instead, outside a transaction)."""
    participants = await _participants_of(unique)
    everyone = [p.recipient for parts in participants.values() for p in parts]
    lock = sorted(set(everyone if recipients is None else everyone + recipients))
    # Each message as if stored, its id to be filled in: what its event needs.
    planned = [
        _announced(_stored_message(item, 0, now), item, participants, recipients) for item in unique
    ]
    notices = [
        (key, i, reminders.notice_payload(item.conversation, target), item.conversation)
        for i, item in enumerate(unique, start=1)
        for key, target in reminders.unread_notices(
            item.conversation, item.me, participants.get(item.conversation.id, [])
        )
    ]
    senders = {item.me.id: _leaves_waiting(item) for item in unique}
    params: list[Any] = [
        lock,
        [item.conversation.id for item in unique],
        [item.me.id for item in unique],
        [item.body for item in unique],
        [item.client_uid for item in unique],
        now,
        list(senders),
        list(senders.values()),
        [dump_payload(payload) for _who, _type, payload in planned],
        [i for i, (who, _type, _payload) in enumerate(planned, start=1) for _r in set(who)],
        [r for who, _type, _payload in planned for r in sorted(set(who))],
        [n[0] for n in notices],
        [n[1] for n in notices],
        [dump_payload(n[2]) for n in notices],
        [n[3].practice_id for n in notices],  # type: ignore[attr-defined]
    ]
    conversations = {item.conversation.id for item in unique}
    sql = _PG_SEND
    if len(conversations) == 1:
        sql = _PG_SEND_ONE
        params.append(next(iter(conversations)))
    for attempt in range(2):
        rows = await connection().execute_query_dict(sql, params)
        if all(r["recipient"] is not None or r["id"] is not None for r in rows):
            break
        if attempt:
            raise _NoCursor(lock)
        # A recipient without a cursor row (every participant gets one when the
        # conversation is created, so this is rare): create them, then write.
        await connection().execute_query(
            "INSERT INTO realtime_cursor (recipient, last_seq) "
            "SELECT k, 0 FROM unnest($1::text[]) AS k ORDER BY k ON CONFLICT DO NOTHING",
            [lock],
        )
    ids = _new_ids(unique, rows)
    last = {str(r["recipient"]): int(r["last_seq"]) for r in rows if r["recipient"] is not None}
    stored: list[Message | None] = [None] * len(unique)
    announced = []
    for i in sorted(ids, key=ids.__getitem__):
        message = stored[i] = _stored_message(unique[i], ids[i], now)
        announced.append(_announced(message, unique[i], participants, recipients))
    events = numbered(plan(announced), last)
    if events:
        publish = publisher(events)
        if deferred is not None:
            deferred.append(publish)
        else:
            on_commit(publish)
    return ids, stored


async def _write_sends_sqlite(
    unique: Sequence[PendingSend], recipients: list[str] | None, now: datetime
) -> tuple[dict[int, int], list[Message | None]]:
    """SQLite: ``_write_sends``' writes, in the caller's transaction. It writes first: a
    transaction that reads first and writes second cannot wait for another connection's
    write lock. Its writers take turns for the whole transaction, which orders ids and seqs
    alike."""
    params: list[Any] = []
    for item in unique:
        params += [item.conversation.id, item.me.id, item.body, item.client_uid, now, now]
    rows = await connection().execute_query_dict(
        "INSERT INTO message (conversation_id, sender_id, body, client_uid, created_at, "
        f"updated_at) VALUES {values_rows(len(unique), 6)} "
        "ON CONFLICT (sender_id, client_uid) DO NOTHING "
        "RETURNING id, sender_id, client_uid",
        params,
    )
    ids = _new_ids(unique, rows)
    participants = await _participants_of(unique)
    stored: list[Message | None] = [None] * len(unique)
    created = sorted(ids, key=ids.__getitem__)  # indexes in `unique`, by message id
    for i in created:
        stored[i] = _stored_message(unique[i], ids[i], now)
    # Each conversation takes the activity of its last new message.
    last: dict[int, PendingSend] = {unique[i].conversation.id: unique[i] for i in created}
    if last:
        p = placeholders(3)
        await connection().execute_many(
            f"UPDATE conversation SET last_activity_at = {p[0]}, awaiting_staff = {p[1]} "
            f"WHERE id = {p[2]}",
            [[now, _leaves_waiting(item), cid] for cid, item in sorted(last.items())],
        )
    announced = []
    for i in created:
        message = stored[i]
        assert message is not None
        announced.append(_announced(message, unique[i], participants, recipients))
    await emit_many(announced)
    await reminders.on_messages_sent(
        [
            (unique[i].conversation, unique[i].me, participants.get(unique[i].conversation.id, []))
            for i in created
        ]
    )
    return ids, stored


async def _write_sends(
    sends: Sequence[PendingSend],
    recipients: list[str] | None = None,
    deferred: list[AfterCommit] | None = None,
) -> list[tuple[Message, bool]]:
    """Store messages and their events; (message, created) each.

    Call inside ``atomic()``: the events are published once it commits. On PostgreSQL it
    may also be called outside a transaction with ``deferred``: the writes are one statement
    that commits on its own, and what publishes its events is handed over in that list.
    Idempotent on (sender, client_uid): a send already stored, or the same one twice in
    ``sends``, gives the stored message, ``created`` False, and no event. Messages get ids
    in the order their events reach every recipient.
    """
    # The first send of each (sender, client_uid) writes; the others take its result.
    first: dict[tuple[int, str], int] = {}
    unique: list[PendingSend] = []
    for item in sends:
        if (item.me.id, item.client_uid) not in first:
            first[(item.me.id, item.client_uid)] = len(unique)
            unique.append(item)
    now = datetime.now(UTC)
    if dialect() == "postgres":
        ids, stored = await _write_sends_pg(unique, recipients, now, deferred)
    else:
        ids, stored = await _write_sends_sqlite(unique, recipients, now)
    for i, item in enumerate(unique):
        if stored[i] is None:  # stored before
            stored[i] = await Message.get(sender_id=item.me.id, client_uid=item.client_uid)
    created = sorted(ids, key=ids.__getitem__)
    last: dict[int, PendingSend] = {unique[i].conversation.id: unique[i] for i in created}
    for item in unique:
        if item.conversation.id in last:
            item.conversation.last_activity_at = now
            item.conversation.awaiting_staff = _leaves_waiting(last[item.conversation.id])
    results: list[tuple[Message, bool]] = []
    answered: set[int] = set()
    for item in sends:
        i = first[(item.me.id, item.client_uid)]
        message = stored[i]
        assert message is not None
        results.append((message, i in ids and i not in answered))
        answered.add(i)
    return results


async def _send(
    conversation: Conversation,
    me: Participant,
    body: str,
    client_uid: str,
    recipients: list[str] | None = None,
) -> Message:
    """Send one message in the caller's transaction (call inside ``atomic()``)."""
    [(message, _created)] = await _write_sends(
        [PendingSend(conversation, me, body, client_uid)], recipients
    )
    return message


class SendBatcher:
    """Group commit: the sends that arrive while a transaction commits share the next one.

    The first send of a quiet moment commits alone, at once; the ones that arrive while it
    commits wait and then go together, in one commit (on PostgreSQL one statement, on SQLite
    one transaction and one fsync), and so on. Each sender is answered only once its message is committed and on
    disk. When a batch fails, its sends are tried again one by one, so one bad message fails
    only itself. Events are published once the commit is written, before the senders are
    answered (on SQLite, while the commit's fsync runs).
    """

    MAX_BATCH = 200

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[PendingSend, asyncio.Future[tuple[Message, bool]]]] = []
        self._task: asyncio.Task[None] | None = None

    async def send(self, item: PendingSend) -> tuple[Message, bool]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests, a restarted server)
            self._loop, self._pending, self._task = loop, [], None
        future: asyncio.Future[tuple[Message, bool]] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[PendingSend, asyncio.Future[tuple[Message, bool]]]] = []
        try:
            while self._pending:
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                await self._commit(batch)
        except BaseException as exc:
            # Never leave a sender waiting: whatever stopped the loop answers them all.
            for _item, future in batch + self._pending:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            self._pending = []
            if not isinstance(exc, Exception):
                raise
        finally:
            self._task = None

    async def _commit(
        self, batch: list[tuple[PendingSend, asyncio.Future[tuple[Message, bool]]]]
    ) -> None:
        publish: list[AfterCommit] = []
        try:
            items = [item for item, _ in batch]
            if dialect() == "postgres":  # one statement, committed on its own
                results = await _write_sends(items, deferred=publish)
            else:
                async with atomic(deferred=publish):
                    results = await _write_sends(items)
        except Exception as exc:
            if len(batch) > 1:
                log.warning(
                    "a group commit of %d messages failed (%r): one by one", len(batch), exc
                )
                for one in batch:
                    await self._commit([one])
                return
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        # Published while the commit's fsync runs (server/sqlite.py): the recipients see
        # the message a few hundred microseconds before it is durable, and its sender is
        # told it is sent only after.
        for callback in publish:
            try:
                await callback()
            except Exception:  # committed: the tabs catch up from the stored events
                log.exception("publishing committed messages failed")
        try:
            await durable()
        except Exception as exc:
            for _item, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_item, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


batcher = SendBatcher()


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
    actor: Caller,
    conversation: Conversation,
    me: Participant,
    body: str,
    client_uid: str,
    *,
    participants: Sequence[Participant] | None = None,
) -> tuple[Message, bool]:
    """Send a message; returns (message, created). Idempotent on ``client_uid``: a retry of
    the same send returns the message already stored, and publishes nothing new.

    Outside a transaction the message joins the process's group commit (``batcher``);
    inside one it is written in that transaction. ``participants``: everyone in the
    conversation, when the access check read them (else they are read here).
    """
    item = PendingSend(conversation, me, check_body(body), client_uid, participants)
    if in_atomic():
        [result] = await _write_sends([item])
        return result
    return await batcher.send(item)


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
        # The unread notice's job row after the cursors, as a send takes them (PostgreSQL):
        # a send holds its recipients' cursors when it schedules that notice.
        await reminders.on_messages_read(conversation, me)
    return unread


def _conversation_of(type: str, payload: dict[str, Any]) -> int | None:
    """The conversation a stored event is about (None: not a conversation's event)."""
    if type == "conversation.created":
        return payload.get("id")
    if type == "conversation.participants_added":
        return (payload.get("conversation") or {}).get("id")
    if type.startswith(("conversation.", "message.")):
        return payload.get("conversation_id")
    return None


async def _withdraw_stored_events(recipient: str, conversation_ids: set[int]) -> None:
    """Empty the recipient's stored events about these conversations: each becomes a
    ``withdrawn`` event with no data, so its seq still arrives (no gap) and says nothing."""
    rows = await RealtimeEvent.filter(recipient=recipient).values_list("id", "type", "payload")
    gone = [i for i, t, payload in rows if _conversation_of(t, payload) in conversation_ids]
    if gone:
        await RealtimeEvent.filter(id__in=gone).update(type="withdrawn", payload={})


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
        # Everyone's stored copy, those who left the conversation included.
        everyone = await Participant.filter(conversation_id=conversation.id)
        await _scrub_stored_event(message, [p.recipient for p in everyone])
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
