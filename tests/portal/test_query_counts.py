"""Pages that list things cost the same number of queries for 3 rows as for 12."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from kb.accounts.models import AUDITORS_GROUP, Department, Membership
from kb.answering.models import Conversation, Turn
from kb.api.models import ApiToken, ServiceAccount
from kb.library.models import Collection, Document, DocumentVersion

pytestmark = pytest.mark.django_db


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured.captured_queries)


def assert_bounded(client: Client, url: str, add_rows: Callable[[int], None]) -> None:
    add_rows(3)
    few = queries(client, url)
    add_rows(9)
    assert queries(client, url) == few, url


@pytest.fixture
def root(departments: dict[str, Department]) -> Client:
    user = User.objects.create_superuser("root", password="root-password-1")
    user.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    Membership.objects.create(
        user=user, department=departments["finance"], role=Membership.Role.DEPARTMENT_ADMIN
    )
    client = Client()
    client.force_login(user)
    return client


def test_collections_and_a_collection(root: Client, departments: dict[str, Department]) -> None:
    finance = departments["finance"]
    count = [0]

    def collections(n: int) -> None:
        for _ in range(n):
            count[0] += 1
            Collection.objects.create(name=f"c{count[0]}", department=finance)

    assert_bounded(root, "/collections/", collections)
    target = Collection.objects.create(name="big", department=finance)

    def documents(n: int) -> None:
        for _ in range(n):
            count[0] += 1
            document = Document.objects.create(
                collection=target, path=f"d{count[0]}.txt", title=f"d{count[0]}"
            )
            version = DocumentVersion(
                document=document,
                number=1,
                original_name="d.txt",
                sha256=f"{count[0]:064d}",
                status=DocumentVersion.Status.INDEXED,
            )
            version.original.save("d.txt", ContentFile(b"x"), save=False)
            version.save()
            document.current_version = version
            document.save()

    assert_bounded(root, f"/collections/{target.pk}/", documents)


def test_members_and_departments(root: Client, departments: dict[str, Department]) -> None:
    finance = departments["finance"]
    count = [0]

    def members(n: int) -> None:
        for _ in range(n):
            count[0] += 1
            user = User.objects.create_user(f"m{count[0]}")
            Membership.objects.create(user=user, department=finance)

    assert_bounded(root, f"/departments/{finance.pk}/members/", members)

    def more_departments(n: int) -> None:
        for _ in range(n):
            count[0] += 1
            Department.objects.create(name=f"D{count[0]}", slug=f"d{count[0]}")

    assert_bounded(root, "/departments/", more_departments)


def test_a_conversation_and_the_integrations_page(root: Client) -> None:
    user = User.objects.get(username="root")
    chat = Conversation.objects.create(user=user, title="long")

    def turns(n: int) -> None:
        for _ in range(n):
            # Each turn cites a document (one since deleted): its title is looked up too.
            Turn.objects.create(
                conversation=chat,
                question="q",
                search_query="q",
                answer="a",
                mode="extractive",
                sources=[{"number": 1, "chunk_id": 1, "document_id": 999_999}],
            )

    assert_bounded(root, f"/conversations/{chat.pk}/", turns)
    account = ServiceAccount.objects.create(user=User.objects.create_user("erp"))

    def tokens(n: int) -> None:
        for _ in range(n):
            ApiToken.issue(account=account, name="t", actions=["search"])

    assert_bounded(root, "/integrations/", tokens)


def test_audit_records_page(root: Client) -> None:
    from kb.audit.trail import record

    def records(n: int) -> None:
        for _ in range(n):
            record("access.denied", outcome="denied")

    assert_bounded(root, "/audit/", records)
