"""The Documents tab of the client file, its forms, downloads, and the documents API.

Uploads are multipart forms (the CSRF token rides in the query string or the X-CSRF-Token
header, see server/web.py) read with a cap, so an oversized upload is refused without
being read to its end.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import Practice
from models.clients import Client, Document
from server import filetypes, storage
from server.access import access_client, access_document, can_see_clinical
from server.actions import documents
from server.api import Ok
from server.auth.sessions import Caller
from server.db import unstorable_text
from server.errors import NotFound, ValidationFailed
from server.i18n import gettext as _
from server.i18n import lazy
from server.queries.documents import DocumentOut, client_documents, document_rows
from server.settings import get_settings
from server.web import client_address, path_id, require_staff
from staff.api import api
from staff.client_file import Tab, file_page, register_tab

# What the file picker offers; the server still decides by content.
ACCEPT = ",".join(ext for t in filetypes.ACCEPTED for ext in t.extensions)


async def _load_documents(caller: Caller, client: Client, practice: Practice) -> dict[str, Any]:
    return {
        "documents": await client_documents(client.id, clinical=can_see_clinical(caller, practice)),
        "max_mb": get_settings().document_max_mb,
        "max_bytes": documents.max_bytes(),
        "accept": ACCEPT,
        # One key per page shown: the upload sent twice files one document.
        "request_key": secrets.token_urlsafe(16),
    }


register_tab(
    Tab("documents", lazy("Documents"), "staff/file_documents.html", _load_documents, order=60)
)


# --- reading an upload -----------------------------------------------------------------------


async def read_upload(
    request: Request, sent: dict[str, str] | None = None
) -> tuple[str, bytes, dict[str, str]]:
    """The uploaded file's name and bytes, and the form's other fields.

    ``sent``, if given, gets the form's other fields as soon as the form is read, refused
    or not: a page refusing the file shows them again.

    Refuses (ValidationFailed) a body that is not a form with one file, a file over the
    limit, and a field no column can hold (``unstorable_text``). A body announced or found to be far larger is refused before it is read to its
    end, as every body is (server.web.capped_receive).
    """
    limit = documents.max_bytes()
    no_file = ValidationFailed(_("Choose a file to upload."), {"file": _("Choose a file.")})
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise no_file
    try:
        form = await request.form(max_files=1, max_fields=20)
    except HTTPException:
        # A malformed body, or more than one file.
        raise no_file from None
    try:
        if sent is not None:
            sent.update((k, v) for k, v in form.items() if isinstance(v, str) and k != "csrf_token")
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or (not upload.filename and not upload.size):
            raise no_file
        if upload.size is not None and upload.size > limit:
            raise documents.too_large()
        data = await upload.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
        # validate() refuses such text in JSON bodies; a form's fields skip it, and a NUL in
        # the request_key, looked up and stored as sent, is a 500 on PostgreSQL.
        wild = sorted(k for k, v in fields.items() if unstorable_text(v))
        if wild:
            message = _("This value is out of range.")
            raise ValidationFailed(_("Some fields are not valid."), dict.fromkeys(wild, message))
        return upload.filename or "", data, fields
    finally:
        await form.close()


def _is_on(value: str | None) -> bool:
    return (value or "").lower() in {"1", "true", "on", "yes"}


# --- pages and forms -------------------------------------------------------------------------


def _back(client_id: int, saved: bool = True) -> RedirectResponse:
    return RedirectResponse(
        f"/staff/clients/{client_id}/documents{'?saved=1' if saved else ''}", status_code=303
    )


async def _document_on_file(request: Request) -> tuple[Caller, Client, Document]:
    """The document named in the path, which must belong to the client named beside it."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    document = await access_document(caller, path_id(request, "document_id"))
    if document.client_id != client.id:  # type: ignore[attr-defined]
        raise NotFound()
    return caller, client, document


