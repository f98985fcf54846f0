"""The load generator: browser tabs on real websockets, senders on real HTTP, and the clock.

A ``Tab`` is one signed-in person with one socket. A message is sent by one participant
through the HTTP API and timed from the moment the request starts until the last of the
conversation's participants (the sender's own tab included: their other tabs need it too)
has read it off its socket. Sending is open-loop at a fixed rate, each send in its own task,
so a slow server shows as latency rather than as a politely lower rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from seed import Chat, Person
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.typing import Origin

# httpcore asks ``import sniffio`` on every lock and timeout; without sniffio installed, each
# ask is a failed import that searches all of sys.path (a fifth of this process's time at
# a few hundred requests a second). None in sys.modules makes it fail at once, as intended.
if "sniffio" not in sys.modules:
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]

PASSWORD = "bench-password-2026"
BODIES = [
    "Hello, just confirming our session on Thursday at 10.",
    "Thank you, see you then.",
    "Could we move next week's appointment to the afternoon? Mornings are difficult now.",
    "I tried the breathing exercise we talked about; it helped a little before the meeting.",
    "Reminder: the office is closed on Monday, please reschedule your Monday sessions.",
    "Yes, 15:30 works for me.",
    "I have sent the invoice for March; let me know if anything looks wrong.",
    "Sorry, I am running ten minutes late today.",
]


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max by nearest rank, in the unit given."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))], 2)

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 2),
        "n": len(ordered),
    }


# --- what was sent and what arrived ---------------------------------------------------------


@dataclass(slots=True)
class Sent:
    t0: float
    waiting: set[str]
    expected: int
    phase: str
    sender: str = ""
    t_done: float | None = None
    http_ms: float | None = None
    status: int | None = None  # HTTP status, 0 when the request itself failed


@dataclass
class Tracker:
    sent: dict[str, Sent] = field(default_factory=dict)
    outstanding: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    unknown: int = 0
    gaps: int = 0
    drops: int = 0
    drop_codes: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _drained: dict[str, asyncio.Event] = field(default_factory=dict)
    # Which web process each tab is on (tab key -> index), to split each delivery's latency
    # by route: the sender's own tab, another tab on the sender's process, or a tab on the
    # other process (through Redis). Empty: no split.
    servers: dict[str, int] = field(default_factory=dict)
    # phase -> route -> latencies (ms) of single deliveries
    routes: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def expect(self, uid: str, members: Iterable[str], phase: str, sender: str = "") -> Sent:
        waiting = set(members)
        sent = Sent(time.perf_counter(), waiting, len(waiting), phase, sender)
        self.sent[uid] = sent
        self.outstanding[phase] = self.outstanding.get(phase, 0) + 1
        if phase in self._drained:
            self._drained[phase].clear()
        return sent

    def delivered(self, uid: str, key: str, now: float) -> None:
        sent = self.sent.get(uid)
        if sent is None:
            self.unknown += 1
            return
        if key not in sent.waiting:
            self.duplicates += 1
            return
        sent.waiting.discard(key)
        if self.servers and sent.sender:
            if key == sent.sender:
                route = "own_tab"
            elif self.servers.get(key) == self.servers.get(sent.sender):
                route = "same_process"
            else:
                route = "other_process"
            by_route = self.routes.setdefault(sent.phase, {})
            by_route.setdefault(route, []).append((now - sent.t0) * 1000)
        if not sent.waiting:
            sent.t_done = now
            self.outstanding[sent.phase] -= 1
            if self.outstanding[sent.phase] == 0 and sent.phase in self._drained:
                self._drained[sent.phase].set()

    async def drain(self, phase: str, seconds: float) -> None:
        """Wait until every message of ``phase`` has reached everyone, or ``seconds``."""
        if self.outstanding.get(phase, 0) == 0:
            return
        done = self._drained.setdefault(phase, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), seconds)

    def received(self, phase: str) -> int:
        return sum(s.expected - len(s.waiting) for s in self.sent.values() if s.phase == phase)

    def note_error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)

    def phase_stats(self, phase: str, t_start: float, t_sent: float) -> dict[str, Any]:
        items = [s for s in self.sent.values() if s.phase == phase]
        expected = sum(s.expected for s in items)
        received = sum(s.expected - len(s.waiting) for s in items)
        done = [s for s in items if s.t_done is not None]
        latencies = [(s.t_done - s.t0) * 1000 for s in done if s.t_done is not None]
        last = max((s.t_done for s in done if s.t_done is not None), default=t_sent)
        window = max(last, t_sent) - t_start
        return {
            "messages_sent": len(items),
            "messages_delivered": len(done),
            "send_errors": sum(1 for s in items if s.status != 200),
            "deliveries_expected": expected,
            "deliveries_received": received,
            "delivery_ratio": round(received / expected, 6) if expected else None,
            "offered_msgs_per_s": round(len(items) / max(t_sent - t_start, 1e-9), 1),
            "delivered_msgs_per_s": round(len(done) / max(window, 1e-9), 1),
            "latency_ms": percentiles(latencies),
            "http_ms": percentiles([s.http_ms for s in items if s.http_ms is not None]),
            "latencies_ms": latencies,
            # One delivery's latency by the route it took (not a message's: that waits for
            # its slowest recipient).
            "delivery_ms_by_route": {
                route: {"p50": percentiles(values)["p50"], "count": len(values)}
                for route, values in sorted(self.routes.get(phase, {}).items())
            },
        }


# --- the event loop of the load generator itself --------------------------------------------


class LagMonitor:
    """How late this process's event loop wakes up: if it lags, latencies are its own."""

    def __init__(self, every: float = 0.02) -> None:
        self.every = every
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.every)
            self.samples.append((time.perf_counter() - t - self.every) * 1000)

    def take(self) -> dict[str, float | None]:
        out = percentiles(self.samples)
        self.samples = []
        return out

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- targets: Cabinet, or the floor ---------------------------------------------------------


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """One HTTP client serves many people: keep nobody's cookie, send each their own."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def http_client(pool: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
        # Under uvicorn's 5 s keep-alive: a connection the server is closing is not reused.
        limits=httpx.Limits(
            max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=4.0
        ),
        timeout=httpx.Timeout(60.0),
        trust_env=False,
    )


class SendError(Exception):
    """A send's connection broke (a keep-alive connection the server had closed)."""


