"""PostgreSQL's client (server/postgres.py): a pooled connection goes back to the pool
without a reset query, which is safe only because Cabinet leaves no session state on one."""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.db import close_db, connection, connection_config, init_db
from server.postgres import CabinetPostgresClient
from tests.conftest import POSTGRES_URL, postgres_available, require_service

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "models", "realtime", "staff", "portal")

# Statements whose effect outlives the transaction they run in, on the connection itself:
# what asyncpg's reset query would undo. Cabinet's SQL keywords are upper case.
SESSION_STATE = re.compile(
    r"^\s*(SET (SESSION )?(?!LOCAL |TRANSACTION |CONSTRAINTS )\w|RESET |LISTEN |DECLARE |PREPARE )"
    r"|pg_(try_)?advisory_lock(_shared)?\s*\("
)


def test_postgres_urls_get_the_client_without_a_reset() -> None:
    config = connection_config("postgres://u@h:5432/db?maxsize=7")
    assert isinstance(config, dict)
    assert config["engine"] == "server.postgres"
    assert config["credentials"]["maxsize"] == "7"
    assert config["credentials"]["database"] == "db"


def test_the_code_leaves_no_session_state_on_a_pooled_connection() -> None:
    """Every string in the code (adjacent literals joined, as Python joins them) that is, or
    starts, a statement leaving state on the connection: none may exist (server/postgres.py).
    """
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if SESSION_STATE.search(node.value):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]}")
    assert found == []
    # The pattern itself catches what it must, and not an UPDATE's SET or SET LOCAL.
    for caught in ("SET search_path TO x", "RESET ALL", "LISTEN x", "SELECT pg_advisory_lock(1)"):
        assert SESSION_STATE.search(caught), caught
    for allowed in (
        "SET LOCAL lock_timeout = '1s'",
        "UPDATE t SET a = 1",
        "SELECT pg_advisory_xact_lock(1)",
        "Set (or replace) the client's discount.",
    ):
        assert not SESSION_STATE.search(allowed), allowed


@pytest.fixture
async def pg() -> AsyncIterator[CabinetPostgresClient]:
    """The app's PostgreSQL client, with a pool of one connection (every acquire gets it)."""
    require_service(postgres_available(), "PostgreSQL")
    await init_db(f"{POSTGRES_URL}?minsize=1&maxsize=1")
    try:
        client = connection()
        assert isinstance(client, CabinetPostgresClient)
        await client.execute_query("SELECT 1")  # the pool opens with the first statement
        yield client
    finally:
        await close_db()


async def test_a_released_connection_sends_no_reset(pg: CabinetPostgresClient) -> None:
    pool: Any = pg._pool
    seen: list[str] = []

    def log(record: Any) -> None:
        seen.append(record.query)

    async with pool.acquire() as conn:
        conn.add_query_logger(log)
        assert await conn.fetchval("SELECT 41 + 1") == 42
    # Released; the same connection again (a pool of one), as the next request would get it.
    async with pool.acquire() as conn:
        conn.remove_query_logger(log)
    assert seen == ["SELECT 41 + 1"]  # and no "SELECT pg_advisory_unlock_all(); ... RESET ALL"
    # Tortoise's own statements go through the same pool.
    assert await pg.execute_query_dict("SELECT 1 AS one") == [{"one": 1}]


async def test_a_transaction_left_open_is_still_rolled_back_on_release(
    pg: CabinetPostgresClient, caplog: pytest.LogCaptureFixture
) -> None:
    pool: Any = pg._pool
    caplog.set_level(logging.CRITICAL, logger="asyncio")  # asyncpg says it rolled back
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("SET LOCAL application_name = 'left open'")
        assert conn.is_in_transaction()
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SHOW application_name") != "left open"
