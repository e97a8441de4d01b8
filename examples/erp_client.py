#!/usr/bin/env python3
"""An example integration with the knowledge base's REST API: Python standard library only.

Push a folder of documents into a collection, then ask a question:

    export KB_API_TOKEN=kbt_xxxxxxxx.<secret>
    python erp_client.py --base-url https://kb.example.com push ./export --collection 3
    python erp_client.py --base-url https://kb.example.com ask "What is the hotel limit?"

It shows the habits every integration should have (see examples/README.md):

- every upload carries an `Idempotency-Key` derived from the file's path and content, so a
  push that is interrupted and run again, or simply run twice, adds nothing twice;
- uploads are indexed in the background: it polls `GET /api/v1/documents/{id}` until each
  version is done, with a time limit;
- errors arrive as RFC 9457 problem details (`title`, `detail`, sometimes `errors`), which
  it prints as they are;
- on `429 Too Many Requests` it sleeps for `Retry-After` seconds and tries again.

Copy it and change what you need; it has no dependencies beyond Python 3.11.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Version statuses after which nothing more happens to a version.
FINAL_STATUSES = {"indexed", "failed", "quarantined", "superseded"}


class ApiError(Exception):
    """An error response, from its problem details (RFC 9457)."""

    def __init__(self, status: int, title: str, detail: str, errors: Any = None) -> None:
        super().__init__(f"{title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: Any


@dataclass
class KnowledgeBase:
    """A thin client: one method per API call this example uses."""

    base_url: str
    token: str
    on_behalf_of: str = ""
    timeout: float = 120.0
    max_retries: int = 5
    user_agent: str = "kb-erp-example/1.0"

    def __post_init__(self) -> None:
        scheme = urllib.parse.urlsplit(self.base_url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"--base-url must be an http(s) URL, not {self.base_url!r}")
        self.base_url = self.base_url.rstrip("/")

    # -- the API calls -------------------------------------------------------------------

    def upload(self, collection_id: int, file: Path, path: str, key: str) -> Reply:
        """POST a file into a collection; `path` is where it lives there."""
        body, content_type = multipart(
            fields={"path": path}, file_field="file", filename=file.name, data=file.read_bytes()
        )
        return self.request(
            "POST",
            f"/api/v1/collections/{collection_id}/documents",
            data=body,
            headers={"Content-Type": content_type, "Idempotency-Key": key},
        )

    def document(self, document_id: int) -> dict[str, Any]:
        reply = self.request("GET", f"/api/v1/documents/{document_id}")
        return dict(reply.body)

    def ask(self, question: str) -> dict[str, Any]:
        reply = self.request("POST", "/api/v1/ask", json_body={"question": question})
        return dict(reply.body)

    # -- HTTP ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One API call: retried on 429 (after Retry-After) and on 409 (the same
        Idempotency-Key still running); any other error is raised as ApiError."""
        all_headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
            **(headers or {}),
        }
        if self.on_behalf_of:
            all_headers["X-On-Behalf-Of"] = self.on_behalf_of
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
                self.base_url + path, data=data, headers=all_headers, method=method
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    headers = {name.lower(): value for name, value in response.headers.items()}
                    return Reply(response.status, headers, _json(response.read()))
            except urllib.error.HTTPError as error:
                problem = _json(error.read())
                wait = _retry_wait(error.code, error.headers.get("Retry-After"), problem)
                if wait is None or attempt == self.max_retries:
                    raise _api_error(error.code, problem) from None
                print(f"  ({error.code}: retrying in {wait:g}s)", file=sys.stderr)
                time.sleep(wait)
        raise AssertionError("unreachable")


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _retry_wait(status: int, retry_after: str | None, problem: Any) -> float | None:
    """Seconds to wait before trying again, or None when a retry would not help."""
    if status == 429:
        if retry_after and retry_after.strip().isdigit():
            return float(retry_after)
        if isinstance(problem, dict) and isinstance(problem.get("retry_after"), int):
            return float(problem["retry_after"])
        return 5.0
    if status == 409:  # the first request with this Idempotency-Key has not finished yet
        return 2.0
    return None


def _api_error(status: int, problem: Any) -> ApiError:
    if isinstance(problem, dict) and "title" in problem:
        return ApiError(
            status, str(problem["title"]), str(problem.get("detail", "")), problem.get("errors")
        )
    return ApiError(status, f"HTTP {status}", str(problem or "")[:500])


