"""Writing the audit trail. Every action records who did what; every read of a client's
clinical record records who looked, so the owner can answer "who saw this file?"."""

from __future__ import annotations

from typing import Any

from models.audit import AuditEntry
from server.auth.sessions import Caller


def _actor(caller: Caller | None) -> dict[str, Any]:
    if caller is None:
        return {"actor_kind": "system", "actor_id": None, "actor_label": "system"}
    if caller.staff is not None:
        return {"actor_kind": "staff", "actor_id": caller.staff.id, "actor_label": caller.label}
    assert caller.client is not None
    return {"actor_kind": "client", "actor_id": caller.client.id, "actor_label": caller.label}


async def record(
    caller: Caller | None,
    action: str,
    *,
    object_type: str = "",
    object_id: object = "",
    client_id: int | None = None,
    practice_id: int | None = None,
    detail: dict[str, Any] | None = None,
    ip: str = "",
    is_read: bool = False,
) -> None:
    """Add an audit entry. For writes, call inside the action's ``atomic()`` block."""
    if practice_id is None and caller is not None:
        practice_id = caller.practice_id
    await AuditEntry.create(
        practice_id=practice_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id) if object_id != "" else "",
        client_id=client_id,
        detail=detail or {},
        ip=ip,
        is_read=is_read,
        **_actor(caller),
    )


async def record_read(caller: Caller, client_id: int, what: str, ip: str = "") -> None:
    """Log that ``caller`` opened part of a client's record (``what``: "file", "notes"...)."""
    await record(
        caller,
        f"read.{what}",
        object_type="client",
        object_id=client_id,
        client_id=client_id,
        ip=ip,
        is_read=True,
    )
