"""A submitted form as a PDF for the client's file: the questions of the version answered,
each answer, the signature, and when it was submitted.

fpdf2 is pure Python; the DejaVu Sans font shipped in server/fonts covers the accents and
typographic quotes of French and English (the PDF core fonts know only Latin-1).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF

from server.form_fields import asks, shown
from server.i18n import format_datetime
from server.i18n import gettext as _

FONTS = Path(__file__).with_name("fonts")


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
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_creator("Cabinet")
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_font("DejaVu", "B", 16)
    pdf.multi_cell(width, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
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
            pdf.set_font("DejaVu", "B", 13)
            pdf.multi_cell(width, 7, spec["label"], new_x="LMARGIN", new_y="NEXT")
            if spec.get("help"):
                pdf.set_font("DejaVu", "", 9)
                pdf.multi_cell(width, 5, spec["help"], new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
            continue
        pdf.set_font("DejaVu", "B", 10)
        label = spec["label"] + (" *" if spec.get("required") else "")
        pdf.multi_cell(width, 5.5, label, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(
            width, 5.5, shown(spec, answers.get(spec["key"])), new_x="LMARGIN", new_y="NEXT"
        )
        pdf.ln(2.5)
    return bytes(pdf.output())
