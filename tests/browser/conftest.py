"""The portal in a real browser: Debian's Chromium, driven through Debian's chromedriver, against
pytest-django's live server (a real HTTP server in this process, on the test database).

Nothing is downloaded: the driver and the browser are named explicitly, so Selenium Manager is
never started, and SE_OFFLINE keeps it offline should anything reach it anyway.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
PHONE = (390, 844)

# Long enough for the first load of the embedding model and an ingestion on two cores.
PAGE_TIMEOUT = 30.0
INGEST_TIMEOUT = 180.0

T = TypeVar("T")


def screenshot_dir() -> Path:
    """KB_SCREENSHOT_DIR, relative to the project root unless absolute (default var/screenshots:
    var/ is not committed)."""
    folder = Path(os.environ.get("KB_SCREENSHOT_DIR") or "var/screenshots")
    return folder if folder.is_absolute() else Path(settings.BASE_DIR) / folder


def _wait_for_other_database_sessions_to_end(blocker: Any, timeout: float = 10.0) -> None:
    """The live server answers each keep-alive connection in a thread that holds a database
    connection until the browser hangs up; PostgreSQL will not drop the test database while
    one is open. Called once the browser has quit."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with blocker.unblock(), connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)


@pytest.fixture(scope="session")
def chromium(django_db_setup: None, live_server: Any, django_db_blocker: Any) -> Iterator[Any]:
    """One headless Chromium for the whole run; each test starts it with no cookies. (Set up
    after the test database and the live server, so that it quits first, hanging up the
    connections that keep the server's threads and their database sessions alive.)"""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).is_file():
            message = f"{binary} is missing: apt-get install chromium chromium-driver"
            # `make test` (KB_REQUIRE_SERVICES) must not pass by skipping the browser.
            if os.environ.get("KB_REQUIRE_SERVICES"):
                pytest.fail(message)
            pytest.skip(message)
    os.environ["SE_OFFLINE"] = "true"
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-dev-shm-usage",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--lang=en-US",
        "--hide-scrollbars",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    # English unless the portal's language switch says otherwise.
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT * 2)
    try:
        yield driver
    finally:
        driver.quit()
        _wait_for_other_database_sessions_to_end(django_db_blocker)


@dataclass
class Browser:
    """The driver, the live server's address, and the few gestures the tests repeat."""

    driver: Any
    base_url: str
    shots: list[Path] = field(default_factory=list)

    # --- waiting -------------------------------------------------------------------------

    def wait(
        self,
        condition: Callable[[Any], T],
        timeout: float = PAGE_TIMEOUT,
        message: str = "",
        navigating: bool = False,
    ) -> T:
        """Poll `condition` until it is truthy. `navigating`: while a page is being replaced,
        chromedriver may answer a command with a transient error; poll on through those."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        ignored = (WebDriverException,) if navigating else None
        return WebDriverWait(
            self.driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored
        ).until(condition, message)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def visible(self, selector: str, timeout: float = PAGE_TIMEOUT) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(
            ec.visibility_of_element_located((By.CSS_SELECTOR, selector)),
            timeout,
            f"{selector} never became visible on {self.driver.current_url}",
        )

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def _loaded_after(self, old_root: Any, timeout: float = PAGE_TIMEOUT) -> None:
        """Wait for the navigation that replaces `old_root` (the previous page's <html>)."""
        from selenium.common.exceptions import StaleElementReferenceException

        def replaced(driver: Any) -> bool:
            try:
                old_root.is_enabled()
            except StaleElementReferenceException:
                return True
            return False

        self.wait(replaced, timeout, "the page did not change", navigating=True)
        self.wait(
            lambda d: d.execute_script("return document.readyState") == "complete",
            navigating=True,
        )

    def _root(self) -> Any:
        return self.css("html")

    # --- navigation ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str) -> None:
        self.driver.get(self.url(path))

    def path(self) -> str:
        current: str = self.driver.current_url
        return current.removeprefix(self.base_url)

    def submit_by(self, selector: str) -> None:
        """Click a submit button and wait for the page it leads to."""
        root = self._root()
        self.css(selector).click()
        self._loaded_after(root)

    def status_of(self, path: str) -> int:
        """The HTTP status this browser (its cookies) gets for `path`, fetched from the page."""
        status: int = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {credentials: 'same-origin', redirect: 'manual'})"
            ".then((r) => done(r.status), () => done(-1));",
            self.url(path),
        )
        return status

    # --- the portal's gestures -------------------------------------------------------------

    def sign_in(self, username: str, password: str) -> None:
        self.get("/login/")
        self.visible("#id_username").send_keys(username)
        self.css("#id_password").send_keys(password)
        self.submit_by("form:has(#id_password) button[type=submit]")
        assert self.all("form.who"), f"{username} is not signed in: {self.path()}"

    def sign_out(self) -> None:
        self.submit_by("form.who button[type=submit]")
        self.visible("#id_username")

    def switch_language(self, code: str) -> None:
        """Through the header's language switch when the page has one; until then the same
        POST to Django's set_language that the switch makes."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import Select

        root = self._root()
        switches = self.all("#language-switch")
        if switches:
            switch = switches[0]
            Select(switch).select_by_value(code)
            try:  # kb.js may submit on change already; the button is there without JS
                form = switch.find_element("xpath", "./ancestor::form")
                buttons = [
                    b
                    for b in form.find_elements("css selector", "button, input[type=submit]")
                    if b.is_displayed()
                ]
                if buttons:
                    buttons[0].click()
                else:
                    self.js("arguments[0].requestSubmit()", form)
            except StaleElementReferenceException:
                pass
        else:
            self.js(
                """
                const token = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1];
                const form = document.createElement("form");
                form.method = "post";
                form.action = "/i18n/setlang/";
                const fields = {
                    csrfmiddlewaretoken: token || "", language: arguments[0],
                    next: location.pathname + location.search,
                };
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.append(input);
                }
                document.body.append(form);
                form.submit();
                """,
                code,
            )
        self._loaded_after(root)
        self.wait(
            lambda d: (d.get_cookie(settings.LANGUAGE_COOKIE_NAME) or {}).get("value") == code,
            message=f"the language cookie never became {code}",
            navigating=True,
        )

    def ask(self, question: str) -> Any:
        """Type a question into the ask form and submit it; returns the new answer card (the
        answer streams into it)."""
        before = len(self.all("#answers .answer"))
        box = self.visible("#id_question")
        box.clear()
        box.send_keys(question)
        self.css("#ask-form button[type=submit]").click()
        return self.wait(
            lambda d: (cards := self.all("#answers .answer"))[before:] and cards[before],
            message="no answer card appeared",
        )

    def wait_answered(self, card: Any, timeout: float = 60.0) -> None:
        self.wait(
            lambda d: (
                "streaming" not in (card.get_attribute("class") or "")
                and not self.css("#ask-form button[type=submit]").get_property("disabled")
            ),
            timeout,
            "the answer never finished streaming",
        )

    # --- pictures ---------------------------------------------------------------------------

    def use_phone(self, on: bool) -> None:
        """A phone's viewport (and its meta viewport rules), or back to the desktop's."""
        set_viewport(self.driver, phone=on)

    def screenshot(self, language: str, page: str) -> Path:
        """The whole page (not only the viewport), as var/screenshots/<language>/<page>.png."""
        import base64

        # No error page: the document came with 200 and is a portal page (it has the header).
        status = self.js("return performance.getEntriesByType('navigation')[0].responseStatus")
        assert status == 200, f"{page}: HTTP {status} at {self.path()}"
        assert self.all("header.top"), f"{page}: not a portal page at {self.path()}"
        self.wait(lambda d: d.execute_script("return document.fonts.status") == "loaded")
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        width, height = size["width"], min(size["height"], 8000)
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        target = screenshot_dir() / language / f"{page}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(shot["data"]))
        self.shots.append(target)
        return target


def set_viewport(driver: Any, phone: bool = False) -> None:
    """Exactly 1280x900 CSS pixels (the window's size includes no browser UI this way), or a
    phone's 390x844 at twice the density, with mobile layout rules (the meta viewport)."""
    width, height = PHONE if phone else DESKTOP
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 2 if phone else 1, "mobile": phone},
    )


