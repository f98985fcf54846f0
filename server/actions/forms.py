"""Forms: build (create, rename, add/change/remove/move a field: a version that was sent is
never changed, the edit makes the next version), send to a client, save a draft, submit
(kept as answers and as a PDF document on the file), remind, withdraw.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from models.accounts import PortalAccount, Practice, StaffUser
from models.agenda import Appointment
from models.clients import Client, Document
from models.forms import (
    FormAssignment,
    FormPurpose,
    FormSchedule,
    FormStatus,
    FormTemplate,
    FormVersion,
)
from realtime.events import client_recipient, emit, staff_recipient
from server import i18n, storage
from server.access import may_hear_of
from server.actions import audit
from server.actions.client_requests import clinicians_to_tell, email_client, remind_client
from server.actions.retries import once_per_key
from server.auth.sessions import Caller
from server.db import atomic, in_atomic
from server.errors import Conflict, NotFound, ValidationFailed
from server.form_fields import FieldIn, Values, asks, check_answers
from server.form_pdf import render_pdf
from server.i18n import gettext as _
from server.i18n import lazy

Move = Literal["up", "down"]


async def latest_version(template: FormTemplate) -> FormVersion:
    return await FormVersion.filter(template_id=template.id).order_by("-number").first()  # type: ignore[return-value]


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed(_("Some fields are missing."), {"name": _("Name the form.")})
    return name[:200]


async def do_create_form(actor: Caller, name: str, purpose: FormPurpose) -> FormTemplate:
    assert actor.staff is not None
    name = _clean_name(name)
    async with atomic():
        template = await FormTemplate.create(
            practice_id=actor.practice_id, name=name, purpose=purpose, created_by=actor.staff
        )
        await FormVersion.create(
            template=template, number=1, fields_spec=[], created_by=actor.staff
        )
        await audit.record(
            actor,
            "form.created",
            object_type="form_template",
            object_id=template.id,
            detail={"purpose": purpose.value},
        )
    return template


async def do_rename_form(
    actor: Caller, template: FormTemplate, name: str, purpose: FormPurpose
) -> FormTemplate:
    name = _clean_name(name)
    if (name, purpose) == (template.name, template.purpose):
        return template
    async with atomic():
        template.name, template.purpose = name, purpose
        await template.save(update_fields=["name", "purpose", "updated_at"])
        await audit.record(
            actor, "form.renamed", object_type="form_template", object_id=template.id
        )
    return template


async def do_archive_form(actor: Caller, template: FormTemplate, archived: bool) -> None:
    """Archived forms are no longer offered for sending; what was sent stays."""
    if (template.archived_at is not None) == archived:
        return
    async with atomic():
        template.archived_at = datetime.now(UTC) if archived else None
        await template.save(update_fields=["archived_at", "updated_at"])
        await audit.record(
            actor,
            "form.archived" if archived else "form.restored",
            object_type="form_template",
            object_id=template.id,
        )


def _next_key(specs: list[dict[str, Any]], older: list[list[dict[str, Any]]]) -> str:
    """A key never used in any version of the form, so an old answer is never read as the
    answer to a new question."""
    used = [
        int(m.group(1)) for s in [specs, *older] for f in s if (m := re.match(r"f(\d+)$", f["key"]))
    ]
    return f"f{max(used, default=0) + 1}"


async def do_edit_form(
    actor: Caller,
    template: FormTemplate,
    *,
    add: FieldIn | None = None,
    update: tuple[str, FieldIn] | None = None,
    remove: str | None = None,
    move: tuple[str, Move] | None = None,
) -> FormVersion:
    """Change the form's fields. The latest version is changed in place while it was never
    sent; once it was, the change makes the next version and the sent forms keep theirs.
    Call with exactly one of add, update, remove, move."""
    assert actor.staff is not None
    assert sum(x is not None for x in (add, update, remove, move)) == 1
    async with atomic():
        # The row lock orders concurrent edits of one form (PostgreSQL; SQLite serialises).
        await FormTemplate.select_for_update().get(id=template.id)
        current = await latest_version(template)
        specs: list[dict[str, Any]] = [dict(f) for f in current.fields_spec]
        keys = [f["key"] for f in specs]
        if add is not None:
            older = [v.fields_spec for v in await FormVersion.filter(template_id=template.id)]
            specs.append(add.spec(_next_key(specs, older)))
        elif update is not None:
            key, field = update
            if key not in keys:
                raise NotFound()
            specs[keys.index(key)] = field.spec(key)
        elif remove is not None:
            if remove not in keys:
                raise NotFound()
            specs.pop(keys.index(remove))
        elif move is not None:
            key, where = move
            if key not in keys:
                raise NotFound()
            i = keys.index(key)
            j = i - 1 if where == "up" else i + 1
            if not 0 <= j < len(specs):
                return current
            specs[i], specs[j] = specs[j], specs[i]
        if specs == current.fields_spec:
            return current
        used = await FormAssignment.filter(version_id=current.id).exists()
        if used:
            version = await FormVersion.create(
                template=template,
                number=current.number + 1,
                fields_spec=specs,
                created_by=actor.staff,
            )
        else:
            current.fields_spec = specs
            await current.save(update_fields=["fields_spec", "updated_at"])
            version = current
        await audit.record(
            actor,
            "form.edited",
            object_type="form_template",
            object_id=template.id,
            detail={"version": version.number, "new_version": used},
        )
    return version


# --- sending ---------------------------------------------------------------------------------


async def check_sendable(template: FormTemplate, client: Client) -> None:
    """Refuse (409/422) a form that is archived or asks nothing, or a client without an
    active portal account."""
    if template.archived_at is not None:
        raise Conflict(_("This form is archived."))
    version = await latest_version(template)
    if not any(asks(f) for f in version.fields_spec):
        raise ValidationFailed(
            _("This form asks nothing yet: add fields first."),
            {"form_id": _("This form asks nothing yet.")},
        )
    if not await PortalAccount.filter(client_id=client.id, is_active=True).exists():
        raise ValidationFailed(
            _("This client has no portal account."),
            {"form_id": _("The client has no portal account.")},
        )


async def do_send_form(
    actor: Caller, client: Client, template: FormTemplate, request_key: str = ""
) -> FormAssignment:
    """Send the form's latest version to the client's portal (an email asks them to sign
    in). The version is fixed from now on: later edits make a new one.

    ``request_key``: the "Send" form's own key: pressed twice (or again after a slow answer),
    the client gets one form and one email (server/actions/retries.py). Call outside any
    transaction."""
    assert actor.staff is not None
    await check_sendable(template, client)

    async def write(key: str | None) -> FormAssignment:
        async with atomic():
            assignment = await send_form_now(
                actor, client, template, sent_by=actor.staff, request_key=key
            )
            assert assignment is not None
            return assignment

    return await once_per_key(FormAssignment, request_key, write, client_id=client.id)


async def send_form_now(
    actor: Caller | None,
    client: Client,
    template: FormTemplate,
    *,
    sent_by: StaffUser | None,
    schedule: FormSchedule | None = None,
    appointment: Appointment | None = None,
    request_key: str | None = None,
) -> FormAssignment | None:
    """Create one assignment of the form's latest version and tell the client (email with a
    sign-in link, their open portal tabs). Call inside atomic(). None, sending nothing, when
    the client has no active portal account or the form asks nothing (a schedule's send)."""
    version = await latest_version(template)
    account = await PortalAccount.get_or_none(client_id=client.id, is_active=True)
    if account is None or not any(asks(f) for f in version.fields_spec):
        return None
    practice = await Practice.get(id=client.practice_id)  # type: ignore[attr-defined]
    assignment = await FormAssignment.create(
        practice_id=practice.id,
        client=client,
        version=version,
        sent_by=sent_by,
        schedule=schedule,
        appointment=appointment,
        request_key=request_key,
    )
    await email_client(
        account,
        practice,
        subject=lazy("A form is waiting for you"),
        body=lazy(
            "%(practice)s asks you to fill in a form on your portal. You can save it "
            "and finish it later. Sign in to open it:\n%(link)s"
        ),
        path=f"/portal/forms/{assignment.id}",
        purpose="form_sent",
        client_id=client.id,
    )
    await emit([client_recipient(account.id)], "form.sent", {"id": assignment.id})
    await audit.record(
        actor,
        "form.sent",
        object_type="form_assignment",
        object_id=assignment.id,
        client_id=client.id,
        detail={
            "template_id": template.id,
            "version": version.number,
            "schedule_id": schedule.id if schedule else None,
            "appointment_id": appointment.id if appointment else None,
        },
    )
    return assignment


async def do_remind_form(actor: Caller, assignment: FormAssignment) -> None:
    if assignment.status is not FormStatus.SENT:
        raise Conflict(_("Only a form still waiting can be reminded."))
    await remind_client(
        actor,
        assignment,
        subject=lazy("Reminder: a form is waiting for you"),
        body=lazy(
            "%(practice)s is still waiting for a form from you. Sign in to finish it:\n%(link)s"
        ),
        path=f"/portal/forms/{assignment.id}",
        purpose="form_reminder",
        event="form.reminded",
        object_type="form_assignment",
    )


async def do_cancel_form(actor: Caller, assignment: FormAssignment) -> None:
    if assignment.status is FormStatus.CANCELLED:
        return
    async with atomic():
        updated = await FormAssignment.filter(id=assignment.id, status=FormStatus.SENT).update(
            status=FormStatus.CANCELLED, updated_at=datetime.now(UTC)
        )
        if not updated:
            raise Conflict(_("This form was already submitted."))
        assignment.status = FormStatus.CANCELLED
        await audit.record(
            actor,
            "form.cancelled",
            object_type="form_assignment",
            object_id=assignment.id,
            client_id=assignment.client_id,  # type: ignore[attr-defined]
        )


# --- the client's side -----------------------------------------------------------------------


def _today() -> Any:
    return datetime.now(i18n.current_time_zone()).date()


async def do_save_draft(caller: Caller, assignment: FormAssignment, values: Values) -> None:
    """Keep what the client wrote so far; nothing is required yet, nothing malformed kept."""
    if assignment.status is not FormStatus.SENT:
        raise Conflict(_("This form was already submitted."))
    version = await FormVersion.get(id=assignment.version_id)  # type: ignore[attr-defined]
    answers, errors = check_answers(version.fields_spec, values, final=False, today=_today())
    if errors:
        raise ValidationFailed(_("Some answers are not valid."), errors)
    async with atomic():
        updated = await FormAssignment.filter(id=assignment.id, status=FormStatus.SENT).update(
            draft=answers, draft_saved_at=datetime.now(UTC), updated_at=datetime.now(UTC)
        )
        if not updated:
            raise Conflict(_("This form was already submitted."))
        await audit.record(
            caller,
            "form.draft_saved",
            object_type="form_assignment",
            object_id=assignment.id,
            client_id=assignment.client_id,  # type: ignore[attr-defined]
        )


async def do_submit_form(
    caller: Caller, assignment: FormAssignment, values: Values
) -> FormAssignment:
    """Submit: every required field answered; the answers and a PDF on the file are kept
    together, and neither changes afterwards. Call outside a transaction (the PDF's bytes
    are removed again if the row is not committed)."""
    if in_atomic():
        raise RuntimeError("do_submit_form() opens its own transaction")
    if assignment.status is not FormStatus.SENT:
        raise Conflict(_("This form was already submitted."))
    version = await FormVersion.get(id=assignment.version_id).prefetch_related("template")  # type: ignore[attr-defined]
    answers, errors = check_answers(version.fields_spec, values, final=True, today=_today())
    if errors:
        raise ValidationFailed(_("Some answers are missing or not valid."), errors)
    client = await Client.get(id=assignment.client_id)  # type: ignore[attr-defined]
    practice = await Practice.get(id=client.practice_id)  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    title = version.template.name
    pdf = render_pdf(
        title=title,
        version=version.number,
        practice=practice.name,
        client=client.full_name,
        specs=version.fields_spec,
        answers=answers,
        submitted_at=now,
    )
    # Dated as the signature is (the practice's day): not the UTC date, a day early when
    # signed after midnight in Paris.
    day = now.astimezone(ZoneInfo(practice.time_zone)).date()
    name = f"{title} {day.isoformat()}.pdf".replace("/", "-")
    async with storage.stored_for(pdf) as key, atomic():
        updated = await FormAssignment.filter(id=assignment.id, status=FormStatus.SENT).update(
            status=FormStatus.COMPLETED, answers=answers, completed_at=now, updated_at=now
        )
        if not updated:
            raise Conflict(_("This form was already submitted."))
        document = await Document.create(
            client=client,
            name=name[:200],
            content_type="application/pdf",
            size=len(pdf),
            sha256=hashlib.sha256(pdf).hexdigest(),
            storage_key=key,
            # The client keeps a copy of what they signed.
            shared_with_client=True,
            # Their answers are clinical content: the front desk sees the PDF only where
            # the practice opens clinical details to it.
            clinical=True,
        )
        await FormAssignment.filter(id=assignment.id).update(document_id=document.id)
        await assignment.refresh_from_db()
        await audit.record(
            caller,
            "form.completed",
            object_type="form_assignment",
            object_id=assignment.id,
            client_id=client.id,
            practice_id=practice.id,
            detail={"document_id": document.id, "version": version.number},
        )
        listeners = {s.id for s in await clinicians_to_tell(client, practice)}
        # The sender hears too if they may still open the answers (see measures).
        sender = await StaffUser.get_or_none(id=assignment.sent_by_id, is_active=True)  # type: ignore[attr-defined]
        if sender is not None and await may_hear_of(sender, client, practice):
            listeners.add(sender.id)
        await emit(
            [staff_recipient(i) for i in listeners],
            "form.completed",
            {
                "id": assignment.id,
                "client_id": client.id,
                "client_name": client.full_name,
                "form_name": title,
                "document_id": document.id,
            },
        )
    return assignment
