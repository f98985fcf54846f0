"""The SQLite client that runs statements on the event loop's thread (server/sqlite.py):
nothing waits on a thread for a short statement, and nothing holds the loop for long, not
another process's lock and not a long read."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tortoise import connections
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.exceptions import IntegrityError, OperationalError

from models.realtime import RealtimeCursor
from server import sqlite
from server.db import WAL_SIZE_LIMIT, atomic, close_db, connection, connection_config, init_db
from server.sqlite import InlineSqliteClient
from tests.conftest import Flushes

# A read that takes a good part of a second on any machine: 3 million rows counted.
LONG_READ = (
    "SELECT COUNT(*) AS n FROM (WITH RECURSIVE c(x) AS "
    "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT x FROM c)"
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[InlineSqliteClient]:
    url = f"sqlite://{tmp_path / 'db.sqlite3'}"
    await init_db(url)  # the app's models; the test uses a table of its own
    try:
        c = connections.get("default")
        assert isinstance(c, InlineSqliteClient)
        await c.execute_script("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        yield c
    finally:
        await close_db()


class Ticker:
    """Counts event-loop turns every 5 ms: a loop held by a statement stops counting."""

    def __init__(self) -> None:
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(0.01)  # ticking
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.01)  # a tick after the last statement, to see its gap
        assert self._task is not None
        self._task.cancel()


@contextmanager
def locked_by_another_process(path: str, seconds: float) -> Iterator[threading.Thread]:
    """Another connection (as another process would) holds the write lock for a while."""
    taken = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO note (body) VALUES ('theirs')")
        taken.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait()
    try:
        yield thread
    finally:
        thread.join()


def test_sqlite_urls_get_the_inline_client_and_keep_their_pragmas() -> None:
    config = connection_config("sqlite:///tmp/x.sqlite3?synchronous=NORMAL")
    assert isinstance(config, dict)
    assert config["engine"] == "server.sqlite"
    assert config["credentials"]["synchronous"] == "NORMAL"
    assert config["credentials"]["file_path"] == "/tmp/x.sqlite3"
    assert config["credentials"]["journal_size_limit"] == WAL_SIZE_LIMIT  # see below
    mine = connection_config("sqlite:///tmp/x.sqlite3?journal_size_limit=1000")
    assert isinstance(mine, dict) and mine["credentials"]["journal_size_limit"] == 1000
    assert issubclass(sqlite.get_client_class(config), SqliteClient)


async def test_the_wal_keeps_its_size_after_a_checkpoint(
    client: InlineSqliteClient, tmp_path: Path
) -> None:
    """Commits then overwrite the WAL in place, and their fsync writes no new file size."""
    assert client._reader is not None
    for raw in (client._connection._conn, client._reader._conn):  # type: ignore[attr-defined]
        assert raw.execute("PRAGMA journal_size_limit").fetchone()[0] == WAL_SIZE_LIMIT
    wal = tmp_path / "db.sqlite3-wal"
    for i in range(50):
        await client.execute_query("INSERT INTO note (body) VALUES (?)", [f"{i}" * 2000])
    grown = wal.stat().st_size
    assert grown > 100_000
    await client.execute_query("PRAGMA wal_checkpoint(PASSIVE)")
    # The next write starts the WAL over from its beginning: overwritten, not truncated.
    await client.execute_query("INSERT INTO note (body) VALUES ('after')")
    assert wal.stat().st_size == grown


async def test_statements_run_on_the_loops_thread(client: InlineSqliteClient) -> None:
    threads: list[int] = []
    assert client._reader is not None
    for raw in (client._connection._conn, client._reader._conn):  # type: ignore[attr-defined]
        raw.create_function("whose", 0, lambda: threads.append(threading.get_ident()) or 1)
    await client.execute_query("INSERT INTO note (body) VALUES ('a')")
    await client.execute_query_dict("SELECT whose() AS w FROM note")
    async with client._in_transaction() as tx:
        await tx.execute_query("INSERT INTO note (body) VALUES ('b')")
        await tx.execute_query_dict("SELECT whose() AS w FROM note LIMIT 1")
    assert len(threads) == 2 and set(threads) == {threading.get_ident()}
    assert await client.execute_query_dict("SELECT body FROM note ORDER BY id") == [
        {"body": "a"},
        {"body": "b"},
    ]
    # The pragmas Tortoise sets are there.
    [mode] = await client.execute_query_dict("PRAGMA journal_mode")
    assert mode["journal_mode"] == "wal"


async def test_a_lock_held_elsewhere_is_waited_for_without_holding_the_loop(
    client: InlineSqliteClient,
) -> None:
    async with Ticker() as ticker:
        with locked_by_another_process(client.filename, 0.4):
            started = time.perf_counter()
            await client.execute_query("INSERT INTO note (body) VALUES ('mine')")
            waited = time.perf_counter() - started
    assert waited > 0.2  # it did wait for the other writer
    assert ticker.longest_gap < 0.1  # and the loop went on meanwhile
    rows = await client.execute_query_dict("SELECT body FROM note ORDER BY id")
    assert [r["body"] for r in rows] == ["theirs", "mine"]


async def test_a_lock_held_too_long_fails_as_before(
    client: InlineSqliteClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT", 0.2)
    with locked_by_another_process(client.filename, 0.6):
        with pytest.raises(OperationalError, match="locked"):
            await client.execute_query("INSERT INTO note (body) VALUES ('mine')")
    rows = await client.execute_query_dict("SELECT body FROM note")
    assert [r["body"] for r in rows] == ["theirs"]


async def test_a_long_read_moves_to_a_thread_and_leaves_its_transaction_whole(
    client: InlineSqliteClient,
) -> None:
    async with Ticker() as ticker:
        async with client._in_transaction() as tx:
            await tx.execute_query("INSERT INTO note (body) VALUES ('before the read')")
            started = time.perf_counter()
            [row] = await tx.execute_query_dict(LONG_READ)
            took = time.perf_counter() - started
            await tx.execute_query("INSERT INTO note (body) VALUES ('after the read')")
    assert row["n"] == 3_000_000
    assert took > 0.1  # long enough that holding the loop would show
    # Interrupted on the loop after its budget, then run whole on a thread.
    assert ticker.longest_gap < 0.05
    rows = await client.execute_query_dict("SELECT body FROM note ORDER BY id")
    assert [r["body"] for r in rows] == ["before the read", "after the read"]


async def test_a_failed_statement_is_not_retried_and_keeps_its_error(
    client: InlineSqliteClient,
) -> None:
    with pytest.raises(OperationalError, match="no such table"):
        await client.execute_query_dict("SELECT * FROM missing")
    await client.execute_many("INSERT INTO note (id, body) VALUES (?, ?)", [[1, "one"], [2, "two"]])
    with pytest.raises(IntegrityError):
        await client.execute_many("INSERT INTO note (id, body) VALUES (?, ?)", [[3, "x"], [1, "y"]])
    rows = await client.execute_query_dict("SELECT id FROM note ORDER BY id")
    assert [r["id"] for r in rows] == [1, 2]  # the failed batch was rolled back whole


async def test_many_statements_in_a_row_let_the_loop_go_round(
    client: InlineSqliteClient,
) -> None:
    async with Ticker() as ticker:
        started = time.perf_counter()
        while time.perf_counter() - started < 0.3:
            async with client._in_transaction() as tx:
                for _ in range(50):
                    await tx.execute_query("INSERT INTO note (body) VALUES ('row')")
    assert ticker.longest_gap < 0.05


async def test_a_long_read_cancelled_on_its_thread_stops_before_the_next_statement(
    client: InlineSqliteClient,
) -> None:
    # A request that goes away (the browser closed) cancels its read; the next statement
    # on the connection must not run beside it, nor wait for it to finish counting.
    reading = asyncio.ensure_future(client.execute_query_dict(LONG_READ))
    await asyncio.sleep(0.05)  # interrupted on the loop, now on its thread
    reading.cancel()
    started = time.perf_counter()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await client.execute_query("INSERT INTO note (body) VALUES ('next')")
    assert time.perf_counter() - started < 0.1
    assert await client.execute_query_dict("SELECT body FROM note") == [{"body": "next"}]


class SlowCommit:
    """A sqlite3 connection whose commit takes as long as a slow disk's fsync."""

    def __init__(self, conn: sqlite3.Connection, seconds: float) -> None:
        self._conn = conn
        self.seconds = seconds

    def commit(self) -> None:
        time.sleep(self.seconds)
        self._conn.commit()

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


