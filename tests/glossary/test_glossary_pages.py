"""The glossary pages: who may read and edit a department's glossary (everyone else gets 404
and an `access.denied` record), each change audited once as the acting person, and the CSV
export and all-or-nothing import."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from kb.accounts.models import Department, Membership
from kb.audit.models import AuditRecord
from kb.glossary.models import GlossaryEntry

pytestmark = pytest.mark.django_db

FIELDS = ("term", "abbreviations", "synonyms", "term_zh", "term_en", "definition")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def records(action: str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(action=action).order_by("seq"))


def details(entry: AuditRecord) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(entry.details_json)
    return result


def message_texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def entries_url(department: Department) -> str:
    return reverse("glossary:entries", args=[department.pk])


def snapshot(department: Department) -> list[tuple[str, ...]]:
    return [
        tuple(getattr(e, name) for name in FIELDS)
        for e in GlossaryEntry.objects.filter(department=department).order_by("term")
    ]


@pytest.fixture
def finance(departments: dict[str, Department]) -> Department:
    return departments["finance"]


@pytest.fixture
def olga(departments: dict[str, Department]) -> User:
    """Engineering's department admin: no right to Finance's glossary."""
    user = User.objects.create_user("olga", password="olga-password-1")
    Membership.objects.create(
        user=user, department=departments["engineering"], role=Membership.Role.DEPARTMENT_ADMIN
    )
    return user


@pytest.fixture
def po(finance: Department) -> GlossaryEntry:
    return GlossaryEntry.objects.create(
        department=finance, term="purchase order", abbreviations="PO", term_zh="采购订单"
    )


def upload(client: Client, department: Department, data: bytes, name: str = "g.csv") -> Any:
    return client.post(
        reverse("glossary:import", args=[department.pk]),
        {"file": SimpleUploadedFile(name, data, content_type="text/csv")},
    )


def confirm(client: Client, department: Department, text: str) -> Any:
    return client.post(reverse("glossary:import_confirm", args=[department.pk]), {"text": text})


# --- who may do what -------------------------------------------------------------------------


def test_a_curator_adds_edits_and_deletes_entries_each_audited_once(
    finance: Department, alice: User
) -> None:
    client = client_for(alice)
    response = client.post(
        entries_url(finance),
        {
            "term": "  purchase   order ",
            "abbreviations": "PO；P.O.",
            "synonyms": "",
            "term_en": "purchase order",
            "term_zh": "采购订单",
            "definition": "A buyer's order.",
        },
    )
    assert response.status_code == 302, response.content.decode()
    entry = GlossaryEntry.objects.get(department=finance)
    assert (entry.term, entry.abbreviations, entry.updated_by) == (
        "purchase order",
        "PO; P.O.",
        alice,
    )
    [created] = records("glossary.created")
    assert (created.actor, created.department, created.target_id) == (
        "alice",
        "Finance",
        str(entry.pk),
    )
    assert details(created)["changes"]["term_zh"] == [None, "采购订单"]

    page = client.get(entries_url(finance), {"q": "采购"})
    assert page.status_code == 200 and "purchase order" in page.content.decode()
    assert "Add an entry" in page.content.decode()
    assert (
        "purchase order" not in client.get(entries_url(finance), {"q": "invoice"}).content.decode()
    )

    edit = reverse("glossary:entry_edit", args=[finance.pk, entry.pk])
    assert client.get(edit).status_code == 200
    response = client.post(
        edit, {"term": "purchase order", "abbreviations": "PO", "term_zh": "采购订单"}
    )
    assert response.status_code == 302
    [changed] = records("glossary.changed")
    assert details(changed)["changes"] == {
        "abbreviations": ["PO; P.O.", "PO"],
        "term_en": ["purchase order", ""],
        "definition": ["A buyer's order.", ""],
    }

    response = client.post(reverse("glossary:entry_delete", args=[finance.pk, entry.pk]))
    assert response.status_code == 302
    assert not GlossaryEntry.objects.exists()
    [deleted] = records("glossary.deleted")
    assert details(deleted)["before"]["term"] == "purchase order"


def test_a_term_is_unique_in_its_department_ignoring_case(
    finance: Department, alice: User, po: GlossaryEntry, departments: dict[str, Department]
) -> None:
    response = client_for(alice).post(entries_url(finance), {"term": "Purchase Order"})
    assert response.status_code == 400
    assert "already in Finance" in response.content.decode()
    assert GlossaryEntry.objects.count() == 1
    # Another department may have its own "purchase order".
    GlossaryEntry.objects.create(department=departments["engineering"], term="purchase order")


def test_a_term_taken_by_another_editor_meanwhile_is_a_form_error_not_a_crash(
    finance: Department, alice: User, po: GlossaryEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both forms validate before the other editor's row is committed, so only the database's
    unique constraint sees the clash: the add and the edit each say so, save nothing and audit
    nothing."""
    original_save = GlossaryEntry.save

    def save_after_a_rival(entry: GlossaryEntry, *args: Any, **kwargs: Any) -> None:
        # The rival's row lands between validation and our INSERT/UPDATE (bulk_create: no
        # save(), so no recursion).
        GlossaryEntry.objects.bulk_create([GlossaryEntry(department=finance, term=entry.term)])
        original_save(entry, *args, **kwargs)

    monkeypatch.setattr(GlossaryEntry, "save", save_after_a_rival)
    client = client_for(alice)
    added = client.post(entries_url(finance), {"term": "delivery note"})
    edit = reverse("glossary:entry_edit", args=[finance.pk, po.pk])
    edited = client.post(edit, {"term": "goods receipt", "abbreviations": "GR"})

    for response in (added, edited):
        assert response.status_code == 400
        assert "just added by someone else" in response.content.decode()
    po.refresh_from_db()
    assert (po.term, po.abbreviations) == ("purchase order", "PO")
    # Ours never landed (the stand-in rivals were in our rolled-back transaction too).
    assert list(GlossaryEntry.objects.values_list("term", flat=True)) == ["purchase order"]
    # (The fixture's own entry was recorded as created by the system.)
    recorded = records("glossary.created") + records("glossary.changed")
    assert [r.actor for r in recorded] == ["system"]


