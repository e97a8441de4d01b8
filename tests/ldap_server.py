"""A real OpenLDAP directory (Debian's slapd) for the sign-in tests.

Each directory lives in its own temporary folder with an mdb database, listens on a free
loopback port and is stopped afterwards. Entries are added and changed with the OpenLDAP
client tools (ldapadd, ldapmodify), the way an operator would change a real directory.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.llm_server import free_port

SLAPD = Path("/usr/sbin/slapd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

BASE_DN = "dc=corp,dc=example"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "directory-admin-password"
# The account the portal binds as to look people and groups up; it may read, not write.
SERVICE_DN = f"cn=kb-service,ou=services,{BASE_DN}"
SERVICE_PASSWORD = "kb-service-password"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
# groupOfNames requires at least one member, so every group keeps this (non-existent)
# entry: removing a person from a group must never fail because they were the last one.
PLACEHOLDER_MEMBER = f"cn=placeholder,{BASE_DN}"

SLAPD_CONF = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {schema}/nis.schema
modulepath {modules}
moduleload back_mdb
pidfile {workdir}/slapd.pid

database mdb
maxsize 16777216
suffix "{base}"
rootdn "{admin_dn}"
rootpw {admin_password}
directory {workdir}/data

access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by dn.exact="{service_dn}" read
    by self read
    by * none
"""

BASE_ENTRIES = f"""\
dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: corp
o: Corp

dn: {PEOPLE_DN}
objectClass: organizationalUnit
ou: people

dn: {GROUPS_DN}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{BASE_DN}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: kb-service
userPassword: {SERVICE_PASSWORD}
"""


@dataclass(frozen=True)
class LdapDirectory:
    uri: str
    workdir: Path

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},{PEOPLE_DN}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},{GROUPS_DN}"

    def add_user(self, uid: str, password: str, *, given_name: str, surname: str) -> str:
        self._run(
            "ldapadd",
            f"dn: {self.user_dn(uid)}\n"
            "objectClass: inetOrgPerson\n"
            f"uid: {uid}\ncn: {given_name} {surname}\ngivenName: {given_name}\nsn: {surname}\n"
            f"mail: {uid}@corp.example\nuserPassword: {password}\n",
        )
        return self.user_dn(uid)

    def add_group(self, cn: str, member_uids: list[str]) -> str:
        members = [PLACEHOLDER_MEMBER, *(self.user_dn(uid) for uid in member_uids)]
        self._run(
            "ldapadd",
            f"dn: {self.group_dn(cn)}\nobjectClass: groupOfNames\ncn: {cn}\n"
            + "".join(f"member: {member}\n" for member in members),
        )
        return self.group_dn(cn)

    def add_member(self, group_cn: str, uid: str) -> None:
        self._change_member("add", group_cn, uid)

    def remove_member(self, group_cn: str, uid: str) -> None:
        self._change_member("delete", group_cn, uid)

    def _change_member(self, change: str, group_cn: str, uid: str) -> None:
        self._run(
            "ldapmodify",
            f"dn: {self.group_dn(group_cn)}\nchangetype: modify\n{change}: member\n"
            f"member: {self.user_dn(uid)}\n",
        )

    def _run(self, tool: str, ldif: str) -> None:
        result = subprocess.run(
            [tool, "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
            input=ldif,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")


@contextmanager
def running_slapd(workdir: Path) -> Iterator[LdapDirectory]:
    """Starts slapd in `workdir` with the base entries and the portal's service account."""
    if not SLAPD.exists() or shutil.which("ldapadd") is None:
        pytest.skip("slapd and ldap-utils (Debian packages) are needed for the directory tests")
    (workdir / "data").mkdir(parents=True)
    conf = workdir / "slapd.conf"
    conf.write_text(
        SLAPD_CONF.format(
            schema=SCHEMA_DIR,
            modules=MODULE_DIR,
            workdir=workdir,
            base=BASE_DN,
            admin_dn=ADMIN_DN,
            admin_password=ADMIN_PASSWORD,
            service_dn=SERVICE_DN,
        ),
        encoding="utf-8",
    )
    uri = f"ldap://127.0.0.1:{free_port()}"
    log = workdir / "slapd.log"
    with log.open("wb") as out:
        # -d keeps slapd in the foreground (so it can be stopped by its process), logging
        # only what `-d` level "stats" reports: connections and operations.
        process = subprocess.Popen(
            [str(SLAPD), "-f", str(conf), "-h", f"{uri}/", "-d", "stats"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            directory = LdapDirectory(uri=uri, workdir=workdir)
            _load_base_entries(directory, process, log)
            yield directory
        finally:
            process.terminate()
            process.wait(timeout=30)


def _load_base_entries(
    directory: LdapDirectory, process: subprocess.Popen[bytes], log: Path
) -> None:
    # The first ldapadd doubles as the readiness probe: it fails until slapd listens.
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            directory._run("ldapadd", BASE_ENTRIES)
            return
        except RuntimeError as exc:
            if "Can't contact LDAP server" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
