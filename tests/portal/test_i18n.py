"""The portal in Simplified Chinese and English (Django i18n).

The catalog is complete (no empty or fuzzy entry) and the committed .mo is the .po compiled;
the pages render in Chinese by Accept-Language or by the header's switch (a POST to
set_language, no script needed) and switch back; and a heuristic catches UI text that a
template forgot to translate: in zh-hans, no visible text node (nor title, aria-label,
placeholder or confirmation) may hold two English words in a row, once the data the test
created itself (names, titles) and machine text (code, hashes, JSON) are taken out.
"""

from __future__ import annotations

import gettext
import html
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import translation

from kb.accounts.models import AUDITORS_GROUP, Clearance, Department, Membership
from kb.answering import answers as services
from kb.audit.models import AuditRecord
from kb.glossary.models import GlossaryEntry
from kb.library.models import Collection
from kb.portal.http import for_reader as _for_reader
from tests.portal.test_portal_access import make_document

pytestmark = pytest.mark.django_db

LOCALE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
PO, MO = LOCALE / "django.po", LOCALE / "django.mo"
ZH = {"Accept-Language": "zh-hans"}

# English UI strings that must not survive in the Chinese pages (checked as substrings).
ENGLISH_UI = (
    "Sign out",
    "Collections you can read",
    "Ask your documents",
    "Your departments",
    "Audit records",
    "Verify the audit trail",
    "Switch language",
    "Sign in with",
)
# Technical names that are English in every language (checked as whole runs).
ALLOWED_RUNS = {"JSON Lines"}


def _msgfmt() -> str:
    path = shutil.which("msgfmt")
    # Not a skip: CI installs Debian's gettext, and without it this check would be hollow.
    assert path, "msgfmt not found: install gettext (apt-get install gettext)"
    return path


# --- the catalog ---------------------------------------------------------------------------------


