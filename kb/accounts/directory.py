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
import re
from collections.abc import Iterable
from dataclasses import dataclass

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
    rdns = parse_dn(value)
    if not rdns:
        return {value.casefold()}
    return {dn_to_str(rdns).casefold(), rdns[0][0][1].casefold()}


def _mapping_key(mapping_group: str) -> str:
    value = mapping_group.strip()
    rdns = parse_dn(value)
    return dn_to_str(rdns).casefold() if rdns else value.casefold()


# --- distinguished names ---------------------------------------------------------------------
# python-ldap parses DNs when it is installed (the `ldap` extra, for directory sign-in). An
# OpenID Connect-only install has no python-ldap, and its group claims may still be DNs (Azure
# AD, Keycloak with LDAP federation), so the same RFC 4514 rules are also written out here;
# tests/accounts/test_directory_memberships.py checks that the two agree.
_ATTRIBUTE = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)\s*=")
_SPECIAL = ',+"\\<>;=#'


def parse_dn(value: str) -> list[list[tuple[str, str]]] | None:
    """The RDNs of a DN as [[(type, value), ...], ...]; None if VALUE is not a DN."""
    try:
        import ldap.dn
    except ImportError:
        return _parse_dn(value)
    try:
        return [[(t, v) for t, v, _ in rdn] for rdn in ldap.dn.str2dn(value)]
    except ldap.DECODING_ERROR:
        return None


def dn_to_str(rdns: list[list[tuple[str, str]]]) -> str:
    def escape(text: str) -> str:
        escaped = "".join(f"\\{c}" if c in ',+"\\<>;' else c for c in text)
        if escaped[:1] in ("#", " "):
            escaped = "\\" + escaped
        if escaped.endswith(" "):
            escaped = escaped[:-1] + "\\ "
        return escaped

    return ",".join("+".join(f"{t}={escape(v)}" for t, v in rdn) for rdn in rdns)


def _parse_dn(value: str) -> list[list[tuple[str, str]]] | None:
    rdns: list[list[tuple[str, str]]] = []
    rdn: list[tuple[str, str]] = []
    position = 0
    while position < len(value):
        match = _ATTRIBUTE.match(value, position)
        if match is None:
            return None
        position = match.end()
        raw = bytearray()
        trailing_spaces = 0  # unescaped spaces at the end of the value are not part of it
        while position < len(value) and value[position] not in ",+":
            char = value[position]
            if char == "\\":
                pair = value[position + 1 : position + 3]
                if re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
                    raw.append(int(pair, 16))
                    position += 3
                elif pair[:1] and pair[0] in _SPECIAL + " ":
                    raw.extend(pair[0].encode())
                    position += 2
                else:
                    return None
                trailing_spaces = 0
                continue
            if char in '"<>;=' or (char == "#" and not raw):
                return None  # quoted or BER-encoded values: leave such groups to python-ldap
            if char == " " and not raw:
                position += 1
                continue
            trailing_spaces = trailing_spaces + 1 if char == " " else 0
            raw.extend(char.encode())
            position += 1
        try:
            text = bytes(raw[: len(raw) - trailing_spaces]).decode("utf-8")
        except UnicodeDecodeError:
            return None
        rdn.append((match.group(1), text))
        if position < len(value) and value[position] == "+":
            position += 1
            continue
        rdns.append(rdn)
        rdn = []
        if position < len(value):
            position += 1  # the comma
            if position == len(value):
                return None
    return rdns


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
