"""Database wiring: Tortoise configuration, migrations, and the transaction helper.

``atomic()`` is the only way actions open a transaction. It carries a buffer of realtime
events: actions add to it while they write, and the buffer is published only once the
outermost transaction has committed. A rollback drops it, so a write that did not happen is
never announced, and a write that did is never silent.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, tzinfo
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connection
from tortoise.fields import DatetimeField
from tortoise.fields.data import CharEnumFieldInstance, IntEnumFieldInstance
from tortoise.models import Model
from tortoise.timezone import get_default_timezone, get_use_tz
from tortoise.transactions import in_transaction

from server.settings import get_settings
from server.sqlite import InlineSqliteClient, sync_deferred

MODEL_MODULES = ["models"]
# The connection's dialect, once asked (see dialect()); forgotten by init_db and close_db.
_dialect: str | None = None


# What SQLite leaves of the WAL file after a checkpoint. Tortoise's default (16 KiB) truncates
# it every time, so it grows again by appending, and then every commit's fsync also has to
# write the file's new size to the file system's journal: 0.19 to 0.31 ms a commit against
# 0.14 to 0.22 when commits overwrite a WAL that kept its size (docs/performance.md, ninth
# round). Twice what the automatic checkpoint lets it reach (1,000 pages of 4 KiB), so that
# only a WAL swollen by a long read is cut back.
WAL_SIZE_LIMIT = 8 * 1024 * 1024


def connection_config(database_url: str) -> str | dict[str, Any]:
    """Tortoise's connection settings for a DATABASE_URL. SQLite gets our client, which runs
    statements on the event loop's thread instead of aiosqlite's (server/sqlite.py);
    PostgreSQL through asyncpg gets a pool that does not reset a connection on every release
    (server/postgres.py)."""
    config = expand_db_url(database_url)
    if config["engine"] == "tortoise.backends.asyncpg":
        config["engine"] = "server.postgres"
        return config
    if not database_url.startswith("sqlite://"):
        return database_url
    config["engine"] = "server.sqlite"
    if "journal_size_limit" not in parse_qs(urlsplit(database_url).query):
        # Not setdefault: Tortoise's URL parser fills in its own default.
        config["credentials"]["journal_size_limit"] = WAL_SIZE_LIMIT
    return config


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": connection_config(database_url)},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "models.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    # The `tortoise` CLI reads server.db.TORTOISE_ORM (see pyproject.toml); build it lazily so
    # importing this module never reads the environment by accident.
    if name == "TORTOISE_ORM":
        return tortoise_config(get_settings().database_url)
    raise AttributeError(name)


def _forget_connection_facts() -> None:
    """Forget what was looked up once per connection: the dialect, Tortoise's time zone."""
    global _dialect
    _dialect = None
    _default_timezone.cache_clear()
    _row_plan.cache_clear()


async def init_db(database_url: str) -> None:
    _forget_connection_facts()
    # The global fallback lets uvicorn's request tasks see the connections opened by the
    # lifespan task (Tortoise 1.x keeps its state in a context variable).
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def migrate(database_url: str) -> None:
    """Apply the committed migrations (``cabinet migrate``)."""
    from tortoise.migrations.api import migrate as run_migrations

    await run_migrations(config=tortoise_config(database_url))


async def close_db() -> None:
    _forget_connection_facts()
    await Tortoise.close_connections()


def connection() -> BaseDBAsyncClient:
    # The transaction's connection inside atomic(), else the pool (Tortoise's context).
    return get_connection("default")


def dialect() -> str:
    # Asked a dozen times per message sent (every placeholder): looked up once per init_db.
    global _dialect
    if _dialect is None:
        _dialect = connection().capabilities.dialect
    return _dialect


def placeholders(n: int, start: int = 1) -> list[str]:
    """SQL parameter markers for the current database ($1 on PostgreSQL, ? on SQLite)."""
    if dialect() == "postgres":
        return [f"${i}" for i in range(start, start + n)]
    return ["?"] * n