def multipart(
    *, fields: dict[str, str], file_field: str, filename: str, data: bytes
) -> tuple[bytes, str]:
    """A multipart/form-data body (what browsers send for a file form) and its content type."""
    boundary = f"----kb-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    quoted = filename.replace("\\", "_").replace('"', "_")
    parts.append(
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{file_field}"; filename="{quoted}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# -- push ----------------------------------------------------------------------------------


def idempotency_key(collection_id: int, path: str, sha256: str) -> str:
    """The same file (path and content) pushed to the same collection: the same key. A changed
    file gets a new key, so it becomes a new version."""
    return "erp-push-" + hashlib.sha256(f"{collection_id}\n{path}\n{sha256}".encode()).hexdigest()


@dataclass
class PushSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def files_in(folder: Path) -> list[Path]:
    """Every regular file below the folder, skipping hidden ones, in a stable order."""
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def push(kb: KnowledgeBase, folder: Path, collection_id: int, wait_seconds: float) -> PushSummary:
    summary = PushSummary()
    pending: list[tuple[str, int, int]] = []  # (path, document id, version number)
    for file in files_in(folder):
        path = file.relative_to(folder).as_posix()
        key = idempotency_key(collection_id, path, hashlib.sha256(file.read_bytes()).hexdigest())
        try:
            reply = kb.upload(collection_id, file, path, key)
        except ApiError as error:
            summary.problems.append(f"{path}: {error}")
            print(f"{path}: refused ({error})")
            if error.status in (401, 403, 404):
                break  # the same for every file: no point in trying the others
            continue
        replayed = reply.headers.get("idempotent-replayed") == "true"
        for result in reply.body["results"]:
            # A replayed response is the first push's answer: nothing was added this time.
            outcome = "replayed" if replayed else result["outcome"]
            summary.outcomes[outcome] += 1
            print(
                f"{result['path']}: {outcome} (document {result['document']}, "
                f"version {result['version']})"
            )
            pending.append((result["path"], result["document"], result["version"]))
        for refused in reply.body["refused"]:  # files inside an uploaded zip that were refused
            summary.problems.append(f"{refused['path']}: {refused['reason']}")
            print(f"{refused['path']}: refused ({refused['reason']})")

    deadline = time.monotonic() + wait_seconds
    for path, document_id, number in pending:
        status, reason = wait_until_done(kb, document_id, number, deadline)
        summary.statuses[status] += 1
        print(f"{path}: {status}{f' ({reason})' if reason else ''}")
        if status != "indexed":
            summary.problems.append(f"{path}: {status}{f' ({reason})' if reason else ''}")
    return summary


def wait_until_done(
    kb: KnowledgeBase, document_id: int, number: int, deadline: float
) -> tuple[str, str]:
    """Poll the document until the version is indexed, failed, ... or the time is up."""
    delay = 0.5
    while True:
        document = kb.document(document_id)
        version = next((v for v in document["versions"] if v["number"] == number), None)
        if version is None:
            return "missing", "the version is gone (deleted meanwhile?)"
        if version["status"] in FINAL_STATUSES:
            return str(version["status"]), str(version.get("error") or "")
        if time.monotonic() + delay > deadline:
            return "timeout", f"still {version['status']} when the wait ran out"
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


def print_summary(summary: PushSummary) -> None:
    def counts(counter: Counter[str]) -> str:
        return ", ".join(f"{n} {name}" for name, n in sorted(counter.items())) or "none"

    print(f"\nUploaded: {counts(summary.outcomes)}")
    print(f"Status:   {counts(summary.statuses)}")
    for problem in summary.problems:
        print(f"  problem: {problem}")


# -- ask -----------------------------------------------------------------------------------


def print_answer(answer: dict[str, Any]) -> None:
    print(answer["answer"] or "(no answer)")
    if answer.get("notice"):
        print(f"\nNote: {answer['notice']}")
    if answer["sources"]:
        print("\nSources:")
    for source in answer["sources"]:
        where = ", ".join(
            part
            for part in (
                f"page {source['page']}" if source.get("page") else "",
                source.get("section") or "",
            )
            if part
        )
        cited = "" if source["number"] in answer["cited"] else "  (not cited)"
        print(
            f"  [{source['number']}] {source['title']}{f' ({where})' if where else ''}"
            f" - document {source['document_id']}{cited}"
        )


# -- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base-url", required=True, help="e.g. https://kb.example.com")
    parser.add_argument(
        "--token",
        default=os.environ.get("KB_API_TOKEN", ""),
        help="API token (default: $KB_API_TOKEN, which keeps it out of the process list)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    push_cmd = commands.add_parser("push", help="upload every file of a folder and wait")
    push_cmd.add_argument("folder", type=Path)
    push_cmd.add_argument("--collection", type=int, required=True, help="collection id")
    push_cmd.add_argument(
        "--wait", type=float, default=600.0, help="seconds to wait for indexing (default 600)"
    )
    ask_cmd = commands.add_parser("ask", help="ask a question; prints the answer and sources")
    ask_cmd.add_argument("question")
    ask_cmd.add_argument(
        "--on-behalf-of", default="", help="employee username (needs the on_behalf right)"
    )
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no token: pass --token or set KB_API_TOKEN")

    try:
        on_behalf_of = getattr(args, "on_behalf_of", "")
        kb = KnowledgeBase(args.base_url, args.token, on_behalf_of=on_behalf_of)
    except ValueError as error:
        parser.error(str(error))
    if args.command == "push" and not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")

    try:
        if args.command == "push":
            summary = push(kb, args.folder, args.collection, args.wait)
            print_summary(summary)
            return 1 if summary.problems else 0
        print_answer(kb.ask(args.question))
        return 0
    except ApiError as error:
        print(f"{error.title}: {error.detail}", file=sys.stderr)
        if isinstance(error.errors, dict):
            for name, messages in error.errors.items():
                text = " ".join(map(str, messages)) if isinstance(messages, list) else messages
                print(f"  {name}: {text}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, TimeoutError) as error:
        print(f"Cannot reach the knowledge base: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
