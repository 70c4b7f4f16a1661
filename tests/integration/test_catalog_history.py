"""``warren_history``: who did what to an object, and the object as of a sequence or time."""

from __future__ import annotations

import pytest
from test_catalog_support import Client, Instance, unique

from schemas import subjects
from schemas.errors import BadRequest, NotFound

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def service(nats_server, tmp_path_factory):
    instance = await Instance(nats_server.url, tmp_path_factory.mktemp("warren")).start()
    yield instance
    await instance.stop()


@pytest.fixture(scope="module")
async def client(nats_server, service):
    client = await Client.open(nats_server.url)
    yield client
    await client.close()


async def _history(client: Client, kind: str, name: str, project: str = "default", **at) -> dict:
    body = {"kind": kind, "name": name, **at}
    return await client.call(subjects.HISTORY, body, project)


async def test_profile_history_and_state_as_of_each_event(client):
    name, new = unique("hist"), unique("hist-new")
    await client.call(subjects.PROFILES_CREATE, {"name": name}, requestor="alice")
    await client.call(
        subjects.PROFILES_UPDATE,
        {"name": name, "mode": "patch", "fields": ["config"], "config": {"user.a": "1"}},
        requestor="bob",
    )
    await client.call(subjects.PROFILES_RENAME, {"name": name, "new_name": new}, requestor="carol")

    history = await _history(client, "profile", new)
    steps = history["events"]
    assert [(e["type"], e["requestor"]) for e in steps] == [
        ("profile-created", "alice"),
        ("profile-updated", "bob"),
        ("profile-renamed", "carol"),
    ]
    assert [e["version"] for e in steps] == [1, 2, 3]
    assert steps[2]["payload"]["old_name"] == name
    assert history["kind"] == "profile" and history["state"]["name"] == new

    as_created = await _history(client, "profile", new, at_seq=steps[0]["seq"])
    assert as_created["state"]["name"] == name and as_created["state"]["config"] == {}
    as_updated = await _history(client, "profile", new, at_seq=steps[1]["seq"])
    assert as_updated["state"]["config"] == {"user.a": "1"}
    before = await _history(client, "profile", new, at_seq=steps[0]["seq"] - 1)
    assert before["state"] is None
    by_time = await _history(client, "profile", new, at_time=steps[1]["occurred_at"])
    assert by_time["state"]["config"] == {"user.a": "1"}
    # The former name still leads to the object.
    assert (await _history(client, "profile", name))["object_id"] == history["object_id"]


async def test_deleted_object_history_by_its_last_name(client):
    name = unique("gone")
    await client.call(subjects.PROFILES_CREATE, {"name": name, "config": {"user.k": "v"}})
    await client.call(subjects.PROFILES_DELETE, {"name": name}, requestor="dave")
    history = await _history(client, "profile", name)
    assert [e["type"] for e in history["events"]] == ["profile-created", "profile-deleted"]
    assert history["events"][-1]["requestor"] == "dave"
    assert history["state"] is None
    alive = await _history(client, "profile", name, at_seq=history["events"][0]["seq"])
    assert alive["state"]["config"] == {"user.k": "v"}
    # A new object with the name wins the lookup.
    await client.call(subjects.PROFILES_CREATE, {"name": name})
    newest = await _history(client, "profile", name)
    assert newest["object_id"] != history["object_id"] and len(newest["events"]) == 1


async def test_project_history_and_profiles_in_projects(client):
    project = unique("hp")
    await client.call(subjects.PROJECTS_CREATE, {"name": project})
    await client.call(
        subjects.PROJECTS_UPDATE,
        {"name": project, "mode": "patch", "fields": ["description"], "description": "d"},
    )
    history = await _history(client, "project", project)
    assert [e["type"] for e in history["events"]] == ["project-created", "project-updated"]
    assert history["state"]["description"] == "d"
    assert history["state"]["used_by"] == [f"/1.0/profiles/default?project={project}"]
    inside = await _history(client, "profile", "default", project=project)
    assert inside["events"][0]["payload"]["description"].endswith(project)


async def test_unknown_objects_kinds_and_times(client):
    with pytest.raises(NotFound, match="Profile not found"):
        await _history(client, "profile", unique("never"))
    with pytest.raises(NotFound, match="Project not found"):
        await _history(client, "project", unique("never"))
    with pytest.raises(BadRequest, match="Unknown kind"):
        await _history(client, "instance-type", "x")
    with pytest.raises(BadRequest, match="RFC 3339"):
        await _history(client, "profile", "default", at_time="yesterday")