class RawPool:
    """Keep-alive HTTP/1.1 connections to one server, for the sends alone.

    httpx costs the load generator several times what the floor spends answering: at
    hundreds of requests a second it was the limit. A send is one small JSON POST and a
    Content-Length answer, which needs no more than this. Sign-in stays on httpx (cookies).
    """

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, path: str, payload: Any, headers: dict[str, str]) -> tuple[int, bytes]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = [f"POST {path} HTTP/1.1", f"Host: {self.netloc}", "Content-Type: application/json"]
        head += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        now = time.monotonic()
        while self._idle:
            reader, writer, used = self._idle.pop()
            # Under uvicorn's 5 s keep-alive: a connection the server may be closing is not
            # reused.
            if now - used < 4.0 and not writer.is_closing():
                break
            writer.close()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(request)
            status_line = await reader.readline()
            if not status_line:
                raise SendError("connection closed")
            status = int(status_line.split(b" ", 2)[1])
            length, keep = 0, True
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    keep = False
            data = await reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            writer.close()
            raise SendError(repr(exc)) from exc
        if keep:
            self._idle.append((reader, writer, time.monotonic()))
        else:
            writer.close()
        return status, data

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle = []


class Tab:
    """One person, signed in, with one socket (a browser tab)."""

    def __init__(self, person: Person, server: int, base: str) -> None:
        self.person = person
        self.key = person.key
        self.server = server
        self.base = base
        self.token = ""
        self.csrf = ""
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.last_seq: int | None = None
        self.closing = False
        self.extensions = ""

    @property
    def staff(self) -> bool:
        return self.person.realm == "staff"

    async def connect(self, target: Target, tracker: Tracker, after: int | None) -> float:
        """Open the socket and wait for ``ready``; returns seconds from start to ready."""
        self.ready = asyncio.Event()
        self.closing = False
        self.last_seq = after
        t0 = time.perf_counter()
        self.ws = await connect(
            target.socket_url(self, after),
            origin=Origin(self.base),
            additional_headers=target.socket_headers(self),
            # Browsers send no protocol pings; deflate is offered, as browsers do, and the
            # server decides (it declines: --ws-per-message-deflate false).
            ping_interval=None,
            open_timeout=120,
            close_timeout=5,
            proxy=None,
        )
        self.extensions = (
            self.ws.response.headers.get("Sec-WebSocket-Extensions", "")
            if (self.ws.response is not None)
            else ""
        )
        self.reader = asyncio.create_task(self._read(self.ws, tracker, target.stores))
        await asyncio.wait_for(self.ready.wait(), 120)
        return time.perf_counter() - t0

    async def _read(self, ws: ClientConnection, tracker: Tracker, check_seq: bool) -> None:
        try:
            async for raw in ws:
                now = time.perf_counter()
                message = json.loads(raw)
                kind = message.get("type")
                seq = message.get("seq")
                if kind == "ready":
                    self.last_seq = seq
                    self.ready.set()
                    continue
                if kind == "message.created":
                    tracker.delivered(message["data"]["client_uid"], self.key, now)
                if check_seq and isinstance(seq, int) and kind not in {"heartbeat", "pong"}:
                    if self.last_seq is not None and seq != self.last_seq + 1:
                        tracker.gaps += 1
                    if self.last_seq is None or seq > self.last_seq:
                        self.last_seq = seq
        except ConnectionClosed:
            pass
        finally:
            if not self.closing:
                tracker.drops += 1
                code = ws.close_code or 0
                tracker.drop_codes[code] = tracker.drop_codes.get(code, 0) + 1

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(BaseException):
                await self.reader
        self.ws = None
        self.reader = None


