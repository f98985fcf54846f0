"""SQLite with fewer thread hops: Tortoise's SQLite client, its statements run on the loop.

Why: Tortoise reaches SQLite through aiosqlite, which runs every statement on a thread of
its own: a queue put, a thread wake-up, and a wake-up of the event loop to hand the result
back, for statements that themselves take microseconds. A message send is about nine of
them; the hops cost more than the SQL (bench/sendpath.py: 2.0 CPU ms per send one at a
time, 1.0 here; docs/performance.md, sixth round). Here a statement runs straight on the
event loop's thread, on one ``sqlite3`` connection, still behind Tortoise's lock (one
statement or transaction at a time, as before). Reads made outside any transaction go to a
second, read-only connection instead (``InlineSqliteClient._read``): in WAL mode it reads
what is committed without waiting for the transaction in progress.

What could hold the loop, and what we do instead:

- **Another process's lock.** The connection has no busy timeout of its own (a busy wait
  inside ``sqlite3`` would freeze the loop). A statement that finds the database locked is
  tried again after an asyncio sleep, doubling from 1 to 50 ms, for up to
  ``BUSY_TIMEOUT`` seconds (``sqlite3``'s own default), then fails as before.
- **Many statements in a row** (a batch that writes a thousand rows). A statement here
  never suspends its caller, so a coroutine that runs one after another would never let
  the loop serve anyone else; after ``YIELD_EVERY`` seconds of statements, the next one
  lets the loop go round once first.
- **A long read** (a search over thousands of clients, a report). A ``SELECT`` that has
  run for ``READ_BUDGET`` seconds on the loop is interrupted and run again, whole, on a
  worker thread, where it may take as long as it needs while the loop serves everyone
  else. Reads are safe to interrupt: an interrupted read leaves its transaction as it
  was (an interrupted write would roll the whole transaction back, so writes run to the
  end; they are short).
- **The disk.** A commit runs on a worker thread: one hop per transaction, not per
  statement, and the loop serves other requests meanwhile. A commit is never interrupted.

Durability (a file database in WAL mode, ``synchronous`` not set in the URL): the writer runs
``synchronous=NORMAL``, so its ``COMMIT`` writes the WAL without waiting for the disk, and
the connection itself then flushes the WAL (``fdatasync``, on a thread of its own) before
the commit counts as done. The guarantee is ``synchronous=FULL``'s: whoever is told a write
is saved is told so after it is on disk; what changes is when others may see it. With FULL,
SQLite makes a transaction visible only after its fsync; here it is visible as soon as it
is written, a few hundred microseconds before it is durable. That lets the group commit of
messages (server/actions/messaging.py) push a message to the recipients' sockets while its
fsync runs, and answer the sender once it is done; and the next transaction's writes no
longer wait for the previous one's fsync. A power cut in that window loses only what no
sender was told is saved (they try again with the same ``client_uid``); a tab that saw such
a message resumes from the server's numbering (docs/realtime.md). A failed ``fdatasync``
leaves the disk's state unknown: the connection then refuses to call any later write saved
(``WalSync``), as PostgreSQL stops on a failed fsync, until Cabinet is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from tortoise.backends.sqlite.client import SqliteClient, translate_exceptions

T = TypeVar("T")


def _utc_text(value: datetime) -> str:
    """A datetime as SQLite stores it: text, in UTC when it knows its zone.

    SQLite compares datetimes as text. Tortoise writes an aware value with its own offset
    ("2026-03-29 00:00:00+01:00"), which sorts against the stored UTC values by its digits,
    not its instant: a filter from a Paris midnight ran from 01:00 UTC. PostgreSQL compares
    instants; so does this. Registered after Tortoise's own adapter, which it replaces
    (both are process-wide, as sqlite3's adapters are).
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat(" ")


sqlite3.register_adapter(datetime, _utc_text)

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 5.0
READ_BUDGET = 0.002
YIELD_EVERY = 0.002
# The progress handler runs every this many SQLite virtual machine instructions: often
# enough to stop a long read within a fraction of a millisecond past its budget, seldom
# enough that a short statement never calls back into Python at all.
PROGRESS_EVERY = 1000


class _Worker:
    """The connection's own thread for what must not run on the loop (commits, long
    reads): a queue and a thread, as aiosqlite has, which hands results back for about
    two-thirds of what ``asyncio.to_thread`` costs (47 against 75 µs of CPU here), once
    per transaction."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[asyncio.Future[Any], Callable[[], Any]] | None]
        self._calls = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="cabinet-sqlite", daemon=True)
        self._thread.start()

    def submit(self, run: Callable[[], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((future, run))
        return future

    def stop(self) -> None:
        """Finish what was asked, then end (at shutdown: waits up to five seconds)."""
        self._calls.put(None)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, run = call
            done: Callable[[asyncio.Future[Any], Any], None]
            try:
                value = run()
                done = _succeed
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                done, value = _fail, exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                future.get_loop().call_soon_threadsafe(done, future, value)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# The task whose commits leave their fsync to it (see ``sync_deferred``).
_deferring: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "sqlite_sync_deferred", default=None
)


@contextlib.contextmanager
def sync_deferred() -> Iterator[None]:
    """Commits made by this task inside the block return once written, before the fsync:
    the caller must ``await durable()`` (server/db.py) before telling anyone the write is
    saved. Tasks started meanwhile are not concerned: their commits wait as usual."""
    token = _deferring.set(asyncio.current_task())
    try:
        yield
    finally:
        _deferring.reset(token)


class DiskFailed(sqlite3.OperationalError):
    """An ``fdatasync`` of the WAL failed: what was written since may not be on disk."""


class WalSync:
    """Flushes a WAL file to disk for the commits that ask, several at a time.

    ``wrote()`` counts a commit; ``sync()`` returns once an ``fdatasync`` that started after
    the last counted commit has finished. One flush runs at a time, on a thread of its own
    (so the next transaction's commit does not wait behind it), and it covers every commit
    counted before it started: while it runs, later commits queue up for the next one.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)  # as SQLite named it, whatever the cwd becomes
        self._fd: int | None = None
        self._written = 0
        self._synced = 0
        self._running: asyncio.Future[OSError | None] | None = None
        self.failed: OSError | None = None
        self._worker = _Worker()

    def wrote(self) -> None:
        self._written += 1

    def kick(self) -> None:
        """Start flushing now, if no flush is running, without waiting for it: a commit
        whose caller has more to do before it waits (``sync_deferred``)."""
        if self._running is None and self._synced < self._written and self.failed is None:
            self._start()

    def _start(self) -> asyncio.Future[OSError | None]:
        running = self._running = self._worker.submit(self._flush)
        running.add_done_callback(functools.partial(self._flushed, self._written))
        return running

    async def sync(self) -> None:
        target = self._written
        while self._synced < target:
            if self.failed is not None:
                raise DiskFailed(f"writing to disk failed earlier: {self.failed}")
            running = self._running
            if running is None:
                running = self._start()
            elif running.done():
                # Finished, its callback not run yet: awaiting it would not yield, and
                # this loop would spin forever. Let the callback run first.
                await asyncio.sleep(0)
                continue
            # Shielded: a waiter given up (a cancelled request) must not stop the flush
            # others are waiting for too.
            await asyncio.shield(running)

    def _flushed(self, covers: int, done: asyncio.Future[OSError | None]) -> None:
        if self._running is done:
            self._running = None
        if done.cancelled():
            return  # the loop is closing: nothing is known, the next sync() tries again
        error = done.exception() or done.result()
        if error is None:
            self._synced = max(self._synced, covers)
            return
        if self.failed is None:
            log.critical("fdatasync of %s failed (%r): restart Cabinet", self.path, error)
        self.failed = error if isinstance(error, OSError) else OSError(str(error))

    def _flush(self) -> OSError | None:
        """On the worker thread: ``fdatasync`` the WAL file as it is now named. Only ever
        this file: closing a descriptor of the database file would drop SQLite's locks on
        it (POSIX locks are per process), and the WAL holds none."""
        try:
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                # No WAL: SQLite removes it only after copying it into the database file and
                # syncing that; nothing is waiting in it.
                return None
            fd = self._fd
            if fd is None or os.fstat(fd).st_ino != current.st_ino:
                if fd is not None:
                    os.close(fd)
                    self._fd = None
                fd = self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            os.fdatasync(fd)
            return None
        except OSError as exc:
            return exc

    def close(self) -> None:
        self._worker.stop()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Interrupted(Exception):
    """A read ran past its budget on the loop and must be run again on a thread."""


class Row(dict[str, Any]):
    """A row as the dict Tortoise reads it as (``dict(row)``, ``**row``, ``row[name]``), which
    also answers ``row[i]`` as ``sqlite3.Row`` does.

    Why not ``sqlite3.Row``: Tortoise turns every row into a dict or keyword arguments, and a
    ``sqlite3.Row`` gives a value by name by comparing the name with each column's in turn;
    for the 50 columns of a client caller's row that was 24 µs a read, more than running the
    statement (docs/performance.md, eighth round). Built from the cursor's tuples here, a
    row costs one ``dict(zip(...))``.
    """

    __slots__ = ("_values",)
    _values: tuple[Any, ...]

    def __missing__(self, key: object) -> Any:
        if isinstance(key, int):
            return self._values[key]  # by position, duplicate column names included
        raise KeyError(key)


def _rows(cursor: sqlite3.Cursor) -> list[Any]:
    """The cursor's remaining rows, as ``Row``s."""
    found = cursor.fetchall()
    if not found or cursor.description is None:
        return found
    names = [column[0] for column in cursor.description]
    rows = []
    for values in found:
        row = Row(zip(names, values, strict=True))
        row._values = values
        rows.append(row)
    return rows


class _Cursor:
    """What Tortoise does with aiosqlite's cursor: close it (after a PRAGMA)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def fetchall(self) -> list[Any]:
        return _rows(self._cursor)

    async def close(self) -> None:
        self._cursor.close()


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


def _is_dml(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))


def _busy(exc: sqlite3.OperationalError) -> bool:
    # SQLITE_BUSY and its extended codes, except BUSY_SNAPSHOT: a transaction whose snapshot
    # is stale can never take the write lock, and waiting would only delay its failure.
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # a message without a code: sqlite3 says "database is locked"
        return "database is locked" in str(exc)
    return code & 0xFF == sqlite3.SQLITE_BUSY and code != 517


class InlineConnection:
    """aiosqlite.Connection's interface, as far as Tortoise uses it, on the calling thread.

    Only ever used under Tortoise's connection lock, so one statement runs at a time; a
    read moved to a thread still holds that lock until it is done.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._deadline: float | None = None
        # When the loop last went round because of us (see YIELD_EVERY).
        self._yielded = time.perf_counter()
        conn.set_progress_handler(self._progress, PROGRESS_EVERY)
        self._worker = _Worker()
        # Set on the writer when the connection makes commits durable itself (WalSync).
        self.wal: WalSync | None = None

    def _progress(self) -> int:
        deadline = self._deadline
        return 1 if deadline is not None and time.perf_counter() > deadline else 0

    @property
    def total_changes(self) -> int:
        return self._conn.total_changes

    async def _retrying(
        self,
        run: Callable[[], T],
        *,
        repeatable: bool = True,
        on_thread: bool = False,
        interruptible: bool = True,
    ) -> T:
        """``run()``, tried again while another connection holds the lock it needs.

        ``repeatable`` False: only while nothing was written yet (an ``executemany`` that
        got past its first row must not run those rows twice). ``on_thread``: on a worker
        thread instead of the loop's (``interruptible``: see ``_on_thread``)."""
        if time.perf_counter() - self._yielded > YIELD_EVERY:
            await asyncio.sleep(0)
            self._yielded = time.perf_counter()
        delay = 0.001
        deadline: float | None = None
        changes = self._conn.total_changes
        while True:
            try:
                if on_thread:
                    return await self._on_thread(run, interruptible=interruptible)
                return run()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or (not repeatable and self._conn.total_changes != changes):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + BUSY_TIMEOUT
                if now >= deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)

    async def _on_thread(self, run: Callable[[], T], *, interruptible: bool = True) -> T:
        """``run()`` on a worker thread. Cancelled meanwhile, the statement is interrupted
        (a read; a commit is let finish) and waited for before the caller hears of it: the
        caller then lets go of Tortoise's lock, and the next statement must not find this
        one still running."""
        running = self._worker.submit(run)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            if interruptible:
                self._conn.interrupt()
            await asyncio.wait([running])
            if not running.cancelled():
                running.exception()  # seen: the caller was cancelled, this is no news
            raise

    def _fetch(self, sql: str, parameters: Sequence[Any] | None, budget: bool) -> list[Any]:
        self._deadline = time.perf_counter() + READ_BUDGET if budget else None
        try:
            return _rows(self._conn.execute(sql, parameters or ()))
        except sqlite3.OperationalError as exc:
            if budget and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT:
                raise _Interrupted from None
            raise
        finally:
            self._deadline = None

    async def _writing(self, sql: str, run: Callable[[], T], *, repeatable: bool = True) -> T:
        """``run()`` (through ``_retrying``), a statement that may write. Outside a
        transaction it commits by itself, and must be on disk before its caller hears of
        it. An ``INSERT``, ``UPDATE`` or ``DELETE`` that changed no row wrote nothing (the
        worker's claim of due jobs, every second, usually finds none); anything else is
        flushed."""
        before = self._conn.total_changes
        result = await self._retrying(run, repeatable=repeatable)
        if self._conn.total_changes != before or not _is_dml(sql):
            await self._flush_if_committed()
        return result

    async def _flush_if_committed(self) -> None:
        wal = self.wal
        if wal is not None and not self._conn.in_transaction:
            wal.wrote()
            await wal.sync()

    async def execute_fetchall(self, sql: str, parameters: Sequence[Any] | None = None) -> Any:
        if not _is_read(sql):
            return await self._writing(sql, lambda: self._fetch(sql, parameters, False))
        try:
            return await self._retrying(lambda: self._fetch(sql, parameters, True))
        except _Interrupted:
            pass
        # A long read: on a thread, with no budget, waiting for locks the same way.
        return await self._retrying(lambda: self._fetch(sql, parameters, False), on_thread=True)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        def run() -> sqlite3.Cursor:
            return self._conn.execute(sql, parameters or ())

        if _is_read(sql):
            return _Cursor(await self._retrying(run))
        return _Cursor(await self._writing(sql, run))

    async def execute_insert(self, sql: str, parameters: Sequence[Any]) -> tuple[int | None]:
        cursor = await self._writing(sql, lambda: self._conn.execute(sql, parameters))
        return (cursor.lastrowid,)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> None:
        rows = list(parameters)
        await self._writing(sql, lambda: self._conn.executemany(sql, rows), repeatable=False)

    async def executescript(self, script: str) -> None:
        # Schema changes, at start-up: rare, and allowed to wait for a lock the plain way.
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        try:
            self._conn.executescript(script)
        finally:
            self._conn.execute("PRAGMA busy_timeout = 0")
        await self._flush_if_committed()

    async def commit(self) -> None:
        if not self._conn.in_transaction:
            return  # Tortoise commits before each BEGIN, to be sure: nothing to do
        # On a worker thread: a commit may wait for the disk (an automatic checkpoint, or
        # SQLite's own fsync where the URL sets ``synchronous``), and meanwhile the loop can
        # read, check and answer other requests (the statements wait: Tortoise's lock is
        # held until the commit is done).
        await self._retrying(self._conn.commit, on_thread=True, interruptible=False)
        wal = self.wal
        if wal is not None:
            wal.wrote()
            if _deferring.get() is asyncio.current_task():
                wal.kick()  # flushing while the caller goes on; it waits with durable()
            else:
                await wal.sync()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._worker.stop()
        if self.wal is not None:
            self.wal.close()
        self._conn.close()