async def upload_form(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    sent: dict[str, str] = {}
    try:
        name, data, fields = await read_upload(request, sent)
        await documents.do_upload_document(
            caller,
            client,
            name=name,
            data=data,
            shared=_is_on(fields.get("shared")),
            clinical=_is_on(fields.get("clinical")),
            request_key=fields.get("request_key", "")[:64],
        )
    except ValidationFailed as exc:
        # The boxes as sent; the file cannot be (a page never chooses a file for the user).
        ctx: dict[str, object] = {"error": exc.message, "fields": exc.fields, "posted": sent}
        return await file_page(request, ctx, 422, tab_name="documents")
    return _back(client.id)


async def download(request: Request) -> Response:
    caller, _client, document = await _document_on_file(request)
    response = storage.download_response(document.storage_key, document.name, document.content_type)
    await documents.record_download(caller, document, ip=client_address(request))
    return response


class RenameIn(BaseModel):
    name: str = Field(min_length=1, max_length=300)


class ShareIn(BaseModel):
    shared: bool


class ClinicalIn(BaseModel):
    clinical: bool


async def change_form(request: Request) -> Response:
    """The row's forms: /rename (name), /share (shared=1 or 0), /clinical (clinical=1 or 0),
    /delete."""
    change = request.path_params["change"]
    if change not in {"rename", "share", "clinical", "delete"}:
        raise NotFound()
    caller, client, document = await _document_on_file(request)
    form = await request.form()
    try:
        if change == "rename":
            await documents.do_rename_document(caller, document, str(form.get("name") or ""))
        elif change == "share":
            shared = _is_on(str(form.get("shared") or ""))
            await documents.do_share_document(caller, document, shared)
        elif change == "clinical":
            clinical = _is_on(str(form.get("clinical") or ""))
            await documents.do_mark_clinical(caller, document, clinical)
        else:
            await documents.do_delete_document(caller, document)
    except ValidationFailed as exc:
        # A refused name stays in its row's open form, with the reason beside it.
        renamed = {"id": document.id, "name": str(form.get("name") or "")}
        return await file_page(
            request,
            {
                "error": exc.message,
                "fields": exc.fields,
                "renamed": renamed if change == "rename" else None,
            },
            422,
            tab_name="documents",
        )
    return _back(client.id)


# --- API -------------------------------------------------------------------------------------


async def _one(document: Document) -> DocumentOut:
    return (await document_rows(Document.filter(id=document.id)))[0]


@api.route("GET", "/clients/{client_id}/documents", response=DocumentOut, response_list=True)
async def list_documents(request: Request) -> list[DocumentOut]:
    """The documents on a client's file, newest first (clinical ones only for those who may
    read clinical details)"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    practice = await Practice.get(id=caller.practice_id)
    return await client_documents(client.id, clinical=can_see_clinical(caller, practice))


@api.route("POST", "/clients/{client_id}/documents", response=DocumentOut)
async def upload_document(request: Request) -> DocumentOut:
    """Upload a document: multipart/form-data with a `file` field (`shared`=1 to show it
    on the client's portal, `clinical`=1 to keep it from staff who may not read clinical
    details, `request_key`: any key of yours for this one upload; sent again with it, the
    first document is returned). Types are told from the content; the size is capped."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    name, data, fields = await read_upload(request)
    document = await documents.do_upload_document(
        caller,
        client,
        name=name,
        data=data,
        shared=_is_on(fields.get("shared")),
        clinical=_is_on(fields.get("clinical")),
        request_key=fields.get("request_key", "")[:64],
    )
    return await _one(document)


@api.route("GET", "/documents/{document_id}", response=DocumentOut)
async def get_document(request: Request) -> DocumentOut:
    """One document's details"""
    caller = require_staff(request)
    return await _one(await access_document(caller, path_id(request, "document_id")))


@api.route("GET", "/documents/{document_id}/content", response=None)
async def download_document(request: Request) -> Response:
    """Download a document's bytes (recorded in the audit trail as a read)"""
    caller = require_staff(request)
    document = await access_document(caller, path_id(request, "document_id"))
    response = storage.download_response(document.storage_key, document.name, document.content_type)
    await documents.record_download(caller, document, ip=client_address(request))
    return response


@api.route("POST", "/documents/{document_id}/name", body=RenameIn, response=DocumentOut)
async def rename_document(request: Request, body: RenameIn) -> DocumentOut:
    """Rename a document (the extension of its real type is kept)"""
    caller = require_staff(request)
    document = await access_document(caller, path_id(request, "document_id"))
    return await _one(await documents.do_rename_document(caller, document, body.name))


@api.route("POST", "/documents/{document_id}/shared", body=ShareIn, response=DocumentOut)
async def share_document(request: Request, body: ShareIn) -> DocumentOut:
    """Share a document with the client on the portal, or stop sharing it"""
    caller = require_staff(request)
    document = await access_document(caller, path_id(request, "document_id"))
    return await _one(await documents.do_share_document(caller, document, body.shared))


@api.route("POST", "/documents/{document_id}/clinical", body=ClinicalIn, response=DocumentOut)
async def mark_clinical(request: Request, body: ClinicalIn) -> DocumentOut:
    """Mark a document as clinical content (seen only by those who may read clinical
    details) or not"""
    caller = require_staff(request)
    document = await access_document(caller, path_id(request, "document_id"))
    return await _one(await documents.do_mark_clinical(caller, document, body.clinical))


@api.route("DELETE", "/documents/{document_id}", response=Ok)
async def delete_document(request: Request) -> Ok:
    """Delete a document from the file (kept in the records, gone from every list)"""
    caller = require_staff(request)
    document = await access_document(caller, path_id(request, "document_id"))
    await documents.do_delete_document(caller, document)
    return Ok()
