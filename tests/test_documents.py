"""Documents on the client file: types told by content, the size limit, rename, soft delete,
sharing on the portal, downloads recorded as reads, and who reaches what."""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from models.accounts import Practice, StaffRole
from models.audit import AuditEntry
from models.clients import Client, Document
from server import filetypes, storage
from server.actions import accounts, clients, documents
from server.auth.sessions import Caller
from server.errors import ValidationFailed
from server.settings import Settings, set_settings
from tests.conftest import PASSWORD, Factory, login, request_key_of

# --- sample files ----------------------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
TEXT = "Compte rendu de séance\nHélène — 12 mars\n".encode()
# A Windows program: what a renamed .exe starts with.
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48
EXE += b"This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 64


def zipped(files: dict[str, bytes], first: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        if first is not None:
            archive.writestr(zipfile.ZipInfo(first), files[first])  # stored, first: as ODF wants
        for name, data in files.items():
            if name != first:
                archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


CONTENT_TYPES = b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
DOCX = zipped({"[Content_Types].xml": CONTENT_TYPES, "word/document.xml": b"<w:document/>"})
XLSX = zipped({"[Content_Types].xml": CONTENT_TYPES, "xl/workbook.xml": b"<workbook/>"})
ODT = zipped(
    {"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<office/>"},
    first="mimetype",
)
DOCM = zipped(
    {
        "[Content_Types].xml": CONTENT_TYPES.replace(
            b"/>",
            b"><Override ContentType='application/vnd.ms-word.document.macroEnabled.main+xml'/></Types>",
        ),
        "word/document.xml": b"<w:document/>",
        "word/vbaProject.bin": b"\x00" * 16,
    }
)
JUST_A_ZIP = zipped({"photos/holiday.txt": b"not an office file"})
ODS = zipped(
    {"mimetype": b"application/vnd.oasis.opendocument.spreadsheet", "content.xml": b"<x/>"},
    first="mimetype",
)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (PDF, "application/pdf"),
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
        (TEXT, "text/plain; charset=utf-8"),
        (b"\xef\xbb\xbfwith a byte-order mark\r\n", "text/plain; charset=utf-8"),
        (DOCX, filetypes.DOCX.content_type),
        (XLSX, filetypes.XLSX.content_type),
        (ODT, filetypes.ODT.content_type),
    ],
)
def test_accepted_types_are_told_by_their_content(data: bytes, content_type: str) -> None:
    detected = filetypes.detect(data)
    assert detected is not None and detected.content_type == content_type


@pytest.mark.parametrize(
    "data",
    [
        EXE,
        DOCM,  # macros are code
        JUST_A_ZIP,
        ODS,  # an OpenDocument, but not a text one
        b"PK\x03\x04 broken zip",
        "Compte rendu de séance".encode("latin-1"),  # not UTF-8
        b"text with a NUL\x00 byte",
        b"\x7fELF\x02\x01\x01",
        b"",
    ],
)
def test_other_content_is_refused(data: bytes) -> None:
    assert filetypes.detect(data) is None


def test_names_keep_the_real_type_visible() -> None:
    assert documents.clean_name("C:\\fakepath\\Bilan.pdf") == "Bilan.pdf"
    assert documents.clean_name("  ../../etc/passwd ") == "passwd"
    # A right-to-left override would show "report\u202egpj.exe" as "reportexe.jpg".
    assert documents.clean_name("report\u202egpj.exe") == "reportgpj.exe"
    assert len(documents.clean_name("a" * 300 + ".pdf")) == documents.MAX_NAME
    assert documents.clean_name("a" * 300 + ".pdf").endswith(".pdf")
    assert filetypes.with_extension("scan", filetypes.PDF) == "scan.pdf"
    assert filetypes.with_extension("photo.JPG", filetypes.JPEG) == "photo.JPG"
    assert filetypes.with_extension("letter.exe", filetypes.PDF) == "letter.exe.pdf"


# --- the practice ----------------------------------------------------------------------------


async def upload(
    http: httpx.AsyncClient,
    client: Client,
    name: str,
    data: bytes,
    *,
    shared: bool = False,
    declared: str = "application/pdf",
) -> httpx.Response:
    return await http.post(
        f"/api/clients/{client.id}/documents",
        files={"file": (name, data, declared)},
        data={"shared": "1"} if shared else {},
    )


