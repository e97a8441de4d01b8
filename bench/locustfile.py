"""What one simulated employee does (bench/load.py runs 50 of them): sign in once, then mix
questions, passage searches and page views, with a few seconds of reading in between."""

from __future__ import annotations

import random
import re

from locust import HttpUser, between, task

USERS = [
    ("alice", "Finance"),
    ("frank", "Finance"),
    ("bob", "Engineering"),
    ("erin", "Engineering"),
]
QUESTIONS = {
    "Finance": [
        "Who approves invoices above 50,000 EUR?",
        "What is the hotel limit for business travel?",
        "How are expenses reimbursed?",
    ],
    "Engineering": [
        "How do we deploy to production?",
        "Who is on call for incidents?",
        "What is the code review policy?",
    ],
}
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Employee(HttpUser):
    wait_time = between(1, 4)

    def on_start(self) -> None:
        self.name, self.department = random.choice(USERS)
        page = self.client.get("/login/", name="login page")
        token = TOKEN.search(page.text)
        self.client.post(
            "/login/",
            {
                "username": self.name,
                "password": f"{self.name}-demo-2026",
                "csrfmiddlewaretoken": token.group(1) if token else "",
            },
            headers={"Referer": f"{self.host}/login/"},
            name="sign in",
        )

    def _token(self) -> str:
        return str(self.client.cookies.get("csrftoken") or "")

    @task(3)
    def ask(self) -> None:
        question = random.choice(QUESTIONS[self.department])
        with self.client.post(
            "/ask/stream/",
            {"question": question},
            headers={"X-CSRFToken": self._token(), "Referer": f"{self.host}/"},
            name="ask (stream)",
            catch_response=True,
        ) as response:
            if "event: done" not in response.text:
                response.failure("the answer stream did not finish")

    @task(3)
    def search(self) -> None:
        self.client.get(
            "/search/", params={"q": random.choice(QUESTIONS[self.department])}, name="search"
        )

    @task(2)
    def ask_page(self) -> None:
        self.client.get("/", name="ask page")

    @task(1)
    def collections(self) -> None:
        self.client.get("/collections/", name="collections")

    @task(1)
    def history(self) -> None:
        self.client.get("/conversations/", name="history")
