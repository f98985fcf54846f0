"""The websocket endpoint: one socket per browser tab, at /staff/ws and /portal/ws.

Protocol (docs/realtime.md): connect with ``?after=<last seq seen>``; the server registers
the socket *before* reading what was missed, sends the missed events in order, then live
ones, each exactly once (``seq`` is gapless per recipient, and the socket skips anything at
or below what it already sent). Close codes: 4001 session ended, 4003 bad origin or not
signed in, 4008 too far behind (resume with ?after=), 1012 server restarting.

Thousands of sockets sit idle in one process, so an idle one costs as little as will do:
the ASGI task that uvicorn runs for it reads the client's frames and nothing else waits on
its behalf. The next event goes out from the task that publishes it when nothing waits
before it; a writer task exists only while frames wait (the client's side is full, or a
gap must be read from the database), the queue only while it is not empty, and heartbeats
come from one timer for the whole process. The socket keeps the caller's ids, not their
database rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from starlette.websockets import WebSocket

from realtime.events import Event, dump_payload, frame_text, last_seq
from realtime.hub import hub
from server.access import clients_heard_of
from server.auth.sessions import COOKIE_NAMES, Caller, load_caller
from server.db import connection, placeholders
from server.web import current_caller, same_origin

log = logging.getLogger("cabinet.realtime")

QUEUE_LIMIT = 512
HEARTBEAT_SECONDS = 20.0
CATCH_UP_BATCH = 500
# The largest seq a BIGINT column holds.
MAX_SEQ = 2**63 - 1
CLOSE_SESSION_ENDED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_RESYNC = 4008
# Queued markers: "send a heartbeat now", "answer the client's ping now"; the frame is
# ``{"type": <marker>, "seq": <last sent>}`` with the seq as it stands when it goes out.
HEARTBEAT = "heartbeat"
PONG = "pong"

# Client -> server messages other than ping are handled by domain modules (typing...). The
# handler gets the caller as they are *now* (reloaded from the session cookie): a socket
# keeps no database rows while it idles.
ClientHandler = Callable[[Caller, dict[str, Any]], Awaitable[None]]
client_handlers: dict[str, ClientHandler] = {}

Item = tuple[int, Event | None] | dict[str, Any] | str

# Stored events that tell a staff member of a client's clinical result. Who hears of it is
# decided when it happens (server/access.py ``may_hear_of``); a tab that resumes days later
# is asked again, since that may have changed: the client went to another therapist, the
# practice closed clinical details to the front desk, a supervision ended. One who may no
# longer hear of it gets the seq as a ``withdrawn`` event with no data: no gap, nothing said.
CLINICAL_EVENTS = frozenset({"measure.completed", "measure.alert", "form.completed"})


class Socket:
    """One open websocket. Pokes arrive through ``offer``; a writer sends them in order."""

    __slots__ = (
        "ws",
        "recipient",
        "session_id",
        "idle_seconds",
        "realm",
        "last",
        "closed",
        "close_code",
        "close_reason",
        "ready",
        "last_sent",
        "_pending",
        "_writer",
        "_task",
    )

    def __init__(self, ws: WebSocket, caller: Caller, after: int) -> None:
        self.ws = ws
        self.recipient = caller.recipient
        self.session_id = caller.session.id
        self.idle_seconds = caller.session.idle_seconds
        self.realm = caller.realm
        self.last = after
        self.closed = False
        self.close_code = 1000
        self.close_reason = ""
        # Until the backlog and "ready" are out, live items wait in the queue.
        self.ready = False
        self.last_sent = asyncio.get_running_loop().time()
        # Items: (seq, event or None for "look in the database"), an ephemeral payload, or
        # a marker (HEARTBEAT, PONG). None while there is nothing to send.
        self._pending: deque[Item] | None = None
        self._writer: asyncio.Task[None] | None = None
        # The task serving the socket (uvicorn's), woken by a kick while it reads.
        self._task: asyncio.Task[Any] | None = None

    @property
    def queued(self) -> int:
        return len(self._pending) if self._pending is not None else 0

    # Called by the hub, never blocking.
    def offer(self, seq: int, event: Event | None) -> None:
        if self.closed or seq <= self.last:
            return
        if self.queued >= QUEUE_LIMIT:
            # A reader that stopped reading must not grow our memory: close it; it will
            # resume from its last seq.
            self.kick(CLOSE_RESYNC, "too far behind, resume")
            return
        if (
            event is not None
            and seq == self.last + 1
            and self.ready
            and self._writer is None
            and self._pending is None
        ):
            self._send_now(event)
            return
        self._put((seq, event))

    def offer_ephemeral(self, payload: dict[str, Any]) -> None:
        # Typing and presence are disposable: drop them rather than kick the socket.
        if not self.closed and self.queued < QUEUE_LIMIT:
            self._put(payload)

    def resync(self) -> None:
        """After a broker outage: look in the database for anything missed."""
        self.offer(self.last + 1, None)

    def beat(self, now: float) -> None:
        """Called by the process's heartbeat timer: queue a heartbeat if quiet too long."""
        if self.ready and not self.closed and now - self.last_sent >= HEARTBEAT_SECONDS * 0.99:
            # Counted as sent now: one heartbeat per quiet period, even if the writer is slow.
            self.last_sent = now
            if self.queued < QUEUE_LIMIT:
                self._put(HEARTBEAT)

    def kick(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.close_code = code
        self.close_reason = reason
        self.closed = True
        self._pending = None
        if self._writer is not None:
            self._writer.cancel()
        # Wake the serving task if it waits for the client (not when it kicks itself: it
        # sees ``closed`` at its next frame).
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def _put(self, item: Item) -> None:
        if self._pending is None:
            self._pending = deque()
        self._pending.append(item)
        self._start_writer()

    def _start_writer(self) -> None:
        if self.ready and self._writer is None and self._pending:
            self._writer = asyncio.ensure_future(self._write())

    # --- sending ----------------------------------------------------------------------------

    def _send_now(self, event: Event) -> None:
        """Send the next event from the caller's task, with no writer task, when nothing is
        queued: the common case, a socket that keeps up. uvicorn writes a frame to the
        transport without waiting unless the client's side is full; only then does a
        writer task take over, to finish this frame and send what comes after it."""
        sending = self.ws.send_text(event.frame())
        try:
            waiting_on = sending.send(None)
        except StopIteration:
            self._sent(event)
            return
        except Exception as exc:  # noqa: BLE001 - the socket went away
            log.info("socket send failed: %r", exc)
            self.kick(1011, "server error, resume")
            return
        self._pending = deque()
        self._writer = asyncio.ensure_future(self._write((_resume(sending, waiting_on), event)))

    def _sent(self, event: Event) -> None:
        """``event``'s frame is out."""
        self.last_sent = asyncio.get_running_loop().time()
        self.last = event.seq

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(payload, separators=(",", ":"), default=str))
        self.last_sent = asyncio.get_running_loop().time()

    async def _send_event(self, event: Event) -> None:
        await self.ws.send_text(event.frame())
        self._sent(event)

    async def _catch_up(self) -> int:
        """Send what the database holds after ``last``; returns the recipient's last seq."""
        while True:
            missed, current = await missed_frames(self.recipient, self.last, CATCH_UP_BATCH)
            for seq, frame in missed:
                await self.ws.send_text(frame)
                self.last = seq
            if missed:
                self.last_sent = asyncio.get_running_loop().time()
            if len(missed) < CATCH_UP_BATCH:
                return current

    async def start(self, fresh: bool) -> None:
        """Send the backlog and ``ready``, then let live items through. Call registered.

        ``fresh``: a tab without ``?after=`` wants only what happens from now on: the
        recipient's last seq, read once the socket is registered, is where it starts; any
        later event reaches the socket live (or as a gap it reads from the database).
        """
        if fresh:
            self.last = await last_seq(self.recipient)
        else:
            current = await self._catch_up()
            if self.last > current:
                # The tab remembers a seq this server never gave (a restored database,
                # another deployment): start from what exists rather than skip events until
                # it is passed.
                self.last = current
        await self._send({"type": "ready", "seq": self.last})
        self.ready = True
        self._start_writer()

    async def _write(self, started: tuple[Awaitable[None], Event] | None = None) -> None:
        """Send the queue in order; first finish ``started``: the sending of an event that
        ``_send_now`` began, and that event."""
        try:
            if started is not None:
                unfinished, begun = started
                await unfinished
                self._sent(begun)
            while self._pending:
                item = self._pending.popleft()
                if isinstance(item, str):
                    await self._send({"type": item, "seq": self.last})
                elif isinstance(item, dict):
                    await self._send(item)
                else:
                    seq, event = item
                    if seq <= self.last:
                        continue
                    if event is not None and seq == self.last + 1:
                        await self._send_event(event)
                    else:
                        # A gap (another process committed first, or we only got a notice):
                        # the database has everything up to seq, in order.
                        await self._catch_up()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the socket went away, or the database did
            log.info("socket writer ended: %r", exc)
            # The tab resumes from what it has; the reader sees the close.
            self.kick(1011, "server error, resume")
        finally:
            self._writer = None
            if self._pending is not None and not self._pending:
                self._pending = None

    # --- receiving --------------------------------------------------------------------------

    async def read(self) -> None:
        """Read the client's frames until it goes away."""
        while not self.closed:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            try:
                message = json.loads(frame.get("text") or "")
            except ValueError:
                # An unreadable frame is ignored like an unknown type: ending the socket
                # would close it as "normal" (1000) and leave the tab to guess why.
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "ping":
                self._put(PONG)
            elif isinstance(kind, str) and kind in client_handlers:
                await self._handle(kind, message)

    async def _handle(self, kind: str, message: dict[str, Any]) -> None:
        caller = await load_caller(
            self.realm, self.ws.cookies.get(COOKIE_NAMES[self.realm]), touch=False
        )
        if caller is None or caller.session.id != self.session_id:
            self.kick(CLOSE_SESSION_ENDED, "session ended")
            return
        try:
            await client_handlers[kind](caller, message)
        except Exception as exc:  # noqa: BLE001 - a bad client message must not kill the socket
            log.info("client message %s refused: %s", kind, exc)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """What ``await coroutine`` does, for a coroutine already started by hand and now waiting
    on ``waiting_on`` (the future it yielded): the task that awaits this waits on that
    future, then drives the coroutine on, results and exceptions (a cancel) passed in."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - a cancel goes in as await would
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = coroutine.send(sent)
            except StopIteration as done:
                return done.value


async def missed_frames(
    recipient: str, after: int, limit: int
) -> tuple[list[tuple[int, str]], int]:
    """The recipient's stored events after ``after``, in order, as the frames to send; and
    the recipient's last seq. One query: a reconnect storm runs thousands of these at once.

    The payload is stored as JSON text (SQLite) or jsonb (PostgreSQL, where asyncpg hands
    it back as text): it goes into the frame as it comes, not parsed and written again.
    """
    p = placeholders(4)
    rows = await connection().execute_query_dict(
        "SELECT seq, type, payload FROM (SELECT seq, type, payload FROM realtime_event "
        f"WHERE recipient = {p[0]} AND seq > {p[1]} ORDER BY seq LIMIT {p[2]}) AS missed "
        f"UNION ALL SELECT last_seq, NULL, NULL FROM realtime_cursor WHERE recipient = {p[3]}",
        [recipient, after, limit, recipient],
    )
    frames = []
    current = 0
    clinical: dict[int, int] = {}  # seq: client id
    for row in rows:
        seq = int(row["seq"])
        if row["type"] is None:
            current = seq
            continue
        payload = row["payload"]
        if not isinstance(payload, str):  # a driver that decodes JSON itself
            payload = dump_payload(payload)
        if row["type"] in CLINICAL_EVENTS:
            clinical[seq] = int(json.loads(payload)["client_id"])
        frames.append((seq, frame_text(seq, row["type"], payload)))
    if clinical:
        heard = (
            await clients_heard_of(int(recipient[2:]), set(clinical.values()))
            if recipient.startswith("s:")
            else set()
        )
        frames = [
            (seq, frame)
            if seq not in clinical or clinical[seq] in heard
            else (seq, frame_text(seq, "withdrawn", "{}"))
            for seq, frame in frames
        ]
    frames.sort()
    return frames, current


# --- heartbeats: one timer for the process ----------------------------------------------------

_live: set[Socket] = set()
_ticker: asyncio.Task[None] | None = None


def _ensure_ticker() -> None:
    global _ticker
    loop = asyncio.get_running_loop()
    if _ticker is None or _ticker.done() or _ticker.get_loop() is not loop:
        _ticker = loop.create_task(_tick(), name="realtime-heartbeats")


async def _tick() -> None:
    loop = asyncio.get_running_loop()
    while _live:
        # Every second (a quarter period when shorter, in tests): a quiet socket hears from
        # us between 20 and 21 s after its last frame.
        await asyncio.sleep(min(HEARTBEAT_SECONDS / 4, 1.0))
        now = loop.time()
        for sock in list(_live):
            task = sock._task
            if task is None or task.get_loop() is not loop:
                # Ended, or left behind by an event loop that is gone (tests run many).
                _live.discard(sock)
            else:
                sock.beat(now)


# --- the endpoint ------------------------------------------------------------------------------


def origin_allowed(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        # Non-browser clients (CLI tools, the benchmark) send none; the cookie still applies.
        return True
    return same_origin(ws.scope, origin)


async def websocket_endpoint(ws: WebSocket) -> None:
    caller = current_caller(ws)
    if caller is None or not origin_allowed(ws):
        await ws.close(code=CLOSE_FORBIDDEN)
        return
    raw_after = ws.query_params.get("after")
    try:
        # Capped at what a BIGINT holds: a larger seq was never given (start() falls back to
        # the recipient's last seq), and the database would refuse to compare with it.
        after = min(max(0, int(raw_after or "0")), MAX_SEQ)
    except ValueError:
        after = 0
    await ws.accept()
    sock = Socket(ws, caller, after)
    # The rows (session, account, client) are not needed past this point: let them go.
    ws.scope["state"]["caller"] = None
    del caller
    sock._task = asyncio.current_task()
    hub.register(sock)
    _live.add(sock)
    _ensure_ticker()
    try:
        await sock.start(fresh=raw_after is None)
        await sock.read()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not sock.closed or task is None:
            raise
        # A kick woke us: close with its code. (Anyone else's cancel is re-raised.)
        task.uncancel()
    except Exception as exc:  # noqa: BLE001 - e.g. the database away while reading the backlog
        log.info("socket ended: %r", exc)
        sock.kick(1011, "server error, resume")
    finally:
        hub.unregister(sock)
        _live.discard(sock)
        sock._task = None
        sock.closed = True
        if sock._writer is not None:
            sock._writer.cancel()
            with contextlib.suppress(BaseException):
                await sock._writer
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=sock.close_code, reason=sock.close_reason), 2)
