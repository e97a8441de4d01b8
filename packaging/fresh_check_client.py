"""The user's side of the fresh-machine check (packaging/fresh_check.sh): standard library only,
so it runs with any Python 3 on the host.

Waits for the portal that `make run` serves, signs in as a demo user, asks one question over the
portal's streaming endpoint and checks that a cited answer streams back: a `sources` event with
at least one source, then `done` with at least one verified citation and the expected text.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def server_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_portal(
    opener: urllib.request.OpenerDirector, base: str, args: argparse.Namespace
) -> None:
    deadline = time.monotonic() + args.timeout
    last_report = 0.0
    while True:
        try:
            with opener.open(f"{base}/login/", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if not server_alive(args.server_pid):
            sys.exit(f"make run exited before the portal answered; see {args.log}")
        if time.monotonic() > deadline:
            sys.exit(f"no portal at {base} after {args.timeout} s; see {args.log}")
        if time.monotonic() - last_report > 60:
            last_report = time.monotonic()
            lines = Path(args.log).read_text(errors="replace").splitlines() if args.log else []
            progress = [line for line in lines if line.strip() and "WARNING" not in line]
            print(f"  waiting for the portal; make run: {progress[-1][:150] if progress else ''}")
        time.sleep(2)


def post(
    opener: urllib.request.OpenerDirector, url: str, fields: dict[str, str], referer: str
) -> Any:
    # The portal's own http:// URL on loopback, given by fresh_check.sh.
    request = urllib.request.Request(  # noqa: S310
        url, data=urllib.parse.urlencode(fields).encode(), headers={"Referer": referer}
    )
    return opener.open(request, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--question", required=True)
    parser.add_argument("--expect", default="CFO", help="text the cited answer must contain")
    parser.add_argument("--username", default="alice")
    parser.add_argument("--password", default="alice-demo-2026")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--log", default="")
    parser.add_argument("--timeout", type=int, default=3600)
    args = parser.parse_args()

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = args.base.rstrip("/")
    wait_for_portal(opener, base, args)
    print(f"  portal answers at {base}")

    def csrf() -> str:
        return next(cookie.value for cookie in jar if cookie.name == "csrftoken")

    fields = {"username": args.username, "password": args.password, "csrfmiddlewaretoken": csrf()}
    with post(opener, f"{base}/login/", fields, f"{base}/login/") as response:
        if "/login/" in response.url:
            sys.exit(f"sign-in as {args.username} failed")
    print(f"  signed in as {args.username}")

    fields = {"question": args.question, "csrfmiddlewaretoken": csrf()}
    with post(opener, f"{base}/ask/stream/", fields, f"{base}/") as response:
        body = response.read().decode()
    events = {}
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.setdefault(lines["event"], []).append(json.loads(lines.get("data", "null")))
    if "error" in events:
        sys.exit(f"the answer failed: {events['error']}")
    sources = events.get("sources", [[]])[0]
    done = events.get("done", [{}])[-1]
    if not sources:
        sys.exit(f"no sources came back for {args.question!r}: {body[:2000]}")
    if not done.get("cited") or args.expect not in done.get("html", ""):
        sys.exit(f"no cited answer containing {args.expect!r}: {json.dumps(done)[:2000]}")
    print(f"  asked {args.question!r}: {len(sources)} sources, cited answer ({done['mode']}):")
    print(f"    {sources[0]['title']}: {sources[0]['snippet'][:160]}")


if __name__ == "__main__":
    main()