def test_a_member_reads_and_exports_but_cannot_edit(
    finance: Department, frank: User, po: GlossaryEntry
) -> None:
    client = client_for(frank)
    page = client.get(entries_url(finance))
    assert page.status_code == 200
    assert "采购订单" in page.content.decode()
    assert "Add an entry" not in page.content.decode()
    assert client.get(reverse("glossary:export", args=[finance.pk])).status_code == 200

    attempts = [
        client.post(entries_url(finance), {"term": "invoice"}),
        client.get(reverse("glossary:entry_edit", args=[finance.pk, po.pk])),
        client.post(reverse("glossary:entry_edit", args=[finance.pk, po.pk]), {"term": "x"}),
        client.post(reverse("glossary:entry_delete", args=[finance.pk, po.pk])),
        client.get(reverse("glossary:import", args=[finance.pk])),
        confirm(client, finance, "term\ninvoice\n"),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    assert snapshot(finance) == [("purchase order", "PO", "", "采购订单", "", "")]
    denials = records("access.denied")
    assert len(denials) == len(attempts)
    assert {d.actor for d in denials} == {"frank"}
    assert {details(d)["reason"] for d in denials} == {"not a curator or department admin"}
    assert all(r.actor != "frank" for r in records("glossary.created"))


def test_another_departments_admin_and_member_get_404_and_are_audited(
    finance: Department, olga: User, erin: User, po: GlossaryEntry
) -> None:
    for user in (olga, erin):
        client = client_for(user)
        assert client.get(entries_url(finance)).status_code == 404
        assert client.get(reverse("glossary:export", args=[finance.pk])).status_code == 404
        assert (
            client.post(reverse("glossary:entry_delete", args=[finance.pk, po.pk])).status_code
            == 404
        )
    assert GlossaryEntry.objects.filter(pk=po.pk).exists()
    denials = records("access.denied")
    assert [(d.actor, d.department, d.target_type) for d in denials] == [
        (name, "Finance", "glossary") for name in ("olga", "olga", "olga", "erin", "erin", "erin")
    ]
    assert not records("glossary.exported")


def test_an_entry_of_another_glossary_is_not_reachable_through_ones_own(
    departments: dict[str, Department], olga: User, po: GlossaryEntry
) -> None:
    engineering = departments["engineering"]
    client = client_for(olga)
    response = client.post(reverse("glossary:entry_delete", args=[engineering.pk, po.pk]))
    assert response.status_code == 404
    assert GlossaryEntry.objects.filter(pk=po.pk).exists()
    [denial] = records("access.denied")
    assert (denial.target_type, denial.target_id) == ("glossaryentry", str(po.pk))


def test_the_glossary_index_leads_to_ones_departments(
    departments: dict[str, Department], alice: User, db: None
) -> None:
    client = client_for(alice)
    response = client.get(reverse("glossary:index"))
    assert response.status_code == 302
    assert response["Location"] == entries_url(departments["finance"])
    Membership.objects.create(user=alice, department=departments["engineering"])
    page = client.get(reverse("glossary:index"))
    assert page.status_code == 200
    assert "Engineering" in page.content.decode() and "Finance" in page.content.decode()
    nobody = User.objects.create_user("nobody", password="nobody-password-1")
    page = client_for(nobody).get(reverse("glossary:index"))
    assert page.status_code == 200
    assert "not a member of any department" in page.content.decode()


# --- CSV -------------------------------------------------------------------------------------


def test_export_then_import_gives_the_same_entries(finance: Department, alice: User) -> None:
    GlossaryEntry.objects.create(
        department=finance,
        term="purchase order",
        abbreviations="PO; P.O.",
        synonyms="order form; 订购单",
        term_zh="采购订单",
        term_en="purchase order",
        definition='A buyer\'s order, "signed";\nsee the procurement rules.',
    )
    GlossaryEntry.objects.create(department=finance, term="应付账款", term_en="accounts payable")
    GlossaryEntry.objects.create(department=finance, term="=HYPERLINK(1)", synonyms="-1; @x")
    before = snapshot(finance)
    client = client_for(alice)

    exported = client.get(reverse("glossary:export", args=[finance.pk]))
    assert exported.status_code == 200
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in exported["Content-Disposition"]
    data = exported.content
    assert data.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    text = data.decode("utf-8-sig")
    assert text.splitlines()[0] == "term,abbreviations,synonyms,chinese,english,definition"
    assert "'=HYPERLINK(1)" in text  # no formula when a spreadsheet opens it
    [exported_record] = records("glossary.exported")
    assert exported_record.actor == "alice" and details(exported_record)["entries"] == 3

    GlossaryEntry.objects.all().delete()
    preview = upload(client, finance, data)
    assert preview.status_code == 200
    assert "3</strong> new" in preview.content.decode()
    assert GlossaryEntry.objects.count() == 0  # a preview saves nothing
    response = confirm(client, finance, preview.context["text"])
    assert response.status_code == 302
    assert snapshot(finance) == before
    assert "3 new, 0 updated, 0 unchanged" in message_texts(response)[-1]
    [imported] = records("glossary.imported")
    assert (imported.actor, imported.department) == ("alice", "Finance")
    assert details(imported)["created"] == 3
    assert len(records("glossary.created")) == 3 + 3  # the first three, then the import's

    # The same file again changes nothing.
    again = confirm(client, finance, preview.context["text"])
    assert "0 new, 0 updated, 3 unchanged" in message_texts(again)[-1]
    assert snapshot(finance) == before


def test_import_updates_matching_terms_and_keeps_columns_the_file_leaves_out(
    finance: Department, alice: User, po: GlossaryEntry
) -> None:
    po.definition = "Kept."
    po.save()
    # Without a BOM, semicolon separated, Chinese column names.
    data = "术语;缩写;英文\nPurchase Order;PO;purchase order\n发票;;invoice\n".encode()
    client = client_for(alice)
    preview = upload(client, finance, data)
    assert preview.status_code == 200
    plan = preview.context["plan"]
    assert [(r.row, r.status) for r in plan.rows] == [(2, "changed"), (3, "new")]
    response = confirm(client, finance, preview.context["text"])
    assert response.status_code == 302
    po.refresh_from_db()
    # The file's spelling of the term wins; the column it leaves out (definition) is kept.
    assert (po.term, po.term_en, po.term_zh, po.definition) == (
        "Purchase Order",
        "purchase order",
        "采购订单",
        "Kept.",
    )
    assert GlossaryEntry.objects.get(term="发票").term_en == "invoice"


def test_a_bad_row_is_named_and_nothing_is_imported(
    finance: Department, alice: User, po: GlossaryEntry
) -> None:
    data = (
        "\ufeffterm,abbreviations,chinese\n"
        "invoice,,发票\n"
        ",AP,应付账款\n"
        "Invoice,,发票\n"
        f"{'x' * 201},,\n"
        "purchase order,PO,采购单\n"
    ).encode()
    client = client_for(alice)
    response = upload(client, finance, data)
    assert response.status_code == 400
    errors = response.context["errors"]
    assert errors == [
        "Row 3: the term is empty.",
        "Row 4: the term “Invoice” is already on row 2.",
        "Row 5: Term is longer than 200 characters.",
    ]
    assert "Row 3: the term is empty." in response.content.decode()
    # Sent straight to the confirming step, the file meets the same checks: nothing saved.
    response = confirm(client, finance, data.decode("utf-8-sig"))
    assert response.status_code == 400
    assert snapshot(finance) == [("purchase order", "PO", "", "采购订单", "", "")]
    assert len(records("glossary.created")) == 1  # the fixture's own entry
    assert not records("glossary.imported")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("term,chinese\n发票,发票\n".encode("gbk"), "not UTF-8"),
        (b"name,chinese\ninvoice,x\n", "unknown column \u201cname\u201d"),
        (b"abbreviations\nPO\n", "must be \u201cterm\u201d"),
        (b"term\n", "no entries"),
        (b"term,chinese\ninvoice,x,extra\n", "Row 2 has more cells"),
        (b"", "empty"),
    ],
)
def test_an_unusable_file_gets_a_clear_error(
    finance: Department, alice: User, data: bytes, error: str
) -> None:
    response = upload(client_for(alice), finance, data)
    assert response.status_code == 400
    assert any(error in e for e in response.context.get("errors") or []) or error in (
        response.content.decode()
    ), response.content.decode()
    assert not GlossaryEntry.objects.exists()


def test_a_long_glossary_is_paged_and_searched_in_every_form(
    finance: Department, frank: User
) -> None:
    GlossaryEntry.objects.bulk_create(
        GlossaryEntry(department=finance, term=f"term {n:03}", term_zh=f"术语{n:03}")
        for n in range(60)
    )
    client = client_for(frank)
    first = client.get(entries_url(finance)).content.decode()
    assert "term 049" in first and "term 050" not in first
    assert "Page 1 of 2" in first and 'rel="next"' in first
    second = client.get(entries_url(finance), {"page": 2}).content.decode()
    assert "term 059" in second and "term 000" not in second
    found = client.get(entries_url(finance), {"q": "术语007"}).content.decode()
    assert "term 007" in found and "term 008" not in found