@dataclass
class Entry:
    flags: str = ""
    msgid: list[str] = field(default_factory=list)
    plural: list[str] = field(default_factory=list)
    msgstr: list[list[str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return "".join(self.msgid)

    @property
    def translations(self) -> list[str]:
        return ["".join(parts) for parts in self.msgstr]


def _po_entries(text: str) -> list[Entry]:
    """The .po's entries (strings as written, escapes left in: only emptiness matters)."""
    entries = []
    for block in re.split(r"\n\s*\n", text.strip()):
        entry, current = Entry(), None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry.flags = line
            elif match := re.match(r'^(msgctxt|msgid_plural|msgid|msgstr\S*) "(.*)"$', line):
                keyword, current = match.group(1), [match.group(2)]
                if keyword == "msgid":
                    entry.msgid = current
                elif keyword == "msgid_plural":
                    entry.plural = current
                elif keyword.startswith("msgstr"):
                    entry.msgstr.append(current)
            elif line.startswith('"') and current is not None:
                current.append(line[1:-1])
        if entry.msgid:
            entries.append(entry)
    return entries


def test_every_entry_is_translated_and_none_is_fuzzy() -> None:
    entries = _po_entries(PO.read_text(encoding="utf-8"))
    header, messages = entries[0], entries[1:]
    assert header.id == "" and "Plural-Forms: nplurals=1; plural=0;" in header.translations[0]
    assert len(messages) > 300, "the catalog lost most of its entries"
    problems = []
    for entry in messages:
        if "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {entry.id!r}")
        translations = entry.translations
        if not translations or not all(translations):
            problems.append(f"untranslated: {entry.id!r}")
        for placeholder in re.findall(r"%\(\w+\)[sd]", entry.id):
            if not all(placeholder in t for t in translations):
                problems.append(f"{placeholder} missing from the translation of {entry.id!r}")
    assert not problems, "\n".join(problems)
    # msgfmt agrees: every message translated, nothing fuzzy, the format strings consistent.
    result = subprocess.run(
        [_msgfmt(), "--check", "--statistics", "-o", "/dev/null", str(PO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fuzzy" not in result.stderr and "untranslated" not in result.stderr, result.stderr
    assert f"{len(messages)} translated messages" in result.stderr, result.stderr


def test_the_committed_mo_is_the_po_compiled(tmp_path: Path) -> None:
    fresh = tmp_path / "django.mo"
    subprocess.run(
        [_msgfmt(), "--check", "-o", str(fresh), str(PO)], check=True, capture_output=True
    )
    with MO.open("rb") as committed, fresh.open("rb") as compiled:
        shipped = gettext.GNUTranslations(committed)._catalog  # type: ignore[attr-defined]
        expected = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
    missing = sorted(str(k) for k in expected.keys() - shipped.keys())
    assert not missing, f"django.mo is stale; run compilemessages. Not in it: {missing[:5]}"
    changed = sorted(str(k) for k in expected if shipped.get(k) != expected[k])
    assert not changed, f"django.mo is stale; run compilemessages. Changed: {changed[:5]}"
    assert shipped.keys() == expected.keys()


# --- pages ---------------------------------------------------------------------------------------


@pytest.fixture
def dana(departments: dict[str, Department], frank: User, erin: User) -> User:
    """Finance department admin (so also a curator), cleared to Confidential, and auditor."""
    user = User.objects.create_user("dana", password="dana-password-1", first_name="Dana")
    Membership.objects.create(
        user=user,
        department=departments["finance"],
        role=Membership.Role.DEPARTMENT_ADMIN,
        clearance=Clearance.CONFIDENTIAL,
    )
    # A membership from directory groups: its row and the note about it render too.
    Membership.objects.create(
        user=erin, department=departments["finance"], source=Membership.Source.DIRECTORY
    )
    group, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
    user.groups.add(group)
    return user


@pytest.fixture
def pages(
    dana: User, finance_collection: Collection, departments: dict[str, Department]
) -> dict[str, str]:
    """Every main page of the portal, as dana sees it, with some content on each."""
    document = make_document(finance_collection, "Travel is booked in economy class.")
    finance_collection.description = "Travel and expense rules"
    finance_collection.save()
    finance = departments["finance"]
    entry = GlossaryEntry.objects.create(
        department=finance, term="Purchase order", abbreviations="PO", term_zh="采购订单"
    )
    first = AuditRecord.objects.order_by("seq").first()
    assert first is not None
    return {
        "ask": reverse("portal:ask"),
        "search": reverse("portal:search"),
        "history": reverse("portal:conversations"),
        "collections": reverse("portal:collections"),
        "collection": reverse("portal:collection", args=[finance_collection.pk]),
        "document": reverse("portal:document", args=[document.pk]),
        "departments": reverse("accounts:departments"),
        "members": reverse("accounts:members", args=[finance.pk]),
        "new collection": reverse("accounts:collection_new", args=[finance.pk]),
        "collection settings": reverse(
            "accounts:collection_settings", args=[finance.pk, finance_collection.pk]
        ),
        "audit records": reverse("audit:records"),
        "audit record": reverse("audit:record", args=[first.seq]),
        "audit document": reverse("audit:document", args=[document.pk]),
        "audit verify": reverse("audit:verify"),
        "audit export": reverse("audit:export"),
        "dashboard": reverse("portal:dashboard"),
        "glossary": reverse("glossary:entries", args=[finance.pk]),
        "glossary entry": reverse("glossary:entry_edit", args=[finance.pk, entry.pk]),
        "glossary import": reverse("glossary:import", args=[finance.pk]),
        "usage": reverse("usage:report"),
        "department usage": reverse("usage:department", args=[finance.slug]),
        "cost": reverse("usage:cost"),
    }


# What the test itself put into the pages: names and titles are the users' data, not UI.
USER_DATA = (
    "Finance policies",
    "Travel and expense rules",
    "Travel is booked in economy class.",
    "Secret plan",
    "plan.txt",
    "Purchase order",
)


def _visible_text(page: str) -> list[str]:
    """The text a person reads, one string per text node or attribute: without scripts,
    styles and machine text (code, hashes, JSON, record summaries, which are data)."""
    page = re.sub(
        r"<(script|style|code|pre)\b.*?</\1>|<(td|p) class=\"audit-(summary|quote)\".*?</\2>",
        " | ",
        page,
        flags=re.S,
    )
    texts = re.findall(r'\s(?:title|aria-label|placeholder|alt|data-confirm)="([^"]*)"', page)
    # data-* strings that static/kb.js writes into the page
    texts += re.findall(
        r'\sdata-(?:writing|page|model|seconds|load-error|template)="([^"]*)"', page
    )
    texts += re.split(r"<[^>]*>", page)
    result = []
    for text in texts:
        text = html.unescape(text)
        for data in USER_DATA:
            text = text.replace(data, " | ")
        if text.strip():
            result.append(text)
    return result


def _english_runs(page: str) -> list[str]:
    """Two or more English words in a row in one piece of visible text."""
    runs = []
    for text in _visible_text(page):
        for run in re.findall(r"[A-Za-z][a-z]+(?:[ \-'’][A-Za-z][a-z]*)+", text):
            if run not in ALLOWED_RUNS:
                runs.append(run)
    return runs


def test_the_pages_render_in_chinese_by_accept_language(pages: dict[str, str], dana: User) -> None:
    client = Client()
    client.force_login(dana)
    for name, url in pages.items():
        response = client.get(url, headers=ZH)
        assert response.status_code == 200, name
        page = response.content.decode()
        assert '<html lang="zh-hans">' in page, name
        assert "退出登录" in page and "切换语言" in page, name  # the header
        for english in ENGLISH_UI:
            assert english not in page, f"{english!r} on the {name} page in zh-hans"
    checks = {
        "ask": ["向您的文档提问", "正在搜索您可阅读的 1 个文档集："],
        "collections": ["您可阅读的文档集", "仅限本部门", "内部"],  # choice labels too
        "collection": ["1 个已索引", "已索引", "上传"],
        "departments": ["您的部门", "管理成员", "<strong>3</strong> 名成员"],
        "members": ["Finance 的成员", "来自目录组", "添加成员"],
        "audit records": ["审计记录", "时间（UTC）", "任意操作", "查看了审计日志"],
        "audit verify": ["校验审计日志", "立即校验"],
        "audit export": ["导出审计记录", "JSON Lines（每条记录一个 JSON 对象）"],
    }
    for name, expected in checks.items():
        page = client.get(pages[name], headers=ZH).content.decode()
        for text in expected:
            assert text in page, f"{text!r} not on the {name} page"


def test_no_english_ui_text_is_left_in_the_chinese_pages(pages: dict[str, str], dana: User) -> None:
    client = Client()
    client.force_login(dana)
    # The heuristic sees English where there is some: the same pages in English are full of it.
    assert "Your departments" in _english_runs(client.get(pages["departments"]).content.decode())
    found = {}
    for name, url in pages.items():
        runs = _english_runs(client.get(url, headers=ZH).content.decode())
        if runs:
            found[name] = runs
    # The models page is for superadmins only.
    root = User.objects.create_superuser("root", password="root-password-1")
    client.force_login(root)
    page = client.get(reverse("portal:models"), headers=ZH).content.decode()
    assert "已配置的模型" in page and "管理后台" in page
    if runs := _english_runs(page):
        found["models"] = runs
    page = client.get(reverse("routing:policy"), headers=ZH).content.decode()
    assert "模型路由" in page
    if runs := _english_runs(page):
        found["routing"] = runs
    assert not found, f"English UI text left in zh-hans: {found}"


def test_the_login_page_in_chinese_and_its_switch(db: None) -> None:
    page = Client().get(reverse("login"), headers=ZH).content.decode()
    for text in ("<title>登录 · 私有知识库</title>", "用户名", "密码", '<html lang="zh-hans">'):
        assert text in page
    assert not _english_runs(page), _english_runs(page)
    assert "Sign in" not in page and "Password" not in page
    # A browser that asks for zh-CN (the usual header) gets the zh-hans catalog.
    page = (
        Client()
        .get(reverse("login"), headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        .content.decode()
    )
    assert '<html lang="zh-hans">' in page and "用户名" in page
    # The switch: a labelled select in a plain POST form (no script needed, CSP-proof).
    switch = re.search(r'<form class="language".*?</form>', page, flags=re.S)
    assert switch is not None
    form = switch.group(0)
    assert f'action="{reverse("set_language")}"' in form and 'method="post"' in form
    assert "csrfmiddlewaretoken" in form
    assert '<label for="language-switch"' in form
    assert '<select name="language" id="language-switch">' in form
    assert '<option value="en" lang="en">English</option>' in form
    assert '<option value="zh-hans" lang="zh-hans" selected>简体中文</option>' in form
    assert f'name="next" value="{reverse("login")}"' in form
    assert 'type="submit"' in form
    assert "<script" not in page.split("</header>")[0] and " onchange=" not in form


def test_switching_to_chinese_and_back(frank: User, finance_collection: Collection) -> None:
    client = Client()
    client.force_login(frank)
    collections = reverse("portal:collections")
    assert "Collections you can read" in client.get(collections).content.decode()

    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": collections})
    assert response.status_code == 302 and response["Location"] == collections
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    page = client.get(collections).content.decode()  # the cookie, no Accept-Language
    assert "您可阅读的文档集" in page and '<html lang="zh-hans">' in page
    assert "Collections you can read" not in page and "Sign out" not in page
    assert "退出登录" in client.get(reverse("portal:ask")).content.decode()

    response = client.post(reverse("set_language"), {"language": "en", "next": collections})
    assert response.status_code == 302
    page = client.get(collections).content.decode()
    assert "Collections you can read" in page and "Sign out" in page
    assert '<html lang="en">' in page and "您可阅读的文档集" not in page
    # Accept-Language does not override a choice made with the switch.
    assert "Sign out" in client.get(collections, headers=ZH).content.decode()


def test_messages_and_form_errors_are_translated(
    dana: User, departments: dict[str, Department]
) -> None:
    client = Client()
    client.force_login(dana)
    url = reverse("accounts:members", args=[departments["finance"].pk])
    response = client.post(
        url,
        {"add-username": "nobody", "add-role": "member", "add-clearance": "1"},
        headers=ZH,
    )
    assert response.status_code == 400
    assert "没有名为“nobody”的有效账户" in response.content.decode()
    User.objects.create_user("gus", password="gus-password-1")
    response = client.post(
        url,
        {"add-username": "gus", "add-role": "curator", "add-clearance": "1"},
        headers=ZH,
    )
    assert response.status_code == 302
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("gus 现在是Finance的内容管理员，密级权限为“内部”" in t for t in texts), texts


def test_fixed_answer_texts_are_stored_in_english_and_shown_translated() -> None:
    """The service's "not found" text and notices stay English (stored with the turn, hashed
    into the audit record, returned by the REST API); the portal shows them translated."""
    assert services.NOT_FOUND_TEXT == "The documents you can access do not answer this question."
    not_found = services.Answer("q", services.NOT_FOUND_TEXT, "not_found")
    passages = services.Answer("q", "Book economy [1].", "extractive")
    passages.notice = services.NOTICE_NO_MODEL
    with translation.override("zh-hans"):
        assert _for_reader(not_found).text == "您可访问的文档中没有此问题的答案。"
        shown = _for_reader(passages)
        assert shown.text == "Book economy [1]." and shown.notice.startswith("未配置语言模型")
        assert passages.notice.startswith("No language model is configured")
    with translation.override("en"):
        assert _for_reader(not_found).text == services.NOT_FOUND_TEXT