def values_rows(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)`` (or ``($1, $2), ($3, $4)``): a multi-row VALUES list."""
    marks = placeholders(rows * width)
    return ", ".join("(" + ", ".join(marks[r * width : (r + 1) * width]) + ")" for r in range(rows))


# --- hand-written reads on the hot paths --------------------------------------------------
#
# A request that runs on every message (the caller behind the cookie, the conversation and
# the caller's place in it) reads its rows with one joined statement instead of one ORM
# query per table. These helpers select a model's columns under an alias and build the
# model from them exactly as Tortoise does for its own queries.

M = TypeVar("M", bound=Model)


@functools.cache
def select_columns(model: type[Model], alias: str) -> str:
    """``alias."col" AS "alias__col", ...`` for every column of ``model``."""
    return ", ".join(
        f'{alias}."{column}" AS "{alias}__{column}"'
        for column in model._meta.fields_db_projection.values()
    )


# A plan for building one model from a row: (key in the row, attribute, converter), the
# converter None where the driver's value is already the attribute's.
_Plan = tuple[tuple[str, str, Callable[[Any], Any] | None], ...]


def _to_datetime(value: Any) -> Any:
    """A DatetimeField's value as Tortoise gives it back (aware, in UTC, see tortoise_config),
    without its layers of calls. SQLite hands datetimes back as ISO text: the C parser reads
    what Tortoise wrote (isoformat(" ")) many times faster than Tortoise's own."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return _DATETIME_FIELD.to_python_value(value)  # left to Tortoise's parser
    elif not isinstance(value, datetime):
        return _DATETIME_FIELD.to_python_value(value)  # None, or a timestamp
    zone = _default_timezone()
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value.astimezone(zone)


# Tortoise's own conversion, for what the fast path above does not read.
_DATETIME_FIELD = DatetimeField(null=True)


@functools.cache
def _default_timezone() -> tzinfo:
    """Tortoise's time zone (UTC here), asked once: forgotten by init_db and close_db."""
    return get_default_timezone()


def _of_enum(field: CharEnumFieldInstance | IntEnumFieldInstance) -> Callable[[Any], Any]:
    """An enum field's member, looked up by value (a seventh of ``enum_type(value)``'s cost);
    anything not a member's value (None included) is left to the field."""
    members = field.enum_type._value2member_map_
    fallback = field.to_python_value

    def convert(value: Any) -> Any:
        member = members.get(value)
        return member if member is not None else fallback(value)

    return convert


def _of_type(field_type: type) -> Callable[[Any], Any]:
    """What ``_init_from_db`` does with a field of a plain Python type: the value in that
    type, None kept."""

    def convert(value: Any) -> Any:
        return None if value is None else field_type(value)

    return convert


def _key_prefix(alias: str) -> str:
    """How a row names its columns: ``alias__column`` as ``select_columns`` selects them, or
    the bare column with alias ``""``."""
    return f"{alias}__" if alias else ""


@functools.cache
def _row_plan(model: type[Model], alias: str) -> _Plan | None:
    """How to build ``model`` from the columns ``select_columns(model, alias)`` selected, as
    ``Model._init_from_db`` would; None where that needs Tortoise's own way."""
    meta = model._meta
    if not get_use_tz():
        return None
    prefix = _key_prefix(alias)
    plan: list[tuple[str, str, Callable[[Any], Any] | None]] = []
    for column, attribute, _field in meta.db_native_fields:
        plan.append((prefix + column, attribute, None))
    for column, attribute, field in meta.db_default_fields:
        plan.append((prefix + column, attribute, _of_type(field.field_type)))
    for column, attribute, field in meta.db_complex_fields:
        converter: Callable[[Any], Any]
        if isinstance(field, DatetimeField):
            converter = _to_datetime
        elif isinstance(field, CharEnumFieldInstance | IntEnumFieldInstance):
            converter = _of_enum(field)
        else:
            converter = field.to_python_value
        plan.append((prefix + column, attribute, converter))
    return tuple(plan)


