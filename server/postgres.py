"""PostgreSQL: Tortoise's asyncpg client, with pooled connections released without a reset.

asyncpg's pool resets a connection every time it is released: one more round trip
(``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;``) after every
statement run outside a transaction and after every transaction, awaited before the caller
goes on. A message sent costs three or four of them before anyone receives it (the caller's
session, the access check, the transaction, and the other process's read of the event), at
0.15 to 0.3 ms each on loopback (docs/performance.md, eleventh round).

That reset undoes session state: settings changed with ``SET``, advisory locks, ``LISTEN``,
cursors kept open past their transaction. Cabinet leaves none of it on a connection: a
setting it needs is ``SET LOCAL`` inside ``atomic()``, a lock is a row lock or
``pg_advisory_xact_lock``, and the realtime fan-out goes through Redis, not ``LISTEN``.
tests/test_postgres.py holds the code to that. What the reset does beyond its query still
happens: a connection released in the middle of a transaction (a failure) is rolled back.
"""

from __future__ import annotations

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient


class PooledConnection(asyncpg.connection.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        # No session state to undo (see above); an open transaction is still rolled back by
        # Connection.reset() before it asks for this query.
        return ""


class CabinetPostgresClient(AsyncpgDBClient):
    connection_class = PooledConnection


# What Tortoise loads from an engine module (DATABASE_URL's engine is set in server/db.py).
client_class = CabinetPostgresClient
