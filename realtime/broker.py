"""The broadcaster the hub talks through, with a Redis backend the hub can rely on.

broadcaster 0.3.1's own Redis backend has two faults that the hub cannot work around:

1. Its listener is woken *before* ``SUBSCRIBE`` has gone out; redis-py's ``listen()`` then
   sees no subscription, returns at once, and the listener waits for a wake-up that never
   comes. The process hears nothing from Redis, ever (the hub saw it as a broker that
   "dies" every two seconds, and only its database resyncs delivered anything).
2. redis-py reconnects a dropped subscription by itself and quietly re-subscribes: notices
   published in between are lost and nobody knows that a resync is due.

``RedisNoticeBackend`` subscribes first and listens after, and turns a dropped subscription
into a flag the hub watches (``lost``), so it reconnects at once and resyncs its sockets.

It also hands each message to the hub as soon as it is read (``on_message``), rather than
through broadcaster's two queues and the hub's wait on them: on a busy process each of those
hops waited its turn in the event loop, and a notice from another process arrived later
than it had to (docs/performance.md, thirteenth round).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from broadcaster import Broadcast, BroadcastBackend, Event
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("cabinet.realtime")


class RedisNoticeBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        # Publishing may retry and reconnect: a notice is either sent or the call fails.
        self._publisher = aioredis.Redis.from_url(url)
        # Listening may not: a reconnect must be the hub's decision, followed by a resync.
        self._listener_client = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))
        self._pubsub = self._listener_client.pubsub()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None
        self.lost = False
        # Called with each message's text as it is read, in order; when set, nothing goes
        # to broadcaster's queue. If it raises, the subscription counts as lost: the hub
        # reconnects and resyncs, as it would after an error in its own loop.
        self.on_message: Callable[[str], None] | None = None

    async def connect(self) -> None:
        await self._pubsub.connect()

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        for close in (self._pubsub.aclose, self._listener_client.aclose, self._publisher.aclose):
            with contextlib.suppress(Exception):
                await close()

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="realtime-redis-listener")

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._publisher.publish(channel, message)

    async def next_published(self) -> Event:
        # After a loss this waits forever: the hub, watching ``lost``, tears everything down.
        # (Raising here would kill broadcaster's listener task, and then Broadcast.disconnect
        # re-raises that error before it closes the backend's connections.)
        return await self._queue.get()

    async def _listen(self) -> None:
        try:
            async for message in self._pubsub.listen():
                if message["type"] != "message":
                    continue
                if self.on_message is not None:
                    self.on_message(message["data"].decode())
                else:
                    self._queue.put_nowait(
                        Event(channel=message["channel"].decode(), message=message["data"].decode())
                    )
            raise ConnectionError("the Redis subscription ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever broke, the subscription is gone
            log.warning("realtime Redis subscription lost: %s", exc)
            self.lost = True


def open_broadcast(url: str) -> tuple[Broadcast, RedisNoticeBackend | None]:
    """A Broadcast for ``url``, and the Redis backend when there is one (to watch ``lost``)."""
    if url.startswith(("redis://", "rediss://")):
        backend = RedisNoticeBackend(url)
        return Broadcast(backend=backend), backend
    return Broadcast(url), None