class InlineSqliteClient(SqliteClient):
    """Tortoise's SQLite client on an ``InlineConnection`` (pragmas and all else as before),
    with a second connection for the reads made outside any transaction (see ``_read``)."""

    _reader: InlineConnection | None = None
    _reading = False

    async def create_connection(self, with_db: bool) -> None:
        if self._connection:
            return
        connection = await self._connect(self.pragmas)
        self._connection = connection  # type: ignore[assignment]
        await self._post_connect()
        self._reader = await self._open_reader(connection)
        if self._reader is not None and "synchronous" not in self.pragmas:
            # A file in WAL mode, durability left to us: see the module's docstring.
            await connection.execute("PRAGMA synchronous=NORMAL")
            connection.wal = WalSync(self.filename + "-wal")

    async def durable(self) -> None:
        """Once every transaction committed so far is on disk."""
        connection = self._connection
        if isinstance(connection, InlineConnection) and connection.wal is not None:
            await connection.wal.sync()

    async def _connect(self, pragmas: dict[str, Any]) -> InlineConnection:
        # No busy timeout (see the module's docstring); any thread may run a statement,
        # one at a time (a long read moves to the connection's worker thread).
        conn = sqlite3.connect(
            self.filename, isolation_level=None, timeout=0, check_same_thread=False
        )
        connection = InlineConnection(conn)
        for pragma, value in pragmas.items():
            await connection.execute(f"PRAGMA {pragma}={value}")
        return connection

    async def _open_reader(self, writer: InlineConnection) -> InlineConnection | None:
        """The reads' own connection, where WAL lets a reader and a writer work at once: a
        file database (an in-memory one would be another, empty database) in WAL mode."""
        name = self.filename
        if name in {"", ":memory:"} or name.startswith("file::memory:") or "mode=memory" in name:
            return None
        [row] = await writer.execute_fetchall("PRAGMA journal_mode")
        if str(row[0]).lower() != "wal":
            return None
        pragmas = {k: v for k, v in self.pragmas.items() if k != "journal_mode"}
        return await self._connect({**pragmas, "query_only": 1})

    @translate_exceptions
    async def _read(self, query: str, values: list[Any] | None) -> list[Any] | None:
        """A ``SELECT`` outside any transaction, on the reader; None: the caller's way.

        Tortoise's one lock orders every statement of the one connection, so a read (the
        caller behind a cookie, on every request) used to wait for any transaction in
        progress to commit, its fsync included, while the loop had nothing else to do. In
        WAL mode a second connection reads the last committed state without waiting for the
        writer, and it is all a read outside a transaction may see. The reader serves one
        read at a time (a long one moves to its thread): a read that finds it busy, or a
        statement that is not a plain ``SELECT``, goes the writer's way, as before.
        """
        reader = self._reader
        if reader is None or self._reading or not _is_read(query):
            return None
        self._reading = True
        try:
            return await reader.execute_fetchall(query.replace("\x00", "'||CHAR(0)||'"), values)
        finally:
            self._reading = False

    async def execute_query(
        self, query: str, values: list[Any] | None = None
    ) -> tuple[int, Sequence[dict[str, Any]]]:
        rows = await self._read(query, values)
        if rows is None:
            return await super().execute_query(query, values)
        return len(rows), rows

    async def execute_query_dict(
        self, query: str, values: list[Any] | None = None
    ) -> list[dict[str, Any]]:
        rows = await self._read(query, values)
        if rows is None:
            return await super().execute_query_dict(query, values)
        return rows  # already dicts, and the caller's own

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()
        await super().close()


client_class = InlineSqliteClient


def get_client_class(db_info: dict[str, Any]) -> type[SqliteClient]:
    return InlineSqliteClient
