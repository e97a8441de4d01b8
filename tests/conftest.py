"""Shared fixtures: named users in two departments, and the real backends the product uses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from kb.accounts.models import Department, Membership
from kb.library.models import Collection, DocumentVersion
from tests.ingesting import ingest_text


def pytest_report_header(config: pytest.Config) -> list[str]:
    # Printed at the top of every run so the log shows which real services were used.
    import django

    django.setup()
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split("://", 1)[0]
    index = "qdrant-server" if settings.QDRANT_URL else "qdrant-edge"
    return [f"kb backends: database={engine} broker={broker} index={index}"]


@pytest.fixture
def departments(db: None) -> dict[str, Department]:
    return {
        "finance": Department.objects.create(name="Finance", slug="finance"),
        "engineering": Department.objects.create(name="Engineering", slug="engineering"),
    }


def _user(name: str, department: Department, role: str) -> User:
    user = User.objects.create_user(name, password=f"{name}-password-1")
    Membership.objects.create(user=user, department=department, role=role)
    return user


@pytest.fixture
def alice(departments: dict[str, Department]) -> User:
    """Finance curator."""
    return _user("alice", departments["finance"], Membership.Role.CURATOR)


@pytest.fixture
def frank(departments: dict[str, Department]) -> User:
    """Finance member (may read, may not upload)."""
    return _user("frank", departments["finance"], Membership.Role.MEMBER)


@pytest.fixture
def erin(departments: dict[str, Department]) -> User:
    """Engineering member: must never see Finance content."""
    return _user("erin", departments["engineering"], Membership.Role.MEMBER)


@pytest.fixture
def finance_collection(departments: dict[str, Department]) -> Collection:
    return Collection.objects.create(name="Finance policies", department=departments["finance"])


@pytest.fixture
def engineering_collection(departments: dict[str, Department]) -> Collection:
    return Collection.objects.create(
        name="Engineering handbook", department=departments["engineering"]
    )


@pytest.fixture
def indexed_policy(fresh_index: None, finance_collection: Collection) -> None:
    """Finance's travel policy, indexed: the hotel limit in Munich is 180 EUR per night."""
    ingest_text(
        finance_collection,
        "travel.md",
        "# Travel policy\n\n## Hotels\n\nThe hotel limit is 180 EUR per night in Munich.\n",
    )


@pytest.fixture
def fresh_index(tmp_path: Path, settings: pytest.FixtureRequest) -> Iterator[None]:
    """A private index directory for one test, so earlier tests' points cannot interfere."""
    from kb.library import components

    components.close_index()
    settings.QDRANT_EDGE_PATH = tmp_path / "qdrant-edge"  # type: ignore[attr-defined]
    yield
    components.close_index()


@pytest.fixture(scope="session", autouse=True)
def _close_parser_at_exit() -> Iterator[None]:
    yield
    from kb.library.components import close_parser

    close_parser()


def index_count(**filters: int) -> int:
    """Points in the served index generation (optionally of one document or version)."""
    from kb.library.components import get_index
    from kb.library.indexing import active_generation

    return get_index().count(active_generation().collection_name, **filters)


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    from tests.llm_server import gemma_gguf

    return gemma_gguf(Path(__file__).resolve().parents[1] / "var" / "models")


@pytest.fixture(scope="session")
def llm_server_url(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server: the real stand-in for vLLM on this machine."""
    from tests.llm_server import llama_cpp_server

    with llama_cpp_server(gguf_path, tmp_path_factory.mktemp("llm") / "server.log") as url:
        yield url


FINAL: set[str] = {str(status) for status in DocumentVersion.FINAL}


def wait_for_version(
    version_id: int, statuses: set[str] = FINAL, timeout: float = 180.0
) -> DocumentVersion:
    deadline = time.monotonic() + timeout
    while True:
        version = DocumentVersion.objects.get(pk=version_id)
        if version.status in statuses:
            return version
        if time.monotonic() > deadline:
            raise AssertionError(f"version {version_id} still {version.status!r} after {timeout}s")
        time.sleep(0.25)


@pytest.fixture(autouse=True, scope="session")
def _flush_past_audit_trigger() -> Iterator[None]:
    """Transactional tests empty every table between tests with TRUNCATE, which the audit
    table's append-only trigger refuses (as it should for the application). The tests run
    as the PostgreSQL superuser, who may bypass triggers for the session: done only inside
    Django's flush, so every other statement in the suite meets the trigger."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self: DatabaseOperations, *args: object, **kwargs: object) -> list[str]:
        statements = original(self, *args, **kwargs)  # type: ignore[arg-type]
        if not statements:
            return statements
        return [
            "SET session_replication_role = replica",
            *statements,
            "SET session_replication_role = origin",
        ]

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign, assignment]
    yield
    DatabaseOperations.sql_flush = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _own_audit_checkpoints(
    tmp_path_factory: pytest.TempPathFactory, settings: pytest.FixtureRequest
) -> None:
    """Each test anchors the audit trail into a checkpoint file of its own. Every commit
    that writes audit records signs the chain's head (kb/audit/checkpoints.py), and the
    database is emptied between tests: one file shared by all tests would vouch for records
    that a later test's chain never had, and its verification would rightly fail."""
    settings.AUDIT_CHECKPOINT_DIR = tmp_path_factory.mktemp("audit-checkpoints")  # type: ignore[attr-defined]  # pytest-django's settings wrapper