async def test_a_commit_waits_for_the_disk_off_the_loop_and_is_never_cut_short(
    client: InlineSqliteClient,
) -> None:
    inline = client._connection  # type: ignore[attr-defined]
    inline._conn = SlowCommit(inline._conn, 0.3)

    async def write() -> None:
        async with client._in_transaction() as tx:
            await tx.execute_query("INSERT INTO note (body) VALUES ('kept')")

    async with Ticker() as ticker:
        await write()  # the loop went on while the disk was slow
    assert ticker.longest_gap < 0.1
    # A caller that goes away mid-commit (a closed browser tab) does not cut it short: the
    # message it carried is either wholly stored or not at all, and here it is.
    writing = asyncio.ensure_future(write())
    await asyncio.sleep(0.1)
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    inline._conn = inline._conn._conn
    rows = await client.execute_query_dict("SELECT body FROM note")
    assert [r["body"] for r in rows] == ["kept", "kept"]
    async with client._in_transaction() as tx:  # and the connection is as good as new
        await tx.execute_query("INSERT INTO note (body) VALUES ('next')")
    assert len(await client.execute_query_dict("SELECT id FROM note")) == 3


async def test_a_read_outside_transactions_does_not_wait_for_one_in_progress(
    client: InlineSqliteClient,
) -> None:
    # The caller behind a cookie is read on every request: it must not queue behind another
    # request's transaction (its statements, its fsync). It reads what is committed.
    await client.execute_query("INSERT INTO note (body) VALUES ('committed')")
    in_transaction = asyncio.Event()
    let_go = asyncio.Event()

    async def writer() -> None:
        async with client._in_transaction() as tx:
            await tx.execute_query("INSERT INTO note (body) VALUES ('not yet')")
            in_transaction.set()
            await let_go.wait()

    writing = asyncio.ensure_future(writer())
    await in_transaction.wait()
    rows = await asyncio.wait_for(client.execute_query_dict("SELECT body FROM note"), 1)
    assert rows == [{"body": "committed"}]
    count, found = await asyncio.wait_for(client.execute_query("SELECT body FROM note"), 1)
    assert count == 1 and [r["body"] for r in found] == ["committed"]
    let_go.set()
    await writing
    # Committed: the next read sees it (no read lingers on an old snapshot).
    rows = await client.execute_query_dict("SELECT body FROM note ORDER BY id")
    assert rows == [{"body": "committed"}, {"body": "not yet"}]
    assert client._reader is not None and not client._reader._conn.in_transaction


