"""The portal as people use it: Chromium, the real sign-in form, answers streamed over
server-sent events into the page by kb.js, uploads indexed by a real Celery worker while the
collection page watches, the language switch, and a screenshot of every page in English and
Simplified Chinese (var/screenshots/<language>/<page>.png, or KB_SCREENSHOT_DIR).

PostgreSQL and Redis are the ones the settings name (`make test` sets KB_REQUIRE_SERVICES).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import translation

from kb.accounts.models import AUDITORS_GROUP, Department, Membership
from kb.answering.models import Conversation, Feedback, Turn
from kb.audit.models import AuditRecord
from kb.library.models import Collection
from tests.browser.conftest import INGEST_TIMEOUT, Browser, ScriptedModel, screenshot_dir
from tests.e2e.conftest import require_real_services
from tests.ingesting import ingest_text

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRAVEL_POLICY = (
    "# Travel policy\n\n## Hotels\n\n"
    "The hotel limit is 180 EUR per night in Munich. Receipts are required for every night.\n"
)
QUESTION = "What is the hotel limit in Munich?"
REPLY = "Hotels in Munich may cost up to 180 EUR per night [1]."

# Records what the ask page's answer card goes through while it streams: (streaming?, length
# of the answer text), at every change. Polling could miss a fast state; this cannot.
WATCH_ANSWERS = """
window.kbSeen = [];
const answers = document.getElementById("answers");
new MutationObserver(() => {
  const cards = answers.querySelectorAll(".answer");
  const card = cards[cards.length - 1];
  if (!card) return;
  const text = card.querySelector(".answer-text");
  window.kbSeen.push([card.classList.contains("streaming"), text ? text.textContent.length : 0]);
}).observe(answers, {childList: true, subtree: true, characterData: true, attributes: true});
"""


@pytest.fixture
def travel_policy(fresh_index: None, finance_collection: Collection) -> int:
    """The Finance travel policy, indexed (the first test also loads the embedding model)."""
    require_real_services()
    return ingest_text(finance_collection, "travel.md", TRAVEL_POLICY)


def test_ask_watch_the_answer_stream_in_and_open_its_citation(
    browser: Browser, alice: User, travel_policy: int, scripted_model: ScriptedModel
) -> None:
    scripted_model.replies.append(("180 EUR per night", REPLY))
    browser.sign_in("alice", "alice-password-1")
    assert browser.path() == "/"
    browser.js(WATCH_ANSWERS)

    card = browser.ask(QUESTION)
    text = card.find_element("css selector", ".answer-text")
    browser.wait(lambda d: text.text.strip(), message="no answer text arrived")
    browser.wait_answered(card)

    # It arrived in pieces, visibly: a streaming card whose text grew, then the final one.
    seen: list[list[Any]] = browser.js("return window.kbSeen")
    streamed = [length for streaming, length in seen if streaming and length]
    assert len(set(streamed)) >= 3, f"the answer did not stream in pieces: {seen}"
    assert streamed == sorted(streamed), f"the streamed text shrank: {seen}"
    assert seen[-1][0] is False

    # The finished answer: the model's text, its [1] a link to the cited passage; the sources.
    assert "180 EUR per night" in text.text
    assert "answer-text generated" in (text.get_attribute("class") or "")
    citation = text.find_element("css selector", "a.cite")
    assert citation.text == "[1]"
    sources = card.find_elements("css selector", ".sources li")
    assert sources, "no sources list"
    assert "cited" in (sources[0].get_attribute("class") or "")
    assert "180 EUR" in sources[0].find_element("css selector", ".snippet").text
    source_link = sources[0].find_element("css selector", "a")
    assert source_link.get_attribute("href") == citation.get_attribute("href")
    assert "scripted (browser-test)" in card.find_element("css selector", ".meta").text
    # The model was given the passage (the answer is grounded, not made up).
    assert "180 EUR per night in Munich" in scripted_model.prompts[-1]

    # Open the citation: the document page, scrolled to the passage it cites.
    href = citation.get_attribute("href")
    browser.submit_by("#answers .answer a.cite")
    assert browser.driver.current_url == href
    assert browser.path().startswith(f"/documents/{travel_policy}/#chunk-")
    passage = browser.js("return document.querySelector(':target')")
    assert passage is not None, "the cited passage is not on the page"
    assert "passage" in (passage.get_attribute("class") or "")
    assert "180 EUR per night in Munich" in passage.text
    assert browser.css("h1").text

    browser.driver.back()
    browser.wait(lambda d: browser.path() == "/", message="back did not return to the ask page")
    browser.visible("#ask-form")


def test_feedback_on_an_answer_is_kept_and_can_be_changed(
    browser: Browser, alice: User, travel_policy: int, scripted_model: ScriptedModel
) -> None:
    scripted_model.replies.append(("180 EUR per night", REPLY))
    scripted_model.pause = 0.02
    browser.sign_in("alice", "alice-password-1")
    card = browser.ask(QUESTION)
    browser.wait_answered(card)

    # The controls appear under the streamed answer once it is recorded.
    tools = card.find_element("css selector", ".answer-tools")
    browser.wait(lambda d: tools.is_displayed(), message="no feedback controls under the answer")
    tools.find_element("css selector", "input[name=comment]").send_keys("Clear, and cited.")
    helpful = tools.find_element("css selector", 'form[data-feedback] button[value="1"]')
    not_helpful = tools.find_element("css selector", 'form[data-feedback] button[value="-1"]')
    helpful.click()
    thanks = tools.find_element("css selector", ".feedback-status")
    browser.wait(lambda d: thanks.text.strip(), message="the feedback was not acknowledged")
    assert helpful.get_attribute("aria-pressed") == "true"
    assert not_helpful.get_attribute("aria-pressed") == "false"
    assert browser.path() == "/", "sending feedback left the ask page"

    turn = Turn.objects.filter(conversation__user=alice).latest("pk")
    assert (turn.feedback.rating, turn.feedback.comment) == (1, "Clear, and cited.")

    # The conversation page shows the verdict, and it can be changed there.
    browser.get(f"/conversations/{turn.conversation_id}/")
    form = browser.css(".answer-tools form[data-feedback]")
    helpful = form.find_element("css selector", 'button[value="1"]')
    assert helpful.get_attribute("aria-pressed") == "true"
    comment = form.find_element("css selector", "input[name=comment]")
    assert comment.get_attribute("value") == "Clear, and cited."  # the earlier comment is kept
    comment.clear()
    comment.send_keys("Too short after all.")
    form.find_element("css selector", 'button[value="-1"]').click()
    thanks = form.find_element("css selector", ".feedback-status")
    browser.wait(lambda d: thanks.text.strip(), message="the change was not acknowledged")
    feedback = Feedback.objects.get(turn=turn)
    assert (feedback.rating, feedback.comment) == (-1, "Too short after all.")


def test_a_curators_upload_is_indexed_live_and_stays_inside_finance(
    browser: Browser,
    celery_worker: None,
    alice: User,
    erin: User,
    finance_collection: Collection,
    engineering_collection: Collection,
    tmp_path: Path,
) -> None:
    upload = tmp_path / "zephyr-allowance.md"
    upload.write_text(
        "# Zephyr allowance\n\n"
        "The Zephyr travel allowance code is ZX-4471; it pays 42 EUR per day abroad.\n",
        encoding="utf-8",
    )
    browser.sign_in("alice", "alice-password-1")
    browser.get(f"/collections/{finance_collection.pk}/")
    browser.wait(lambda d: browser.all("#id_file"), message="no upload form for the curator")
    browser.css("#id_file").send_keys(str(upload))
    # kb.js sends the file itself and reloads the page (without it the form posts).
    browser.css("form.upload button[type=submit]").click()
    row: Any = browser.wait(
        lambda d: (
            next((r for r in browser.all("tr[data-document]") if "zephyr" in r.text.lower()), None)
            or browser.all(".upload-list li.error")
        ),
        message="the upload is not listed",
        navigating=True,
    )
    assert not browser.all(".upload-list li.error"), browser.css(".upload-list").text
    assert browser.path() == f"/collections/{finance_collection.pk}/"
    document_id = int(row.get_attribute("data-document"))
    status = row.find_element("css selector", ".status").get_attribute("class")
    busy = any(state in status for state in ("queued", "parsing", "embedding"))
    browser.js("window.kbUploaded = true")
    # From here the test does not navigate: kb.js polls the status endpoint and shows the
    # document reach "indexed" (reloading the page once it is final).
    indexed = f'tr[data-document="{document_id}"] .status.indexed'
    browser.wait(
        lambda d: browser.all(indexed) or browser.all(f'tr[data-document="{document_id}"] .error'),
        INGEST_TIMEOUT,
        navigating=True,
    )
    assert browser.all(indexed), browser.css(f'tr[data-document="{document_id}"]').text
    if busy:  # it was still being ingested when the page came: kb.js brought the change
        assert browser.js("return window.kbUploaded") is None, "the page was not refreshed"
    assert browser.path() == f"/collections/{finance_collection.pk}/"
    cells = browser.css(f'tr[data-document="{document_id}"]').find_elements("css selector", "td")
    assert int(cells[2].text) > 0, "indexed with no passages"

    # Finance finds it...
    browser.get("/search/?q=Zephyr+travel+allowance+code")
    assert "ZX-4471" in browser.css("ol.sources").text

    # ...Engineering does not: not in answers, not in search, and its URL is "not found".
    browser.sign_out()
    browser.sign_in("erin", "erin-password-1")
    card = browser.ask("What is the Zephyr travel allowance code?")
    browser.wait_answered(card)
    assert "not_found" in (
        card.find_element("css selector", ".answer-text").get_attribute("class") or ""
    )
    assert card.find_elements("css selector", ".sources li") == []
    assert "ZX-4471" not in card.text and "Zephyr allowance" not in card.text

    browser.get("/search/?q=Zephyr+travel+allowance+code")
    results = browser.css("ol.sources")
    assert [li.get_attribute("class") for li in results.find_elements("css selector", "li")] == [
        "hint"
    ], results.text
    assert "ZX-4471" not in browser.driver.page_source

    assert browser.status_of(f"/documents/{document_id}/") == 404
    browser.get(f"/documents/{document_id}/")
    assert "ZX-4471" not in browser.driver.page_source
    assert "Zephyr" not in browser.driver.page_source
    assert browser.status_of(f"/collections/{finance_collection.pk}/status/") == 404


# --- every page, in both languages -------------------------------------------------------------

LANGUAGES = ("en", "zh-hans")


@pytest.fixture
def superadmin(departments: dict[str, Department]) -> User:
    """Sees every page: superuser, Finance curator, auditor."""
    user = User.objects.create_superuser("olga", password="olga-password-1")
    user.first_name, user.last_name = "Olga", "Okafor"
    user.save()
    Membership.objects.create(
        user=user, department=departments["finance"], role=Membership.Role.CURATOR
    )
    auditors, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
    user.groups.add(auditors)
    return user


def _is_png(path: Path) -> bool:
    head = path.read_bytes()[:24]
    width, height = struct.unpack(">II", head[16:24])
    return head[:8] == b"\x89PNG\r\n\x1a\n" and width > 0 and height > 0


def test_screenshots_of_every_page_in_english_and_chinese(
    browser: Browser,
    superadmin: User,
    frank: User,
    erin: User,
    travel_policy: int,
    finance_collection: Collection,
    departments: dict[str, Department],
    scripted_model: ScriptedModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scripted_model.replies.append(("180 EUR per night", REPLY))
    scripted_model.pause = 0.02
    finance = departments["finance"]
    for language in LANGUAGES:
        for old in (screenshot_dir() / language).glob("*.png"):
            old.unlink()

    browser.get("/login/")
    browser.visible("#id_username")
    browser.screenshot("en", "login")
    browser.sign_in("olga", "olga-password-1")

    for language in LANGUAGES:
        if language != "en":
            browser.switch_language(language)

        browser.get("/")
        browser.wait_answered(browser.ask(QUESTION))
        browser.screenshot(language, "ask")
        conversation = Conversation.objects.filter(user=superadmin).latest("pk")
        record = AuditRecord.objects.filter(action="document.viewed").first() or (
            AuditRecord.objects.first()
        )
        pages = {
            "search": "/search/?q=hotel+limit+Munich",
            "history": "/conversations/",
            "conversation": f"/conversations/{conversation.pk}/",
            "collections": "/collections/",
            "collection": f"/collections/{finance_collection.pk}/",
            "document": f"/documents/{travel_policy}/",
            "departments": "/departments/",
            "members": f"/departments/{finance.pk}/members/",
            "collection-settings": (
                f"/departments/{finance.pk}/collections/{finance_collection.pk}/settings/"
            ),
            "audit-records": "/audit/",
            "audit-record": f"/audit/records/{record.seq if record else 1}/",
            "audit-verify": "/audit/verify/",
            "audit-document": f"/audit/documents/{travel_policy}/",
            "models": "/models/",
            # Newer pages in the header (auditors, superusers).
            "dashboard": "/dashboard/",
            "integrations": "/integrations/",
        }
        for page, path in pages.items():
            browser.get(path)
            browser.visible("main")
            if page == "audit-verify":  # its result, not only the button
                browser.submit_by("main form[method=post] button[type=submit]")
                assert browser.visible(".audit-result").get_attribute("class") == "audit-result ok"
            browser.screenshot(language, page)

        browser.use_phone(True)
        try:
            browser.get("/")
            browser.wait_answered(browser.ask(QUESTION))
            browser.screenshot(language, "ask-phone")
        finally:
            browser.use_phone(False)

    browser.sign_out()
    browser.screenshot(LANGUAGES[-1], "login")

    expected = 2 * (2 + len(pages) + 1)  # login, ask, the pages above, the phone's ask page
    assert len(browser.shots) == expected
    for shot in browser.shots:
        assert shot.is_file() and _is_png(shot), shot
        assert shot.stat().st_size > 5 * 1024, f"{shot} looks empty"
    with capsys.disabled():
        print(f"\n{len(browser.shots)} screenshots in {screenshot_dir()}")


# --- the language switch -------------------------------------------------------------------------


def test_switch_to_simplified_chinese_and_back(
    browser: Browser, frank: User, finance_collection: Collection
) -> None:
    """The header's switch: <html lang> follows it, the header reads the zh-hans catalog."""
    browser.sign_in("frank", "frank-password-1")
    assert browser.js("return document.documentElement.lang") == "en"

    browser.switch_language("zh-hans")
    assert browser.js("return document.documentElement.lang") == "zh-hans"
    # The header's links as the zh-hans catalog words them (base.html's msgids).
    with translation.override("zh-hans"):
        header = [
            translation.pgettext("navigation", "Ask"),
            translation.pgettext("navigation", "Search"),
            translation.gettext("History"),
        ]
    assert header != ["Ask", "Search", "History"], "no Simplified Chinese catalog compiled"
    nav = browser.css("header.top nav").text
    for word in header:
        assert word in nav, f"{word!r} not in the header: {nav!r}"
    assert not re.search(r"\b(Ask|Search|History)\b", nav), nav

    # The choice sticks from page to page (a cookie), and switching back works.
    browser.get("/search/")
    assert browser.js("return document.documentElement.lang") == "zh-hans"
    browser.switch_language("en")
    assert browser.js("return document.documentElement.lang") == "en"
    assert "Search" in browser.css("header.top nav").text
