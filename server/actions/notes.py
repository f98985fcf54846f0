"""Session notes: write drafts, sign (then the note is fixed), add dated addenda, countersign.

A signed note is a clinical record: it is never edited. The author corrects or completes it
with an addendum, dated and kept beside it; a supervised therapist's note is countersigned
by their supervisor.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from models.accounts import StaffUser
from models.agenda import Appointment
from models.notes import TEMPLATE_SECTIONS, NoteAddendum, NoteTemplate, SessionNote
from server.actions import audit
from server.actions.retries import once_per_key
from server.auth.sessions import Caller
from server.db import atomic
from server.errors import Conflict, ValidationFailed
from server.i18n import gettext as _

MAX_SECTION = 20_000


def _clean(template: NoteTemplate, sections: dict[str, str]) -> dict[str, str]:
    allowed = TEMPLATE_SECTIONS[template]
    unknown = set(sections) - set(allowed)
    if unknown:
        raise ValidationFailed(_("Some fields are not valid."), {"sections": _("Unknown section.")})
    if any(len(v) > MAX_SECTION for v in sections.values()):
        raise ValidationFailed(
            _("Some fields are not valid."), {"sections": _("A section is too long.")}
        )
    return {name: sections.get(name, "").strip() for name in allowed}


def note_version(note: SessionNote | None) -> str:
    """What a page of the note was opened on: its template and text ("" before any note).
    A save or a signature made from that page is checked against it."""
    if note is None:
        return ""
    content = json.dumps([note.template.value, note.sections], sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


class NoteChanged(Conflict):
    """The note was saved from another window since this page opened it."""


def _check_version(note: SessionNote | None, based_on: str | None) -> None:
    if based_on is not None and based_on != note_version(note):
        raise NoteChanged(
            _(
                "This note was saved from another window since you opened it. Your text is "
                "kept below, beside the note as it is now: compare them, then save again."
            )
        )


async def do_save_draft(
    actor: Caller,
    appointment: Appointment,
    template: NoteTemplate,
    sections: dict[str, str],
    *,
    based_on: str | None = None,
) -> SessionNote:
    """Create the appointment's note (its practitioner only, who becomes its author) or
    update it while it is a draft (its author only).

    With ``based_on`` (``note_version`` of the note the page showed), a note saved from
    another window meanwhile is a ``NoteChanged`` conflict, not silently written over."""
    assert actor.staff is not None
    async with atomic():
        # The appointment's row first: two first saves at once (no note row to lock yet)
        # take turns instead of the second failing on the unique appointment.
        locked = await Appointment.filter(id=appointment.id).select_for_update().first()
        assert locked is not None
        note = await SessionNote.filter(appointment_id=appointment.id).select_for_update().first()
        _check_version(note, based_on)
        if note is None:
            # Whoever saves first becomes the author, and only the author may go on: a
            # note started by anyone else would lock out the clinician who held the session.
            if locked.practitioner_id != actor.staff.id:  # type: ignore[attr-defined]
                raise Conflict(_("Only the practitioner who held this session can write its note."))
            # A removed session keeps no note: do_delete_appointment refuses to remove one
            # that has a note, so the file and the export never lose it.
            if locked.deleted_at is not None:
                raise Conflict(_("This session was deleted from the agenda: it takes no note."))
            note = await SessionNote.create(
                appointment=appointment,
                author=actor.staff,
                template=template,
                sections=_clean(template, sections),
            )
            action = "note.created"
        else:
            if note.signed_at is not None:
                raise Conflict(_("This note is signed: add an addendum instead."))
            if note.author_id != actor.staff.id:  # type: ignore[attr-defined]
                raise Conflict(_("Only the author can change a draft note."))
            note.template = template
            note.sections = _clean(template, sections)
            await note.save(update_fields=["template", "sections", "updated_at"])
            action = "note.updated"
        await audit.record(
            actor,
            action,
            object_type="session_note",
            object_id=note.id,
            client_id=appointment.client_id,  # type: ignore[attr-defined]
        )
    return note


async def do_sign(actor: Caller, note: SessionNote, *, based_on: str | None = None) -> SessionNote:
    """Sign the note as it is now, under a lock: what is signed is fixed for good, so it must
    be what the signer saw (``based_on``), not a save from another window in between."""
    assert actor.staff is not None
    if note.author_id != actor.staff.id:  # type: ignore[attr-defined]
        raise Conflict(_("Only the author can sign a note."))
    async with atomic():
        current = await SessionNote.filter(id=note.id).select_for_update().first()
        assert current is not None
        if current.signed_at is not None:
            note.signed_at = current.signed_at
            return current
        _check_version(current, based_on)
        if not any(current.sections.values()):
            raise ValidationFailed(
                _("Some fields are missing."), {"sections": _("The note is empty.")}
            )
        current.signed_at = datetime.now(UTC)
        await current.save(update_fields=["signed_at", "updated_at"])
        await _audit(actor, current, "note.signed")
    note.signed_at = current.signed_at  # the caller's copy says so too
    return current


async def do_add_addendum(
    actor: Caller, note: SessionNote, text: str, request_key: str = ""
) -> NoteAddendum:
    """A dated addendum to a signed note, by its author. ``request_key``: the form's own
    key; sent again with it, the addendum it added the first time."""
    assert actor.staff is not None
    if note.signed_at is None:
        raise Conflict(_("A draft is edited directly; addenda are for signed notes."))
    if note.author_id != actor.staff.id:  # type: ignore[attr-defined]
        raise Conflict(_("Only the author can add an addendum."))
    text = text.strip()
    if not text:
        raise ValidationFailed(_("Some fields are missing."), {"text": _("Write the addendum.")})

    async def write(key: str | None) -> NoteAddendum:
        async with atomic():
            addendum = await NoteAddendum.create(
                note=note, author=actor.staff, text=text, request_key=key
            )
            await _audit(actor, note, "note.addendum")
        return addendum

    return await once_per_key(NoteAddendum, request_key, write, note_id=note.id)


async def do_cosign(actor: Caller, note: SessionNote) -> SessionNote:
    """Countersign a supervisee's signed note (the author's supervisor only); once only."""
    assert actor.staff is not None
    author = await StaffUser.get(id=note.author_id)  # type: ignore[attr-defined]
    if author.supervisor_id != actor.staff.id:  # type: ignore[attr-defined]
        raise Conflict(_("Only the author's supervisor can countersign."))
    if note.signed_at is None:
        raise Conflict(_("The author signs the note first."))
    async with atomic():
        # Read again under the row lock: a double click must countersign once, not write a
        # second audit entry and move the time of the first.
        current = await SessionNote.filter(id=note.id).select_for_update().first()
        assert current is not None
        if current.cosigned_at is None:
            current.cosigned_by = actor.staff  # type: ignore[assignment]
            current.cosigned_at = datetime.now(UTC)
            await current.save(update_fields=["cosigned_by_id", "cosigned_at", "updated_at"])
            await _audit(actor, current, "note.cosigned")
    # The caller's copy says so too.
    note.cosigned_by_id, note.cosigned_at = current.cosigned_by_id, current.cosigned_at  # type: ignore[attr-defined]
    return current


async def _audit(actor: Caller, note: SessionNote, action: str) -> None:
    appointment = await Appointment.get(id=note.appointment_id)  # type: ignore[attr-defined]
    await audit.record(
        actor,
        action,
        object_type="session_note",
        object_id=note.id,
        client_id=appointment.client_id,  # type: ignore[attr-defined]
    )
