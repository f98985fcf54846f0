"""realtime/events.py: how events are numbered and stored, on SQLite (two statements) and on
PostgreSQL (one statement that advances the cursors and stores the events)."""

from __future__ import annotations

import pytest

from models.realtime import RealtimeCursor, RealtimeEvent
from realtime.events import emit_many
from server.db import atomic

pytestmark = pytest.mark.usefixtures("db")


async def stored() -> list[tuple[str, int, str, dict[str, int]]]:
    rows = await RealtimeEvent.all().order_by("recipient", "seq")
    return [(r.recipient, r.seq, r.type, r.payload) for r in rows]


async def test_each_recipient_gets_consecutive_seqs_in_the_order_of_the_notices() -> None:
    async with atomic():
        first = await emit_many(
            [
                (["s:1", "c:2"], "a", {"n": 1}),
                (["s:1"], "b", {"n": 2}),
                (["c:2", "s:1", "s:1"], "c", {"n": 3}),  # a recipient twice: one event
            ]
        )
    assert [(e.recipient, e.seq, e.type) for e in first] == [
        ("c:2", 1, "a"),
        ("s:1", 1, "a"),
        ("s:1", 2, "b"),
        ("c:2", 2, "c"),
        ("s:1", 3, "c"),
    ]
    async with atomic():
        second = await emit_many([(["s:1", "s:9"], "d", {"n": 4}), (["s:9"], "e", {"n": 5})])
    assert [(e.recipient, e.seq, e.type) for e in second] == [
        ("s:1", 4, "d"),
        ("s:9", 1, "d"),
        ("s:9", 2, "e"),
    ]
    # What is stored is what was published.
    assert await stored() == [
        ("c:2", 1, "a", {"n": 1}),
        ("c:2", 2, "c", {"n": 3}),
        ("s:1", 1, "a", {"n": 1}),
        ("s:1", 2, "b", {"n": 2}),
        ("s:1", 3, "c", {"n": 3}),
        ("s:1", 4, "d", {"n": 4}),
        ("s:9", 1, "d", {"n": 4}),
        ("s:9", 2, "e", {"n": 5}),
    ]
    cursors = {c.recipient: c.last_seq for c in await RealtimeCursor.all()}
    assert cursors == {"c:2": 2, "s:1": 4, "s:9": 2}
    assert [e.frame() for e in second][:1] == ['{"seq":4,"type":"d","data":{"n":4}}']


async def test_events_of_a_rolled_back_transaction_are_neither_stored_nor_numbered() -> None:
    with pytest.raises(RuntimeError):
        async with atomic():
            await emit_many([(["s:1"], "a", {"n": 1})])
            raise RuntimeError("the write failed")
    async with atomic():
        [event] = await emit_many([(["s:1"], "b", {"n": 2})])
    assert event.seq == 1
    assert await stored() == [("s:1", 1, "b", {"n": 2})]
