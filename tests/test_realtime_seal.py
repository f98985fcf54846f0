"""Events sealed in the notices that cross Redis (realtime/seal.py, realtime/hub.py)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis import asyncio as aioredis

from realtime.events import Event
from realtime.hub import CHANNEL, Hub
from realtime.seal import MAX_AGE, Sealer
from server.settings import Settings
from tests.conftest import REDIS_URL, redis_available, require_service, until

KEY = "seal-test-secret-key"


def _event(recipient: str, seq: int, body: str, message_id: int = 31) -> Event:
    payload = {"conversation_id": 7, "id": message_id, "body": body}
    return Event(recipient, seq, "message.created", payload, json.dumps(payload))


# --- the seal ---------------------------------------------------------------------------------


def test_a_seal_opens_to_the_same_events_and_frames() -> None:
    events = [_event("c:1", 4, "Bonjour"), _event("s:2", 9, "Bonjour"), _event("s:3", 1, "Hi")]
    opened = Sealer(KEY).open(Sealer(KEY).seal(events))
    assert opened is not None
    assert [(e.recipient, e.seq, e.type) for e in opened] == [
        ("c:1", 4, "message.created"),
        ("s:2", 9, "message.created"),
        ("s:3", 1, "message.created"),
    ]
    assert [e.frame() for e in opened] == [e.frame() for e in events]


def test_a_seal_hides_the_text_and_shares_one_copy_of_a_payload() -> None:
    sealer = Sealer(KEY)
    same = sealer.seal([_event(f"s:{i}", i, "x" * 400) for i in range(6)])
    assert "xxxx" not in same
    assert "xxxx" not in base64.b64decode(same).decode("latin-1")
    # Six recipients of one message: the payload sealed once, not six times.
    assert len(same) < 2 * len(sealer.seal([_event("s:0", 0, "x" * 400)]))


def test_a_seal_does_not_open_with_another_key_altered_or_late() -> None:
    sealed = Sealer(KEY).seal([_event("c:1", 1, "secret")], now=1000.0)
    sealer = Sealer(KEY)
    assert sealer.open(sealed, now=1000.0) is not None
    assert Sealer("another-key").open(sealed, now=1000.0) is None
    raw = bytearray(base64.b64decode(sealed))
    raw[20] ^= 1
    assert sealer.open(base64.b64encode(bytes(raw)).decode(), now=1000.0) is None
    assert sealer.open(sealed, now=1000.0 + MAX_AGE + 1) is None  # a replay, or a wrong clock
    assert sealer.open(sealed, now=1000.0 - MAX_AGE - 1) is None
    for junk in ("", "not base64 !", 42, None, base64.b64encode(b"short").decode()):
        assert sealer.open(junk) is None
    with pytest.raises(ValueError):
        Sealer("")


# --- through the hubs of two processes, on a real Redis ---------------------------------------


class Tab:
    """A local socket as the hub sees it, recording what it is offered."""

    def __init__(self, recipient: str) -> None:
        self.recipient, self.session_id, self.idle_seconds = recipient, uuid.uuid4().hex, 1800
        self.offered: list[tuple[int, Event | None]] = []

    def offer(self, seq: int, event: Event | None) -> None:
        self.offered.append((seq, event))

    def offer_ephemeral(self, payload: dict[str, Any]) -> None:
        pass

    def resync(self) -> None:
        pass

    def kick(self, code: int, reason: str) -> None:
        pass


@pytest.fixture
async def hubs() -> AsyncIterator[list[Hub]]:
    require_service(redis_available(), "Redis")
    started: list[Hub] = []
    yield started
    for one in started:
        await one.stop()


async def _hub(hubs: list[Hub], key: str | None) -> Hub:
    made = Hub()
    await made.start(REDIS_URL, seal_key=key)
    assert made.connected
    hubs.append(made)
    return made


async def test_another_process_gets_the_events_from_the_seal_and_redis_sees_no_text(
    hubs: list[Hub],
) -> None:
    sender, receiver = await _hub(hubs, KEY), await _hub(hubs, KEY)
    spy = aioredis.Redis.from_url(REDIS_URL)
    heard: list[str] = []
    async with spy.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        client, therapist, stranger = (Tab(f"c:{uuid.uuid4().hex}") for _ in range(3))
        for tab in (client, therapist, stranger):
            receiver.register(tab)
        events = [_event(client.recipient, 3, "I feel low"), _event(therapist.recipient, 8, "x")]
        await sender.publish(events)
        await until(lambda: client.offered and therapist.offered)
        for _ in range(20):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                heard.append(message["data"].decode())
        await pubsub.unsubscribe(CHANNEL)
    await spy.aclose()
    # The events themselves, not "read the database": no query on the receiving side.
    assert [(seq, e.frame() if e else None) for seq, e in client.offered] == [
        (3, events[0].frame())
    ]
    assert [(seq, e.frame() if e else None) for seq, e in therapist.offered] == [
        (8, events[1].frame())
    ]
    assert stranger.offered == []
    notices = [json.loads(text) for text in heard if '"k":"ev"' in text]
    assert [n["r"] for n in notices] == [[[client.recipient, 3], [therapist.recipient, 8]]]
    assert all("I feel low" not in text for text in heard)


async def test_a_process_that_cannot_open_the_seal_reads_the_database_instead(
    hubs: list[Hub],
) -> None:
    """Another key (a rotation half done), or sealing switched off on one process."""
    sender = await _hub(hubs, KEY)
    other_key, unsealed = await _hub(hubs, "rotated-key"), await _hub(hubs, None)
    tabs = [Tab(f"c:{uuid.uuid4().hex}"), Tab(f"c:{uuid.uuid4().hex}")]
    other_key.register(tabs[0])
    unsealed.register(tabs[1])
    await sender.publish([_event(tabs[0].recipient, 5, "a"), _event(tabs[1].recipient, 2, "b")])
    await until(lambda: tabs[0].offered and tabs[1].offered)
    assert tabs[0].offered == [(5, None)] and tabs[1].offered == [(2, None)]
    # And a process that does not seal still tells the others, by ids.
    back = Tab(f"c:{uuid.uuid4().hex}")
    sender.register(back)
    await unsealed.publish([_event(back.recipient, 1, "c")])
    await until(lambda: back.offered)
    assert back.offered == [(1, None)]


async def test_recipients_rewritten_outside_the_seal_get_nothing_from_it(
    hubs: list[Hub],
) -> None:
    """Whoever can write to Redis cannot route a sealed message to another person: only the
    list inside the seal says who gets what; the list outside only makes a socket read its
    own recipient's events from the database."""
    sender, receiver = await _hub(hubs, KEY), await _hub(hubs, KEY)
    victim, target = Tab(f"c:{uuid.uuid4().hex}"), Tab(f"c:{uuid.uuid4().hex}")
    receiver.register(target)
    sealed = Sealer(KEY).seal([_event(victim.recipient, 4, "private")])
    forged = {"k": "ev", "r": [[target.recipient, 4]], "p": sender.process_id, "x": sealed}
    publisher = aioredis.Redis.from_url(REDIS_URL)
    await publisher.publish(CHANNEL, json.dumps(forged))
    await publisher.aclose()
    # Then a true notice for the target: one channel, so the forged one was handled first.
    await sender.publish([_event(target.recipient, 5, "yours")])
    await until(lambda: target.offered)
    assert [seq for seq, _event in target.offered] == [5]


def test_sealing_is_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CABINET_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REALTIME_SEAL_NOTICES", raising=False)
    assert Settings.from_env().seal_notices
    monkeypatch.setenv("REALTIME_SEAL_NOTICES", "off")
    assert not Settings.from_env().seal_notices


async def test_one_process_on_memory_seals_nothing() -> None:
    """``memory://`` is one process: its notices reach only itself."""
    made = Hub()
    await made.start("memory://", seal_key=KEY)
    try:
        spy = Tab(f"c:{uuid.uuid4().hex}")
        made.register(spy)
        sent: list[dict[str, Any]] = []
        real_send = made._send

        async def record(message: dict[str, Any]) -> None:
            sent.append(message)
            await real_send(message)

        made._send = record  # type: ignore[method-assign]
        await made.publish([_event(spy.recipient, 1, "hello")])
        assert sent == [{"k": "ev", "r": [[spy.recipient, 1]]}]
    finally:
        await made.stop()
