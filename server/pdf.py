"""The PDF document Cabinet draws on (fpdf2, offline): A4, the DejaVu Sans fonts shipped in
server/fonts (accents, typographic quotes, the euro sign: the PDF core fonts know only
Latin-1), so nothing is fetched when a PDF is drawn. Used by server/billing_pdf.py and
server/form_pdf.py.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

FONT = "DejaVu"
FONTS = Path(__file__).with_name("fonts")


@cache
def _document_class() -> Any:
    """fpdf2's document class with Cabinet's fonts and optional footer. Imported on first
    use: it weighs half a second on every process's start-up otherwise."""
    from fpdf import FPDF

    class Document(FPDF):
        # None: no footer; else this text and the page number ("2/3") at each page's foot.
        footer_text: str | None = None

        def __init__(self) -> None:
            super().__init__(format="A4")
            self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
            self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))

        def footer(self) -> None:
            if self.footer_text is None:
                return
            self.set_y(-15)
            self.set_font(FONT, "", 7)
            self.set_text_color(110, 110, 110)
            text = f"{self.footer_text}   {self.page_no()}/{{nb}}".strip()
            self.cell(0, 5, text, align="C")

    return Document


def new_document(
    *,
    page_break_margin: float,
    margins: float | None = None,
    title: str | None = None,
    footer_text: str | None = None,
) -> Any:
    """A new A4 document with Cabinet's fonts; ``margins`` (mm, all sides but the bottom's
    page break) else fpdf2's; ``footer_text`` not None numbers the pages under that text."""
    pdf = _document_class()()
    pdf.set_auto_page_break(True, margin=page_break_margin)
    if margins is not None:
        pdf.set_margins(margins, margins, margins)
    if title is not None:
        pdf.set_title(title)
        pdf.set_creator("Cabinet")
    pdf.footer_text = footer_text
    return pdf