class Target:
    """Where tabs connect and senders post: one or more web processes."""

    name = "target"
    stores = False  # events carry a gapless seq and survive a disconnect

    def __init__(self, bases: list[str], pool: int) -> None:
        self.bases = bases
        self.pool = pool
        self.http = [http_client(pool) for _ in bases]
        self.raw = [RawPool(b) for b in bases]
        # Requests beyond the pool wait here, not in httpcore's pool, whose queue costs
        # O(queued) per request: under an open-loop rate that a slow server lets pile up,
        # the load generator itself would collapse. Latency still runs from the intended
        # send time, so waiting here is counted.
        self.slots = [asyncio.Semaphore(pool) for _ in bases]
        self.retries = 0

    def client_for(self, tab: Tab) -> httpx.AsyncClient:
        return self.http[tab.server]

    async def sign_in(self, tab: Tab) -> None:
        return None

    def socket_url(self, tab: Tab, after: int | None) -> str:
        raise NotImplementedError

    def socket_headers(self, tab: Tab) -> dict[str, str]:
        return {}

    async def send(self, tab: Tab, chat: Chat, uid: str, body: str) -> int:
        """Post a message; once more on a broken connection (a keep-alive connection the
        server closed as it was reused). The page resends with the same client_uid too, so
        the second attempt is harmless: the server stores one message."""
        async with self.slots[tab.server]:
            try:
                return await self._send(tab, chat, uid, body)
            except (httpx.TransportError, SendError):
                self.retries += 1
                return await self._send(tab, chat, uid, body)

    async def _send(self, tab: Tab, chat: Chat, uid: str, body: str) -> int:
        raise NotImplementedError

    async def aclose(self) -> None:
        for client in self.http:
            await client.aclose()
        for raw in self.raw:
            raw.close()