def from_row(model: type[M], row: dict[str, Any], alias: str) -> M:
    """The ``model`` instance whose columns ``select_columns(model, alias)`` selected (alias
    ``""``: a row keyed by the bare column names, such as values just written).

    The same instance as Tortoise's ``_init_from_db`` builds (tests/test_db.py compares
    them), without its per-attribute ``__setattr__`` and per-value layers of calls: a send
    builds a dozen models, and Tortoise's way was a sixth of the request's CPU.
    """
    plan = _row_plan(model, alias)
    if plan is None:
        return _from_row_by_tortoise(model, row, alias)
    instance = model.__new__(model)
    values = instance.__dict__
    meta = model._meta
    values["_partial"] = False
    values["_saved_in_db"] = True
    values["_custom_generated_pk"] = meta.db_pk_column not in meta.generated_db_fields
    values["_await_when_save"] = {}
    try:
        for key, attribute, converter in plan:
            value = row[key]
            values[attribute] = value if converter is None else converter(value)
    except KeyError:  # not every column selected: what there is (a partial model)
        return _from_row_by_tortoise(model, row, alias)
    return instance


def _from_row_by_tortoise(model: type[M], row: dict[str, Any], alias: str) -> M:
    prefix = _key_prefix(alias)
    values = {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}
    return model._init_from_db(**values)


# --- publish after commit ---------------------------------------------------------------

AfterCommit = Callable[[], Awaitable[None]]
_after_commit: contextvars.ContextVar[list[AfterCommit] | None] = contextvars.ContextVar(
    "cabinet_after_commit", default=None
)


def on_commit(callback: AfterCommit) -> None:
    """Run ``callback`` once the outermost ``atomic()`` block has committed.

    Call inside ``atomic()``; outside a transaction this is a programming error, because
    there would be nothing to wait for and the event could announce an uncommitted write.
    """
    pending = _after_commit.get()
    if pending is None:
        raise RuntimeError("on_commit() called outside atomic()")
    pending.append(callback)


def in_atomic() -> bool:
    return _after_commit.get() is not None


@asynccontextmanager
async def atomic(
    deferred: list[AfterCommit] | None = None,
) -> AsyncIterator[BaseDBAsyncClient]:
    """A transaction (a savepoint when nested) that publishes its events once committed.

    The outermost block returns once the commit is on disk (``durable()``), and only then
    publishes. With ``deferred``, it returns as soon as the commit is written, and does not
    run its after-commit callbacks itself: it hands them over in that list, and the caller
    must ``await durable()`` before telling anyone the write is saved. The group commit of
    messages publishes first, so that the recipients' tabs have a message while its fsync
    runs (server/sqlite.py), and must not mistake a failed publish for a failed commit.
    """
    outer = _after_commit.get()
    mine: list[AfterCommit] = []
    token = _after_commit.set(mine)
    try:
        # The outermost block's commit lets go of the connection before its fsync, so the
        # next transaction can write meanwhile; it waits for the disk below.
        with contextlib.nullcontext() if outer is not None else sync_deferred():
            async with in_transaction("default") as conn:
                yield conn
    finally:
        _after_commit.reset(token)
    # Reached only when the block committed (or released its savepoint).
    if outer is not None:
        outer.extend(mine)
        return
    if deferred is not None:
        deferred.extend(mine)
        return
    await durable()
    for callback in mine:
        await callback()


async def durable() -> None:
    """Returns once every transaction committed so far is on disk: at once where a commit
    returns only once it is (PostgreSQL; SQLite with ``synchronous`` set in its URL)."""
    client = connection()
    client = getattr(client, "_parent", client)  # inside a transaction: its client
    if isinstance(client, InlineSqliteClient):
        await client.durable()


def unstorable_text(text: str) -> bool:
    """Text no database column can hold: a NUL character (PostgreSQL refuses it in text and
    jsonb) or a lone UTF-16 surrogate, which JSON's ``\\ud800`` can carry but no UTF-8 can
    (SQLite stores it, and every later read of the row fails). Either is bad input, a 422,
    not a 500 now or on every page that shows the row later."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
