"""Document lists: a client's file (staff) and what the client sees on the portal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.numbers import format_decimal
from pydantic import BaseModel

from models.clients import Document
from server import i18n
from server.actions.documents import file_type_of


class DocumentOut(BaseModel):
    id: int
    client_id: int
    name: str
    content_type: str
    kind: str  # "PDF", "Word", "Text"... in the caller's language
    size: int
    size_label: str
    sha256: str
    shared_with_client: bool
    clinical: bool
    uploaded_by_id: int | None
    uploaded_by_name: str | None
    created_at: datetime
    updated_at: datetime


class PortalDocumentOut(BaseModel):
    id: int
    name: str
    content_type: str
    kind: str
    size: int
    size_label: str
    created_at: datetime


def format_size(size: int) -> str:
    """A file size as people read it, in their language ("1.5 MB", "1,5 Mo")."""
    locale = i18n.current_locale()
    if size < 1024:
        return i18n.ngettext("%(num)s byte", "%(num)s bytes", size) % {"num": size}
    if size < 1024 * 1024:
        return i18n.gettext("%(num)s KB") % {
            "num": format_decimal(round(size / 1024), locale=locale)
        }
    mb = round(size / (1024 * 1024), 1)
    return i18n.gettext("%(num)s MB") % {"num": format_decimal(mb, locale=locale)}


def _kind(document: Document) -> str:
    return i18n.gettext(file_type_of(document).label)


async def document_rows(query: Any) -> list[DocumentOut]:
    rows = await query.order_by("-created_at", "-id").prefetch_related("uploaded_by")
    return [
        DocumentOut(
            id=d.id,
            client_id=d.client_id,
            name=d.name,
            content_type=d.content_type,
            kind=_kind(d),
            size=d.size,
            size_label=format_size(d.size),
            sha256=d.sha256,
            shared_with_client=d.shared_with_client,
            clinical=d.clinical,
            uploaded_by_id=d.uploaded_by.id if d.uploaded_by else None,
            uploaded_by_name=d.uploaded_by.full_name if d.uploaded_by else None,
            created_at=d.created_at,
            updated_at=d.updated_at,
        )
        for d in rows
    ]


def visible_documents(client_id: int, *, clinical: bool) -> Any:
    """The client's documents (not deleted); clinical ones only when ``clinical`` (the
    caller may read clinical details, see server/access.py can_see_clinical)."""
    query = Document.filter(client_id=client_id, deleted_at=None)
    return query if clinical else query.filter(clinical=False)


async def client_documents(client_id: int, *, clinical: bool) -> list[DocumentOut]:
    return await document_rows(visible_documents(client_id, clinical=clinical))


async def shared_documents(client_id: int) -> list[PortalDocumentOut]:
    """What the client sees on the portal: the documents staff shared with them."""
    rows = await Document.filter(
        client_id=client_id, deleted_at=None, shared_with_client=True
    ).order_by("-created_at", "-id")
    return [
        PortalDocumentOut(
            id=d.id,
            name=d.name,
            content_type=d.content_type,
            kind=_kind(d),
            size=d.size,
            size_label=format_size(d.size),
            created_at=d.created_at,
        )
        for d in rows
    ]
