"""Directory groups become department memberships here, and nowhere else.

At each sign-in through LDAP / Active Directory or OpenID Connect the backend passes the
person's groups to `sync_directory_memberships`, which makes their `source="directory"`
memberships match what DirectoryGroupMapping says those groups grant:

- a group matches a mapping without regard to case, by its full value or, when it is a DN,
  by the value of its first RDN ("cn=Finance,ou=Groups,dc=corp" matches the mappings
  "cn=finance,ou=groups,dc=corp" and "finance"); so mapping by short name also matches a
  group of that name in another OU, and a full DN is the precise choice;
- several groups granting the same department give one membership with the highest role
  and the highest clearance among them;
- memberships managed in the portal (`source="local"`) are never changed or removed, and a
  department with a local membership gets no directory one: the local row stays as it is.

The company-wide auditor role is the Django group AUDITORS_GROUP, which has no record of who
added a person. So the directory owns that group for the people who sign in through it only
once some mapping grants "auditor": from then on such a person is in the group exactly when
one of their groups maps to auditor. With no auditor mapping at all, the group is left to be
managed by hand. People who never sign in through the directory are never touched.

Rows are created, changed and deleted one by one with save()/delete(), so the membership
signals (the audit trail) see every change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import ldap.dn
from django.contrib.auth.models import Group, User
from django.db import transaction

from kb.accounts.models import AUDITORS_GROUP, DirectoryGroupMapping, Membership

logger = logging.getLogger(__name__)

ROLE_RANK: dict[str, int] = {
    Membership.Role.MEMBER: 0,
    Membership.Role.CURATOR: 1,
    Membership.Role.DEPARTMENT_ADMIN: 2,
}


@dataclass(frozen=True)
class Grant:
    role: str
    clearance: int


def group_match_keys(group: str) -> set[str]:
    """The normalised names a directory group is known by: its whole value, and for a DN
    also the value of its first RDN. DNs are re-serialised so that spacing and escaping
    differences ("CN=Finance, OU=Groups") do not matter."""
    value = group.strip()
    if not value:
        return set()
    try:
        rdns = ldap.dn.str2dn(value)
    except ldap.DECODING_ERROR:
        return {value.casefold()}
    if not rdns:
        return {value.casefold()}
    return {ldap.dn.dn2str(rdns).casefold(), str(rdns[0][0][1]).casefold()}


def _mapping_key(mapping_group: str) -> str:
    value = mapping_group.strip()
    try:
        rdns = ldap.dn.str2dn(value)
    except ldap.DECODING_ERROR:
        return value.casefold()
    return ldap.dn.dn2str(rdns).casefold() if rdns else value.casefold()


def granted_by_groups(groups: Iterable[str]) -> tuple[dict[int, Grant], bool]:
    """What the groups grant: {department id: Grant}, and whether they make an auditor."""
    keys: set[str] = set()
    for group in groups:
        keys |= group_match_keys(group)
    grants: dict[int, Grant] = {}
    auditor = False
    # The mapping table is small (one row per mapped group), and matching needs DN
    # normalisation the database cannot do, so it is matched here.
    for mapping in DirectoryGroupMapping.objects.all():
        if _mapping_key(mapping.group) not in keys:
            continue
        if mapping.grant == DirectoryGroupMapping.Grant.AUDITOR:
            auditor = True
            continue
        if mapping.department_id is None:
            continue  # excluded by the model's check constraint; never grant "everywhere"
        granted = Grant(mapping.grant, mapping.clearance)
        current = grants.get(mapping.department_id)
        if current is not None:
            granted = Grant(
                max(current.role, granted.role, key=lambda role: ROLE_RANK[role]),
                max(current.clearance, granted.clearance),
            )
        grants[mapping.department_id] = granted
    return grants, auditor


def sync_directory_memberships(user: User, groups: Iterable[str]) -> None:
    """Makes the user's directory memberships (and auditor role, see the module docstring)
    match their directory groups. Call it at every directory sign-in."""
    group_list = list(groups)
    with transaction.atomic():
        # Locks the person's row, so two sign-ins at once cannot both create a membership.
        User.objects.select_for_update().filter(pk=user.pk).exists()
        grants, auditor = granted_by_groups(group_list)
        existing = {
            membership.department_id: membership
            for membership in Membership.objects.select_for_update().filter(user_id=user.pk)
        }
        for department_id, grant in grants.items():
            membership = existing.get(department_id)
            if membership is None:
                Membership.objects.create(
                    user_id=user.pk,
                    department_id=department_id,
                    role=grant.role,
                    clearance=grant.clearance,
                    source=Membership.Source.DIRECTORY,
                )
            elif membership.source == Membership.Source.DIRECTORY and (
                membership.role != grant.role or membership.clearance != grant.clearance
            ):
                membership.role = grant.role
                membership.clearance = grant.clearance
                membership.save(update_fields=["role", "clearance"])
        for department_id, membership in existing.items():
            if membership.source == Membership.Source.DIRECTORY and department_id not in grants:
                membership.delete()
        _sync_auditor(user, auditor)
    logger.info(
        "directory memberships of %s synced from %d groups: departments %s%s",
        user.get_username(),
        len(group_list),
        sorted(grants),
        ", auditor" if auditor else "",
    )


def _sync_auditor(user: User, auditor: bool) -> None:
    if not DirectoryGroupMapping.objects.filter(grant=DirectoryGroupMapping.Grant.AUDITOR).exists():
        return
    # Changed only when it differs, so the group-change signal fires for real changes only.
    is_auditor = user.groups.filter(name=AUDITORS_GROUP).exists()
    if auditor and not is_auditor:
        user.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    elif not auditor and is_auditor:
        user.groups.remove(*Group.objects.filter(name=AUDITORS_GROUP))
