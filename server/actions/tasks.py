"""Tasks on client files: create (by hand or from a client's message), complete, reopen."""

from __future__ import annotations

from datetime import UTC, date, datetime

from models.accounts import StaffRole, StaffUser
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


async def hand_over_tasks(actor: Caller, leaving: StaffUser) -> int:
    """The open tasks of someone leaving the practice go where someone will see them: to the
    client's therapist when that is someone else still here, else to whoever switched the
    account off (an owner). "My tasks" lists only one's own, so a task left with an account
    nobody signs in to, a safety alert's "contact the client today" among them, was seen by
    no one. Call inside ``atomic()``, once ``leaving`` is inactive. Returns how many."""
    moved = 0
    for task in await Task.filter(
        assignee_id=leaving.id, done_at=None, deleted_at=None
    ).prefetch_related("client"):
        therapist_id = task.client.therapist_id  # type: ignore[attr-defined]
        heir = (
            await StaffUser.get_or_none(id=therapist_id, is_active=True)
            if therapist_id is not None and therapist_id != leaving.id
            else None
        ) or actor.staff
        if heir is None:  # a script's deactivation: the practice's first owner still here
            heir = (
                await StaffUser.filter(
                    practice_id=leaving.practice_id,  # type: ignore[attr-defined]
                    role=StaffRole.OWNER,
                    is_active=True,
                )
                .order_by("id")
                .first()
            )
        if heir is None:
            continue
        await Task.filter(id=task.id).update(assignee_id=heir.id)
        await audit.record(
            actor,
            "task.handed_over",
            object_type="task",
            object_id=task.id,
            client_id=task.client_id,  # type: ignore[attr-defined]
            practice_id=task.practice_id,  # type: ignore[attr-defined]
        )
        moved += 1
    return moved
