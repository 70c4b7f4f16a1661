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
