"""Staff tasks: on a client's file, from a client's message, and the "my tasks" list."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field, field_validator
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.accounts import StaffUser
from models.tasks import Task
from server.access import (
    access_client,
    access_staff_user,
    access_task,
    client_of_message,
)
from server.actions import tasks
from server.auth.sessions import Caller
from server.errors import NotFound, ValidationFailed
from server.queries.tasks import TaskOut, client_tasks, my_tasks, task_rows
from server.web import parse_body, path_id, posted_fields, render, require_staff
from staff.api import api
from staff.client_file import file_page


class TaskIn(BaseModel):
    note: str = Field(max_length=5000)
    # Missing means "me": whoever writes the task owns it unless they hand it on.
    assignee_id: int | None = None
    due_date: date | None = None

    @field_validator("assignee_id", "due_date", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # HTML forms post "" for an untouched select or date field.
        return None if value == "" else value


class DoneIn(BaseModel):
    done: bool


async def _assignee(caller: Caller, assignee_id: int | None) -> StaffUser:
    if assignee_id is None:
        assert caller.staff is not None
        return caller.staff
    user = await access_staff_user(caller, assignee_id)
    if not user.is_active:
        raise NotFound()
    return user


# --- API -------------------------------------------------------------------------------------


@api.route("POST", "/clients/{client_id}/tasks", body=TaskIn, response=TaskOut)
async def create_task(request: Request, body: TaskIn) -> TaskOut:
    """Add a task to a client's file"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    task = await tasks.do_create_task(
        caller,
        client,
        note=body.note,
        assignee=await _assignee(caller, body.assignee_id),
        due_date=body.due_date,
    )
    return (await task_rows(Task.filter(id=task.id)))[0]


@api.route("POST", "/messages/{message_id}/task", body=TaskIn, response=TaskOut)
async def create_task_from_message(request: Request, body: TaskIn) -> TaskOut:
    """Create a task on the file of the client who wrote this message"""
    caller = require_staff(request)
    client, message = await client_of_message(caller, path_id(request, "message_id"))
    task = await tasks.do_create_task(
        caller,
        client,
        note=body.note,
        assignee=await _assignee(caller, body.assignee_id),
        due_date=body.due_date,
        source_message=message,
    )
    return (await task_rows(Task.filter(id=task.id)))[0]


@api.route("GET", "/clients/{client_id}/tasks", response=TaskOut, response_list=True)
async def list_client_tasks(request: Request) -> list[TaskOut]:
    """A client's tasks, open ones first"""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    return await client_tasks(client.id)


@api.route("GET", "/tasks", response=TaskOut, response_list=True)
async def list_my_tasks(request: Request) -> list[TaskOut]:
    """Tasks assigned to me, open ones first (soonest due first)"""
    return await my_tasks(require_staff(request))


@api.route("POST", "/tasks/{task_id}/done", body=DoneIn, response=TaskOut)
async def set_done(request: Request, body: DoneIn) -> TaskOut:
    """Mark a task done, or reopen it"""
    caller = require_staff(request)
    task = await access_task(caller, path_id(request, "task_id"))
    await tasks.do_set_task_done(caller, task, body.done)
    return (await task_rows(Task.filter(id=task.id)))[0]


# --- pages -----------------------------------------------------------------------------------


async def tasks_page(request: Request) -> Response:
    caller = require_staff(request)
    return render(
        request, "staff/tasks.html", {"tasks": await my_tasks(caller), "section": "tasks"}
    )


async def add_task_form(request: Request) -> Response:
    """The client page's "add a task" form."""
    caller = require_staff(request)
    client = await access_client(caller, path_id(request, "client_id"))
    try:
        data = await parse_body(request, TaskIn)
        await tasks.do_create_task(
            caller,
            client,
            note=data.note,
            assignee=await _assignee(caller, data.assignee_id),
            due_date=data.due_date,
        )
    except ValidationFailed as exc:
        ctx: dict[str, object] = {
            "task_error": exc.message,
            "task_fields": exc.fields,
            "task_posted": await posted_fields(request),
        }
        return await file_page(request, ctx, 422, tab_name="tasks")
    return RedirectResponse(f"/staff/clients/{client.id}/tasks", status_code=303)


async def set_done_form(request: Request) -> Response:
    caller = require_staff(request)
    task = await access_task(caller, path_id(request, "task_id"))
    state = request.path_params["state"]
    if state not in {"done", "reopen"}:
        # Only the two words the pages post.
        raise NotFound()
    await tasks.do_set_task_done(caller, task, state == "done")
    back = request.query_params.get("back", "")
    # Only our own pages, never an open redirect.
    target = back if back in {"/staff/tasks"} else f"/staff/clients/{task.client_id}/tasks"  # type: ignore[attr-defined]
    return RedirectResponse(target, status_code=303)
