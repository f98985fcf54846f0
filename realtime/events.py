"""The event envelope and how actions emit events.

Each recipient ("s:<staff id>" or "c:<portal account id>") has its own gapless sequence.
``emit()`` takes the next numbers under the recipient's cursor row lock, writes the events
in the caller's transaction, and publishes a notice of them after commit. The lock orders a
recipient's events by commit, so a socket that has seen seq N has seen everything before N.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
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


# PostgreSQL advances the cursors and stores the events in one statement: one round trip
# instead of two, for every message sent. The events join the cursor rows that the first part
# returns, so they are written under its row locks and take its numbers; the cursors are
# advanced in sorted order, as everywhere (no deadlock). Arrays keep the statement's text the
# same whatever the number of events, so asyncpg prepares it once per connection.
_PG_TAKE_AND_STORE = (
    "WITH advanced AS ("
    "INSERT INTO realtime_cursor (recipient, last_seq) "
    "SELECT r, n FROM unnest($1::text[], $2::bigint[]) AS c(r, n) ORDER BY r "
    "ON CONFLICT (recipient) DO UPDATE "
    "SET last_seq = realtime_cursor.last_seq + excluded.last_seq "
    "RETURNING recipient, last_seq"
    "), stored AS ("
    "INSERT INTO realtime_event (recipient, seq, type, payload, created_at) "
    "SELECT e.r, advanced.last_seq - e.back, e.t, e.p::jsonb, $7::timestamptz "
    "FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[]) WITH ORDINALITY "
    "AS e(r, back, t, p, i) JOIN advanced ON advanced.recipient = e.r ORDER BY e.i"
    ") SELECT recipient, last_seq FROM advanced"
)


async def _take_seqs_and_store(
    planned: Sequence[tuple[str, str, dict[str, Any], str]],
    counts: dict[str, int],
    back: Sequence[int],
) -> dict[str, int]:
    """PostgreSQL: ``_take_seqs`` and ``_insert_events`` in one statement (see above)."""
    keys = sorted(counts)
    rows = await connection().execute_query_dict(
        _PG_TAKE_AND_STORE,
        [
            keys,
            [counts[k] for k in keys],
            [p[0] for p in planned],
            list(back),
            [p[1] for p in planned],
            [p[3] for p in planned],
            datetime.now(UTC),
        ],
    )
    return {str(r["recipient"]): int(r["last_seq"]) for r in rows}


# PostgreSQL: the first part of a write's statement whose events follow it in the same
# statement (messages: server/actions/messaging.py). It locks the cursor rows of the
# recipients in ``{recipients}`` (a sorted, distinct text array) in that order, as every emit
# advances them, so two writers cannot deadlock; it finds only rows that exist, and the
# statement checks that it found one for each recipient. A write that numbers its rows (a
# message id) after these locks numbers them in the order its events reach the recipients:
# two messages sent at once to one conversation get ids in the order everyone receives them,
# so the history (by id) and the live stream agree. Each row is looked up by its key, one
# by one in the array's order: ``recipient = ANY(...)`` let PostgreSQL's generic plan scan
# every cursor instead (docs/performance.md, fifteenth round). SQLite needs nothing: its
# writers take turns for the whole transaction.
PG_LOCK_CURSORS = (
    "SELECT c.recipient FROM unnest({recipients}) AS k(r) CROSS JOIN LATERAL ("
    "SELECT recipient FROM realtime_cursor WHERE recipient = k.r FOR NO KEY UPDATE) c"
)


def pg_number_and_store(planned: str, created_at: str) -> str:
    """PostgreSQL: two CTEs, ``advanced`` (recipient, last_seq) and ``stored``, that number
    and store the events of the CTE named ``planned``, under the cursor locks
    ``PG_LOCK_CURSORS`` took earlier in the same statement. ``planned`` has a row per event:
    recipient, type, payload (jsonb), k (its rank among the recipient's events in the
    statement, from 1) and total (how many the recipient has in it): the seq is the
    recipient's new last seq minus ``total - k``, as ``numbered()`` computes it."""
    return (
        "advanced AS ("
        "UPDATE realtime_cursor c SET last_seq = c.last_seq + p.total "
        f"FROM (SELECT DISTINCT recipient, total FROM {planned}) p "
        "WHERE c.recipient = p.recipient RETURNING c.recipient, c.last_seq"
        "), stored AS ("
        "INSERT INTO realtime_event (recipient, seq, type, payload, created_at) "
        f"SELECT p.recipient, a.last_seq - p.total + p.k, p.type, p.payload, {created_at} "
        f"FROM {planned} p JOIN advanced a ON a.recipient = p.recipient "
        "ORDER BY p.recipient, p.k)"
    )


@dataclass(slots=True)
class Plan:
    """The events of some notices before they are numbered: one per (notice, recipient)."""

    planned: list[tuple[str, str, dict[str, Any], str]]  # recipient, type, payload, JSON
    counts: dict[str, int]  # events per recipient
    # How many of its recipient's events in the plan follow each one: its seq is the
    # recipient's new last seq minus that.
    back: list[int]


def plan(notices: Sequence[tuple[Iterable[str], str, dict[str, Any]]]) -> Plan:
    """A recipient's events follow the order of ``notices``; each notice goes once to each
    of its recipients, in sorted order."""
    planned: list[tuple[str, str, dict[str, Any], str]] = []
    counts: dict[str, int] = {}
    for recipients, type_, payload in notices:
        data = dump_payload(payload)
        for recipient in sorted(set(recipients)):
            planned.append((recipient, type_, payload, data))
            counts[recipient] = counts.get(recipient, 0) + 1
    back: list[int] = []
    seen: dict[str, int] = {}
    for recipient, _type, _payload, _data in planned:
        k = seen[recipient] = seen.get(recipient, 0) + 1
        back.append(counts[recipient] - k)
    return Plan(planned, counts, back)


def numbered(p: Plan, last: dict[str, int]) -> list[Event]:
    """The plan's events, from each recipient's new last seq."""
    return [
        Event(recipient, last[recipient] - b, type_, payload, data)
        for (recipient, type_, payload, data), b in zip(p.planned, p.back, strict=True)
    ]


def publisher(events: Sequence[Event]) -> Callable[[], Awaitable[None]]:
    """What publishes ``events`` once their write has committed."""

    async def publish() -> None:
        from realtime.hub import hub

        await hub.publish(events)

    return publish


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
    p = plan(notices)
    if not p.planned:
        return []
    postgres = dialect() == "postgres"
    last = await (
        _take_seqs_and_store(p.planned, p.counts, p.back) if postgres else _take_seqs(p.counts)
    )
    events = numbered(p, last)
    if not postgres:
        await _insert_events(events)
    on_commit(publisher(events))
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


__all__ = [
    "PG_LOCK_CURSORS",
    "Event",
    "Plan",
    "emit",
    "emit_many",
    "events_after",
    "last_seq",
    "numbered",
    "pg_number_and_store",
    "plan",
    "publisher",
    "dialect",
]
