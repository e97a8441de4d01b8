"""Access checks on every portal surface, against the real database."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from kb.accounts.access import access_scope_for, readable_collections
from kb.library.models import Chunk, Collection, Document, DocumentVersion


def make_document(collection: Collection, text: str) -> Document:
    """A document with one indexed version and one chunk, written straight to the database."""
    document = Document.objects.create(collection=collection, path="plan.txt", title="Secret plan")
    version = DocumentVersion(
        document=document,
        number=1,
        original_name="plan.txt",
        sha256=str(hash(text)).rjust(64, "0"),
        status=DocumentVersion.Status.INDEXED,
        index_state=DocumentVersion.IndexState.LIVE,
    )
    version.original.save("plan.txt", ContentFile(text.encode()), save=False)
    version.save()
    Chunk.objects.create(version=version, document=document, ordinal=0, text=text)
    document.current_version = version
    document.save()
    return document


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_scope_comes_from_memberships(
    alice: User, erin: User, finance_collection: Collection, engineering_collection: Collection
) -> None:
    assert access_scope_for(alice).collection_ids == {finance_collection.pk}
    assert access_scope_for(erin).collection_ids == {engineering_collection.pk}
    engineering_collection.visibility = Collection.Visibility.COMPANY
    engineering_collection.save()
    # Takes effect on the next request: nothing cached, nothing re-embedded.
    assert access_scope_for(alice).collection_ids == {
        finance_collection.pk,
        engineering_collection.pk,
    }


def test_inactive_user_reads_nothing(alice: User, finance_collection: Collection) -> None:
    alice.is_active = False
    alice.save()
    assert not readable_collections(alice).exists()


def test_foreign_document_view_and_download_are_404(
    alice: User, erin: User, finance_collection: Collection
) -> None:
    document = make_document(finance_collection, "CANARY-FINANCE-42")
    for name in ("portal:document", "portal:download"):
        url = reverse(name, args=[document.pk])
        assert logged_in(erin).get(url).status_code == 404
        assert logged_in(alice).get(url).status_code == 200
    page = logged_in(alice).get(reverse("portal:document", args=[document.pk]))
    assert b"CANARY-FINANCE-42" in page.content
    collection_page = reverse("portal:collection", args=[finance_collection.pk])
    assert logged_in(erin).get(collection_page).status_code == 404


def test_download_is_an_attachment_that_browsers_will_not_sniff(
    alice: User, finance_collection: Collection
) -> None:
    document = make_document(finance_collection, "<script>alert(1)</script>")
    response = logged_in(alice).get(reverse("portal:download", args=[document.pk]))
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_anonymous_users_are_sent_to_sign_in(finance_collection: Collection) -> None:
    response = Client().get(reverse("portal:ask"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_members_cannot_upload_and_bad_types_are_refused(
    alice: User, frank: User, finance_collection: Collection
) -> None:
    url = reverse("portal:collection", args=[finance_collection.pk])
    upload = SimpleUploadedFile("notes.txt", b"hello")
    assert logged_in(frank).post(url, {"file": upload}).status_code == 403
    response = logged_in(alice).post(url, {"file": SimpleUploadedFile("tool.exe", b"MZ")})
    assert response.status_code == 415
    assert b"not supported" in response.content
    disguised = SimpleUploadedFile("photo.png", b"<html><script>alert(1)</script></html>")
    response = logged_in(alice).post(url, {"file": disguised})
    assert response.status_code == 415
    assert b"named as PNG image but its content is something else" in response.content
    empty = logged_in(alice).post(url, {"file": SimpleUploadedFile("empty.txt", b"")})
    assert empty.status_code == 400  # refused as the API refuses it, with the form's message
    assert b"empty" in empty.content
    assert not Document.objects.exists()


def test_oversize_uploads_get_413(
    alice: User, finance_collection: Collection, settings: object
) -> None:
    settings.KB_MAX_UPLOAD_BYTES = 1024  # type: ignore[attr-defined]
    url = reverse("portal:collection", args=[finance_collection.pk])
    response = logged_in(alice).post(url, {"file": SimpleUploadedFile("big.txt", b"x" * 2048)})
    assert response.status_code == 413
    assert b"the limit is" in response.content
    assert not Document.objects.exists()


def test_pages_carry_a_strict_content_security_policy(
    alice: User, finance_collection: Collection
) -> None:
    """No inline script anywhere, and a policy that would refuse one (and any CDN)."""
    import re

    client = logged_in(alice)
    for url in (
        reverse("portal:ask"),
        reverse("portal:collections"),
        reverse("portal:collection", args=[finance_collection.pk]),
        reverse("portal:search") + "?q=x",
        reverse("portal:conversations"),
        reverse("login"),
        "/api/docs/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, url
        scripts = re.findall(rb"<script\b([^>]*)>", response.content)
        assert all(b"src=" in attributes for attributes in scripts), url


def test_the_drag_and_drop_uploader_gets_one_outcome_per_file(
    alice: User, finance_collection: Collection
) -> None:
    url = reverse("portal:collection", args=[finance_collection.pk])
    client = logged_in(alice)
    ok = client.post(
        url,
        {"file": SimpleUploadedFile("notes.txt", b"Some notes.")},
        HTTP_ACCEPT="application/json",
    )
    assert ok.status_code == 200
    assert ok.json()["uploaded"][0]["outcome"] == "created"
    bad = client.post(
        url, {"file": SimpleUploadedFile("tool.exe", b"MZ\x90")}, HTTP_ACCEPT="application/json"
    )
    assert bad.status_code == 415
    assert bad.json()["refused"][0]["name"] == "tool.exe" and bad.json()["refused"][0]["reason"]
