"""The event envelope and how actions emit events.

Each recipient ("s:<staff id>" or "c:<portal account id>") has its own gapless sequence.
``emit()`` takes the next numbers under the recipient's cursor row lock, writes the events
in the caller's transaction, and publishes a notice of them after commit. The lock orders a
recipient's events by commit, so a socket that has seen seq N has seen everything before N.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.realtime import RealtimeEvent
from server.db import connection, dialect, on_commit, placeholders, values_rows

# Rows of events per INSERT: well under every driver's limit on bound parameters.
INSERT_ROWS = 1000


def staff_recipient(staff_id: int) -> str:
    return f"s:{staff_id}"


def client_recipient(portal_account_id: int) -> str:
    return f"c:{portal_account_id}"


def dump_payload(payload: dict[str, Any]) -> str:
    """A payload as the JSON text that is stored and sent (as Tortoise's JSONField writes it)."""
    return json.dumps(payload, separators=(",", ":"))


def frame_text(seq: int, type: str, data: str) -> str:
    """The socket frame of an event whose payload is already JSON text: see docs/realtime.md."""
    return f'{{"seq":{seq},"type":{json.dumps(type)},"data":{data}}}'


@dataclass(frozen=True, slots=True)
class Event:
    recipient: str
    seq: int
    type: str
    payload: dict[str, Any]
    # The payload as JSON text, written once for all the recipients of one notice: it is
    # stored and sent as it is (a message to six people is encoded once, not twelve times).
    data: str

    def envelope(self) -> dict[str, Any]:
        """What the socket sends, as a dict: see docs/realtime.md."""
        return {"seq": self.seq, "type": self.type, "data": self.payload}

    def frame(self) -> str:
        """What the socket sends, as text."""
        return frame_text(self.seq, self.type, self.data)


async def _take_seqs(counts: dict[str, int]) -> dict[str, int]:
    """Advance each recipient's cursor by its count, in one statement; returns the new
    last seq of each. Call inside ``atomic()``: the cursor rows stay locked until commit."""
    keys = sorted(counts)
    sql = (
        f"INSERT INTO realtime_cursor (recipient, last_seq) VALUES {values_rows(len(keys), 2)} "
        "ON CONFLICT (recipient) DO UPDATE "
        "SET last_seq = realtime_cursor.last_seq + excluded.last_seq "
        "RETURNING recipient, last_seq"
    )
    params: list[Any] = []
    for key in keys:
        params += [key, counts[key]]
    rows = await connection().execute_query_dict(sql, params)
    return {str(r["recipient"]): int(r["last_seq"]) for r in rows}


async def lock_cursors(recipients: Iterable[str]) -> None:
    """Take the recipients' cursor locks now, before the write whose events will follow.

    Call inside ``server.db.atomic()``, first thing. A write that numbers its rows (a
    message id) after this call numbers them in the order its events reach the recipients:
    two messages sent at once to one conversation get ids in the order everyone receives
    them, so the history (by id) and the live stream agree. SQLite needs nothing: its
    writers take turns for the whole transaction.
    """
    if dialect() != "postgres":
        return
    keys = sorted(set(recipients))
    if not keys:
        return
    # One statement: new recipients get their row (locked by the insert), existing rows
    # are locked by the no-op update, in sorted order as emit() advances them, so two
    # senders cannot deadlock.
    await connection().execute_query(
        "INSERT INTO realtime_cursor (recipient, last_seq) "
        "SELECT k, 0 FROM unnest($1::text[]) AS k ORDER BY k "
        "ON CONFLICT (recipient) DO UPDATE SET last_seq = realtime_cursor.last_seq",
        [keys],
    )


async def emit(recipients: Iterable[str], type: str, payload: dict[str, Any]) -> list[Event]:
    """Store ``type``/``payload`` for each recipient and publish once committed.

    Call inside ``server.db.atomic()``.
    """
    return await emit_many([(recipients, type, payload)])


async def emit_many(
    notices: Sequence[tuple[Iterable[str], str, dict[str, Any]]],
) -> list[Event]:
    """``emit()`` for several events at once: one cursor statement and one insert for all.

    Call inside ``server.db.atomic()``. A recipient's events get consecutive seqs in the
    order of ``notices``. Cursors are advanced in sorted order, so two transactions touching
    the same people lock their cursor rows in the same order (no deadlock).
    """
    planned: list[tuple[str, str, dict[str, Any], str]] = []
    counts: dict[str, int] = {}
    for recipients, type_, payload in notices:
        data = dump_payload(payload)
        for recipient in sorted(set(recipients)):
            planned.append((recipient, type_, payload, data))
            counts[recipient] = counts.get(recipient, 0) + 1
    if not planned:
        return []
    last = await _take_seqs(counts)
    # The first seq of each recipient in this call, then one more per event.
    nxt = {r: last[r] - n + 1 for r, n in counts.items()}
    events: list[Event] = []
    for recipient, type_, payload, data in planned:
        events.append(Event(recipient, nxt[recipient], type_, payload, data))
        nxt[recipient] += 1
    await _insert_events(events)

    async def publish() -> None:
        from realtime.hub import hub

        await hub.publish(events)

    on_commit(publish)
    return events


async def _insert_events(events: Sequence[Event]) -> None:
    """Store the events, their payloads as the JSON text already written. Hand-written: it
    runs for every message, and the ORM's bulk insert built a model and encoded the payload
    again for each recipient."""
    now = datetime.now(UTC)
    for start in range(0, len(events), INSERT_ROWS):
        chunk = events[start : start + INSERT_ROWS]
        params: list[Any] = []
        for e in chunk:
            params += [e.recipient, e.seq, e.type, e.data, now]
        await connection().execute_query(
            "INSERT INTO realtime_event (recipient, seq, type, payload, created_at) "
            f"VALUES {values_rows(len(chunk), 5)}",
            params,
        )


async def events_after(recipient: str, after: int, limit: int = 1000) -> list[Event]:
    rows = (
        await RealtimeEvent.filter(recipient=recipient, seq__gt=after)
        .order_by("seq")
        .limit(limit)
        .values("seq", "type", "payload")
    )
    return [
        Event(recipient, r["seq"], r["type"], r["payload"], dump_payload(r["payload"]))
        for r in rows
    ]


async def last_seq(recipient: str) -> int:
    rows = await connection().execute_query_dict(
        f"SELECT last_seq FROM realtime_cursor WHERE recipient = {placeholders(1)[0]}",
        [recipient],
    )
    return int(rows[0]["last_seq"]) if rows else 0


__all__ = ["Event", "emit", "emit_many", "events_after", "last_seq", "lock_cursors", "dialect"]
