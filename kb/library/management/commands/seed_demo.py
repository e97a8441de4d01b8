"""Create the demo departments, users and sample collections, and ingest the samples.

Idempotent: running it again changes nothing that is already there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from kb.accounts.models import AUDITORS_GROUP, Department, Membership
from kb.library.components import close_parser
from kb.library.ingestion import ingest_version
from kb.library.models import Collection, DocumentVersion
from kb.library.services import upload_document

DEMO = [
    # department, slug, collection, sample folder, users (name, role)
    (
        "Finance",
        "finance",
        "Finance policies",
        "finance",
        [("alice", Membership.Role.CURATOR), ("frank", Membership.Role.MEMBER)],
    ),
    (
        "Engineering",
        "engineering",
        "Engineering handbook",
        "engineering",
        [("bob", Membership.Role.CURATOR), ("erin", Membership.Role.MEMBER)],
    ),
]
DEMO_PASSWORD_SUFFIX = "-demo-2026"


class Command(BaseCommand):
    help = "Create two demo departments with users and ingest the shipped sample collections."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-ingest", action="store_true", help="Create rows and queue ingestion only."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        samples = Path(settings.BASE_DIR) / "sample_docs"
        credentials: list[tuple[str, str, str, str]] = []
        for dept_name, slug, collection_name, folder, users in DEMO:
            department, _ = Department.objects.get_or_create(
                slug=slug, defaults={"name": dept_name}
            )
            collection, _ = Collection.objects.get_or_create(
                department=department,
                name=collection_name,
                defaults={"description": f"Sample documents of the {dept_name} department."},
            )
            for username, role in users:
                password = f"{username}{DEMO_PASSWORD_SUFFIX}"
                user, created = user_model.objects.get_or_create(username=username)
                if created:
                    user.set_password(password)
                    user.save()
                Membership.objects.get_or_create(
                    user=user, department=department, defaults={"role": role}
                )
                credentials.append((username, password, dept_name, role))
            for path in sorted((samples / folder).iterdir()):
                with path.open("rb") as stream:
                    result = upload_document(
                        collection=collection,
                        name=path.name,
                        stream=stream,
                        size=path.stat().st_size,
                        uploaded_by_id=None,
                    )
                version = result.version
                if not options["no_ingest"] and version.status == DocumentVersion.Status.QUEUED:
                    # Ingested here, synchronously; the task queued on commit then finds the
                    # version finished and does nothing.
                    status = ingest_version(version.pk)
                    self.stdout.write(f"  {collection_name}: {path.name} -> {status}")
        close_parser()
        # A company-wide auditor: reads the audit trail at /audit/, no department content.
        auditor, created = user_model.objects.get_or_create(username="audrey")
        if created:
            auditor.set_password(f"audrey{DEMO_PASSWORD_SUFFIX}")
            auditor.save()
        auditor.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
        credentials.append(("audrey", f"audrey{DEMO_PASSWORD_SUFFIX}", "(company)", "auditor"))
        self.stdout.write(self.style.SUCCESS("Demo users (user / password / department / role):"))
        for username, password, dept, grants in credentials:
            self.stdout.write(f"  {username:6} {password:18} {dept:12} {grants}")