class CabinetTarget(Target):
    name = "cabinet"
    stores = True

    @staticmethod
    def _prefix(tab: Tab) -> str:
        return "/api" if tab.staff else "/portal/api"

    @staticmethod
    def _cookie(tab: Tab) -> str:
        return "cabinet_staff" if tab.staff else "cabinet_portal"

    async def sign_in(self, tab: Tab) -> None:
        response = await self.client_for(tab).post(
            f"{tab.base}{self._prefix(tab)}/session",
            json={"email": tab.person.email, "password": PASSWORD},
            headers={"Origin": tab.base},
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"sign-in of {tab.person.email}: {response.status_code} {response.text}"
            )
        me = response.json()
        tab.token = response.cookies[self._cookie(tab)]
        tab.csrf = me["csrf_token"]
        if me["recipient"] != tab.key:
            raise RuntimeError(f"{tab.person.email} signed in as {me['recipient']}, not {tab.key}")

    def socket_url(self, tab: Tab, after: int | None) -> str:
        path = "/staff/ws" if tab.staff else "/portal/ws"
        query = "" if after is None else f"?after={after}"
        return f"{tab.base.replace('http://', 'ws://', 1)}{path}{query}"

    def socket_headers(self, tab: Tab) -> dict[str, str]:
        return {"Cookie": f"{self._cookie(tab)}={tab.token}"}

    async def _send(self, tab: Tab, chat: Chat, uid: str, body: str) -> int:
        status, _ = await self.raw[tab.server].post(
            f"{self._prefix(tab)}/conversations/{chat.id}/messages",
            {"body": body, "client_uid": uid},
            {
                "Cookie": f"{self._cookie(tab)}={tab.token}",
                "X-CSRF-Token": tab.csrf,
                "Origin": tab.base,
            },
        )
        return status


class FloorTarget(Target):
    name = "floor"

    def socket_url(self, tab: Tab, after: int | None) -> str:
        return f"{tab.base.replace('http://', 'ws://', 1)}/ws?u={tab.key}"

    async def _send(self, tab: Tab, chat: Chat, uid: str, body: str) -> int:
        # What Cabinet's message.created envelope carries, so frames are the same size.
        event = {
            "seq": 0,
            "type": "message.created",
            "data": {
                "id": 0,
                "conversation_id": chat.id,
                "body": body,
                "client_uid": uid,
                "sender": {
                    "id": 0,
                    "role": tab.person.realm,
                    "name": "Therapist N0",
                    "staff_id": None,
                    "portal_account_id": None,
                },
                "created_at": datetime.now(UTC).isoformat(),
            },
        }
        status, _ = await self.raw[tab.server].post(
            "/send", {"to": chat.members, "event": event}, {}
        )
        return status


# --- the traffic ---------------------------------------------------------------------------


class Traffic:
    """Which conversation the next message goes to, and who sends it."""

    def __init__(
        self, chats: list[Chat], tabs: dict[str, Tab], office_share: float, seed: int
    ) -> None:
        self.client_chats = [c for c in chats if c.kind == "client"]
        self.office_chats = [c for c in chats if c.kind == "office"]
        self.tabs = tabs
        self.office_share = office_share
        self.rng = random.Random(seed)
        self.run = uuid.uuid4().hex[:8]
        self.count = 0

    def next(self) -> tuple[Chat, Tab, str, str]:
        if self.office_chats and (not self.client_chats or self.rng.random() < self.office_share):
            chat = self.rng.choice(self.office_chats)
        else:
            chat = self.rng.choice(self.client_chats)
        sender = self.tabs[self.rng.choice(chat.members)]
        self.count += 1
        return chat, sender, f"b{self.run}-{self.count}", self.rng.choice(BODIES)


async def send_one(target: Target, tracker: Tracker, traffic: Traffic, phase: str) -> None:
    chat, tab, uid, body = traffic.next()
    sent = tracker.expect(uid, chat.members, phase, tab.key)
    try:
        sent.status = await target.send(tab, chat, uid, body)
    except Exception as exc:  # noqa: BLE001 - counted, and the run goes on
        sent.status = 0
        tracker.note_error(f"send: {exc!r}")
    sent.http_ms = (time.perf_counter() - sent.t0) * 1000
    if sent.status != 200:
        tracker.note_error(f"send answered {sent.status}")


