"""Conversation lists, threads and unread counts for one caller."""

from __future__ import annotations

from typing import Any

from tortoise.expressions import Subquery
from tortoise.functions import Max

from models.clients import Client
from models.messaging import Conversation, Message, MessageRead, Participant
from realtime.hub import hub
from server.actions.messaging import participant_payload, present
from server.auth.sessions import Caller
from server.db import connection, placeholders


def _mine(caller: Caller) -> dict[str, int]:
    if caller.staff is not None:
        return {"staff_user_id": caller.staff.id}
    assert caller.account is not None
    return {"portal_account_id": caller.account.id}


async def unread_counts(caller: Caller) -> dict[int, int]:
    """Unread messages per conversation: from others, not deleted, not read by me."""
    column, value = next(iter(_mine(caller).items()))
    p = placeholders(1)[0]
    sql = f"""
        SELECT m.conversation_id AS cid, COUNT(*) AS n
        FROM conversation_participant p
        JOIN message m ON m.conversation_id = p.conversation_id
        LEFT JOIN message_read r ON r.message_id = m.id AND r.participant_id = p.id
        WHERE p.{column} = {p} AND p.left_at IS NULL AND m.sender_id <> p.id
          AND m.deleted_at IS NULL AND r.id IS NULL
        GROUP BY m.conversation_id
    """
    rows = await connection().execute_query_dict(sql, [value])
    return {int(r["cid"]): int(r["n"]) for r in rows}


async def conversation_list(
    caller: Caller, *, q: str = "", waiting: bool = False
) -> dict[str, Any]:
    mine = await Participant.filter(**_mine(caller), left_at=None).values_list(
        "conversation_id", flat=True
    )
    query = Conversation.filter(id__in=list(mine))
    if waiting:
        query = query.filter(awaiting_staff=True)
    q = q.strip()
    # The newest message that matched, per conversation: the page opens the thread there.
    matched: dict[int, int] = {}
    if q:
        by_subject: list[int] = await query.filter(subject__icontains=q).values_list(  # type: ignore[assignment]
            "id", flat=True
        )
        ids = set(by_subject)
        matched = {
            int(r["conversation_id"]): int(r["newest"])
            for r in await Message.filter(
                conversation_id__in=list(mine), body__icontains=q, deleted_at=None
            )
            .annotate(newest=Max("id"))
            .group_by("conversation_id")
            .values("conversation_id", "newest")
        }
        ids |= set(matched)
        client_ids = (
            await Client.filter(id__in=await query.values_list("client_id", flat=True))
            .filter(first_name__icontains=q)
            .values_list("id", flat=True)
        )
        client_ids += (
            await Client.filter(id__in=await query.values_list("client_id", flat=True))
            .filter(last_name__icontains=q)
            .values_list("id", flat=True)
        )
        by_client: list[int] = await query.filter(client_id__in=client_ids).values_list(  # type: ignore[assignment]
            "id", flat=True
        )
        ids |= set(by_client)
        query = query.filter(id__in=list(ids))
    conversations = await query.order_by("-last_activity_at", "-id").limit(200)
    counts = await unread_counts(caller)
    parts = await Participant.filter(conversation_id__in=[c.id for c in conversations])
    by_conv: dict[int, list[Participant]] = {}
    for p in parts:
        by_conv.setdefault(p.conversation_id, []).append(p)  # type: ignore[attr-defined]
    items = [
        {
            "id": c.id,
            "kind": c.kind.value,
            "subject": c.subject,
            "group_name": c.group_name,
            "client_id": c.client_id,  # type: ignore[attr-defined]
            "last_activity_at": c.last_activity_at.isoformat(),
            "awaiting_staff": c.awaiting_staff,
            "unread": counts.get(c.id, 0),
            "participants": [participant_payload(p) for p in by_conv.get(c.id, [])],
            "match_id": matched.get(c.id),
        }
        for c in conversations
    ]
    return {"conversations": items, "unread_total": sum(counts.values())}


# Messages per page of a thread: a conversation of years opens at once, at its newest.
THREAD_PAGE = 50


async def thread(
    caller: Caller, conversation: Conversation, me: Participant, *, before: int | None = None
) -> dict[str, Any]:
    """The newest page of the history (newcomers see all of it too), or the page before the
    message ``before``, oldest first, with read receipts on every message; ``has_more`` when
    older messages remain."""
    participants = await Participant.filter(conversation_id=conversation.id).order_by("id")
    by_id = {p.id: p for p in participants}
    query = Message.filter(conversation_id=conversation.id, deleted_at=None)
    if before is not None:
        query = query.filter(id__lt=before)
    page = await query.order_by("-id").limit(THREAD_PAGE + 1)
    has_more = len(page) > THREAD_PAGE
    messages = page[:THREAD_PAGE][::-1]
    reads = await MessageRead.filter(message_id__in=[m.id for m in messages]).values(
        "message_id", "participant_id", "created_at"
    )
    reads_by: dict[int, list[dict[str, Any]]] = {}
    for r in reads:
        reads_by.setdefault(r["message_id"], []).append(
            {
                "participant_id": r["participant_id"],
                "name": by_id[r["participant_id"]].display_name,
                "read_at": r["created_at"].isoformat(),
            }
        )
    staff = [p for p in participants if p.staff_user_id is not None]  # type: ignore[attr-defined]
    return {
        "conversation": {
            "id": conversation.id,
            "kind": conversation.kind.value,
            "subject": conversation.subject,
            "group_name": conversation.group_name,
            "client_id": conversation.client_id,  # type: ignore[attr-defined]
            "awaiting_staff": conversation.awaiting_staff,
        },
        "me": participant_payload(me),
        "participants": [
            dict(participant_payload(p), online=hub.is_online(p.recipient) if p in staff else None)
            for p in participants
        ],
        "counts": {
            "staff": len(staff),
            "clients": sum(1 for p in present(participants) if p.role.value == "client"),
            "linked": sum(1 for p in present(participants) if p.role.value == "linked"),
        },
        "messages": [
            {
                "id": m.id,
                "body": m.body,
                "client_uid": m.client_uid,
                "created_at": m.created_at.isoformat(),
                "sender": participant_payload(by_id[m.sender_id]),  # type: ignore[attr-defined]
                "reads": [r for r in reads_by.get(m.id, []) if r["participant_id"] != m.sender_id],  # type: ignore[attr-defined]
            }
            for m in messages
        ],
        "has_more": has_more,
    }


async def presence_audience(recipient: str) -> list[str]:
    """Everyone who shares a conversation with this staff member ("s:<id>"): they are the
    ones whose participant lists show the staff member's online dot."""
    staff_id = int(recipient.removeprefix("s:"))
    theirs = Subquery(
        Participant.filter(staff_user_id=staff_id, left_at=None).values("conversation_id")
    )
    rows = (
        # Not those who left (an unlinked account): they no longer see the list.
        await Participant.filter(conversation_id__in=theirs, left_at=None)
        .distinct()
        .values_list("staff_user_id", "portal_account_id")
    )
    return sorted({f"s:{s}" if s is not None else f"c:{c}" for s, c in rows} - {recipient})
