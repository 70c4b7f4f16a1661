"""Projects through the instance service: LXD's defaults, features.profiles, renames (as an
LXD operation recorded in the log) and the rules on non-empty projects."""

from __future__ import annotations

import pytest
from test_catalog_support import Client, Instance, unique

from schemas import events, subjects
from schemas.errors import BadRequest, Conflict, Forbidden, NotFound

pytestmark = pytest.mark.timeout(120)

FEATURES = {
    "features.images": "true",
    "features.profiles": "true",
    "features.storage.volumes": "true",
}


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


async def test_default_project_always_exists_with_every_feature(client):
    got = (await client.project("default"))["object"]
    assert got["description"] == "Default LXD project"
    assert got["config"] == {**FEATURES, "features.networks": "true"}
    assert "/1.0/profiles/default" in got["used_by"]
    assert "default" in await client.call(subjects.PROJECTS_LIST, {})


async def test_new_project_gets_features_and_its_own_default_profile(client):
    name = unique("proj")
    created = await client.call(subjects.PROJECTS_CREATE, {"name": name, "description": "d"})
    assert created["object"] == {
        "name": name,
        "description": "d",
        "config": FEATURES,
        "used_by": [f"/1.0/profiles/default?project={name}"],
    }
    profile = (await client.profile("default", project=name))["object"]
    assert profile["description"] == f"Default LXD profile for project {name}"
    # A profile made in the project stays in the project.
    inside = unique("inside")
    await client.call(subjects.PROFILES_CREATE, {"name": inside}, project=name)
    assert await client.profiles(name) == ["default", inside]
    assert inside not in await client.profiles()
    listed = await client.call(subjects.PROJECTS_LIST, {"recursion": 1})
    assert any(p["name"] == name and len(p["used_by"]) == 2 for p in listed)


async def test_project_without_profiles_uses_the_default_projects(client):
    name = unique("shared")
    await client.call(
        subjects.PROJECTS_CREATE, {"name": name, "config": {"features.profiles": "false"}}
    )
    assert (await client.project(name))["object"]["used_by"] == []
    assert await client.profiles(name) == await client.profiles()
    made = unique("lands-in-default")
    await client.call(subjects.PROFILES_CREATE, {"name": made}, project=name)
    assert made in await client.profiles()
    # Switching the feature on (the project is empty) gives it its own default profile ...
    await client.call(
        subjects.PROJECTS_UPDATE,
        {
            "name": name,
            "mode": "patch",
            "fields": ["config"],
            "config": {"features.profiles": "true"},
        },
    )
    assert await client.profiles(name) == ["default"]
    # ... and off again removes it.
    await client.call(
        subjects.PROJECTS_UPDATE,
        {
            "name": name,
            "mode": "patch",
            "fields": ["config"],
            "config": {"features.profiles": "false"},
        },
    )
    assert made in await client.profiles(name)


async def test_features_of_non_empty_and_default_projects_are_kept(client):
    name = unique("busy")
    await client.call(subjects.PROJECTS_CREATE, {"name": name})
    await client.call(subjects.PROFILES_CREATE, {"name": "p"}, project=name)
    before = await client.last_seq()
    with pytest.raises(BadRequest, match="cannot be disabled on non-empty projects"):
        await client.call(subjects.PROJECTS_UPDATE, {"name": name, "description": "x"})
    with pytest.raises(BadRequest, match="You can't change the features of the default project"):
        await client.call(subjects.PROJECTS_UPDATE, {"name": "default", "config": {}})
    assert await client.last_seq() == before


