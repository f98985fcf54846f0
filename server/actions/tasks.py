"""Tasks on client files: create (by hand or from a client's message), complete, reopen."""

from __future__ import annotations

from datetime import UTC, date, datetime

from models.accounts import StaffUser
from models.clients import Client
from models.messaging import Message
from models.tasks import Task
from server.actions import audit
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import ValidationFailed
from server.i18n import gettext as _


async def do_create_task(
    actor: Caller,
    client: Client,
    *,
    note: str,
    assignee: StaffUser | None,
    due_date: date | None = None,
    source_message: Message | None = None,
) -> Task:
    note = note.strip()
    if not note:
        raise ValidationFailed(_("Some fields are missing."), {"note": _("Write what to do.")})
    assert actor.staff is not None
    async with atomic():
        task = await Task.create(
            practice_id=client.practice_id,  # type: ignore[attr-defined]
            client=client,
            note=note,
            assignee=assignee,
            due_date=due_date,
            created_by=actor.staff,
            source_message=source_message,
        )
        await audit.record(
            actor,
            "task.created",
            object_type="task",
            object_id=task.id,
            client_id=client.id,
            detail={
                "assignee_id": assignee.id if assignee else None,
                "from_message": source_message.id if source_message else None,
            },
        )
    return task


async def do_set_task_done(actor: Caller, task: Task, done: bool) -> Task:
    """Mark a task done (who and when are kept) or reopen it."""
    assert actor.staff is not None
    if (task.done_at is not None) == done:
        return task
    async with atomic():
        task.done_at = datetime.now(UTC) if done else None
        task.done_by = actor.staff if done else None  # type: ignore[assignment]
        await task.save(update_fields=["done_at", "done_by_id", "updated_at"])
        await audit.record(
            actor,
            "task.done" if done else "task.reopened",
            object_type="task",
            object_id=task.id,
            client_id=task.client_id,  # type: ignore[attr-defined]
        )
    return task
