"""The department pages: department admins manage members, curators manage collections.

Against the real database: who may open each page (everyone else gets 404 and an
`access.denied` record), the rules on clearance, the last admin and directory memberships,
and that each change lands in the audit trail once, as the acting person, with the request id.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from kb.accounts.access import readable_collection_ids
from kb.accounts.models import Clearance, Department, Membership
from kb.audit.models import AuditRecord
from kb.library.models import Collection

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def message_texts(response: Any) -> list[str]:
    """The messages the request added (newest first: unshown ones from before stay queued)."""
    return [str(m) for m in get_messages(response.wsgi_request)][::-1]


def records(action: str, **filters: Any) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(action=action, **filters).order_by("seq"))


def details(entry: AuditRecord) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(entry.details_json)
    return result


@pytest.fixture
def dana(departments: dict[str, Department]) -> User:
    """Finance department admin, cleared to Confidential."""
    user = User.objects.create_user("dana", password="dana-password-1", first_name="Dana")
    Membership.objects.create(
        user=user,
        department=departments["finance"],
        role=Membership.Role.DEPARTMENT_ADMIN,
        clearance=Clearance.CONFIDENTIAL,
    )
    return user


@pytest.fixture
def gus(db: None) -> User:
    """An account with no membership yet."""
    return User.objects.create_user(
        "gus", password="gus-password-1", first_name="Gus", last_name="Grant"
    )


def members_url(department: Department) -> str:
    return reverse("accounts:members", args=[department.pk])


def change_url(membership: Membership) -> str:
    return reverse("accounts:member_change", args=[membership.department_id, membership.pk])


def remove_url(membership: Membership) -> str:
    return reverse("accounts:member_remove", args=[membership.department_id, membership.pk])


def add(client: Client, department: Department, username: str, role: str, clearance: int) -> Any:
    return client.post(
        members_url(department),
        {"add-username": username, "add-role": role, "add-clearance": clearance},
    )


# --- members ---------------------------------------------------------------------------------


def test_department_admin_adds_changes_and_removes_a_member_each_audited(
    departments: dict[str, Department], dana: User, gus: User
) -> None:
    finance = departments["finance"]
    client = client_for(dana)
    page = client.get(members_url(finance))
    assert page.status_code == 200
    assert b"dana" in page.content and b"Add a member" in page.content

    response = add(client, finance, "gus", Membership.Role.MEMBER, Clearance.INTERNAL)
    assert response.status_code == 302
    assert "gus is now a member of Finance" in message_texts(response)[0]
    membership = Membership.objects.get(user=gus, department=finance)
    assert (membership.role, membership.clearance, membership.source) == (
        "member",
        Clearance.INTERNAL,
        "local",
    )

    response = client.post(
        change_url(membership),
        {"role": Membership.Role.CURATOR, "clearance": Clearance.CONFIDENTIAL},
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert (membership.role, membership.clearance) == ("curator", Clearance.CONFIDENTIAL)
    assert "gus is now a curator" in message_texts(response)[0]

    response = client.post(remove_url(membership))
    assert response.status_code == 302
    assert not Membership.objects.filter(user=gus, department=finance).exists()
    assert "gus was removed from Finance" in message_texts(response)[0]

    for action in ("membership.added", "membership.changed", "membership.removed"):
        (entry,) = records(action, target_id=str(membership.pk))
        assert entry.actor_id == dana.pk and entry.actor == "dana"
        assert entry.department_id == finance.pk
        assert entry.request_id  # the request's id, from the audit middleware
        assert entry.outcome == "success"
    changed = details(records("membership.changed", target_id=str(membership.pk))[0])
    assert changed["changes"] == {
        "role": ["member", "curator"],
        "clearance": [Clearance.INTERNAL, Clearance.CONFIDENTIAL],
    }
    # Three requests, three distinct request ids.
    mine = AuditRecord.objects.filter(action__startswith="membership.", actor_id=dana.pk)
    assert len({r.request_id for r in mine}) == 3


def test_members_page_lists_people_with_their_details(
    departments: dict[str, Department], dana: User, frank: User
) -> None:
    frank.first_name, frank.last_name = "Frank", "Fisher"
    frank.save()
    page = client_for(dana).get(members_url(departments["finance"]))
    text = page.content.decode()
    assert "Frank Fisher" in text and "frank" in text
    assert "Confidential" in text and "Internal" in text
    assert "Department admin" in text
    assert "csrfmiddlewaretoken" in text


@pytest.mark.parametrize("who", ["frank", "alice"])
def test_members_and_curators_cannot_manage_members(
    departments: dict[str, Department], alice: User, frank: User, gus: User, who: str
) -> None:
    user = {"frank": frank, "alice": alice}[who]
    finance = departments["finance"]
    client = client_for(user)
    target = Membership.objects.get(user=frank, department=finance)
    before = Membership.objects.count()
    assert client.get(members_url(finance)).status_code == 404
    assert add(client, finance, "gus", "member", Clearance.INTERNAL).status_code == 404
    response = client.post(change_url(target), {"role": "department_admin", "clearance": 3})
    assert response.status_code == 404
    assert client.post(remove_url(target)).status_code == 404
    assert Membership.objects.count() == before
    target.refresh_from_db()
    assert (target.role, target.clearance) == ("member", Clearance.INTERNAL)
    denials = records("access.denied", actor_id=user.pk)
    assert len(denials) == 4
    assert all(d.outcome == "denied" and d.department_id == finance.pk for d in denials)
    assert details(denials[0])["reason"] == "not a department admin"
    assert not AuditRecord.objects.filter(
        action__startswith="membership.", actor_id=user.pk
    ).exists()


def test_finance_admin_cannot_manage_engineering(
    departments: dict[str, Department], dana: User, erin: User, gus: User
) -> None:
    engineering = departments["engineering"]
    client = client_for(dana)
    erins = Membership.objects.get(user=erin)
    assert client.get(members_url(engineering)).status_code == 404
    assert add(client, engineering, "gus", "member", Clearance.PUBLIC).status_code == 404
    assert client.post(remove_url(erins)).status_code == 404
    # Nor through Finance's URL with Engineering's membership id.
    finance_url = reverse("accounts:member_remove", args=[departments["finance"].pk, erins.pk])
    assert client.post(finance_url).status_code == 404
    assert Membership.objects.filter(pk=erins.pk).exists()
    assert not Membership.objects.filter(user=gus).exists()
    assert len(records("access.denied", actor_id=dana.pk)) == 4


def test_unknown_department_is_404_too(departments: dict[str, Department], dana: User) -> None:
    assert client_for(dana).get(reverse("accounts:members", args=[999999])).status_code == 404
    (entry,) = records("access.denied", actor_id=dana.pk)
    # No such department to name: the record names the actor's own (kb/audit/trail.py).
    assert entry.target_type == "department" and entry.target_id == "999999"
    assert entry.department_id == departments["finance"].pk


def test_clearance_above_own_is_refused(
    departments: dict[str, Department], dana: User, frank: User, gus: User
) -> None:
    finance = departments["finance"]
    client = client_for(dana)
    response = add(client, finance, "gus", Membership.Role.MEMBER, Clearance.SECRET)
    assert response.status_code == 400
    assert "at most Confidential" in message_texts(response)[0]
    assert "at most Confidential" in response.content.decode()
    assert not Membership.objects.filter(user=gus).exists()

    franks = Membership.objects.get(user=frank)
    response = client.post(change_url(franks), {"role": "member", "clearance": Clearance.SECRET})
    assert response.status_code == 400
    assert "at most Confidential" in message_texts(response)[0]
    franks.refresh_from_db()
    assert franks.clearance == Clearance.INTERNAL
    assert not records("membership.changed")
    # The select box does not even offer it.
    page = client.get(members_url(finance)).content.decode()
    assert f'<option value="{Clearance.SECRET}"' not in page


def test_a_higher_clearance_someone_already_has_may_stay(
    departments: dict[str, Department], dana: User, frank: User
) -> None:
    franks = Membership.objects.get(user=frank)
    franks.clearance = Clearance.SECRET
    franks.save()
    response = client_for(dana).post(
        change_url(franks), {"role": "curator", "clearance": Clearance.SECRET}
    )
    assert response.status_code == 302
    franks.refresh_from_db()
    assert (franks.role, franks.clearance) == ("curator", Clearance.SECRET)


def test_superadmin_may_grant_any_clearance(departments: dict[str, Department], gus: User) -> None:
    root = User.objects.create_superuser("root", password="root-password-1")
    response = add(client_for(root), departments["engineering"], "gus", "curator", Clearance.SECRET)
    assert response.status_code == 302
    assert Membership.objects.get(user=gus).clearance == Clearance.SECRET
    (entry,) = records("membership.added")
    assert entry.actor_id == root.pk


def test_last_department_admin_cannot_remove_or_demote_themselves(
    departments: dict[str, Department], dana: User, gus: User
) -> None:
    finance = departments["finance"]
    client = client_for(dana)
    own = Membership.objects.get(user=dana)
    response = client.post(change_url(own), {"role": "curator", "clearance": own.clearance})
    assert response.status_code == 400
    assert "last department admin of Finance" in message_texts(response)[0]
    response = client.post(remove_url(own))
    assert response.status_code == 400
    assert "last department admin of Finance" in message_texts(response)[0]
    own.refresh_from_db()
    assert own.role == "department_admin"
    # Lowering one's own clearance is not stepping down.
    response = client.post(change_url(own), {"role": "department_admin", "clearance": 1})
    assert response.status_code == 302

    # With a second admin, stepping down is allowed (and the page is then out of reach).
    add(client, finance, "gus", Membership.Role.DEPARTMENT_ADMIN, Clearance.INTERNAL)
    response = client.post(change_url(own), {"role": "curator", "clearance": 1})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:departments")
    own.refresh_from_db()
    assert own.role == "curator"
    assert client.get(members_url(finance)).status_code == 404


def test_directory_memberships_are_read_only(
    departments: dict[str, Department], dana: User, gus: User
) -> None:
    finance = departments["finance"]
    synced = Membership.objects.create(
        user=gus,
        department=finance,
        role=Membership.Role.MEMBER,
        clearance=Clearance.INTERNAL,
        source=Membership.Source.DIRECTORY,
    )
    client = client_for(dana)
    page = client.get(members_url(finance)).content.decode()
    assert "re-synced at each sign-in" in page
    assert change_url(synced) not in page and remove_url(synced) not in page

    response = client.post(change_url(synced), {"role": "curator", "clearance": 1})
    assert response.status_code == 400
    assert "comes from directory groups" in message_texts(response)[0]
    assert client.post(remove_url(synced)).status_code == 400
    response = add(client, finance, "gus", "curator", Clearance.INTERNAL)
    assert response.status_code == 400
    assert "through their directory groups" in response.content.decode()
    synced.refresh_from_db()
    assert (synced.role, synced.source) == ("member", "directory")
    assert not records("membership.changed") and not records("membership.removed")


def test_add_member_needs_an_existing_active_account(
    departments: dict[str, Department], dana: User, frank: User, gus: User
) -> None:
    finance = departments["finance"]
    client = client_for(dana)
    response = add(client, finance, "nobody", "member", Clearance.INTERNAL)
    assert response.status_code == 400
    assert "no active account named" in response.content.decode()
    gus.is_active = False
    gus.save()
    assert add(client, finance, "gus", "member", Clearance.INTERNAL).status_code == 400
    response = add(client, finance, "frank", "member", Clearance.INTERNAL)
    assert "already a member of Finance" in response.content.decode()
    assert not records("membership.added", actor_id=dana.pk)


def test_posts_need_a_csrf_token(departments: dict[str, Department], dana: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(dana)
    response = add(client, departments["finance"], "frank", "member", Clearance.INTERNAL)
    assert response.status_code == 403


# --- the overview ----------------------------------------------------------------------------


def test_departments_page_lists_what_the_user_manages(
    departments: dict[str, Department],
    dana: User,
    alice: User,
    frank: User,
    finance_collection: Collection,
) -> None:
    page = client_for(dana).get(reverse("accounts:departments"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Finance" in text and "Engineering" not in text
    assert members_url(departments["finance"]) in text
    assert "<strong>3</strong> members" in text and "<strong>1</strong> collection" in text
    settings_url = reverse(
        "accounts:collection_settings", args=[departments["finance"].pk, finance_collection.pk]
    )
    assert settings_url in text

    text = client_for(alice).get(reverse("accounts:departments")).content.decode()
    assert settings_url in text and members_url(departments["finance"]) not in text

    assert client_for(frank).get(reverse("accounts:departments")).status_code == 404
    (entry,) = records("access.denied", actor_id=frank.pk)
    assert details(entry)["reason"] == "neither department admin nor curator"


def test_superadmin_sees_every_department(departments: dict[str, Department]) -> None:
    root = User.objects.create_superuser("root", password="root-password-1")
    text = client_for(root).get(reverse("accounts:departments")).content.decode()
    assert "Finance" in text and "Engineering" in text


# --- collections -----------------------------------------------------------------------------


def settings_url(collection: Collection) -> str:
    return reverse("accounts:collection_settings", args=[collection.department_id, collection.pk])


def collection_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Audit reports",
        "description": "External audit reports",
        "visibility": "department",
        "classification": Clearance.INTERNAL,
        "allow_download": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_curator_creates_a_collection_and_changes_its_settings(
    departments: dict[str, Department], alice: User, erin: User
) -> None:
    finance, engineering = departments["finance"], departments["engineering"]
    client = client_for(alice)
    new_url = reverse("accounts:collection_new", args=[finance.pk])
    assert client.get(new_url).status_code == 200
    response = client.post(new_url, collection_data())
    assert response.status_code == 302
    collection = Collection.objects.get(name="Audit reports")
    assert response["Location"] == reverse("portal:collection", args=[collection.pk])
    assert collection.department == finance and collection.allow_download
    assert collection.pk in readable_collection_ids(alice)
    (created,) = records("collection.created", target_id=str(collection.pk))
    assert created.actor_id == alice.pk and created.request_id
    assert created.department_id == finance.pk

    assert collection.pk not in readable_collection_ids(erin)
    response = client.post(
        settings_url(collection),
        collection_data(
            visibility="shared",
            shared_with=[engineering.pk],
            classification=Clearance.PUBLIC,
            allow_download=None,
        ),
    )
    assert response.status_code == 302
    collection.refresh_from_db()
    assert collection.visibility == "shared"
    assert list(collection.shared_with.all()) == [engineering]
    assert collection.classification == Clearance.PUBLIC and not collection.allow_download
    # Effective at once: the access filter is computed on each call.
    assert collection.pk in readable_collection_ids(erin)

    changed = records("collection.changed", target_id=str(collection.pk))
    assert all(r.actor_id == alice.pk and r.request_id for r in changed)
    field_changes = next(details(r)["changes"] for r in changed if "changes" in details(r))
    assert field_changes == {
        "visibility": ["department", "shared"],
        "classification": [Clearance.INTERNAL, Clearance.PUBLIC],
        "allow_download": [True, False],
    }
    sharing = next(details(r)["shared_with"] for r in changed if "shared_with" in details(r))
    assert sharing == {"event": "add", "departments": [engineering.pk]}

    # Back to the department only: the sharing list is cleared with it.
    response = client.post(settings_url(collection), collection_data(shared_with=[engineering.pk]))
    assert response.status_code == 302
    assert not collection.shared_with.exists()
    assert collection.pk not in readable_collection_ids(erin)
    page = client.get(settings_url(collection)).content.decode()
    assert "Finance members cleared to Internal or above" in page


def test_shared_needs_a_department_and_names_are_unique(
    departments: dict[str, Department], alice: User, finance_collection: Collection
) -> None:
    client = client_for(alice)
    new_url = reverse("accounts:collection_new", args=[departments["finance"].pk])
    response = client.post(new_url, collection_data(visibility="shared"))
    assert response.status_code == 400
    assert "Choose at least one department to share with" in response.content.decode()
    response = client.post(new_url, collection_data(name=finance_collection.name))
    assert response.status_code == 400
    assert "already has a collection named" in response.content.decode()
    assert Collection.objects.count() == 1
    # A department cannot share with itself: it is not offered, and refused if posted.
    response = client.post(
        new_url, collection_data(visibility="shared", shared_with=[departments["finance"].pk])
    )
    assert response.status_code == 400


def test_curator_cannot_classify_above_own_clearance(
    departments: dict[str, Department], alice: User, finance_collection: Collection
) -> None:
    client = client_for(alice)  # cleared to Internal
    new_url = reverse("accounts:collection_new", args=[departments["finance"].pk])
    response = client.post(new_url, collection_data(classification=Clearance.CONFIDENTIAL))
    assert response.status_code == 400
    assert "cannot be classified Confidential" in response.content.decode()
    assert not Collection.objects.filter(name="Audit reports").exists()
    response = client.post(
        settings_url(finance_collection),
        collection_data(name=finance_collection.name, classification=Clearance.SECRET),
    )
    assert response.status_code == 400
    assert "you could no longer read it" in message_texts(response)[0] + response.content.decode()
    finance_collection.refresh_from_db()
    assert finance_collection.classification == Clearance.INTERNAL
    assert not records("collection.changed")


def test_curator_cannot_open_a_collection_classified_above_them(
    departments: dict[str, Department], alice: User
) -> None:
    secret = Collection.objects.create(
        name="Board minutes", department=departments["finance"], classification=Clearance.SECRET
    )
    client = client_for(alice)
    assert client.get(settings_url(secret)).status_code == 404
    assert client.post(settings_url(secret), collection_data(classification=0)).status_code == 404
    secret.refresh_from_db()
    assert secret.classification == Clearance.SECRET
    assert "Board minutes" not in client.get(reverse("accounts:departments")).content.decode()


def test_members_and_other_departments_cannot_manage_collections(
    departments: dict[str, Department],
    alice: User,
    frank: User,
    erin: User,
    finance_collection: Collection,
    engineering_collection: Collection,
) -> None:
    new_finance = reverse("accounts:collection_new", args=[departments["finance"].pk])
    frank_client = client_for(frank)
    assert frank_client.get(new_finance).status_code == 404
    assert frank_client.post(new_finance, collection_data()).status_code == 404
    assert frank_client.get(settings_url(finance_collection)).status_code == 404
    response = frank_client.post(
        settings_url(finance_collection), collection_data(visibility="company")
    )
    assert response.status_code == 404
    assert len(records("access.denied", actor_id=frank.pk)) == 4

    # A Finance curator, through Finance's URL or Engineering's, cannot touch Engineering's.
    alice_client = client_for(alice)
    assert alice_client.get(settings_url(engineering_collection)).status_code == 404
    wrong = reverse(
        "accounts:collection_settings",
        args=[departments["finance"].pk, engineering_collection.pk],
    )
    assert alice_client.post(wrong, collection_data(visibility="company")).status_code == 404
    assert not Collection.objects.filter(name="Audit reports").exists()
    finance_collection.refresh_from_db()
    engineering_collection.refresh_from_db()
    assert finance_collection.visibility == engineering_collection.visibility == "department"
    assert not records("collection.changed")
    assert not records("collection.created", actor_id__isnull=False)  # only the fixtures'


def test_department_admin_may_manage_collections_too(
    departments: dict[str, Department], dana: User
) -> None:
    response = client_for(dana).post(
        reverse("accounts:collection_new", args=[departments["finance"].pk]),
        collection_data(classification=Clearance.CONFIDENTIAL),
    )
    assert response.status_code == 302
    assert Collection.objects.get(name="Audit reports").classification == Clearance.CONFIDENTIAL
