"""Departments, who belongs to them and how far they are cleared.

Access to content is derived from these rows only (kb/accounts/access.py). Company-wide roles
are deliberately narrow: auditors read the audit trail, superadmins manage structure; neither
role by itself lets anyone read a department's documents.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

# The Django auth group whose members are company-wide auditors.
AUDITORS_GROUP = "Auditors"


class Clearance(models.IntegerChoices):
    """Classification levels, in order: a membership cleared to a level reads up to it."""

    PUBLIC = 0, _("Public")
    INTERNAL = 1, _("Internal")
    CONFIDENTIAL = 2, _("Confidential")
    SECRET = 3, _("Secret")


class Department(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Audit records concerning this department are kept this long (empty: forever), unless
    # a legal hold is on. Only `manage.py audit purge` removes them (kb/audit/purge.py).
    audit_retention_days = models.PositiveIntegerField(null=True, blank=True)
    legal_hold = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", _("Member")
        CURATOR = "curator", _("Curator (manages collections)")
        DEPARTMENT_ADMIN = "department_admin", _("Department admin (manages members)")

    class Source(models.TextChoices):
        # Local memberships are managed in the portal; directory ones are replaced from the
        # user's directory groups at each sign-in (kb/accounts/directory.py).
        LOCAL = "local", _("Managed here")
        DIRECTORY = "directory", _("From directory groups")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    clearance = models.PositiveSmallIntegerField(
        choices=Clearance.choices, default=Clearance.INTERNAL
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.LOCAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "department"], name="one_membership_per_dept")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.department} ({self.role})"

    @property
    def can_curate(self) -> bool:
        return self.role in (self.Role.CURATOR, self.Role.DEPARTMENT_ADMIN)


class DirectoryGroupMapping(models.Model):
    """A directory group (LDAP / Active Directory group, or an OpenID Connect `groups` claim
    value) and what belonging to it grants: a department membership, or the auditor role."""

    class Grant(models.TextChoices):
        MEMBER = Membership.Role.MEMBER.value, _("Member")
        CURATOR = Membership.Role.CURATOR.value, _("Curator")
        DEPARTMENT_ADMIN = Membership.Role.DEPARTMENT_ADMIN.value, _("Department admin")
        AUDITOR = "auditor", _("Company-wide auditor")

    # Matched without regard to case against the group's full DN and its first RDN value
    # ("cn=finance,ou=groups,dc=corp" and "finance"), or against the OIDC claim value.
    group = models.CharField(max_length=500)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.CASCADE, related_name="group_mappings"
    )
    grant = models.CharField(max_length=20, choices=Grant.choices, default=Grant.MEMBER)
    clearance = models.PositiveSmallIntegerField(
        choices=Clearance.choices, default=Clearance.INTERNAL
    )

    class Meta:
        ordering = ["group"]
        constraints = [
            models.UniqueConstraint(fields=["group", "department"], name="one_mapping_per_group"),
            models.CheckConstraint(
                condition=models.Q(grant="auditor", department__isnull=True)
                | (~models.Q(grant="auditor") & models.Q(department__isnull=False)),
                name="mapping_grant_matches_department",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group} -> {self.department or 'company'} ({self.grant})"
