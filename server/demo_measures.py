"""Demo data for measures and forms: Hélène's PHQ-9 going down over two months (filled in
during sessions), a GAD-7 and an intake form waiting for her on the portal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.accounts import StaffUser
from models.clients import Client
from models.forms import FieldKind, FormPurpose
from models.measures import MeasureAdministration, MeasureKind
from server.actions import forms, measures
from server.auth.sessions import Caller
from server.form_fields import FieldIn


async def create_demo_measures(alice: StaffUser, helene: Client) -> None:
    actor = Caller.acting_as(alice)
    now = datetime.now(UTC)
    # Answers that sum to 17, 13, 9 and 6, item 9 always "not at all".
    for weeks_ago, answers in (
        (8, [3, 2, 2, 2, 2, 2, 2, 2, 0]),
        (6, [2, 2, 2, 2, 1, 1, 2, 1, 0]),
        (3, [1, 1, 2, 1, 1, 1, 1, 1, 0]),
        (1, [1, 1, 1, 1, 0, 1, 1, 0, 0]),
    ):
        values = {f"item_{i}": str(v) for i, v in enumerate(answers, start=1)}
        done = await measures.do_record_in_session(actor, helene, MeasureKind.PHQ9, values)
        # Demo history: the results are dated as if they were answered weeks ago.
        when = now - timedelta(weeks=weeks_ago)
        await MeasureAdministration.filter(id=done.id).update(created_at=when, completed_at=when)
    await measures.do_send_measure(actor, helene, MeasureKind.GAD7, every_weeks=2)
    intake = await forms.do_create_form(
        actor, "Questionnaire de première consultation", FormPurpose.INTAKE
    )
    for field in (
        FieldIn(kind=FieldKind.SECTION, label="Vous", help="Pour que nous puissions vous joindre"),
        FieldIn(kind=FieldKind.SHORT_TEXT, label="Nom et prénom", required=True),
        FieldIn(kind=FieldKind.DATE, label="Date de naissance"),
        FieldIn(
            kind=FieldKind.LONG_TEXT,
            label="Qu'est-ce qui vous amène ?",
            help="Quelques mots suffisent",
        ),
        FieldIn(
            kind=FieldKind.YES_NO, label="Avez-vous déjà consulté un psychologue ?", required=True
        ),
        FieldIn(
            kind=FieldKind.MULTIPLE_CHOICE,
            label="Disponibilités",
            choices=["Matin", "Après-midi", "Soir"],
        ),
        FieldIn(kind=FieldKind.SIGNATURE, label="Signature", required=True),
    ):
        await forms.do_edit_form(actor, intake, add=field)
    await forms.do_send_form(actor, helene, intake)
