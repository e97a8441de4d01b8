"""Audit records for events that happen in Django itself: sign-ins, and every change to who
may see what (departments, memberships, collections and their sharing, accounts, directory
group mappings), whichever way the change is made: portal, admin site, directory sync, shell.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.http import HttpRequest

from kb.accounts.models import Department, DirectoryGroupMapping, Membership
from kb.audit.models import AuditRecord
from kb.audit.trail import record
from kb.library.models import Collection

# model -> (action prefix, the fields whose changes are recorded, how to find its department)
_CHANGE_ACTIONS = {
    "created": "{}.created",
    "changed": "{}.changed",
    "deleted": "{}.deleted",
}


def _tracked() -> dict[type[models.Model], tuple[str, tuple[str, ...], str | None]]:

    user_model = get_user_model()
    return {
        Department: ("department", ("name", "slug", "audit_retention_days", "legal_hold"), "pk"),
        Membership: (
            "membership",
            ("user_id", "department_id", "role", "clearance"),
            "department_id",
        ),
        Collection: (
            "collection",
            ("name", "department_id", "visibility", "classification", "allow_download"),
            "department_id",
        ),
        DirectoryGroupMapping: ("mapping", ("group", "department_id", "grant", "clearance"), None),
        user_model: ("user", ("username", "is_active", "is_staff", "is_superuser"), None),
    }


def _values(instance: models.Model, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in fields}


def _action(prefix: str, event: str) -> str:
    if prefix == "membership":
        return {"created": "membership.added", "changed": "membership.changed"}.get(
            event, "membership.removed"
        )
    if prefix in ("mapping", "user"):
        return f"{prefix}.changed"
    return _CHANGE_ACTIONS[event].format(prefix)


def _department(instance: models.Model, how: str | None) -> int | None:
    if how is None:
        return None
    value = getattr(instance, how, None)
    return int(value) if value is not None else None


def _remember_old(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    spec = _tracked().get(sender)
    if spec is None or instance.pk is None or kwargs.get("raw"):
        return
    old = sender._default_manager.filter(pk=instance.pk).values(*spec[1]).first()
    instance._audit_old = old  # type: ignore[attr-defined]  # the state before the save, noted on the instance for post_save


def _saved(
    sender: type[models.Model], instance: models.Model, created: bool, **kwargs: Any
) -> None:
    spec = _tracked().get(sender)
    if spec is None or kwargs.get("raw"):
        return
    prefix, fields, department = spec
    new = _values(instance, fields)
    old = getattr(instance, "_audit_old", None)
    if created or old is None:
        changes = {name: [None, value] for name, value in new.items()}
        event = "created"
    else:
        changes = {name: [old[name], new[name]] for name in fields if old[name] != new[name]}
        event = "changed"
        if not changes:
            return  # a save that changed nothing that matters for access (last_login, say)
    if prefix == "user" and event == "created":
        changes = {"username": [None, new["username"]]}
    record(
        _action(prefix, event),
        target=instance,
        department=_department(instance, department),
        details={"changes": changes, "object": str(instance)[:200]},
    )


def _deleted(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    spec = _tracked().get(sender)
    if spec is None:
        return
    prefix, fields, department = spec
    department_id = _department(instance, department)
    if prefix == "department":
        department_id = None  # it no longer exists to be named
    record(
        _action(prefix, "deleted"),
        target=instance,
        department=department_id,
        details={"before": _values(instance, fields), "object": str(instance)[:200]},
    )


def _sharing_changed(
    sender: Any, instance: models.Model, action: str, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    record(
        "collection.changed",
        target=instance,
        department=getattr(instance, "department_id", None),
        details={
            "shared_with": {
                "event": action.removeprefix("post_"),
                "departments": sorted(pk_set or []),
            }
        },
    )


def _groups_changed(
    sender: Any, instance: models.Model, action: str, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    from django.contrib.auth.models import Group

    names = sorted(Group.objects.filter(pk__in=pk_set or []).values_list("name", flat=True))
    record(
        "user.changed",
        target=instance,
        details={"groups": {"event": action.removeprefix("post_"), "names": names}},
    )


def _logged_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    record("auth.login", actor=user, details={"backend": getattr(user, "backend", "")})


def _login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    # Django has already replaced the password in `credentials` with asterisks.
    # The request's context (IP, request id) is already in place (kb/audit/context.py).
    name = str(credentials.get("username", ""))[:150]
    record("auth.login_failed", outcome=AuditRecord.Outcome.FAILURE, actor_name=name)


def _logged_out(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record("auth.logout", actor=user)


def connect() -> None:
    for model in _tracked():
        pre_save.connect(_remember_old, sender=model, dispatch_uid=f"audit-pre-{model.__name__}")
        post_save.connect(_saved, sender=model, dispatch_uid=f"audit-save-{model.__name__}")
        post_delete.connect(_deleted, sender=model, dispatch_uid=f"audit-del-{model.__name__}")

    m2m_changed.connect(
        _sharing_changed, sender=Collection.shared_with.through, dispatch_uid="audit-sharing"
    )
    m2m_changed.connect(
        _groups_changed, sender=get_user_model().groups.through, dispatch_uid="audit-groups"
    )
    user_logged_in.connect(_logged_in, dispatch_uid="audit-login")
    user_login_failed.connect(_login_failed, dispatch_uid="audit-login-failed")
    user_logged_out.connect(_logged_out, dispatch_uid="audit-logout")