async def test_delete_needs_an_empty_project_and_takes_its_default_profile(client):
    name = unique("gone")
    await client.call(subjects.PROJECTS_CREATE, {"name": name})
    await client.call(subjects.PROFILES_CREATE, {"name": "p"}, project=name)
    with pytest.raises(Conflict, match="Only empty projects can be removed"):
        await client.call(subjects.PROJECTS_DELETE, {"name": name})
    await client.call(subjects.PROFILES_DELETE, {"name": "p"}, project=name)
    assert await client.call(subjects.PROJECTS_DELETE, {"name": name}) is None
    with pytest.raises(NotFound, match="Project not found"):
        await client.project(name)
    with pytest.raises(NotFound, match=f'Failed loading project "{name}"'):
        await client.profiles(name)
    # The name is free again, for a new project with a new default profile.
    again = await client.call(subjects.PROJECTS_CREATE, {"name": name})
    assert again["object"]["used_by"] == [f"/1.0/profiles/default?project={name}"]


async def test_default_project_cannot_be_deleted_or_renamed(client):
    with pytest.raises(Forbidden, match="The 'default' project cannot be deleted"):
        await client.call(subjects.PROJECTS_DELETE, {"name": "default"})
    with pytest.raises(Forbidden, match="The 'default' project cannot be renamed"):
        await client.call(subjects.PROJECTS_RENAME, {"name": "default", "new_name": "x"})


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        ({"name": "a b"}, BadRequest, "spaces"),
        ({"name": "a_b"}, BadRequest, "underscores"),
        ({"name": "*"}, BadRequest, "Reserved project name"),
        ({"name": "x", "config": {"foo": "1"}}, BadRequest, 'configuration key "foo"'),
        ({"name": "x", "config": {"features.profiles": "maybe"}}, BadRequest, "boolean"),
        ({"name": "default"}, Conflict, "already exists"),
        ({}, BadRequest, "No name provided"),
        ({"name": "x", "config": {"features.networks": "true"}}, BadRequest, "not supported"),
        ({"name": "x", "config": {"limits.memory": "1GB"}}, BadRequest, "not supported"),
        ({"name": "x", "config": {"restricted": "true"}}, BadRequest, "not supported"),
    ],
)
async def test_bad_project_creates_append_nothing(client, body, error, message):
    before = await client.last_seq()
    with pytest.raises(error, match=message):
        await client.call(subjects.PROJECTS_CREATE, body)
    assert await client.last_seq() == before


async def test_a_rename_without_a_name_is_refused_at_once(client):
    name = unique("keep")
    await client.call(subjects.PROJECTS_CREATE, {"name": name})
    before = await client.last_seq()
    with pytest.raises(BadRequest, match="No name provided"):
        await client.call(subjects.PROJECTS_RENAME, {"name": name, "new_name": ""})
    assert await client.last_seq() == before


async def test_rename_is_an_operation_recorded_in_the_log(client):
    old, new = unique("old"), unique("new")
    await client.call(subjects.PROJECTS_CREATE, {"name": old})
    await client.call(subjects.PROFILES_CREATE, {"name": "keep"}, project=old)
    with pytest.raises(Conflict, match="Only empty projects can be renamed"):
        await client.call(subjects.PROJECTS_RENAME, {"name": old, "new_name": new})
    await client.call(subjects.PROFILES_DELETE, {"name": "keep"}, project=old)

    reply = await client.reply(subjects.PROJECTS_RENAME, {"name": old, "new_name": new})
    op = reply.unwrap()["operation"]
    assert op["description"] == "Renaming project" and op["class"] == "task"
    assert (op["status"], op["status_code"], op["err"]) == ("Success", 200, "")
    logged = await client.store.load(subjects.operation(op["id"]))
    assert [e.event.type for e in logged] == [events.OPERATION_CREATED, events.OPERATION_UPDATED]
    assert logged[0].event.payload["status_code"] == 103
    assert logged[-1].event.payload == op and logged[-1].seq <= reply.seq

    assert (await client.project(new))["object"]["used_by"] == [
        f"/1.0/profiles/default?project={new}"
    ]
    with pytest.raises(NotFound):
        await client.project(old)
    # The old name is free; the new one is taken.
    await client.call(subjects.PROJECTS_CREATE, {"name": old})
    with pytest.raises(Conflict, match=f'A project named "{new}" already exists'):
        await client.call(subjects.PROJECTS_RENAME, {"name": old, "new_name": new})
