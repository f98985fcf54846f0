"""The websocket endpoint: one socket per browser tab, at /staff/ws and /portal/ws.

Protocol (docs/realtime.md): connect with ``?after=<last seq seen>``; the server registers
the socket *before* reading what was missed, sends the missed events in order, then live
ones, each exactly once (``seq`` is gapless per recipient, and the socket skips anything at
or below what it already sent). Close codes: 4001 session ended, 4003 bad origin or not
signed in, 4008 too far behind (resume with ?after=), 1012 server restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from starlette.websockets import WebSocket, WebSocketDisconnect

from realtime.events import Event, events_after, last_seq
from realtime.hub import hub
from server.auth.sessions import Caller
from server.settings import get_settings
from server.web import current_caller

log = logging.getLogger("cabinet.realtime")

QUEUE_LIMIT = 512
HEARTBEAT_SECONDS = 20.0
CLOSE_SESSION_ENDED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_RESYNC = 4008
# Queued by the heartbeat timer: "send a heartbeat now".
HEARTBEAT = None

# Client -> server messages other than ping are handled by domain modules (typing...).
ClientHandler = Callable[[Caller, dict[str, Any]], Awaitable[None]]
client_handlers: dict[str, ClientHandler] = {}


class Socket:
    """One open websocket. Pokes arrive through ``offer``; a writer task sends in order."""

    def __init__(self, ws: WebSocket, caller: Caller, after: int) -> None:
        self.ws = ws
        self.caller = caller
        self.recipient = caller.recipient
        self.session_id = caller.session.id
        self.idle_seconds = caller.session.idle_seconds
        self.last = after
        # Items: (seq, event or None for "look in the database") or an ephemeral payload.
        self.queue: asyncio.Queue[tuple[int, Event | None] | dict[str, Any] | None] = asyncio.Queue(
            QUEUE_LIMIT
        )
        self.closed = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""
        # Per socket, as little as will do (thousands sit idle in one process): no task
        # waits for the close (kick cancels the writer) and no task waits out the heartbeat
        # (a timer queues one when the socket has been quiet for HEARTBEAT_SECONDS).
        self.writer_task: asyncio.Task[None] | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._last_sent = 0.0

    # Called by the hub, never blocking.
    def offer(self, seq: int, event: Event | None) -> None:
        if self.closed.is_set() or seq <= self.last:
            return
        try:
            self.queue.put_nowait((seq, event))
        except asyncio.QueueFull:
            # A reader that stopped reading must not grow our memory: close it; it will
            # resume from its last seq.
            self.kick(CLOSE_RESYNC, "too far behind, resume")

    def offer_ephemeral(self, payload: dict[str, Any]) -> None:
        if self.closed.is_set():
            return
        with contextlib.suppress(asyncio.QueueFull):
            # Typing and presence are disposable: drop them rather than kick the socket.
            self.queue.put_nowait(payload)

    def resync(self) -> None:
        """After a broker outage: look in the database for anything missed."""
        self.offer(self.last + 1, None)

    def kick(self, code: int, reason: str) -> None:
        if not self.closed.is_set():
            self.close_code = code
            self.close_reason = reason
            self.closed.set()
            if self.writer_task is not None:
                self.writer_task.cancel()

    def _heartbeat_due(self) -> None:
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self._last_sent
        if quiet >= HEARTBEAT_SECONDS * 0.99:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(HEARTBEAT)
            quiet = 0.0
        self._beat = loop.call_later(HEARTBEAT_SECONDS - quiet, self._heartbeat_due)

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(payload, separators=(",", ":"), default=str))
        self._last_sent = asyncio.get_running_loop().time()

    async def _send_event(self, event: Event) -> None:
        await self._send(event.envelope())
        self.last = event.seq

    async def _catch_up(self) -> None:
        while True:
            missed = await events_after(self.recipient, self.last, limit=500)
            for event in missed:
                await self._send_event(event)
            if len(missed) < 500:
                return

    async def writer(self) -> None:
        current = await last_seq(self.recipient)
        if self.last > current:
            # The tab remembers a seq this server never gave (a restored database, another
            # deployment): start from what exists rather than skip events until it is passed.
            self.last = current
        await self._catch_up()
        await self._send({"type": "ready", "seq": self.last})
        self._beat = asyncio.get_running_loop().call_later(HEARTBEAT_SECONDS, self._heartbeat_due)
        try:
            await self._write()
        finally:
            if self._beat is not None:
                self._beat.cancel()

    async def _write(self) -> None:
        while True:
            item = await self.queue.get()
            if item is HEARTBEAT:
                await self._send({"type": "heartbeat", "seq": self.last})
                continue
            if isinstance(item, dict):
                await self._send(item)
                continue
            seq, event = item
            if seq <= self.last:
                continue
            if event is not None and seq == self.last + 1:
                await self._send_event(event)
            else:
                # A gap (another process committed first, or we only got a notice): the
                # database has everything up to seq, in order.
                await self._catch_up()

    async def reader(self) -> None:
        while True:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(frame.get("code", 1000), frame.get("reason"))
            try:
                message = json.loads(frame.get("text") or "")
            except ValueError:
                # An unreadable frame is ignored like an unknown type: ending the socket
                # would close it as "normal" (1000) and leave the tab to guess why.
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "ping":
                await self._send({"type": "pong", "seq": self.last})
            elif isinstance(kind, str) and kind in client_handlers:
                try:
                    await client_handlers[kind](self.caller, message)
                except Exception as exc:  # noqa: BLE001 - a bad client message must not kill the socket
                    log.info("client message %s refused: %s", kind, exc)


def origin_allowed(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        # Non-browser clients (CLI tools, the benchmark) send none; the cookie still applies.
        return True
    netloc = urlparse(origin).netloc
    return netloc in {ws.headers.get("host", ""), urlparse(get_settings().public_url).netloc}


async def websocket_endpoint(ws: WebSocket) -> None:
    caller = current_caller(ws)
    if caller is None or not origin_allowed(ws):
        await ws.close(code=CLOSE_FORBIDDEN)
        return
    try:
        after = max(0, int(ws.query_params.get("after", "0")))
    except ValueError:
        after = 0
    if after == 0 and ws.query_params.get("after") is None:
        # A fresh tab wants only what happens from now on.
        after = await last_seq(caller.recipient)
    await ws.accept()
    sock = Socket(ws, caller, after)
    hub.register(sock)
    sock.writer_task = asyncio.create_task(sock.writer())
    tasks = [sock.writer_task, asyncio.create_task(sock.reader())]
    if sock.closed.is_set():  # kicked before the writer existed
        sock.writer_task.cancel()
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception() if not task.cancelled() else None
            if exc is not None and not isinstance(exc, WebSocketDisconnect):
                log.info("socket ended: %r", exc)
    finally:
        hub.unregister(sock)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=sock.close_code, reason=sock.close_reason), 2)
