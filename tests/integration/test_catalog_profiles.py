"""Profiles through the instance service on a real nats-server, as the gateway asks for them."""

from __future__ import annotations

import pytest
from test_catalog_support import Client, Instance, unique

from schemas import subjects
from schemas.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
)

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


async def test_default_profile_always_exists(client):
    got = await client.profile("default")
    assert got["object"] == {
        "name": "default",
        "description": "Default LXD profile",
        "config": {},
        "devices": {},
        "used_by": [],
    }
    assert len(got["etag"]) == 64
    assert "default" in await client.profiles()


async def test_create_list_get_put_patch_rename_delete(client):
    name = unique("web")
    created = await client.call(
        subjects.PROFILES_CREATE,
        {
            "name": name,
            "description": "d0",
            "config": {"limits.cpu": "2", "user.a": "1"},
            "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}},
        },
    )
    assert created["object"]["config"] == {"limits.cpu": "2", "user.a": "1"}
    assert name in await client.profiles()
    objects = await client.call(subjects.PROFILES_LIST, {"recursion": 1})
    assert created["object"] in objects
    got = await client.profile(name)
    assert got == created

    put = await client.call(
        subjects.PROFILES_UPDATE,
        {"name": name, "mode": "put", "description": "x", "config": {"user.b": "2"}},
    )
    assert put["object"]["description"] == "x"
    assert put["object"]["config"] == {"user.b": "2"} and put["object"]["devices"] == {}
    assert put["etag"] != got["etag"]

    patch = await client.call(
        subjects.PROFILES_UPDATE,
        {
            "name": name,
            "mode": "patch",
            "fields": ["config", "devices"],
            "config": {"user.c": "3", "user.b": ""},
            "devices": {"data": {"type": "disk", "source": "/srv", "path": "/srv"}},
        },
    )
    assert patch["object"]["description"] == "x"
    assert patch["object"]["config"] == {"user.c": "3"}
    assert patch["object"]["devices"] == {
        "data": {"type": "disk", "source": "/srv", "path": "/srv"}
    }
    assert await client.profile(name) == patch

    new = unique("api")
    assert await client.call(subjects.PROFILES_RENAME, {"name": name, "new_name": new}) is None
    with pytest.raises(NotFound, match="Profile not found"):
        await client.profile(name)
    assert (await client.profile(new))["object"]["config"] == {"user.c": "3"}
    # The old name is free again.
    await client.call(subjects.PROFILES_CREATE, {"name": name})

    assert await client.call(subjects.PROFILES_DELETE, {"name": new}) is None
    assert new not in await client.profiles()
    with pytest.raises(NotFound):
        await client.profile(new)


async def test_default_profile_cannot_be_deleted_or_renamed(client):
    with pytest.raises(Forbidden, match='The "default" profile cannot be deleted'):
        await client.call(subjects.PROFILES_DELETE, {"name": "default"})
    with pytest.raises(Forbidden, match='The "default" profile cannot be renamed'):
        await client.call(subjects.PROFILES_RENAME, {"name": "default", "new_name": "x"})
    assert "default" in await client.profiles()


@pytest.mark.parametrize(
    ("subject", "body", "error", "message"),
    [
        (subjects.PROFILES_CREATE, {"name": "a/b"}, BadRequest, "slashes"),
        (subjects.PROFILES_CREATE, {"name": ""}, BadRequest, "No name provided"),
        (subjects.PROFILES_CREATE, {"name": "k", "config": {"foo": "1"}}, BadRequest,
         "Unknown configuration key: foo"),
        (subjects.PROFILES_CREATE, {"name": "k", "config": {"limits.cpu": 2}}, BadRequest,
         "config.limits.cpu"),
        (subjects.PROFILES_CREATE, {"name": "k", "devices": {"d": {"type": "nope"}}},
         BadRequest, "Unsupported device type"),
        (subjects.PROFILES_CREATE, {"name": "default"}, Conflict, "already exists"),
        (subjects.PROFILES_UPDATE, {"name": "default", "config": {"foo": "1"}}, BadRequest,
         "Unknown configuration key: foo"),
        (subjects.PROFILES_UPDATE, {"name": "nope", "config": {}}, NotFound,
         "Profile not found"),
        (subjects.PROFILES_DELETE, {"name": "nope"}, NotFound, "Profile not found"),
        (subjects.PROFILES_RENAME, {"name": "nope", "new_name": "x"}, NotFound,
         "Profile not found"),
        (subjects.PROFILES_GET, {"name": "default"}, None, None),
    ],
)  # fmt: skip
async def test_bad_requests_are_refused_and_append_nothing(client, subject, body, error, message):
    before = await client.last_seq()
    if error is None:
        await client.call(subject, body)
    else:
        with pytest.raises(error, match=message):
            await client.call(subject, body)
    assert await client.last_seq() == before


async def test_unknown_project_is_404(client):
    for subject, body in (
        (subjects.PROFILES_LIST, {}),
        (subjects.PROFILES_GET, {"name": "default"}),
        (subjects.PROFILES_CREATE, {"name": unique("p")}),
    ):
        with pytest.raises(NotFound, match='Failed loading project "nope": Project not found'):
            await client.call(subject, body, project="nope")


async def test_rename_onto_a_taken_name_is_a_conflict(client):
    a, b = unique("a"), unique("b")
    for name in (a, b):
        await client.call(subjects.PROFILES_CREATE, {"name": name})
    before = await client.last_seq()
    with pytest.raises(Conflict, match=f'Name "{b}" already in use'):
        await client.call(subjects.PROFILES_RENAME, {"name": a, "new_name": b})
    assert await client.last_seq() == before


async def test_if_match_guards_put_and_patch(client):
    name = unique("etag")
    created = await client.call(subjects.PROFILES_CREATE, {"name": name})
    before = await client.last_seq()
    for mode in ("put", "patch"):
        with pytest.raises(PreconditionFailed, match="ETag doesn't match"):
            await client.call(
                subjects.PROFILES_UPDATE,
                {"name": name, "mode": mode, "fields": ["description"], "description": "x"},
                if_match='"0000"',
            )
    assert await client.last_seq() == before
    updated = await client.call(
        subjects.PROFILES_UPDATE,
        {"name": name, "description": "x"},
        if_match=f'"{created["etag"]}"',
    )
    assert updated["object"]["description"] == "x"


async def test_events_carry_name_state_and_requestor(client):
    name, new = unique("ev"), unique("ev2")
    await client.call(subjects.PROFILES_CREATE, {"name": name, "config": {"user.a": "1"}})
    renamed = await client.reply(subjects.PROFILES_RENAME, {"name": name, "new_name": new})
    assert renamed.error is None
    stored = [
        e async for e in client.store.replay(subjects.aggregate_events("profile"), renamed.seq)
    ]
    event = stored[0].event
    assert event.type == "profile-renamed"
    assert event.payload["name"] == new and event.payload["old_name"] == name
    assert event.payload["config"] == {"user.a": "1"}
    assert event.project == "default" and event.requestor == "tester"
