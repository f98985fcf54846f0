"""Task lists: a client's tasks and the "my tasks" list, open ones first."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from tortoise.expressions import Subquery

from models.tasks import Task
from server.access import visible_clients
from server.auth.sessions import Caller

# Done tasks stay listed (under the open ones) so a slip of the checkbox can be undone.
DONE_SHOWN = 50


class TaskOut(BaseModel):
    id: int
    client_id: int
    client_name: str
    note: str
    assignee_id: int | None
    assignee_name: str | None
    due_date: date | None
    done_at: datetime | None
    source_message_id: int | None
    created_at: datetime


async def task_rows(query: Any) -> list[TaskOut]:
    rows = await query.prefetch_related("client", "assignee")
    return [
        TaskOut(
            id=t.id,
            client_id=t.client.id,
            client_name=t.client.full_name,
            note=t.note,
            assignee_id=t.assignee.id if t.assignee else None,
            assignee_name=t.assignee.full_name if t.assignee else None,
            due_date=t.due_date,
            done_at=t.done_at,
            source_message_id=t.source_message_id,
            created_at=t.created_at,
        )
        for t in rows
    ]


async def _open_then_done(query: Any) -> list[TaskOut]:
    # Open: soonest due first, undated last. Done: most recently done first.
    open_ = await task_rows(query.filter(done_at=None))
    open_.sort(key=lambda t: (t.due_date or date.max, t.id))
    done = await task_rows(query.filter(done_at__not_isnull=True).order_by("-done_at"))
    return open_ + done[:DONE_SHOWN]


async def _mine(caller: Caller) -> Any:
    """Tasks assigned to me, on files I may still see (a client moved to a colleague takes
    my tasks on their file out of my sight)."""
    assert caller.staff is not None
    client_ids = Subquery((await visible_clients(caller)).values("id"))
    return Task.filter(assignee_id=caller.staff.id, deleted_at=None, client_id__in=client_ids)


async def my_tasks(caller: Caller) -> list[TaskOut]:
    return await _open_then_done(await _mine(caller))


async def my_open_counts(caller: Caller, today: date) -> tuple[int, int]:
    """How many of my tasks are open, and how many of those are late: the home page's
    figures, counted over the same tasks as my list."""
    open_ = (await _mine(caller)).filter(done_at=None)
    return await open_.count(), await open_.filter(due_date__lt=today).count()


async def client_tasks(client_id: int) -> list[TaskOut]:
    return await _open_then_done(Task.filter(client_id=client_id, deleted_at=None))
