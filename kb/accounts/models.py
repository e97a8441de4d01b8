"""Departments and who belongs to them. Access to content is derived from these rows only."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Department(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        CURATOR = "curator", "Curator (manages collections)"
        DEPARTMENT_ADMIN = "department_admin", "Department admin (manages members)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
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
