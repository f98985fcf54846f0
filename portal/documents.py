"""The client's documents on the portal: those staff shared with them, to read and download.

Clients cannot upload (there is no such route); a document not shared with them, deleted,
or on someone else's file is a 404 like any missing id.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.api import api
from server import storage
from server.access import access_document
from server.actions import documents
from server.queries.documents import PortalDocumentOut, shared_documents
from server.web import client_address, path_id, render, require_client


async def documents_page(request: Request) -> Response:
    caller = require_client(request)
    assert caller.client is not None
    return render(
        request,
        "portal/documents.html",
        {"section": "documents", "documents": await shared_documents(caller.client.id)},
    )


async def _download(request: Request) -> Response:
    caller = require_client(request)
    document = await access_document(caller, path_id(request, "document_id"))
    response = storage.download_response(document.storage_key, document.name, document.content_type)
    await documents.record_download(caller, document, ip=client_address(request))
    return response


async def download(request: Request) -> Response:
    return await _download(request)


@api.route("GET", "/documents", response=PortalDocumentOut, response_list=True)
async def list_documents(request: Request) -> list[PortalDocumentOut]:
    """The documents your practice shared with you, newest first"""
    caller = require_client(request)
    assert caller.client is not None
    return await shared_documents(caller.client.id)


@api.route("GET", "/documents/{document_id}/content", response=None)
async def download_document(request: Request) -> Response:
    """Download a document shared with you"""
    return await _download(request)