async def test_the_reader_only_reads_and_stays_out_of_transactions(
    client: InlineSqliteClient,
) -> None:
    # Writes, and every statement of a transaction, go to the one writing connection.
    async with client._in_transaction() as tx:
        await tx.execute_query("INSERT INTO note (body) VALUES ('mine')")
        # Inside the transaction its own write is seen: the writer's connection.
        assert await tx.execute_query_dict("SELECT body FROM note") == [{"body": "mine"}]
    assert client._reader is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        client._reader._conn.execute("INSERT INTO note (body) VALUES ('no')")
    # A read while the reader is busy with a long one goes the writer's way, at once.
    reading = asyncio.ensure_future(client.execute_query_dict(LONG_READ))
    await asyncio.sleep(0.05)  # on the reader's thread now
    started = time.perf_counter()
    assert await client.execute_query_dict("SELECT body FROM note") == [{"body": "mine"}]
    assert time.perf_counter() - started < 0.1
    [row] = await reading
    assert row["n"] == 3_000_000


async def test_an_in_memory_database_has_no_reader() -> None:
    await init_db("sqlite://:memory:")
    try:
        c = connections.get("default")
        assert isinstance(c, InlineSqliteClient)
        await c.execute_script("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)")
        await c.execute_query("INSERT INTO note (body) VALUES ('here')")
        assert c._reader is None
        assert c._connection.wal is None  # type: ignore[attr-defined]  # nothing to flush
        assert await c.execute_query_dict("SELECT body FROM note") == [{"body": "here"}]
    finally:
        await close_db()


async def test_rows_are_dicts_that_also_answer_by_position(client: InlineSqliteClient) -> None:
    await client.execute_query("INSERT INTO note (body) VALUES ('a'), ('b')")
    sql = "SELECT n.id, n.body, m.id FROM note n JOIN note m ON m.id = n.id + 1"
    for rows in (
        await client.execute_query_dict(sql),  # on the reader
        (await client.execute_query(sql))[1],  # the ORM's way
    ):
        [row] = rows
        # What Tortoise does with a row: a dict, keyword arguments, a value by name.
        assert dict(row) == {"id": 2, "body": "a"}  # the last of two same-named columns
        assert row["body"] == "a"
        # By position as with sqlite3.Row, the first of the two ids included.
        assert (row[0], row[1], row[2]) == (1, "a", 2)
        with pytest.raises(KeyError):
            row["nothing"]
    async with client._in_transaction() as tx:  # on the writer
        [row] = await tx.execute_query_dict(sql)
        assert dict(row) == {"id": 2, "body": "a"}
    # And the ORM reads them its every way: models, values, values_list, a count.
    await client.execute_script(
        "CREATE TABLE realtime_cursor (recipient VARCHAR(40) PRIMARY KEY, last_seq BIGINT)"
    )
    await RealtimeCursor.bulk_create(
        [RealtimeCursor(recipient=r, last_seq=n) for r, n in ("a1", "b2")]
    )
    assert [
        (c.recipient, c.last_seq) for c in await RealtimeCursor.all().order_by("recipient")
    ] == [
        ("a", 1),
        ("b", 2),
    ]
    assert await RealtimeCursor.filter(last_seq=2).values("recipient") == [{"recipient": "b"}]
    assert await RealtimeCursor.all().order_by("recipient").values_list("last_seq", flat=True) == [
        1,
        2,
    ]
    assert await RealtimeCursor.filter(last_seq__gt=0).count() == 2


