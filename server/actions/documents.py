"""Documents on a client's file: upload, rename, share on the portal or not, delete.

A document's type is told from its bytes (server/filetypes.py), never from its name. The
bytes are stored before the row that names them and removed if that row is not written
(server/storage.py). Deleting is soft: the row keeps its deleted_at and the bytes stay, as
for every clinical record. The audit trail says what changed, never a document's name (a
name can say as much as the document: "risk assessment.pdf").
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime

from models.clients import Client, Document
from server import filetypes, storage
from server.actions import audit
from server.actions.retries import once_per_key
from server.auth.sessions import Caller
from server.db import atomic, in_atomic
from server.errors import ValidationFailed
from server.filetypes import FileType
from server.i18n import gettext as _
from server.settings import get_settings

# The column holds 255; the extension added for the real type must still fit.
MAX_NAME = 200


def max_bytes() -> int:
    return get_settings().document_max_mb * 1024 * 1024


def too_large() -> ValidationFailed:
    num = get_settings().document_max_mb
    return ValidationFailed(
        _("The file is too large."),
        {"file": _("The file is larger than %(num)s MB.") % {"num": num}},
    )


def clean_name(raw: str) -> str:
    """A document name fit to show and to download as: the last part of a path (some
    browsers send C:\\fakepath\\…), without control or direction-changing characters (which
    can disguise "gpj.exe" as "exe.jpg"), spaces collapsed, at most MAX_NAME characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and len(ext) <= 10:
            name = stem[: MAX_NAME - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_NAME].rstrip()
    return name


def check_upload(data: bytes) -> FileType:
    """The file's real type, or ValidationFailed when it is empty, too large or of a kind the
    practice does not accept."""
    if len(data) > max_bytes():
        raise too_large()
    if not data:
        raise ValidationFailed(_("The file is empty."), {"file": _("The file is empty.")})
    file_type = filetypes.detect(data)
    if file_type is None:
        raise ValidationFailed(
            _("This kind of file is not accepted."),
            {
                "file": _(
                    "Upload a PDF, an image (PNG, JPEG, GIF, WebP), a text file, or a Word, "
                    "Excel or OpenDocument file."
                )
            },
        )
    return file_type


async def do_upload_document(
    actor: Caller,
    client: Client,
    *,
    name: str,
    data: bytes,
    shared: bool = False,
    clinical: bool = False,
    request_key: str = "",
) -> Document:
    """Store a document on the client's file.

    Call outside any transaction: the bytes must be removed if the row is not committed,
    and only the outermost transaction knows. ``request_key``: the upload form's own key;
    the same form sent again gives the document it filed (server/actions/retries.py).
    """
    if in_atomic():
        raise RuntimeError("do_upload_document() opens its own transaction")
    assert actor.staff is not None
    file_type = check_upload(data)
    name = filetypes.with_extension(clean_name(name) or _("document"), file_type)

    async def write(request: str | None) -> Document:
        return await _store(actor, client, name, data, file_type, shared, clinical, request)

    return await once_per_key(Document, request_key, write, client_id=client.id)


async def _store(
    actor: Caller,
    client: Client,
    name: str,
    data: bytes,
    file_type: FileType,
    shared: bool,
    clinical: bool,
    request_key: str | None,
) -> Document:
    async with storage.stored_for(data) as key, atomic():
        document = await Document.create(
            client=client,
            name=name,
            content_type=file_type.content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            storage_key=key,
            shared_with_client=shared,
            clinical=clinical,
            uploaded_by=actor.staff,
            request_key=request_key,
        )
        await audit.record(
            actor,
            "document.uploaded",
            object_type="document",
            object_id=document.id,
            client_id=client.id,
            detail={
                "content_type": file_type.content_type,
                "size": len(data),
                "shared_with_client": shared,
                "clinical": clinical,
            },
        )
    return document


def file_type_of(document: Document) -> FileType:
    return next(
        (t for t in filetypes.ACCEPTED if t.content_type == document.content_type),
        filetypes.FileType(document.content_type, ("",), document.content_type),
    )


async def do_rename_document(actor: Caller, document: Document, name: str) -> Document:
    """Rename; the extension of the document's real type is kept or added."""
    cleaned = clean_name(name)
    if not cleaned:
        raise ValidationFailed(_("Some fields are missing."), {"name": _("Name the document.")})
    cleaned = filetypes.with_extension(cleaned, file_type_of(document))
    if cleaned == document.name:
        return document
    async with atomic():
        document.name = cleaned
        await document.save(update_fields=["name", "updated_at"])
        await audit.record(
            actor,
            "document.renamed",
            object_type="document",
            object_id=document.id,
            client_id=document.client_id,  # type: ignore[attr-defined]
            detail={"fields": ["name"]},
        )
    return document


async def do_share_document(actor: Caller, document: Document, shared: bool) -> Document:
    """Show the document to the client on the portal, or stop showing it."""
    if document.shared_with_client == shared:
        return document
    async with atomic():
        document.shared_with_client = shared
        await document.save(update_fields=["shared_with_client", "updated_at"])
        await audit.record(
            actor,
            "document.shared" if shared else "document.unshared",
            object_type="document",
            object_id=document.id,
            client_id=document.client_id,  # type: ignore[attr-defined]
        )
    return document


async def do_mark_clinical(actor: Caller, document: Document, clinical: bool) -> Document:
    """Mark the document as clinical content (then only those who may read clinical details
    see it) or not. Whoever marks it clinical without that right no longer sees it."""
    if document.clinical == clinical:
        return document
    async with atomic():
        document.clinical = clinical
        await document.save(update_fields=["clinical", "updated_at"])
        await audit.record(
            actor,
            "document.clinical" if clinical else "document.not_clinical",
            object_type="document",
            object_id=document.id,
            client_id=document.client_id,  # type: ignore[attr-defined]
        )
    return document


async def do_delete_document(actor: Caller, document: Document) -> None:
    """Take the document off the file (and off the portal). The row and the bytes stay."""
    if document.deleted_at is not None:
        return
    async with atomic():
        document.deleted_at = datetime.now(UTC)
        await document.save(update_fields=["deleted_at", "updated_at"])
        await audit.record(
            actor,
            "document.deleted",
            object_type="document",
            object_id=document.id,
            client_id=document.client_id,  # type: ignore[attr-defined]
        )


async def record_download(caller: Caller, document: Document, ip: str = "") -> None:
    """Log a download as a read of the client's record, by staff or by the client."""
    await audit.record(
        caller,
        "read.document",
        object_type="document",
        object_id=document.id,
        client_id=document.client_id,  # type: ignore[attr-defined]
        ip=ip,
        is_read=True,
    )
