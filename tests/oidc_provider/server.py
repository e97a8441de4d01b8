"""Starts the test OpenID Connect provider (tests/oidc_provider) as its own process."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.llm_server import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class OidcProvider:
    url: str
    state_dir: Path

    @property
    def discovery(self) -> dict[str, Any]:
        with urllib.request.urlopen(  # noqa: S310 - our own provider on loopback
            f"{self.url}/o/.well-known/openid-configuration", timeout=10
        ) as response:
            document: dict[str, Any] = json.load(response)
        return document

    def set_person(
        self,
        username: str,
        password: str,
        *,
        groups: list[str],
        email: str = "",
        given_name: str = "",
        family_name: str = "",
        rename_to: str = "",
    ) -> str:
        """Creates or changes a person; returns their subject (`sub`)."""
        return self.manage(
            "provider_person",
            username,
            f"--password={password}",
            f"--email={email}",
            f"--given-name={given_name}",
            f"--family-name={family_name}",
            f"--groups={','.join(groups)}",
            f"--rename-to={rename_to}",
        ).strip()

    def register_client(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.manage(
            "provider_client",
            f"--client-id={client_id}",
            f"--client-secret={client_secret}",
            f"--redirect-uri={redirect_uri}",
        )

    def manage(self, *arguments: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "django", *arguments],
            cwd=ROOT,
            env=_environment(self.state_dir),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"provider {arguments[0]} failed: {result.stderr[-2000:]}")
        return result.stdout


def _environment(state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "OIDC_PROVIDER_DIR": str(state_dir),
    }


@contextmanager
def running_oidc_provider(state_dir: Path) -> Iterator[OidcProvider]:
    """A fresh provider: new database, new signing key, served by waitress on loopback."""
    state_dir.mkdir(parents=True)
    (state_dir / "secret_key").write_text(secrets.token_urlsafe(50), encoding="utf-8")
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (state_dir / "signing_key.pem").write_bytes(
        signing_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    port = free_port()
    provider = OidcProvider(url=f"http://127.0.0.1:{port}", state_dir=state_dir)
    provider.manage("migrate", "--noinput", "-v0")
    log = state_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waitress",
                f"--listen=127.0.0.1:{port}",
                "--threads=8",
                "tests.oidc_provider.wsgi:application",
            ],
            cwd=ROOT,
            env=_environment(state_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"provider exited: {log.read_text(errors='replace')[-2000:]}"
                    )
                try:
                    provider.discovery  # noqa: B018 - the readiness probe
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield provider
        finally:
            process.terminate()
            process.wait(timeout=30)