async def test_every_holder_of_a_reused_name_is_listed_and_picked_by_id(client):
    name, other = unique("reused"), unique("moved")
    await client.call(subjects.PROFILES_CREATE, {"name": name}, requestor="alice")
    await client.call(
        subjects.PROFILES_UPDATE,
        {"name": name, "mode": "patch", "fields": ["config"], "config": {"user.v": "1"}},
    )
    await client.call(subjects.PROFILES_DELETE, {"name": name})
    await client.call(subjects.PROFILES_CREATE, {"name": name}, requestor="bob")

    newest = await _history(client, "profile", name)
    first, second = newest["holders"]
    assert second["object_id"] == newest["object_id"] != first["object_id"]
    assert (first["name"], first["project"], first["deleted"]) == (name, "default", True)
    assert (second["deleted"], newest["project"], newest["name"]) == (False, "default", name)
    assert first["last_seq"] < second["last_seq"]

    old = await _history(client, "profile", name, object_id=first["object_id"])
    assert [e["type"] for e in old["events"]] == [
        "profile-created",
        "profile-updated",
        "profile-deleted",
    ]
    assert old["events"][0]["requestor"] == "alice" and old["state"] is None
    assert old["holders"] == newest["holders"]
    updated = old["events"][1]["seq"]
    as_updated = await _history(
        client, "profile", name, object_id=first["object_id"], at_seq=updated
    )
    assert as_updated["state"]["config"] == {"user.v": "1"}
    with pytest.raises(NotFound, match="was ever named"):
        await _history(client, "profile", name, object_id="not-an-id")
    with pytest.raises(NotFound, match="was ever named"):  # an object of another name
        await _history(client, "profile", "default", object_id=first["object_id"])

    # Renamed away, the live one is still a holder of the name; with no live holder left,
    # the latest one is shown.
    await client.call(subjects.PROFILES_RENAME, {"name": name, "new_name": other})
    after = await _history(client, "profile", name)
    assert after["object_id"] == second["object_id"] and after["name"] == other
    assert [h["name"] for h in after["holders"]] == [name, other]


async def test_profiles_of_a_renamed_then_deleted_project_stay_reachable(client):
    old, new, profile = unique("mp"), unique("mp2"), unique("x")
    await client.call(subjects.PROJECTS_CREATE, {"name": old})
    await client.call(subjects.PROFILES_CREATE, {"name": profile}, project=old)
    await client.call(
        subjects.PROFILES_UPDATE,
        {"name": profile, "mode": "patch", "fields": ["config"], "config": {"user.a": "1"}},
        project=old,
        requestor="erin",
    )
    await client.call(subjects.PROFILES_DELETE, {"name": profile}, project=old)
    await client.call(subjects.PROJECTS_RENAME, {"name": old, "new_name": new})
    await client.call(subjects.PROJECTS_DELETE, {"name": new})

    by_new = await _history(client, "profile", profile, project=new)
    by_old = await _history(client, "profile", profile, project=old)
    assert by_new["object_id"] == by_old["object_id"]
    assert by_new["project"] == new and by_new["state"] is None
    assert [e["type"] for e in by_new["events"]] == [
        "profile-created",
        "profile-updated",
        "profile-deleted",
    ]
    # The payload names the project (as it was called then), not its internal id.
    created = by_new["events"][0]["payload"]
    assert created["project"] == old and "project_id" not in created
    assert by_new["events"][1]["requestor"] == "erin"
    past = await _history(
        client, "profile", profile, project=new, at_seq=by_new["events"][1]["seq"]
    )
    assert past["state"]["config"] == {"user.a": "1"}
    # The project's own default profile, and the project itself, by either name.
    default = await _history(client, "profile", "default", project=old)
    assert default["events"][-1]["type"] == "profile-deleted"
    gone = await _history(client, "project", old)
    assert [e["type"] for e in gone["events"]][-2:] == ["project-renamed", "project-deleted"]
    assert gone["name"] == new and gone["project"] is None
    assert (await _history(client, "project", new))["object_id"] == gone["object_id"]

    # A new project taking the old name does not hide the former one's objects.
    await client.call(subjects.PROJECTS_CREATE, {"name": old})
    again = await _history(client, "profile", profile, project=old)
    assert again["object_id"] == by_new["object_id"]
    projects = await _history(client, "project", old)
    assert projects["object_id"] != gone["object_id"] and len(projects["holders"]) == 2
    await client.call(subjects.PROJECTS_DELETE, {"name": old})


async def test_the_names_of_a_kind_in_a_project(client):
    project, profile = unique("lp"), unique("lprof")
    await client.call(subjects.PROJECTS_CREATE, {"name": project})
    await client.call(subjects.PROFILES_CREATE, {"name": profile}, project=project)
    await client.call(subjects.PROFILES_DELETE, {"name": profile}, project=project)

    urls = await client.call(subjects.HISTORY_LIST, {"kind": "profile"}, project)
    assert urls == [
        f"/1.0/history/profile/default?project={project}",
        f"/1.0/history/profile/{profile}?project={project}",
    ]
    listed = await client.call(subjects.HISTORY_LIST, {"kind": "profile", "recursion": 1}, project)
    entry = next(n for n in listed if n["name"] == profile)
    assert [h["deleted"] for h in entry["holders"]] == [True]
    assert entry["holders"][0]["project"] == project
    projects = await client.call(subjects.HISTORY_LIST, {"kind": "project"})
    assert "/1.0/history/project/default" in projects
    assert f"/1.0/history/project/{project}" in projects
    assert await client.call(subjects.HISTORY_LIST, {"kind": "instance"}, project) == []
    with pytest.raises(NotFound, match="Project not found"):
        await client.call(subjects.HISTORY_LIST, {"kind": "profile"}, unique("never"))
    with pytest.raises(BadRequest, match="Unknown kind"):
        await client.call(subjects.HISTORY_LIST, {"kind": "network"})
    await client.call(subjects.PROJECTS_DELETE, {"name": project})