@pytest.fixture
def celery_worker(fresh_index: None) -> Iterator[None]:
    """A real Celery worker in this process (as in tests/e2e), consuming from the broker the
    settings name: uploads made in the browser are ingested for real."""
    from tests.e2e.conftest import start_embedded_worker

    worker = start_embedded_worker("browser@localhost")
    yield
    worker.stop()


@pytest.fixture
def browser(chromium: Any, live_server: Any) -> Iterator[Browser]:
    """The session's Chromium, signed out, in English, desktop-sized."""
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.get("about:blank")
    set_viewport(chromium)
    yield Browser(chromium, live_server.url)
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})


# --- a scripted language model ------------------------------------------------------------------


@dataclass
class ScriptedModel:
    """An OpenAI-compatible chat server that streams a fixed reply, word by word with a pause,
    when the prompt contains its cue (i.e. the retrieved sources hold the fact): the browser
    then really watches an answer arrive in pieces, and the reply cites [1] deterministically,
    which a real small model does not guarantee. Everything else (the OpenAI client, the
    portal's SSE endpoint, kb.js) is the product's own code."""

    url: str
    replies: list[tuple[str, str]]
    pause: float
    prompts: list[str] = field(default_factory=list)

    def reply_to(self, prompt: str) -> str:
        for cue, reply in self.replies:
            if cue in prompt:
                return reply
        return "The sources do not say."


def _handler(model: ScriptedModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._json({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
            model.prompts.append(prompt)
            reply = model.reply_to(prompt)
            base = {"id": "chatcmpl-scripted", "created": int(time.time()), "model": "scripted"}
            if not request.get("stream"):
                self._json(
                    {
                        **base,
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                )
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            words = re.findall(r"\S+\s*", reply)
            for number, word in enumerate(words):
                last = number == len(words) - 1
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": word},
                            "finish_reason": "stop" if last else None,
                        }
                    ],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if not last:
                    time.sleep(model.pause)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


@pytest.fixture(scope="session")
def scripted_model_server() -> Iterator[ScriptedModel]:
    model = ScriptedModel(url="", replies=[], pause=0.25)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(model))
    model.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, name="scripted-llm", daemon=True)
    thread.start()
    yield model
    server.shutdown()
    server.server_close()


@pytest.fixture
def scripted_model(scripted_model_server: ScriptedModel, settings: Any) -> Iterator[ScriptedModel]:
    """Answers come from the scripted server for this test (the portal's model is cached)."""
    from kb.routing import clients

    settings.LLM_BASE_URL = scripted_model_server.url
    settings.LLM_MODEL = "scripted"
    settings.LLM_MODEL_VERSION = "browser-test"
    clients.get_chat_model.cache_clear()
    clients.chat_model_version.cache_clear()
    scripted_model_server.replies.clear()
    scripted_model_server.prompts.clear()
    scripted_model_server.pause = 0.25
    yield scripted_model_server
    clients.get_chat_model.cache_clear()
    clients.chat_model_version.cache_clear()
