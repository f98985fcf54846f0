"""Export client: the file's action-bar button and its API twin, both a zip download."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from server import export
from server.access import access_client
from server.web import client_address, path_id, require_staff
from staff.api import api


async def _export(request: Request) -> Response:
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    result = await export.export_client(caller, client, ip=client_address(request))
    return StreamingResponse(
        result.chunks(),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{result.filename}"',
            "Content-Length": str(result.size),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


async def export_page(request: Request) -> Response:
    return await _export(request)


@api.route("GET", "/clients/{client_id}/export", response=None)
async def export_client(request: Request) -> Response:
    """The client's whole record as a zip: record.json, fhir.json (FHIR R4 Bundle), the
    documents (clinical details only for those who may see them) and the PDFs of the
    invoices and credit notes"""
    return await _export(request)
