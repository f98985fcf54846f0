"""The measures and forms part of a client's export (server/export.py): what was sent and
when for anyone who may open the file; scores and answers only for those who may read
clinical details."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.clients import Client
from models.forms import FormAssignment
from models.measures import MeasureAdministration
from server.instruments import instrument


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def measures_part(client: Client, clinical: bool) -> list[dict[str, Any]]:
    rows = await MeasureAdministration.filter(client_id=client.id).order_by("created_at", "id")
    out = []
    for a in rows:
        inst = instrument(a.measure)
        row: dict[str, Any] = {
            "id": a.id,
            "measure": inst.name,
            "status": a.status.value,
            "sent_at": _iso(a.created_at),
            "completed_at": _iso(a.completed_at),
            "in_session": a.filled_by_id is not None,  # type: ignore[attr-defined]
        }
        if clinical:
            row.update(
                score=a.score,
                max_score=inst.max_score,
                band=a.band or None,
                safety_alert=a.safety_alert,
                answers=a.answers,
            )
        out.append(row)
    return out


async def forms_part(client: Client, clinical: bool) -> list[dict[str, Any]]:
    rows = (
        await FormAssignment.filter(client_id=client.id)
        .prefetch_related("version__template")
        .order_by("created_at", "id")
    )
    out = []
    for a in rows:
        row: dict[str, Any] = {
            "id": a.id,
            "form": a.version.template.name,
            "version": a.version.number,
            "status": a.status.value,
            "sent_at": _iso(a.created_at),
            "completed_at": _iso(a.completed_at),
        }
        if clinical:
            # The PDF is a clinical document, left out of the export for the others.
            row.update(
                fields=a.version.fields_spec,
                answers=a.answers,
                document_id=a.document_id,  # type: ignore[attr-defined]
            )
        out.append(row)
    return out
