"""What a file is, told from its bytes, never from its name.

A document uploaded to a client's file is later opened by a clinician or by the client, so
the practice accepts only a short list of everyday formats and recognises each one by its
content: a program renamed ``letter.pdf`` is refused. Office formats are zip containers and
are recognised by the marker files inside them (without unpacking anything large); the
macro-enabled variants are refused, since they carry code.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from server.i18n import lazy


@dataclass(frozen=True)
class FileType:
    content_type: str
    # The extensions a file of this type may carry; the first is added to a name without one.
    extensions: tuple[str, ...]
    label: str  # what the list shows ("PDF", "Word"...), marked with lazy() where it is a word


PDF = FileType("application/pdf", (".pdf",), "PDF")
PNG = FileType("image/png", (".png",), "PNG")
JPEG = FileType("image/jpeg", (".jpg", ".jpeg"), "JPEG")
GIF = FileType("image/gif", (".gif",), "GIF")
WEBP = FileType("image/webp", (".webp",), "WebP")
TEXT = FileType("text/plain; charset=utf-8", (".txt", ".text", ".md", ".csv"), lazy("Text"))
DOCX = FileType(
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    (".docx",),
    "Word",
)
XLSX = FileType(
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (".xlsx",), "Excel"
)
ODT = FileType("application/vnd.oasis.opendocument.text", (".odt",), "OpenDocument")

ACCEPTED = (PDF, PNG, JPEG, GIF, WEBP, TEXT, DOCX, XLSX, ODT)

# Marker files are small; anything bigger is not what it claims to be.
MAX_MARKER_BYTES = 1024 * 1024
# Control bytes that never appear in ordinary text (tab, newlines and form feed do). In UTF-8
# they never occur inside a multi-byte character, so the bytes can be searched directly.
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def detect(data: bytes) -> FileType | None:
    """The type of ``data`` when it is one the practice accepts, else None."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"PK\x03\x04"):
        return _zip_container(data)
    if _is_text(data):
        return TEXT
    return None


def _zip_container(data: bytes) -> FileType | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = {info.filename: info for info in archive.infolist()}

            def read(name: str) -> bytes | None:
                info = infos.get(name)
                if info is None or info.file_size > MAX_MARKER_BYTES:
                    return None
                return archive.read(info)

            # OpenDocument: a first entry "mimetype", stored, naming the format.
            first = archive.infolist()[0] if infos else None
            if first is not None and first.filename == "mimetype":
                mimetype = read("mimetype")
                if mimetype is not None and mimetype.strip() == ODT.content_type.encode():
                    return ODT
                return None
            types = read("[Content_Types].xml")
            if types is None:
                return None
            if b"macroEnabled" in types or any(n.endswith("vbaProject.bin") for n in infos):
                return None
            if "word/document.xml" in infos:
                return DOCX
            if "xl/workbook.xml" in infos:
                return XLSX
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError):
        return None
    return None


def _is_text(data: bytes) -> bool:
    """UTF-8 text (a BOM allowed) without the control bytes that mark binary files."""
    if not data:
        return False
    if _BINARY_BYTES.search(data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def with_extension(name: str, file_type: FileType) -> str:
    """``name`` ending with an extension of its real type, so it opens in the right program
    once downloaded: "scan" becomes "scan.pdf", and "notes.exe" holding a PDF "notes.exe.pdf"."""
    if name.lower().endswith(file_type.extensions):
        return name
    return name + file_type.extensions[0]
