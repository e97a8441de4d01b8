"""Every form control on every page has a label a screen reader can announce, and every page
declares its language and a viewport for phones."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from kb.accounts.models import AUDITORS_GROUP, Department, Membership
from kb.answering.models import Conversation, Turn
from kb.library.models import Collection

pytestmark = pytest.mark.django_db


class Controls(HTMLParser):
    """Collects form controls and the ids that <label for> points at."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()
        self.label_depth = 0
        self.in_template = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "template":
            self.in_template += 1
        if tag == "label":
            self.label_depth += 1
            if attributes.get("for"):
                self.labelled.add(str(attributes["for"]))
        if tag in ("input", "select", "textarea"):
            kind = attributes.get("type", "")
            if kind in ("hidden", "submit", "button"):
                return
            attributes["_wrapped"] = "yes" if self.label_depth else None
            self.controls.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self.label_depth:
            self.label_depth -= 1
        if tag == "template" and self.in_template:
            self.in_template -= 1


def unlabelled(html: str) -> list[str]:
    parser = Controls()
    parser.feed(html)
    missing = []
    for control in parser.controls:
        if control.get("_wrapped") or control.get("aria-label") or control.get("aria-labelledby"):
            continue
        if control.get("id") and control["id"] in parser.labelled:
            continue
        missing.append(str(control.get("name") or control.get("id")))
    return missing


def test_every_control_is_labelled_on_every_page(departments: dict[str, Department]) -> None:
    root = User.objects.create_superuser("root", password="root-password-1")
    root.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    finance = departments["finance"]
    Membership.objects.create(user=root, department=finance, role=Membership.Role.DEPARTMENT_ADMIN)
    collection = Collection.objects.create(name="Policies", department=finance)
    chat = Conversation.objects.create(user=root, title="Mine")
    Turn.objects.create(
        conversation=chat, question="q", search_query="q", answer="a", mode="extractive"
    )
    client = Client()
    client.force_login(root)
    pages = [
        "/",
        "/search/?q=travel",
        "/conversations/",
        f"/conversations/{chat.pk}/",
        "/collections/",
        f"/collections/{collection.pk}/",
        "/departments/",
        f"/departments/{finance.pk}/members/",
        f"/departments/{finance.pk}/collections/new/",
        f"/departments/{finance.pk}/collections/{collection.pk}/settings/",
        "/audit/",
        "/audit/verify/",
        "/audit/export/",
        "/dashboard/",
        "/integrations/",
        "/models/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert unlabelled(html) == [], url
        assert re.search(r'<html lang="(en|zh-hans)"', html), url
        assert 'name="viewport"' in html, url
    signed_out = Client().get("/login/").content.decode()
    assert unlabelled(signed_out) == []
