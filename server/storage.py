"""Where documents' bytes live: files under ``$CABINET_DATA_DIR/documents``, one per key.

The data directory is never mounted as static files; bytes leave only through a handler
that checked who is asking. Keys are random, so a file's path tells nothing about whose it
is, and are checked on the way in, so a key can never point outside the directory.

Writes come before the database row that names them (``stored_for``): if the transaction
fails, the file is removed again; if the process dies in between, an unreferenced file is
left behind, which is harmless, where a row without its file would not be.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.responses import FileResponse

from server.errors import NotFound
from server.settings import get_settings

log = logging.getLogger("cabinet.storage")

_KEY = re.compile(r"^[0-9a-f]{32}$")


def documents_dir() -> Path:
    return get_settings().data_dir / "documents"


def path_of(key: str) -> Path:
    if not _KEY.match(key):
        raise ValueError("not a storage key")
    return documents_dir() / key


def _write(key: str, data: bytes) -> None:
    folder = documents_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / key
    partial = folder / f".{key}.partial"
    # Written aside, flushed, then renamed: a reader never sees half a file.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


async def save(data: bytes) -> str:
    """Store ``data`` under a new random key and return the key."""
    key = secrets.token_hex(16)
    await asyncio.to_thread(_write, key, data)
    return key


async def read(key: str) -> bytes:
    return await asyncio.to_thread(path_of(key).read_bytes)


async def remove(key: str) -> None:
    await asyncio.to_thread(path_of(key).unlink, True)


@asynccontextmanager
async def stored_for(data: bytes) -> AsyncIterator[str]:
    """Store ``data`` for the row about to be written in the ``async with`` block.

    The block must hold the whole transaction that records the key (an ``atomic()`` opened
    inside it, not around it): when the block raises, the transaction has rolled back and
    the bytes are removed; when it returns, the row is committed and the bytes stay.
    """
    key = await save(data)
    try:
        yield key
    except BaseException:
        await remove(key)
        raise


def download_response(key: str, name: str, content_type: str) -> FileResponse:
    """The stored bytes as a download: always an attachment, with the type detected at upload
    (``nosniff`` stops a browser from guessing another one), and kept out of shared caches.

    Call only after an access check and with the read recorded.
    """
    path = path_of(key)
    if not path.is_file():
        log.error("document bytes missing from storage: %s", key)
        raise NotFound()
    return FileResponse(
        path,
        media_type=content_type,
        filename=name,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
    )
