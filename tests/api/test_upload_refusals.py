"""Nothing uploaded is silently merged, cut or dropped, through either door.

- File names over 255 characters: Django would cut them, and two files sharing their first
  255 characters would become versions of one document. They are refused (400, the limit).
- Zip entries that are not ingested (traversal, absolute path, drive letter, unsupported
  type, ...) are each listed with their reason in the upload's result, and audited.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from kb.audit.models import AuditRecord
from kb.library.models import Collection, Document
from tests.api.conftest import api

pytestmark = pytest.mark.django_db

STEM = "quarterly-report-" + "x" * 250  # two names that share their first 255 characters
LONG_NAMES = [f"{STEM}-north.txt", f"{STEM}-south.txt"]


def named_file(name: str, content: bytes) -> io.BytesIO:
    """A file the test client sends under `name` as it is (SimpleUploadedFile would cut a
    long name itself, as Django does on arrival)."""
    stream = io.BytesIO(content)
    stream.name = name
    return stream


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


HOSTILE_ZIP = {
    "policies/ok.md": b"# Fine\n\nA good document.",
    "../../etc/x.txt": b"climbs",
    "a/../../b.txt": b"climbs too",
    "..\\..\\win\\system.txt": b"windows climb",
    "/abs/path.txt": b"absolute",
    "C:/Windows/evil.txt": b"drive letter",
    "tool.exe": b"MZ not a document",
}
EXPECTED_REASONS = {
    "../../etc/x.txt": "climbs out of the archive",
    "a/../../b.txt": "climbs out of the archive",
    "..\\..\\win\\system.txt": "climbs out of the archive",
    "/abs/path.txt": "is absolute",
    "C:/Windows/evil.txt": "drive letter",
    "tool.exe": "",  # unsupported type: any reason, but listed
}


def portal(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_long_names_are_refused_through_the_api(
    finance_erp: str, finance_collection: Collection
) -> None:
    url = f"/api/v1/collections/{finance_collection.pk}/documents"
    for name in LONG_NAMES:
        response = api(finance_erp).post(
            url, {"file": named_file(name, b"Report text " + name.encode())},
            format="multipart",
        )  # fmt: skip
        assert response.status_code == 400
        assert "255" in response.json()["detail"]
    assert not Document.objects.filter(collection=finance_collection).exists()
    audited = AuditRecord.objects.filter(action="upload.refused").order_by("seq")
    assert [r.details["file"] for r in audited] == LONG_NAMES


def test_long_names_are_refused_through_the_portal(
    alice: User, finance_collection: Collection
) -> None:
    url = reverse("portal:collection", args=[finance_collection.pk])
    for name in LONG_NAMES:
        response = portal(alice).post(
            url, {"file": named_file(name, b"Report text " + name.encode())},
            HTTP_ACCEPT="application/json",
        )  # fmt: skip
        assert response.status_code == 400
        refused = response.json()["refused"]
        assert len(refused) == 1 and "255" in refused[0]["reason"]
    assert not Document.objects.filter(collection=finance_collection).exists()


def test_names_within_the_limit_stay_whole_and_distinct(
    finance_erp: str, finance_collection: Collection
) -> None:
    url = f"/api/v1/collections/{finance_collection.pk}/documents"
    stem = "r" * 240
    for suffix in ("-a.txt", "-b.txt"):
        response = api(finance_erp).post(
            url, {"file": SimpleUploadedFile(stem + suffix, suffix.encode() * 10)},
            format="multipart",
        )  # fmt: skip
        assert response.status_code == 201
        assert response.json()["results"][0]["outcome"] == "created"
    paths = set(Document.objects.values_list("path", flat=True))
    assert paths == {stem + "-a.txt", stem + "-b.txt"}


def check_refusals(refused: list[dict[str, str]], key: str) -> None:
    reasons = {entry[key]: entry["reason"] for entry in refused}
    assert set(reasons) == set(EXPECTED_REASONS), reasons
    for name, expected in EXPECTED_REASONS.items():
        assert expected in reasons[name], (name, reasons[name])
    # Nothing of a refused entry was kept under a cleaned-up name.
    assert list(Document.objects.values_list("path", flat=True)) == ["policies/ok.md"]
    audited = AuditRecord.objects.get(action="upload.refused")
    assert audited.outcome == "failure" and audited.details["count"] == len(EXPECTED_REASONS)
    assert {r["path"] for r in audited.details["refused"]} == set(EXPECTED_REASONS)


def test_every_zip_entry_left_out_is_listed_and_audited_by_the_api(
    finance_erp: str, finance_collection: Collection
) -> None:
    response = api(finance_erp).post(
        f"/api/v1/collections/{finance_collection.pk}/documents",
        {"file": SimpleUploadedFile("hostile.zip", zip_bytes(HOSTILE_ZIP))},
        format="multipart",
    )
    assert response.status_code == 201
    body = response.json()
    assert [r["path"] for r in body["results"]] == ["policies/ok.md"]
    check_refusals(
        [{"name": r["path"], "reason": r["reason"]} for r in body["refused"]],
        "name",
    )  # fmt: skip


def test_every_zip_entry_left_out_is_listed_and_audited_by_the_portal(
    alice: User, finance_collection: Collection
) -> None:
    response = portal(alice).post(
        reverse("portal:collection", args=[finance_collection.pk]),
        {"file": SimpleUploadedFile("hostile.zip", zip_bytes(HOSTILE_ZIP))},
        HTTP_ACCEPT="application/json",
    )
    body = response.json()
    check_refusals(body["refused"], "name")


def test_an_empty_file_is_a_400_with_json_when_json_is_asked_for(
    alice: User, finance_collection: Collection
) -> None:
    url = reverse("portal:collection", args=[finance_collection.pk])
    response = portal(alice).post(
        url, {"file": named_file("empty.md", b"")}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    refused = response.json()["refused"]
    assert refused[0]["name"] == "empty.md" and "empty" in refused[0]["reason"]
    page = portal(alice).post(url, {"file": named_file("empty.md", b"")})
    assert page.status_code == 400 and b"empty" in page.content


@pytest.mark.parametrize("question", ["what\x00is this", "x" * 100_000])
def test_the_portal_refuses_what_the_api_refuses(
    alice: User, finance_erp: str, question: str
) -> None:
    client = portal(alice)
    for response in (
        client.post(reverse("portal:ask"), {"question": question}),
        client.post(reverse("portal:ask_stream"), {"question": question}),
        client.get(reverse("portal:search"), {"q": question}),
        api(finance_erp).post("/api/v1/search", {"query": question}, format="json"),
        api(finance_erp).post("/api/v1/ask", {"question": question}, format="json"),
    ):
        assert response.status_code == 400
    as_json = client.post(
        reverse("portal:ask"), {"question": question}, HTTP_ACCEPT="application/json"
    )
    assert as_json.status_code == 400 and "question" in as_json.json()["errors"]
    search = client.get(reverse("portal:search"), {"q": question}, HTTP_ACCEPT="application/json")
    assert search.status_code == 400 and "q" in search.json()["errors"]


def test_a_download_names_the_file_in_rfc_6266_form(
    fresh_index: None, alice: User, finance_erp: str, finance_collection: Collection
) -> None:
    finance_collection.allow_download = True
    finance_collection.save()
    hostile = 'xss<img src=x onerror="alert(1)">报告.md'
    upload = api(finance_erp).post(
        f"/api/v1/collections/{finance_collection.pk}/documents",
        {"file": named_file(hostile, b"# Report\n\nText.")},
        format="multipart",
    )
    document_id = upload.json()["results"][0]["document"]
    for response in (
        portal(alice).get(reverse("portal:download", args=[document_id])),
        api(finance_erp).get(f"/api/v1/documents/{document_id}/download"),
    ):
        assert response.status_code == 200
        header = response["Content-Disposition"]
        assert header == (
            'attachment; filename="xss_img_src_x_onerror_alert_1_.md"; '
            "filename*=UTF-8''xss%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E"
            "%E6%8A%A5%E5%91%8A.md"
        )
        assert "<" not in header and '"alert' not in header