async def at_rate(rate: float, duration: float, make: Callable[[], Awaitable[None]]) -> float:
    """Start ``make()`` ``rate`` times a second for ``duration`` seconds, without waiting
    for one to finish before starting the next; returns when the last has finished."""
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    for i in range(int(rate * duration)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(make())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    t_sent = time.perf_counter()
    if tasks:
        await asyncio.gather(*tasks)
    return t_sent


async def closed_loop(
    concurrency: int, duration: float, make: Callable[[], Awaitable[None]]
) -> float:
    """``concurrency`` senders, each sending again as soon as its last send was answered."""
    deadline = time.perf_counter() + duration

    async def sender() -> None:
        while time.perf_counter() < deadline:
            await make()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return time.perf_counter()


async def bounded(
    items: Sequence[Any], limit: int, work: Callable[[Any], Awaitable[Any]]
) -> list[Any]:
    """``work(item)`` for every item, at most ``limit`` at once; exceptions are returned."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with semaphore:
            return await work(item)

    return await asyncio.gather(*(one(i) for i in items), return_exceptions=True)


# --- the load generator in several processes -------------------------------------------------
#
# One Python process reading thousands of sockets and posting hundreds of requests a second
# runs out of core before the floor does. With ``--load-procs N`` the tabs are split between
# N worker processes (each opens the sockets of its share, and sends a share of the load as
# any participant: every worker knows everyone's session). Each worker records what it sent
# (uid, start time, who must get it) and what its sockets received (uid, who, when); this
# process merges them into one Tracker. The clock is ``time.perf_counter``, CLOCK_MONOTONIC
# on Linux: one clock for every process on the machine, so a latency runs from the start of
# the send in one process to the moment the last participant's socket had it in another.


@dataclass(slots=True)
class TabSpec:
    person: Person
    server: int
    base: str
    token: str
    csrf: str


@dataclass
class SwarmSpec:
    kind: str  # "floor" or "cabinet"
    bases: list[str]
    pool: int
    tabs: list[TabSpec]  # everyone (senders may be anyone)
    mine: list[str]  # keys of the tabs whose sockets this worker holds
    chats: list[Chat]
    office_share: float
    seed: int


class Recorder(Tracker):
    """A worker's tracker: keeps raw sends and deliveries for the parent to merge."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[tuple[str, float, list[str], str, str]] = []
        self.arrivals: list[tuple[str, str, float]] = []
        self.results: list[tuple[str, int | None, float | None]] = []

    def expect(self, uid: str, members: Iterable[str], phase: str, sender: str = "") -> Sent:
        sent = Sent(time.perf_counter(), set(), 0, phase, sender)
        self.sends.append((uid, sent.t0, list(members), phase, sender))
        self.sent[uid] = sent
        return sent

    def delivered(self, uid: str, key: str, now: float) -> None:
        self.arrivals.append((uid, key, now))

    def take(self) -> dict[str, Any]:
        done = [uid for uid, s in self.sent.items() if s.http_ms is not None]
        results = [(uid, self.sent[uid].status, self.sent[uid].http_ms) for uid in done]
        for uid in done:
            del self.sent[uid]
        out = {
            "sends": self.sends,
            "arrivals": self.arrivals,
            "results": results,
            "errors": self.errors,
        }
        self.sends, self.arrivals, self.errors = [], [], []
        return out


async def _worker_main(conn: Any, spec: SwarmSpec) -> None:
    target: Target = (FloorTarget if spec.kind == "floor" else CabinetTarget)(spec.bases, spec.pool)
    tabs: dict[str, Tab] = {}
    for ts in spec.tabs:
        tab = Tab(ts.person, ts.server, ts.base)
        tab.token, tab.csrf = ts.token, ts.csrf
        tabs[tab.key] = tab
    recorder = Recorder()
    local = LocalSwarm(
        target,
        [tabs[k] for k in spec.mine],
        spec.chats,
        spec.office_share,
        spec.seed,
        tracker=recorder,
        everyone=tabs,
    )
    loop = asyncio.get_running_loop()

    async def until(t: float) -> None:
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    try:
        while True:
            command, arg = await loop.run_in_executor(None, conn.recv)
            answer: Any = None
            if command == "connect":
                concurrency, resume, t_start = arg
                await until(t_start)
                answer = await local.connect(concurrency, resume)
                answer["t_done"] = time.perf_counter()
            elif command == "close":
                await local.close()
            elif command == "send":
                phase, mode, value, duration, t_start = arg
                await until(t_start)
                answer = {"t_sent": await local.send(phase, mode, value, duration)}
            elif command == "collect":
                answer = recorder.take() | await local.collect(arg)
                answer["gaps"] = recorder.gaps
                answer["drops"] = recorder.drops
                answer["drop_codes"] = recorder.drop_codes
                answer["retries"] = target.retries
            elif command == "stop":
                await local.stop()
                conn.send(None)
                return
            conn.send(answer)
    finally:
        await local.stop()
        await target.aclose()


def swarm_worker(conn: Any, spec: SwarmSpec) -> None:
    """A worker process's entry point (multiprocessing, spawn)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_worker_main(conn, spec))
    else:
        uvloop.run(_worker_main(conn, spec))


class Swarm:
    """The tabs, held by ``procs`` worker processes; this process merges what they saw."""

    def __init__(
        self,
        procs: int,
        target: Target,
        tabs: list[Tab],
        chats: list[Chat],
        office_share: float,
        seed: int,
    ) -> None:
        import multiprocessing

        self.tracker = Tracker(servers={t.key: t.server for t in tabs})
        self.started = 0.0  # when the last send phase began
        self.target = target
        self.tabs = tabs
        self._early: list[tuple[str, str, float]] = []  # arrivals before their send
        self._gaps: dict[int, tuple[int, int, dict[int, int], int]] = {}
        ctx = multiprocessing.get_context("spawn")
        specs = [TabSpec(t.person, t.server, t.base, t.token, t.csrf) for t in tabs]
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            spec = SwarmSpec(
                kind="floor" if isinstance(target, FloorTarget) else "cabinet",
                bases=target.bases,
                pool=target.pool,
                tabs=specs,
                mine=[t.key for t in tabs[i::procs]],
                chats=chats,
                office_share=office_share,
                seed=seed * 1000 + i,
            )
            proc = ctx.Process(target=swarm_worker, args=(child, spec), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def _all(self, command: str, arg: Any = None) -> list[Any]:
        loop = asyncio.get_running_loop()
        for conn in self.conns:
            conn.send((command, arg))
        return list(await asyncio.gather(*(loop.run_in_executor(None, c.recv) for c in self.conns)))

    async def connect(self, concurrency: int, resume: bool) -> dict[str, Any]:
        """Open every tab's socket (all at once when ``concurrency`` is 0)."""
        t0 = time.perf_counter() + 0.2
        answers = await self._all("connect", (concurrency, resume, t0))
        times = [t for a in answers for t in a["times"]]
        return {
            "times": times,
            "failures": [f for a in answers for f in a["failures"]],
            "seconds": max(a["t_done"] for a in answers) - t0,
            "extensions": answers[0]["extensions"],
        }

    async def close(self) -> None:
        await self._all("close")

    async def send(self, phase: str, mode: str, value: float, duration: float) -> float:
        """Every worker sends its share from the same instant; returns when all have sent."""
        n = len(self.conns)
        t0 = time.perf_counter() + 0.2
        share = value / n if mode == "rate" else max(1, round(value / n))
        self.started = t0
        answers = await self._all("send", (phase, mode, share, duration, t0))
        await self.collect()
        return max(a["t_sent"] for a in answers)

    async def collect(self, lag: bool = False) -> dict[str, Any]:
        """Merge what the workers recorded since the last collect into ``tracker``."""
        answers = await self._all("collect", lag)
        tracker = self.tracker
        for a in answers:
            for uid, t0, members, phase, sender in a["sends"]:
                sent = tracker.expect(uid, members, phase, sender)
                sent.t0 = t0
        for a in answers:
            for uid, status, http_ms in a["results"]:
                sent = tracker.sent[uid]
                sent.status, sent.http_ms = status, http_ms
            for error in a["errors"]:
                tracker.note_error(error)
        arrivals = self._early + [x for a in answers for x in a["arrivals"]]
        self._early = []
        for uid, key, t in sorted(arrivals, key=lambda x: x[2]):
            if uid in tracker.sent:
                tracker.delivered(uid, key, t)
            else:
                self._early.append((uid, key, t))
        # Arrivals of a send no worker reported (yet): unknown messages, as in one process.
        tracker.unknown = len(self._early)
        for i, a in enumerate(answers):
            self._gaps[i] = (a["gaps"], a["drops"], a["drop_codes"], a["retries"])
        tracker.gaps = sum(g[0] for g in self._gaps.values())
        tracker.drops = sum(g[1] for g in self._gaps.values())
        codes: dict[int, int] = {}
        for g in self._gaps.values():
            for code, count in g[2].items():
                codes[code] = codes.get(code, 0) + count
        tracker.drop_codes = codes
        self.target.retries = sum(g[3] for g in self._gaps.values())
        lags = [a["lag"] for a in answers if a["lag"]]
        return {
            "held": sum(a["held"] for a in answers),
            "lag": max(lags, key=lambda x: x.get("p99") or 0) if lags else None,
        }

    async def drain(self, phase: str, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while True:
            await self.collect()
            if self.tracker.outstanding.get(phase, 0) == 0 or time.perf_counter() > deadline:
                return
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.collect()
            await self._all("stop")
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


class LocalSwarm:
    """The same interface as ``Swarm``, with every tab in this process (``--load-procs 1``)."""

    def __init__(
        self,
        target: Target,
        tabs: list[Tab],
        chats: list[Chat],
        office_share: float,
        seed: int,
        tracker: Tracker | None = None,
        everyone: dict[str, Tab] | None = None,
    ) -> None:
        """``tabs``: the sockets held here; ``everyone``: who may send (default: ``tabs``)."""
        self.tracker = tracker or Tracker(servers={t.key: t.server for t in tabs})
        self.started = 0.0  # when the last send phase began
        self.target = target
        self.tabs = tabs
        self.traffic = Traffic(chats, everyone or {t.key: t for t in tabs}, office_share, seed)
        self.lag = LagMonitor()
        self.lag.start()

    @property
    def pids(self) -> list[int]:
        return []

    async def connect(self, concurrency: int, resume: bool) -> dict[str, Any]:
        target, tracker = self.target, self.tracker

        def after(t: Tab) -> int | None:
            return t.last_seq if resume and target.stores else None

        t0 = time.perf_counter()
        if concurrency:
            results = await bounded(
                self.tabs, concurrency, lambda t: t.connect(target, tracker, after(t))
            )
        else:
            results = await asyncio.gather(
                *(t.connect(target, tracker, after(t)) for t in self.tabs),
                return_exceptions=True,
            )
        return {
            "times": [r for r in results if isinstance(r, float)],
            "failures": [repr(r) for r in results if isinstance(r, BaseException)],
            "seconds": time.perf_counter() - t0,
            "extensions": self.tabs[0].extensions if self.tabs else "",
        }

    async def close(self) -> None:
        await asyncio.gather(*(t.close() for t in self.tabs))

    async def send(self, phase: str, mode: str, value: float, duration: float) -> float:
        self.started = time.perf_counter()

        def make() -> Awaitable[None]:
            return send_one(self.target, self.tracker, self.traffic, phase)

        if mode == "rate":
            return await at_rate(value, duration, make)
        if mode == "closed":
            return await closed_loop(int(value), duration, make)
        await bounded(range(int(value)), 32, lambda _: make())
        return time.perf_counter()

    async def collect(self, lag: bool = False) -> dict[str, Any]:
        return {
            "held": sum(1 for t in self.tabs if t.ws is not None and t.ws.state is State.OPEN),
            "lag": self.lag.take() if lag else None,
        }

    async def drain(self, phase: str, seconds: float) -> None:
        await self.tracker.drain(phase, seconds)

    async def stop(self) -> None:
        await self.close()
        await self.lag.stop()