def stored_files(settings: Settings) -> list[str]:
    folder = settings.data_dir / "documents"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_upload_list_and_download(
    http: httpx.AsyncClient, people: dict[str, Any], settings: Settings
) -> None:
    camille: Client = people["camille"]
    await login(http, people["alice"])
    # The browser's claimed type and the name do not matter: the bytes do.
    r = await upload(http, camille, "Compte rendu.pdf", PDF, declared="image/png")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["name"] == "Compte rendu.pdf"
    assert doc["content_type"] == "application/pdf"
    assert doc["size"] == len(PDF) and doc["shared_with_client"] is False
    assert doc["uploaded_by_id"] == people["alice"].id
    listed = (await http.get(f"/api/clients/{camille.id}/documents")).json()
    assert [d["id"] for d in listed] == [doc["id"]]

    row = await Document.get(id=doc["id"])
    assert stored_files(settings) == [row.storage_key]
    assert (settings.data_dir / "documents" / row.storage_key).read_bytes() == PDF

    r = await http.get(f"/api/documents/{doc['id']}/content")
    assert r.status_code == 200 and r.content == PDF
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert "Compte%20rendu.pdf" in r.headers["content-disposition"]
    # Downloads are reads of the file; the upload is a write that does not name the document.
    read = await AuditEntry.get(action="read.document")
    assert (read.client_id, read.object_id, read.is_read) == (camille.id, str(doc["id"]), True)
    uploaded = await AuditEntry.get(action="document.uploaded")
    assert "Compte" not in str(uploaded.detail)


async def test_a_refused_upload_keeps_the_boxes_ticked(
    http: httpx.AsyncClient, people: dict[str, Any], settings: Settings
) -> None:
    """A 422 on "Upload" (a file of a kind not accepted) showed the error beside the file,
    but with "Share with the client" and "Clinical content" unticked again: picking another
    file and pressing Upload would have filed a clinical letter as not clinical. The file
    cannot be put back (a browser never lets a page choose it); the boxes are as sent."""
    camille: Client = people["camille"]
    token = (await login(http, people["alice"]))["csrf_token"]
    r = await http.post(
        f"/staff/clients/{camille.id}/documents?csrf_token={token}",
        files={"file": ("setup.exe", b"MZ\x90\x00" + bytes(200), "application/pdf")},
        data={"shared": "1", "clinical": "1"},
    )
    assert r.status_code == 422, r.text
    form = r.text.split('id="upload"', 1)[1]
    assert re.search(r'name="file"[^>]*>\s*<span class="field-error"', form)
    assert re.search(r'name="shared" value="1"\s*checked', form)
    assert re.search(r'name="clinical" value="1"[^>]*\schecked', form)
    assert not await Document.filter(client_id=camille.id).exists()
    assert stored_files(settings) == []


async def test_an_upload_sent_twice_files_one_document(
    http: httpx.AsyncClient, people: dict[str, Any], settings: Settings
) -> None:
    """The answer lost, the button pressed again: the same report was filed twice. The
    page's key finds the first (its bytes not kept twice); the page shown again files anew;
    two uploads at once through the API with one key file one."""
    camille: Client = people["camille"]
    token = (await login(http, people["alice"]))["csrf_token"]
    tab = f"/staff/clients/{camille.id}/documents"

    key = await request_key_of(http, tab)
    for _ in range(2):
        r = await http.post(
            f"{tab}?csrf_token={token}",
            files={"file": ("Bilan.pdf", PDF, "application/pdf")},
            data={"request_key": key},
        )
        assert r.status_code == 303, r.text
    assert await Document.filter(client_id=camille.id).count() == 1
    assert len(stored_files(settings)) == 1
    r = await http.post(
        f"{tab}?csrf_token={token}",
        files={"file": ("Bilan.pdf", PDF, "application/pdf")},
        data={"request_key": await request_key_of(http, tab)},
    )
    assert r.status_code == 303
    assert await Document.filter(client_id=camille.id).count() == 2

    async def by_api() -> httpx.Response:
        return await http.post(
            f"/api/clients/{camille.id}/documents",
            files={"file": ("Scan.pdf", PDF, "application/pdf")},
            data={"request_key": "my-upload-1"},
        )

    first, second = await asyncio.gather(by_api(), by_api())
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["id"] == second.json()["id"]
    assert await Document.filter(client_id=camille.id).count() == 3
    assert len(stored_files(settings)) == 3


