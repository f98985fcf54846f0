"""Tasks on client files: create (by hand or from a client's message), complete, reopen."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from models.accounts import StaffRole, StaffUser
from models.clients import Client
from models.messaging import Message
from models.tasks import Task
from server.access import staff_seeing, visible_clients
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
    if (
        assignee is not None
        and not await (await staff_seeing(client)).filter(id=assignee.id).exists()
    ):
        # "My tasks" lists only tasks on files one may open: theirs would be seen by no one.
        message = _("%(name)s may not open this client's file: choose someone who can.") % {
            "name": assignee.full_name
        }
        raise ValidationFailed(message, {"assignee_id": message})
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
        heir = await _heir(actor, task.client, leaving.practice_id)  # type: ignore[attr-defined]
        if heir is None:
            continue
        await _give(actor, task, heir, "task.handed_over")
        moved += 1
    return moved


async def _give(
    actor: Caller, task: Task, heir: StaffUser, action: str, detail: dict[str, int] | None = None
) -> None:
    await Task.filter(id=task.id).update(assignee_id=heir.id)
    await audit.record(
        actor,
        action,
        object_type="task",
        object_id=task.id,
        client_id=task.client_id,  # type: ignore[attr-defined]
        practice_id=task.practice_id,  # type: ignore[attr-defined]
        detail=detail,
    )


async def hand_over_unseen_tasks(
    actor: Caller, staff_ids: Iterable[int | None], *, and_supervisors: bool = False
) -> int:
    """Each open task of these staff members (and of their supervisors, who saw their
    caseload) on a client they may no longer see goes to someone who can, by
    ``hand_over_tasks``'s rule. "My tasks" and the home page's count
    list only tasks on files one may open, so a role or supervisor change, or a client
    handed to another therapist (or to none), left such a task, a safety alert's among them,
    in no one's list. Call inside ``atomic()``, after the change that took the files out of
    sight. Returns how many."""
    ids = {i for i in staff_ids if i is not None}
    if and_supervisors:
        ids |= set(
            await StaffUser.filter(id__in=sorted(ids), supervisor_id__not_isnull=True).values_list(
                "supervisor_id", flat=True
            )  # type: ignore[arg-type]
        )
    moved = 0
    for staff_id in sorted(ids):
        staff = await StaffUser.get_or_none(id=staff_id)
        if staff is None:
            continue
        tasks = await Task.filter(
            assignee_id=staff.id, done_at=None, deleted_at=None, client__deleted_at=None
        ).prefetch_related("client")
        if not tasks:
            continue
        seen = await _seen_by(staff, {t.client.id for t in tasks})
        for task in tasks:
            if task.client.id in seen:
                continue
            heir = await _heir(actor, task.client, staff.practice_id)  # type: ignore[attr-defined]
            if heir is None or heir.id == staff.id:
                continue
            await _give(actor, task, heir, "task.reassigned", {"from": staff.id, "to": heir.id})
            moved += 1
    return moved


async def _seen_by(staff: StaffUser, client_ids: set[int]) -> set[int]:
    """Of ``client_ids``, the clients whose file this staff member may open now (none once
    they are switched off: nobody reads their list)."""
    if not staff.is_active or not client_ids:
        return set()
    visible = await visible_clients(Caller.acting_as(staff))
    ids = await visible.filter(id__in=sorted(client_ids)).values_list("id", flat=True)
    return {int(i) for i in ids}  # type: ignore[call-overload]


async def _heir(actor: Caller, client: Client, practice_id: int) -> StaffUser | None:
    """Who takes a task on ``client`` that its assignee can no longer answer for: the
    client's therapist, else the owner who acts, else the practice's first owner (a script's
    change, or the front desk's: a safety alert's task asks for a clinician), the first of
    them still here who may open the file."""
    candidates: list[StaffUser | None] = []
    therapist_id = client.therapist_id  # type: ignore[attr-defined]
    if therapist_id is not None:
        candidates.append(await StaffUser.get_or_none(id=therapist_id))
    if actor.staff is not None and actor.staff.role is StaffRole.OWNER:
        candidates.append(actor.staff)
    candidates.append(
        await StaffUser.filter(practice_id=practice_id, role=StaffRole.OWNER, is_active=True)
        .order_by("id")
        .first()
    )
    for who in candidates:
        if who is not None and await _seen_by(who, {client.id}):
            return who
    return None
