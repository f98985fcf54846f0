"""The Redis backend the hub listens through (realtime/broker.py), against a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from realtime.broker import RedisNoticeBackend
from tests.conftest import REDIS_URL, redis_available, require_service, until


@pytest.fixture
async def backend() -> AsyncIterator[RedisNoticeBackend]:
    require_service(redis_available(), "Redis")
    made = RedisNoticeBackend(REDIS_URL)
    await made.connect()
    yield made
    await made.disconnect()


async def test_messages_go_straight_to_the_hub_in_order(backend: RedisNoticeBackend) -> None:
    channel = f"test.{uuid.uuid4().hex}"
    heard: list[str] = []
    backend.on_message = heard.append
    await backend.subscribe(channel)
    sent = [f'{{"k":"ev","n":{i}}}' for i in range(50)]
    for text in sent:
        await backend.publish(channel, text)
    await until(lambda: len(heard) == len(sent))
    assert heard == sent
    # Nothing went the long way, through broadcaster's queue.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(backend.next_published(), timeout=0.1)
    assert not backend.lost


async def test_without_a_handler_messages_wait_in_the_queue(backend: RedisNoticeBackend) -> None:
    channel = f"test.{uuid.uuid4().hex}"
    await backend.subscribe(channel)
    await backend.publish(channel, "hello")
    event = await asyncio.wait_for(backend.next_published(), timeout=5)
    assert (event.channel, event.message) == (channel, "hello")


async def test_a_handler_that_fails_counts_as_a_lost_subscription(
    backend: RedisNoticeBackend,
) -> None:
    """The hub then reconnects and resyncs its sockets, as after any loss."""
    channel = f"test.{uuid.uuid4().hex}"

    def broken(text: str) -> None:
        raise ValueError(text)

    backend.on_message = broken
    await backend.subscribe(channel)
    await backend.publish(channel, "boom")
    await until(lambda: backend.lost)