async def test_a_form_field_no_column_can_hold_is_a_422_naming_it(
    http: httpx.AsyncClient, people: dict[str, Any], settings: Settings
) -> None:
    """A JSON body's text is checked for a NUL (validate's unstorable_text); an upload's
    form fields were not, and its request_key went to the database as sent (a 500 on
    PostgreSQL, which refuses a NUL in text)."""
    await login(http, people["owner"])
    for fields, named in (
        ({"request_key": "key\x00one"}, "request_key"),
        ({"request_key": "fine", "shared": "1\x00"}, "shared"),
    ):
        r = await http.post(
            f"/api/clients/{people['camille'].id}/documents",
            files={"file": ("Bilan.pdf", PDF, "application/pdf")},
            data=fields,
        )
        assert r.status_code == 422, r.text
        assert list(r.json()["error"]["fields"]) == [named]
    assert await Document.all().count() == 0
    assert stored_files(settings) == []


async def test_an_upload_key_another_practice_used_does_not_refuse_mine(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    """request_key was unique across the whole table though looked up within the client's
    documents: a key another practice's script had used answered 409 here, telling that it
    had been used. Within one client's documents it still files one document."""
    other_practice = await Practice.create(name="Other practice")
    b_owner = await accounts.do_create_staff_user(
        None,
        other_practice,
        email="owner-b@example.org",
        first_name="B",
        last_name="Owner",
        role=StaffRole.OWNER,
        password=PASSWORD,
    )
    b_client = await clients.do_create_client(None, other_practice, first_name="Bea", last_name="B")
    async with new_http("10.7.7.7") as b_http:
        await login(b_http, b_owner)
        r = await b_http.post(
            f"/api/clients/{b_client.id}/documents",
            files={"file": ("b.pdf", PDF, "application/pdf")},
            data={"request_key": "upload-1"},
        )
        assert r.status_code == 200, r.text
    await login(http, people["owner"])
    ids = []
    for _ in range(2):
        r = await http.post(
            f"/api/clients/{people['camille'].id}/documents",
            files={"file": ("a.pdf", PDF, "application/pdf")},
            data={"request_key": "upload-1"},
        )
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    assert ids[0] == ids[1]
    assert await Document.filter(request_key="upload-1").count() == 2


async def test_a_renamed_program_is_refused(
    http: httpx.AsyncClient, people: dict[str, Any], settings: Settings
) -> None:
    await login(http, people["alice"])
    for name, data in (("invoice.pdf", EXE), ("macros.docx", DOCM), ("empty.txt", b"")):
        r = await upload(http, people["camille"], name, data)
        assert r.status_code == 422, name
        assert "file" in r.json()["error"]["fields"]
    assert await Document.all().count() == 0
    assert stored_files(settings) == []


async def test_the_name_says_the_real_type(http: httpx.AsyncClient, people: dict[str, Any]) -> None:
    await login(http, people["alice"])
    r = await upload(http, people["camille"], "scan", PDF)
    assert r.json()["name"] == "scan.pdf"
    r = await upload(http, people["camille"], "holiday.pdf", PNG)
    assert (r.json()["name"], r.json()["content_type"]) == ("holiday.pdf.png", "image/png")
    r = await upload(http, people["camille"], "notes.txt", TEXT)
    assert r.json()["content_type"] == "text/plain; charset=utf-8"
    download = await http.get(f"/api/documents/{r.json()['id']}/content")
    assert download.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.fixture
def one_mb(settings: Settings) -> Settings:
    small = replace(settings, document_max_mb=1)
    set_settings(small)
    return small


async def test_the_size_limit(
    http: httpx.AsyncClient, people: dict[str, Any], one_mb: Settings
) -> None:
    await login(http, people["alice"])
    limit = 1024 * 1024
    exactly = b"a" * limit
    assert (await upload(http, people["camille"], "a.txt", exactly)).status_code == 200
    r = await upload(http, people["camille"], "b.txt", exactly + b"a")
    assert r.status_code == 422
    assert r.json()["error"]["fields"]["file"] == "The file is larger than 1 MB."
    # Far over: refused from the announced length, before the body is read.
    r = await upload(http, people["camille"], "c.txt", b"a" * (3 * limit))
    assert r.status_code == 422 and "1 MB" in r.json()["error"]["fields"]["file"]
    assert await Document.all().count() == 1
    assert len(stored_files(one_mb)) == 1


async def test_an_oversized_stream_without_a_length_is_cut_off(
    http: httpx.AsyncClient, people: dict[str, Any], one_mb: Settings
) -> None:
    await login(http, people["alice"])
    boundary = "cabinet-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield head
        for _ in range(64):  # 4 MB, announced by no Content-Length
            sent += 64 * 1024
            yield b"a" * (64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    r = await http.post(
        f"/api/clients/{people['camille'].id}/documents",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 422 and "file" in r.json()["error"]["fields"]
    assert await Document.all().count() == 0 and stored_files(one_mb) == []
    assert sent < 2 * 1024 * 1024  # the rest was never read


async def test_bytes_are_removed_when_the_row_is_not_written(
    people: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(documents.audit, "record", broken)
    with pytest.raises(RuntimeError):
        await documents.do_upload_document(
            Caller.acting_as(people["alice"]), people["camille"], name="a.pdf", data=PDF
        )
    assert await Document.all().count() == 0
    assert stored_files(settings) == []


async def test_bad_uploads_are_422_not_crashes(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    await login(http, people["alice"])
    url = f"/api/clients/{people['camille'].id}/documents"
    assert (await http.post(url, json={"file": "x"})).status_code == 422
    assert (await http.post(url, data={"shared": "1"}, files={})).status_code == 422
    two = [("file", ("a.pdf", PDF, "application/pdf")), ("file", ("b.pdf", PDF, "application/pdf"))]
    assert (await http.post(url, files=two)).status_code == 422
    with pytest.raises(ValidationFailed):
        documents.check_upload(b"")


async def test_sharing_on_the_portal(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    camille: Client = people["camille"]
    staff = new_http("10.7.0.1")
    await login(staff, people["alice"])
    portal = new_http("10.7.0.2")
    await login(portal, camille)
    doc = (await upload(staff, camille, "Exercices.pdf", PDF)).json()
    assert (await portal.get("/portal/api/documents")).json() == []
    assert (await portal.get(f"/portal/api/documents/{doc['id']}/content")).status_code == 404
    assert (await portal.get(f"/portal/documents/{doc['id']}")).status_code == 404

    r = await staff.post(f"/api/documents/{doc['id']}/shared", json={"shared": True})
    assert r.status_code == 200 and r.json()["shared_with_client"] is True
    listed = (await portal.get("/portal/api/documents")).json()
    assert [(d["id"], d["name"]) for d in listed] == [(doc["id"], "Exercices.pdf")]
    assert "sha256" not in listed[0]  # the portal gets what a client needs, no more
    page = await portal.get("/portal/documents")
    assert page.status_code == 200 and "Exercices.pdf" in page.text
    for url in (f"/portal/api/documents/{doc['id']}/content", f"/portal/documents/{doc['id']}"):
        got = await portal.get(url)
        assert got.status_code == 200 and got.content == PDF
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
    by_client = await AuditEntry.filter(action="read.document", actor_kind="client").count()
    assert by_client == 2
    assert await AuditEntry.filter(action="document.shared").count() == 1

    r = await staff.post(f"/api/documents/{doc['id']}/shared", json={"shared": False})
    assert r.json()["shared_with_client"] is False
    assert (await portal.get("/portal/api/documents")).json() == []
    assert (await portal.get(f"/portal/api/documents/{doc['id']}/content")).status_code == 404
    assert "Exercices.pdf" not in (await portal.get("/portal/documents")).text


async def test_uploading_shared_at_once(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    staff = new_http("10.7.1.1")
    await login(staff, people["alice"])
    doc = (await upload(staff, people["camille"], "Bilan.pdf", PDF, shared=True)).json()
    assert doc["shared_with_client"] is True
    portal = new_http("10.7.1.2")
    await login(portal, people["camille"])
    assert [d["id"] for d in (await portal.get("/portal/api/documents")).json()] == [doc["id"]]
    # The portal's home leads to the documents.
    assert 'href="/portal/documents"' in (await portal.get("/portal/")).text


async def test_rename(http: httpx.AsyncClient, people: dict[str, Any]) -> None:
    await login(http, people["alice"])
    doc = (await upload(http, people["camille"], "scan_0001.pdf", PDF)).json()
    r = await http.post(f"/api/documents/{doc['id']}/name", json={"name": "  Bilan   initial "})
    assert r.status_code == 200 and r.json()["name"] == "Bilan initial.pdf"
    r = await http.post(f"/api/documents/{doc['id']}/name", json={"name": " / "})
    assert r.status_code == 422 and "name" in r.json()["error"]["fields"]
    assert (await Document.get(id=doc["id"])).name == "Bilan initial.pdf"
    entries = await AuditEntry.filter(action="document.renamed")
    assert len(entries) == 1 and entries[0].detail == {"fields": ["name"]}


async def test_soft_delete(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any], settings: Settings
) -> None:
    staff = new_http("10.7.2.1")
    await login(staff, people["alice"])
    doc = (await upload(staff, people["camille"], "a.pdf", PDF, shared=True)).json()
    assert (await staff.delete(f"/api/documents/{doc['id']}")).status_code == 200
    row = await Document.get(id=doc["id"])
    assert row.deleted_at is not None
    assert stored_files(settings) == [row.storage_key]  # the bytes stay
    assert (await staff.get(f"/api/clients/{people['camille'].id}/documents")).json() == []
    for url in (f"/api/documents/{doc['id']}", f"/api/documents/{doc['id']}/content"):
        assert (await staff.get(url)).status_code == 404
    assert (await staff.delete(f"/api/documents/{doc['id']}")).status_code == 404
    portal = new_http("10.7.2.2")
    await login(portal, people["camille"])
    assert (await portal.get("/portal/api/documents")).json() == []
    assert (await portal.get(f"/portal/api/documents/{doc['id']}/content")).status_code == 404
    assert await AuditEntry.filter(action="document.deleted").count() == 1


# --- who reaches what ------------------------------------------------------------------------

STAFF_EXPECTED = {"owner": 200, "alice": 200, "desk": 200, "bob": 404}


@pytest.mark.parametrize("who", list(STAFF_EXPECTED))
async def test_staff_access(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any], who: str
) -> None:
    alice = new_http("10.7.3.1")
    await login(alice, people["alice"])
    doc = (await upload(alice, people["camille"], "a.pdf", PDF)).json()
    http = new_http("10.7.3.2")
    await login(http, people[who])
    expected = STAFF_EXPECTED[who]
    camille = people["camille"]
    assert (await http.get(f"/api/clients/{camille.id}/documents")).status_code == expected
    assert (await http.get(f"/api/documents/{doc['id']}/content")).status_code == expected
    assert (await http.get(f"/staff/clients/{camille.id}/documents")).status_code == expected
    assert (
        await http.get(f"/staff/clients/{camille.id}/documents/{doc['id']}")
    ).status_code == expected
    r = await upload(http, camille, "b.pdf", PDF)
    assert r.status_code == expected
    r = await http.post(f"/api/documents/{doc['id']}/shared", json={"shared": True})
    assert r.status_code == expected
    if expected == 404:
        missing = await http.post("/api/documents/999999/shared", json={"shared": True})
        assert r.json() == missing.json()  # indistinguishable from a missing id
        assert (await Document.get(id=doc["id"])).shared_with_client is False
        assert await Document.filter(client_id=camille.id).count() == 1


async def test_clients_and_strangers(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    camille: Client = people["camille"]
    alice = new_http("10.7.4.1")
    await login(alice, people["alice"])
    doc = (await upload(alice, camille, "a.pdf", PDF, shared=True)).json()
    bob = new_http("10.7.4.2")
    await login(bob, people["bob"])
    theirs = (await upload(bob, people["other"], "b.pdf", PDF, shared=True)).json()

    portal = new_http("10.7.4.3")
    await login(portal, camille)
    # Another client's shared document is a 404, like a missing one.
    for url in (
        f"/portal/api/documents/{theirs['id']}/content",
        "/portal/api/documents/999999/content",
    ):
        assert (await portal.get(url)).status_code == 404
    assert (await portal.get(f"/portal/documents/{theirs['id']}")).status_code == 404
    # Clients cannot upload, nor reach the staff API or pages.
    r = await portal.post(
        "/portal/api/documents", files={"file": ("x.pdf", PDF, "application/pdf")}
    )
    assert r.status_code == 405
    r = await portal.post(
        f"/api/clients/{camille.id}/documents", files={"file": ("x.pdf", PDF, "application/pdf")}
    )
    assert r.status_code == 401
    assert (await portal.get(f"/api/documents/{doc['id']}/content")).status_code == 401
    assert (
        await portal.get(f"/staff/clients/{camille.id}/documents/{doc['id']}")
    ).status_code == 303
    assert await Document.all().count() == 2

    nobody = new_http("10.7.4.4")
    assert (await nobody.get(f"/portal/api/documents/{doc['id']}/content")).status_code == 401
    assert (await nobody.get(f"/api/documents/{doc['id']}/content")).status_code == 401
    assert (await nobody.get(f"/portal/documents/{doc['id']}")).status_code == 303


# --- the tab ---------------------------------------------------------------------------------


async def test_the_documents_tab(http: httpx.AsyncClient, people: dict[str, Any]) -> None:
    camille: Client = people["camille"]
    me = await login(http, people["alice"])
    token = me["csrf_token"]
    del http.headers["X-CSRF-Token"]  # as a browser form would: the token in the URL
    base = f"/staff/clients/{camille.id}/documents"
    page = await http.get(base)
    assert page.status_code == 200 and "No documents on this file yet." in page.text
    assert f"/staff/clients/{camille.id}/export" in page.text  # the action bar's export

    r = await http.post(f"{base}?csrf_token={token}", files={"file": ("Lettre.pdf", PDF)})
    assert r.status_code == 303 and r.headers["location"] == f"{base}?saved=1"
    doc = await Document.get(client_id=camille.id)
    r = await http.post(f"{base}?csrf_token={token}", files={"file": ("virus.pdf", EXE)})
    assert r.status_code == 422 and "Upload a PDF, an image" in r.text
    # Without the token, nothing is stored.
    r = await http.post(base, files={"file": ("Lettre.pdf", PDF)})
    assert r.status_code == 403 and await Document.all().count() == 1

    form = {"csrf_token": token}
    r = await http.post(f"{base}/{doc.id}/share", data={**form, "shared": "1"})
    assert r.status_code == 303
    # A name of nothing but slashes is refused: in its row's form, open, as typed, the
    # reason beside it (it came back closed, with the old name and the reason at the top).
    r = await http.post(f"{base}/{doc.id}/rename", data={**form, "name": "///"})
    assert r.status_code == 422
    row = r.text.split(f'/documents/{doc.id}/rename"')[0].rsplit("<details", 1)[1]
    assert row.startswith(" open")
    after = r.text.split(f'/documents/{doc.id}/rename"')[1].split("</details>")[0]
    assert 'value="///"' in after and "Name the document." in after
    r = await http.post(f"{base}/{doc.id}/rename", data={**form, "name": "Courrier"})
    assert r.status_code == 303
    await doc.refresh_from_db()
    assert (doc.name, doc.shared_with_client) == ("Courrier.pdf", True)
    page = await http.get(base)
    assert "Courrier.pdf" in page.text and "Stop sharing" in page.text
    assert (await http.get(f"{base}/{doc.id}")).content == PDF
    assert (await http.post(f"{base}/{doc.id}/explode", data=form)).status_code == 404
    other = await Client.get(id=people["other"].id)
    assert (
        await http.post(f"/staff/clients/{other.id}/documents/{doc.id}/delete", data=form)
    ).status_code == 404
    r = await http.post(f"{base}/{doc.id}/delete", data=form)
    assert r.status_code == 303
    assert "Courrier.pdf" not in (await http.get(base)).text


async def test_storage_keys_never_leave_the_folder() -> None:
    for key in ("../secret_key", "abc", "A" * 32, "0" * 31 + "/"):
        with pytest.raises(ValueError):
            storage.path_of(key)


# --- clinical documents ----------------------------------------------------------------------

# Who reaches a clinical document on Camille's file (Alice's client), by whether the practice
# opens clinical details to the front desk.
CLINICAL_EXPECTED = {
    ("owner", False): 200,
    ("alice", False): 200,
    ("bob", False): 404,
    ("desk", False): 404,
    ("desk", True): 200,
}


@pytest.mark.parametrize(("who", "desk_sees_clinical"), list(CLINICAL_EXPECTED))
async def test_clinical_documents_only_for_who_may_read_clinical_details(
    new_http: Callable[..., httpx.AsyncClient],
    people: dict[str, Any],
    who: str,
    desk_sees_clinical: bool,
) -> None:
    from models.accounts import Practice

    camille: Client = people["camille"]
    await Practice.filter(id=camille.practice_id).update(  # type: ignore[attr-defined]
        office_admins_see_clinical=desk_sees_clinical
    )
    alice = new_http("10.7.5.1")
    await login(alice, people["alice"])
    r = await alice.post(
        f"/api/clients/{camille.id}/documents",
        files={"file": ("Bilan.pdf", PDF, "application/pdf")},
        data={"clinical": "1", "shared": "1"},
    )
    assert r.status_code == 200 and r.json()["clinical"] is True
    secret = r.json()["id"]
    plain = (await upload(alice, camille, "Facture.pdf", PDF)).json()
    assert plain["clinical"] is False

    http = new_http("10.7.5.2")
    await login(http, people[who])
    expected = CLINICAL_EXPECTED[(who, desk_sees_clinical)]
    missing = (await http.get("/api/documents/999999")).json()
    listed = await http.get(f"/api/clients/{camille.id}/documents")
    page = await http.get(f"/staff/clients/{camille.id}/documents")
    if who == "bob":
        assert listed.status_code == 404 and page.status_code == 404
    else:
        ids = [d["id"] for d in listed.json()]
        assert (secret in ids) is (expected == 200) and plain["id"] in ids
        assert ("Bilan.pdf" in page.text) is (expected == 200) and "Facture.pdf" in page.text
    base = f"/staff/clients/{camille.id}/documents/{secret}"
    token = {"csrf_token": http.headers["X-CSRF-Token"]}
    statuses = [
        (await http.get(f"/api/documents/{secret}")).status_code,
        (await http.get(f"/api/documents/{secret}/content")).status_code,
        (await http.get(base)).status_code,
        (await http.post(f"/api/documents/{secret}/name", json={"name": "X"})).status_code,
        (await http.post(f"/api/documents/{secret}/shared", json={"shared": False})).status_code,
        (await http.post(f"{base}/rename", data={**token, "name": "Y"})).status_code,
        (await http.post(f"{base}/share", data={**token, "shared": "0"})).status_code,
    ]
    if expected == 404:
        assert statuses == [404] * len(statuses)
        assert (await http.get(f"/api/documents/{secret}")).json() == missing
        assert (await http.delete(f"/api/documents/{secret}")).status_code == 404
        assert (await http.post(f"{base}/delete", data=token)).status_code == 404
        row = await Document.get(id=secret)
        assert (row.name, row.shared_with_client, row.deleted_at) == ("Bilan.pdf", True, None)
        assert not await AuditEntry.filter(action="read.document", object_id=str(secret))
    else:
        assert all(s in {200, 303} for s in statuses), statuses
        assert (await http.delete(f"/api/documents/{secret}")).status_code == 200


async def test_the_client_sees_their_clinical_document_on_the_portal(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    camille: Client = people["camille"]
    alice = new_http("10.7.6.1")
    await login(alice, people["alice"])
    r = await alice.post(
        f"/api/clients/{camille.id}/documents",
        files={"file": ("Bilan.pdf", PDF, "application/pdf")},
        data={"clinical": "1", "shared": "1"},
    )
    secret = r.json()["id"]
    unshared = (
        await alice.post(
            f"/api/clients/{camille.id}/documents",
            files={"file": ("Notes.pdf", PDF, "application/pdf")},
            data={"clinical": "1"},
        )
    ).json()["id"]
    portal = new_http("10.7.6.2")
    await login(portal, camille)
    assert [d["id"] for d in (await portal.get("/portal/api/documents")).json()] == [secret]
    assert (await portal.get(f"/portal/api/documents/{secret}/content")).content == PDF
    assert (await portal.get(f"/portal/api/documents/{unshared}/content")).status_code == 404
    other = new_http("10.7.6.3")
    await login(other, people["other"])
    assert (await other.get(f"/portal/api/documents/{secret}/content")).status_code == 404
    assert (await other.get("/portal/api/documents")).json() == []


async def test_the_tab_marks_an_upload_clinical(
    http: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    camille: Client = people["camille"]
    me = await login(http, people["alice"])
    base = f"/staff/clients/{camille.id}/documents"
    page = await http.get(base)
    assert 'name="clinical"' in page.text and "Clinical content" in page.text
    r = await http.post(
        f"{base}?csrf_token={me['csrf_token']}",
        files={"file": ("Bilan.pdf", PDF)},
        data={"clinical": "1"},
    )
    assert r.status_code == 303
    assert (await Document.get(client_id=camille.id)).clinical is True
    assert "data-clinical" in (await http.get(base)).text
    entry = await AuditEntry.get(action="document.uploaded")
    assert entry.detail["clinical"] is True


async def test_marking_a_document_clinical_or_not(
    new_http: Callable[..., httpx.AsyncClient], people: dict[str, Any]
) -> None:
    camille: Client = people["camille"]
    alice = new_http("10.7.7.1")
    me = await login(alice, people["alice"])
    doc = (await upload(alice, camille, "Compte rendu.pdf", PDF)).json()
    desk = new_http("10.7.7.2")
    await login(desk, people["desk"])
    assert (await desk.get(f"/api/documents/{doc['id']}")).status_code == 200
    # The therapist marks it clinical from the tab: the front desk loses it.
    base = f"/staff/clients/{camille.id}/documents/{doc['id']}"
    r = await alice.post(f"{base}/clinical", data={"csrf_token": me["csrf_token"], "clinical": "1"})
    assert r.status_code == 303
    assert (await Document.get(id=doc["id"])).clinical is True
    assert "Not clinical" in (await alice.get(f"/staff/clients/{camille.id}/documents")).text
    assert (await desk.get(f"/api/documents/{doc['id']}")).status_code == 404
    r = await desk.post(f"/api/documents/{doc['id']}/clinical", json={"clinical": False})
    assert r.status_code == 404 and (await Document.get(id=doc["id"])).clinical is True
    # Back to not clinical through the API: the front desk sees it again.
    r = await alice.post(f"/api/documents/{doc['id']}/clinical", json={"clinical": False})
    assert r.status_code == 200 and r.json()["clinical"] is False
    assert (await desk.get(f"/api/documents/{doc['id']}")).status_code == 200
    # The front desk may seal one too, and then no longer reaches it.
    r = await desk.post(f"/api/documents/{doc['id']}/clinical", json={"clinical": True})
    assert r.status_code == 200 and r.json()["clinical"] is True
    assert (await desk.get(f"/api/documents/{doc['id']}")).status_code == 404
    actions = [e.action for e in await AuditEntry.filter(object_id=str(doc["id"])).order_by("id")]
    assert actions.count("document.clinical") == 2 and "document.not_clinical" in actions
    bob = new_http("10.7.7.3")
    await login(bob, people["bob"])
    r = await bob.post(f"/api/documents/{doc['id']}/clinical", json={"clinical": False})
    assert r.status_code == 404


async def test_a_page_or_a_drawing_with_a_script_is_downloaded_never_run(
    http: httpx.AsyncClient, new_http: Callable[..., httpx.AsyncClient], make: Factory
) -> None:
    """An HTML page or an SVG drawing holds script that runs with the reader's session when
    a browser opens it as a page. Both are text to Cabinet: each downloads as plain text,
    as an attachment, with nosniff, for the clinician and for the client alike."""
    therapist = await make.therapist()
    client = await make.client(therapist)
    await login(http, therapist)
    payloads = {
        "letter.html": b"<html><script>fetch('/api/me')</script></html>",
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    }
    for name, data in payloads.items():
        r = await upload(http, client, name, data, shared=True, declared="image/svg+xml")
        assert r.status_code == 200, r.text
        document_id = r.json()["id"]
        async with new_http("10.0.0.8") as portal:
            await login(portal, client)
            for who, url in (
                (http, f"/api/documents/{document_id}/content"),
                (http, f"/staff/clients/{client.id}/documents/{document_id}"),
                (portal, f"/portal/documents/{document_id}"),
                (portal, f"/portal/api/documents/{document_id}/content"),
            ):
                got = await who.get(url)
                assert got.status_code == 200, url
                assert got.headers["content-type"].startswith("text/plain"), url
                assert got.headers["content-disposition"].startswith("attachment"), url
                assert got.headers["x-content-type-options"] == "nosniff"
                assert got.content == data