# --- durability: the connection flushes the WAL itself (WalSync) -------------------------------


async def insert(body: str) -> None:
    async with atomic():
        await connection().execute_query("INSERT INTO note (body) VALUES (?)", [body])


async def test_every_write_is_on_disk_before_it_counts_as_done(
    client: InlineSqliteClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes = Flushes()
    monkeypatch.setattr(os, "fdatasync", flushes)
    inline = client._connection  # type: ignore[attr-defined]
    wal = str(tmp_path / "db.sqlite3-wal")
    # SQLite commits without waiting for the disk; the connection flushes the WAL itself.
    assert inline._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert inline.wal is not None and inline.wal.path == wal

    await insert("through atomic()")
    assert (flushes.started, flushes.finished) == (1, 1)
    async with client._in_transaction() as tx:  # a transaction opened without atomic()
        await tx.execute_query("INSERT INTO note (body) VALUES ('tortoise')")
    assert flushes.finished == 2
    await client.execute_query("INSERT INTO note (body) VALUES ('on its own')")
    await client.execute_insert("INSERT INTO note (body) VALUES (?)", ["inserted"])
    await client.execute_many("INSERT INTO note (body) VALUES (?)", [["x"], ["y"]])
    assert flushes.finished == 5  # each statement outside a transaction commits by itself
    await client.execute_query_dict("SELECT body FROM note")
    async with client._in_transaction() as tx:
        await tx.execute_query_dict("SELECT body FROM note")
        await tx.execute_query("INSERT INTO note (body) VALUES ('z')")
        assert flushes.finished == 5  # nothing is flushed inside a transaction or for reads
    assert flushes.finished == 6
    # A write that changed nothing wrote nothing (the worker's claim of due jobs, each
    # second, usually finds none); a schema change always counts.
    await client.execute_query("UPDATE note SET body = 'x' WHERE id = -1")
    await client.execute_query("DELETE FROM note WHERE id = -1")
    assert flushes.finished == 6
    await client.execute_query("CREATE INDEX note_body ON note (body)")
    assert flushes.finished == 7
    assert set(flushes.files) == {wal}  # only the WAL, never the database file


async def test_one_flush_serves_the_commits_made_before_it_began(
    client: InlineSqliteClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes = Flushes(delay=0.3)
    monkeypatch.setattr(os, "fdatasync", flushes)
    saved: list[str] = []

    async def write(body: str) -> None:
        await insert(body)
        saved.append(body)

    first = asyncio.ensure_future(write("a"))
    assert await asyncio.to_thread(flushes.began.wait, 5)
    # While the first commit's flush runs, five more transactions write and commit: the
    # connection is not held by the flush.
    others = [asyncio.ensure_future(write(body)) for body in "bcdef"]
    await asyncio.sleep(0.1)
    rows = await client.execute_query_dict("SELECT COUNT(*) AS n FROM note")
    assert rows == [{"n": 6}]  # committed, so visible...
    assert saved == [] and flushes.finished == 0  # ...but nobody is told yet
    await asyncio.gather(first, *others)
    assert saved[0] == "a" and sorted(saved) == list("abcdef")
    # The five commits made during the first flush are not covered by it (it may have
    # started before they were written): they share the next one.
    assert (flushes.started, flushes.finished) == (2, 2)


async def test_a_failed_flush_fails_its_write_and_every_later_one(
    client: InlineSqliteClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # After a failed fsync, what the disk holds is unknown (the kernel may have dropped the
    # pages): no later write may be called saved until Cabinet restarts.
    monkeypatch.setattr(os, "fdatasync", Flushes(fail=OSError(errno.EIO, "I/O error")))
    with pytest.raises(sqlite.DiskFailed):
        await insert("lost?")
    assert "restart Cabinet" in caplog.text
    monkeypatch.setattr(os, "fdatasync", Flushes())  # the disk answers again
    with pytest.raises(sqlite.DiskFailed):
        await insert("later")
    with pytest.raises(OperationalError, match="writing to disk failed"):
        await client.execute_query("INSERT INTO note (body) VALUES ('autocommit')")
    assert len(await client.execute_query_dict("SELECT body FROM note")) == 3  # reads work


async def test_a_url_that_sets_synchronous_keeps_sqlites_own_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes = Flushes()
    monkeypatch.setattr(os, "fdatasync", flushes)
    await init_db(f"sqlite://{tmp_path / 'db.sqlite3'}?synchronous=FULL")
    try:
        c = connections.get("default")
        assert isinstance(c, InlineSqliteClient)
        await c.execute_script("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)")
        inline = c._connection  # type: ignore[attr-defined]
        assert inline.wal is None
        assert inline._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        await insert("x")
        assert flushes.started == 0
    finally:
        await close_db()
