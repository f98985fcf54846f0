"""The per-process hub: local sockets, fan-out through broadcaster, and recovery.

What travels through broadcaster (and so through Redis in production) is a *notice*, never
content in clear: ``{"k": "ev", "r": [[recipient, seq], ...], "x": sealed}`` says "these
recipients have new events", and carries the events sealed with a key Redis never sees
(realtime/seal.py); ``{"k": "close", "s": [session ids]}`` says "close these sessions'
sockets". A process that holds a socket for a notified recipient hands it the events from
the seal; when there is none, or it cannot be opened, the socket reads them from the
database, where they were written before the notice was sent. The exception is ephemeral
pushes (``{"k": "eph", ...}``: typing, presence), which are not stored and travel whole, ids
only; see docs/realtime.md.

The process that commits an event also hands it straight to its own sockets, so the common
single-process case costs no round trip and keeps working while Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from broadcaster import Broadcast

from realtime.broker import RedisNoticeBackend, open_broadcast
from realtime.events import Event
from realtime.seal import Sealer

log = logging.getLogger("cabinet.realtime")

CHANNEL = "cabinet.realtime"
PRESENCE_EVERY = 5.0
PRESENCE_TTL = 15.0
# A reload closes a tab's socket and opens a new one: wait this long before saying "offline".
PRESENCE_GRACE = 3.0

# Who should hear that a staff member came online or left. The server installs it (the
# people who share a conversation with them); realtime itself knows nothing of conversations.
PresenceAudience = Callable[[str], Awaitable[list[str]]]


class LocalSocket(Protocol):
    recipient: str
    session_id: str
    idle_seconds: int  # the session's idle timeout, for the sweep

    def offer(self, seq: int, event: Event | None) -> None: ...

    def offer_ephemeral(self, payload: dict[str, Any]) -> None: ...

    def resync(self) -> None: ...

    def kick(self, code: int, reason: str) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.sockets: dict[str, set[LocalSocket]] = defaultdict(set)
        self._url = "memory://"
        self._broadcast: Broadcast | None = None
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        # When ``connected`` last changed (time.monotonic), for /healthz: a poller that was
        # itself slow can still tell when the broker came back.
        self.changed_at = time.monotonic()
        # A publish failed: the pump tears the connection down and reconnects (and resyncs).
        self._publish_failed = False
        self._last_heartbeat = 0.0
        self._stopping = False
        self.reconnects = 0
        # Presence across processes: each process announces its online staff every few
        # seconds; an announcement older than PRESENCE_TTL is forgotten.
        self.process_id = uuid.uuid4().hex[:12]
        self._remote_presence: dict[str, tuple[float, set[str]]] = {}
        self._last_presence = 0.0
        # Notices this process could not send (broker down): recipient -> highest seq. Sent
        # once the broker is back; without them, a process that reconnected *earlier* would
        # never learn of events committed here meanwhile (its own resync came too soon).
        self._unsent: dict[str, int] = {}
        self.presence_audience: PresenceAudience | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Seals the events of the notices this process sends, and opens the others'.
        self._sealer: Sealer | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, url: str, seal_key: str | None = None) -> None:
        """Listen on the broker at ``url``. ``seal_key``: the secret the web processes share,
        to carry events in their notices sealed (none with ``memory://``: one process)."""
        self._url = url
        self._sealer = Sealer(seal_key) if seal_key and not url.startswith("memory:") else None
        self._stopping = False
        self._connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="realtime-hub")
        self._sweeper = asyncio.create_task(self._sweep_sessions(), name="realtime-sweeper")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=5)

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._task, self._sweeper):
            if task is not None:
                task.cancel()
                # A broker client stuck in a socket call must not hold up shutdown.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(task), timeout=3)
        self._task = self._sweeper = None
        for pending in list(self._background):
            pending.cancel()
        for sockets in list(self.sockets.values()):
            for sock in list(sockets):
                sock.kick(1012, "server restarting")
        self.sockets.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected.is_set():
            self.changed_at = time.monotonic()
        if connected:
            self._connected.set()
        else:
            self._connected.clear()

    # --- local sockets ---------------------------------------------------------------------

    def register(self, sock: LocalSocket) -> None:
        first = not self.sockets.get(sock.recipient)
        self.sockets[sock.recipient].add(sock)
        if first and sock.recipient.startswith("s:"):
            self._presence_changed()
            self._spawn(self._announce(sock.recipient))

    def unregister(self, sock: LocalSocket) -> None:
        group = self.sockets.get(sock.recipient)
        if group is not None:
            group.discard(sock)
            if not group:
                del self.sockets[sock.recipient]
                if sock.recipient.startswith("s:") and not self._stopping:
                    self._presence_changed()
                    self._spawn(self._announce_if_gone(sock.recipient))

    # --- staff presence, pushed ------------------------------------------------------------

    def _presence_changed(self) -> None:
        # Tell the other processes on the pump's next turn, not in up to PRESENCE_EVERY: the
        # process that decides "gone" after PRESENCE_GRACE asks is_online(), and a stale
        # "still here" from the process the person just left would swallow the offline push.
        self._last_presence = 0.0

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _announce(self, recipient: str) -> None:
        if self.presence_audience is None:
            return
        try:
            audience = [r for r in await self.presence_audience(recipient) if r != recipient]
            payload = {
                "type": "presence",
                "data": {"staff_id": int(recipient[2:]), "online": self.is_online(recipient)},
            }
            await self.publish_ephemeral(audience, payload)
        except Exception as exc:  # noqa: BLE001 - presence is best effort, never fatal
            log.warning("presence announcement failed: %s", exc)

    async def _announce_if_gone(self, recipient: str) -> None:
        await asyncio.sleep(PRESENCE_GRACE)
        if not self.is_online(recipient):
            await self._announce(recipient)

    def connection_count(self) -> int:
        return sum(len(s) for s in self.sockets.values())

    def is_online(self, recipient: str) -> bool:
        if self.sockets.get(recipient):
            return True
        horizon = time.monotonic() - PRESENCE_TTL
        return any(
            recipient in online and seen > horizon
            for seen, online in self._remote_presence.values()
        )

    async def publish_ephemeral(self, recipients: Iterable[str], payload: dict[str, Any]) -> None:
        """Push a payload that is not stored and has no seq (typing, presence)."""
        targets = list(recipients)
        self._deliver_ephemeral(targets, payload)
        await self._send({"k": "eph", "r": targets, "m": payload, "p": self.process_id})

    def _deliver_ephemeral(self, recipients: list[str], payload: dict[str, Any]) -> None:
        for recipient in recipients:
            for sock in list(self.sockets.get(recipient, ())):
                sock.offer_ephemeral(payload)

    # --- publishing ------------------------------------------------------------------------

    async def publish(self, events: Iterable[Event]) -> None:
        """Deliver committed events: straight to local sockets, and a notice to the others."""
        batch = list(events)
        for event in batch:
            for sock in list(self.sockets.get(event.recipient, ())):
                sock.offer(event.seq, event)
        notice: dict[str, Any] = {"k": "ev", "r": [[e.recipient, e.seq] for e in batch]}
        if self._sealer is not None and batch:
            notice["p"] = self.process_id
            notice["x"] = self._sealer.seal(batch)
        await self._send(notice)

    async def close_sessions(self, session_ids: Iterable[str]) -> None:
        """Close every socket of these sessions, in every process (after sign-out etc.)."""
        ids = list(session_ids)
        if not ids:
            return
        self._close_local(set(ids))
        await self._send({"k": "close", "s": ids})

    def _close_local(self, session_ids: set[str]) -> None:
        for sockets in list(self.sockets.values()):
            for sock in list(sockets):
                if sock.session_id in session_ids:
                    sock.kick(4001, "session ended")

    async def _send(self, message: dict[str, Any]) -> None:
        bc = self._broadcast
        if bc is not None:
            try:
                await bc.publish(CHANNEL, json.dumps(message, separators=(",", ":")))
                return
            except Exception as exc:  # noqa: BLE001 - any broker failure means "retry later"
                log.warning("broadcast publish failed: %s", exc)
                # Not just a flag cleared while the subscription runs on (healthz would then
                # say "down" for good): the pump reconnects, and resyncs, from a clean state.
                self._publish_failed = True
        # Broker down: local sockets already have the event. Event notices wait in _unsent
        # (see _flush_unsent); typing and presence are disposable; a missed close is made
        # good by the session sweep.
        if message["k"] == "ev":
            self._remember_unsent(message["r"])

    def _remember_unsent(self, notices: Iterable[list[Any]]) -> None:
        for recipient, seq in notices:
            self._unsent[recipient] = max(int(seq), self._unsent.get(recipient, 0))

    async def _flush_unsent(self, bc: Broadcast) -> None:
        pending = [[recipient, seq] for recipient, seq in self._unsent.items()]
        self._unsent = {}
        try:
            await bc.publish(CHANNEL, json.dumps({"k": "ev", "r": pending}, separators=(",", ":")))
        except BaseException:
            self._remember_unsent(pending)
            raise

    def _handle(self, raw: str) -> None:
        message = json.loads(raw)
        kind = message.get("k")
        if kind == "ev":
            self._offer_notice(message)
        elif kind == "close":
            self._close_local(set(message["s"]))
        elif kind == "hb":
            if message.get("p", self.process_id) == self.process_id:
                self._last_heartbeat = time.monotonic()
        elif kind == "eph":
            if message.get("p") != self.process_id:
                self._deliver_ephemeral(message["r"], message["m"])
        elif kind == "pres":
            if message["p"] != self.process_id:
                self._remote_presence[message["p"]] = (time.monotonic(), set(message["r"]))

    def _offer_notice(self, message: dict[str, Any]) -> None:
        """Hand a notice's events to the local sockets of its recipients: from its seal when
        it has one this process can open, else as "read the database up to seq"."""
        sockets = self.sockets
        if not any(recipient in sockets for recipient, _seq in message["r"]):
            return  # nobody here: the common case with many processes, nothing to open
        sealed = message.get("x")
        # Our own notices: the local sockets had the events when they were committed.
        if sealed is not None and self._sealer is not None and message.get("p") != self.process_id:
            events = self._sealer.open(sealed)
            if events is not None:
                for event in events:
                    for sock in list(sockets.get(event.recipient, ())):
                        sock.offer(event.seq, event)
                return
        for recipient, seq in message["r"]:
            for sock in list(sockets.get(recipient, ())):
                sock.offer(int(seq), None)

    # --- the broker connection, supervised -------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while not self._stopping:
            bc, backend = open_broadcast(self._url)
            if backend is not None:
                # Straight from the Redis reader: the pump below then only watches liveness.
                backend.on_message = self._handle
            try:
                await bc.connect()
                async with bc.subscribe(CHANNEL) as subscriber:
                    self._broadcast = bc
                    self._last_heartbeat = time.monotonic()
                    self._publish_failed = False
                    self._set_connected(True)
                    if not first:
                        self.reconnects += 1
                        log.warning("realtime broker reconnected; resyncing local sockets")
                        self._resync_all()
                    first = False
                    backoff = 0.1
                    await self._pump(bc, subscriber, backend)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("realtime broker connection lost: %s", exc)
            finally:
                self._broadcast = None
                self._set_connected(False)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(bc.disconnect(), timeout=1)
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _pump(
        self, bc: Broadcast, subscriber: Any, backend: RedisNoticeBackend | None
    ) -> None:
        """Relay notices until the broker stops answering (on Redis they reach ``_handle``
        from the backend's reader instead, and this loop only watches liveness).

        A dropped Redis subscription shows as ``backend.lost``. Liveness is also proven by a
        heartbeat this process sends itself every half second: no heartbeat back within two
        seconds means the broker is gone (or wedged) and we reconnect.
        """
        loop_started = time.monotonic()
        next_beat = 0.0
        while not self._stopping:
            if backend is not None and backend.lost:
                raise ConnectionError("the Redis subscription was lost")
            if self._publish_failed:
                raise ConnectionError("a publish to the broker failed")
            if self._unsent:
                await self._flush_unsent(bc)
            now = time.monotonic()
            if now >= next_beat:
                await bc.publish(CHANNEL, json.dumps({"k": "hb", "p": self.process_id}))
                next_beat = now + 0.5
            if now - self._last_presence >= PRESENCE_EVERY:
                self._last_presence = now
                staff_online = [r for r in self.sockets if r.startswith("s:")]
                await bc.publish(
                    CHANNEL, json.dumps({"k": "pres", "p": self.process_id, "r": staff_online})
                )
            if now - max(self._last_heartbeat, loop_started) > 2.0:
                raise ConnectionError("no heartbeat from the realtime broker")
            try:
                event = await asyncio.wait_for(subscriber.get(), timeout=0.5)
            except TimeoutError:
                continue
            self._handle(event.message)

    def _resync_all(self) -> None:
        for sockets in list(self.sockets.values()):
            for sock in list(sockets):
                sock.resync()

    # --- access re-checked while sockets stay open -----------------------------------------

    async def _sweep_sessions(self) -> None:
        """Close, within a second, sockets whose session was revoked, expired or idled out.

        Sign-out and deactivation also close sockets at once through ``close_sessions``; this
        sweep is what still holds when the broker is down or a notice was missed.
        """
        while not self._stopping:
            await asyncio.sleep(1.0)
            try:
                by_session: dict[str, list[LocalSocket]] = defaultdict(list)
                idle_of: dict[int, list[str]] = defaultdict(list)
                for sockets in list(self.sockets.values()):
                    for sock in sockets:
                        if sock.session_id not in by_session:
                            idle_of[sock.idle_seconds].append(sock.session_id)
                        by_session[sock.session_id].append(sock)
                now = datetime.now(UTC)
                dead: set[str] = set()
                # Ask only for the sessions that ended: a second's sweep of thousands of
                # live ones then reads no rows (reading and parsing them all was a fifth of
                # a busy process's time).
                for idle, ids in idle_of.items():
                    dead |= await _ended_sessions(ids, idle, now)
                for session_id in dead:
                    for sock in by_session[session_id]:
                        sock.kick(4001, "session ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be restarting
                log.warning("session sweep failed: %s", exc)


# Session ids per statement of the sweep on SQLite (an IN list of parameters).
SWEEP_BATCH = 500


async def _ended_sessions(ids: list[str], idle_seconds: int, now: datetime) -> set[str]:
    """Which of these sessions (all with this idle timeout) are revoked, expired, idled out
    or gone."""
    # Hand-written: it runs every second over every open socket's session, and building
    # these IN lists through the ORM cost more than the queries (docs/performance.md,
    # sixth round).
    from server.db import dialect

    idle_since = now - timedelta(seconds=idle_seconds)
    if dialect() == "postgres":
        return await _ended_sessions_pg(ids, now, idle_since)
    ended: set[str] = set()
    for i in range(0, len(ids), SWEEP_BATCH):
        ended |= await _ended_sessions_sqlite(ids[i : i + SWEEP_BATCH], now, idle_since)
    return ended


_ENDED = "s.revoked_at IS NOT NULL OR s.expires_at <= {} OR s.last_seen_at <= {}"
_PG_SESSIONS = "FROM unnest($1::text[]) AS k(id) JOIN auth_session s ON s.id = k.id"


async def _ended_sessions_pg(ids: list[str], now: datetime, idle_since: datetime) -> set[str]:
    """All the ids as one array, in one statement whose text is the same every second, so
    its plan is prepared once (the generic plan looks each id up in the primary key: unnest
    is estimated at 10 rows); it counts the rows found in the same pass. IN lists of 500
    parameters, and a second statement to count, took 17 to 18 ms a sweep of 2,000 sockets
    against 7 to 9 ms this way (docs/performance.md, seventeenth round)."""
    from server.db import connection

    db = connection()
    ended = _ENDED.format("$2", "$3")
    rows = await db.execute_query_dict(
        f"SELECT count(*) AS n, array_agg(s.id) FILTER (WHERE {ended}) AS ended {_PG_SESSIONS}",
        [ids, now, idle_since],
    )
    out = set(rows[0]["ended"] or ())
    if int(rows[0]["n"]) < len(ids):
        present = await db.execute_query_dict(f"SELECT s.id {_PG_SESSIONS}", [ids])
        out |= set(ids) - {str(row["id"]) for row in present}
    return out


async def _ended_sessions_sqlite(ids: list[str], now: datetime, idle_since: datetime) -> set[str]:
    from server.db import connection

    db = connection()
    among = f"FROM auth_session s WHERE s.id IN ({', '.join('?' * len(ids))})"
    rows = await db.execute_query_dict(
        f"SELECT s.id {among} AND ({_ENDED.format('?', '?')})", [*ids, now, idle_since]
    )
    ended = {str(row["id"]) for row in rows}
    counted = await db.execute_query_dict(f"SELECT COUNT(*) AS n {among}", ids)
    if int(counted[0]["n"]) < len(ids):
        present = await db.execute_query_dict(f"SELECT s.id {among}", ids)
        ended |= set(ids) - {str(row["id"]) for row in present}
    return ended


hub = Hub()
