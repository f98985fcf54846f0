"""A submitted form as a PDF for the client's file: the questions of the version answered,
each answer, the signature, and when it was submitted.

The document and its fonts are server/pdf.py's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.form_fields import asks, shown
from server.i18n import format_datetime
from server.i18n import gettext as _
from server.pdf import FONT, new_document


def render_pdf(
    *,
    title: str,
    version: int,
    practice: str,
    client: str,
    specs: list[dict[str, Any]],
    answers: dict[str, Any],
    submitted_at: datetime,
) -> bytes:
    pdf = new_document(page_break_margin=18, title=title)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_font(FONT, "B", 16)
    pdf.multi_cell(width, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(
        width,
        5,
        _("%(practice)s · %(client)s · version %(num)s · submitted %(date)s")
        % {
            "practice": practice,
            "client": client,
            "num": version,
            "date": format_datetime(submitted_at),
        },
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(4)
    for spec in specs:
        if not asks(spec):
            pdf.ln(2)
            pdf.set_font(FONT, "B", 13)
            pdf.multi_cell(width, 7, spec["label"], new_x="LMARGIN", new_y="NEXT")
            if spec.get("help"):
                pdf.set_font(FONT, "", 9)
                pdf.multi_cell(width, 5, spec["help"], new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
            continue
        pdf.set_font(FONT, "B", 10)
        label = spec["label"] + (" *" if spec.get("required") else "")
        pdf.multi_cell(width, 5.5, label, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 10)
        pdf.multi_cell(
            width, 5.5, shown(spec, answers.get(spec["key"])), new_x="LMARGIN", new_y="NEXT"
        )
        pdf.ln(2.5)
    return bytes(pdf.output())
