"""Racing writers and replicas: the log decides, exactly once, and nothing is lost."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from stack import NatsServer, short_tempdir
from test_catalog_support import Client, Instance, unique

from schemas import events, subjects
from schemas.catalog import UpdateProfile
from schemas.errors import Conflict, PreconditionFailed
from schemas.messages import RequestMeta
from services.instance.catalog.meta import default_profile_id, default_project_id
from services.instance.catalog.profile_handlers import ProfileHandlers

pytestmark = pytest.mark.timeout(180)


class NoNetworks:
    """The profiles here have no network nics: nothing to ask a network service."""

    async def missing_networks(self, names: object) -> set[str]:
        return set()


@pytest.fixture(scope="module")
async def replicas(nats_server, tmp_path_factory):
    one = await Instance(nats_server.url, tmp_path_factory.mktemp("r1"), node="node1").start()
    two = await Instance(nats_server.url, tmp_path_factory.mktemp("r2"), node="node2").start()
    yield one, two
    await one.stop()
    await two.stop()


@pytest.fixture(scope="module")
async def client(nats_server, replicas):
    client = await Client.open(nats_server.url)
    yield client
    await client.close()


async def _events_of(client: Client, name: str, project: str = "default") -> list:
    """Every stored event of the profile currently called ``name``."""
    history = await client.call(subjects.HISTORY, {"kind": "profile", "name": name}, project)
    return history["events"]


async def test_if_match_puts_racing_in_one_process_have_one_winner(client, replicas):
    name = unique("race")
    etag = (await client.call(subjects.PROFILES_CREATE, {"name": name}))["etag"]
    handlers = ProfileHandlers(replicas[0].catalog, NoNetworks())
    # Called directly, both decide on the same state before either appends: the append with
    # the expected sequence is what tells them apart.
    results = await asyncio.gather(
        *(
            handlers.update(
                UpdateProfile(name=name, description=f"writer {i}"),
                RequestMeta(if_match=etag, requestor=f"w{i}"),
            )
            for i in range(4)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, PreconditionFailed) for r in results if r not in winners)
    updates = [e for e in await _events_of(client, name) if e["type"] == events.PROFILE_UPDATED]
    assert len(updates) == 1
    winner = winners[0][0]["object"]["description"]
    assert (await client.profile(name))["object"]["description"] == winner


async def test_if_match_puts_racing_on_two_replicas_have_one_winner(client):
    name = unique("race2")
    etag = (await client.call(subjects.PROFILES_CREATE, {"name": name}))["etag"]
    results = await asyncio.gather(
        *(
            client.call(
                subjects.PROFILES_UPDATE,
                {"name": name, "description": f"writer {i}"},
                if_match=etag,
            )
            for i in range(6)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, PreconditionFailed) for r in results if isinstance(r, Exception))
    updates = [e for e in await _events_of(client, name) if e["type"] == events.PROFILE_UPDATED]
    assert len(updates) == 1


async def test_unconditional_patches_all_land(client, replicas):
    name = unique("merge")
    await client.call(subjects.PROFILES_CREATE, {"name": name})
    handlers = ProfileHandlers(replicas[1].catalog, NoNetworks())
    direct = [
        handlers.update(
            UpdateProfile(name=name, mode="patch", fields=["config"], config={f"user.d{i}": "1"}),
            RequestMeta(),
        )
        for i in range(4)
    ]
    over_bus = [
        client.call(
            subjects.PROFILES_UPDATE,
            {"name": name, "mode": "patch", "fields": ["config"], "config": {f"user.b{i}": "1"}},
        )
        for i in range(4)
    ]
    await asyncio.gather(*direct, *over_bus)
    config = (await client.profile(name))["object"]["config"]
    assert config == {
        **{f"user.d{i}": "1" for i in range(4)},
        **{f"user.b{i}": "1" for i in range(4)},
    }
    updates = [e for e in await _events_of(client, name) if e["type"] == events.PROFILE_UPDATED]
    assert len(updates) == 8


async def test_concurrent_creates_of_one_name_have_one_winner(client):
    name = unique("twin")
    results = await asyncio.gather(
        *(client.call(subjects.PROFILES_CREATE, {"name": name}) for _ in range(6)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))
    created = [
        e
        async for e in client.store.replay(subjects.aggregate_events("profile"))
        if e.event.type == events.PROFILE_CREATED and e.event.payload["name"] == name
    ]
    assert len(created) == 1


async def test_concurrent_project_creates_of_one_name_have_one_winner(client):
    name = unique("twinproj")
    results = await asyncio.gather(
        *(client.call(subjects.PROJECTS_CREATE, {"name": name}) for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert await client.profiles(name) == ["default"]


async def test_two_replicas_share_requests_without_duplicates(client):
    names = [unique("shared") for _ in range(24)]
    await asyncio.gather(*(client.call(subjects.PROFILES_CREATE, {"name": n}) for n in names))
    created = [
        e.event
        async for e in client.store.replay(subjects.aggregate_events("profile"))
        if e.event.type == events.PROFILE_CREATED and e.event.payload["name"] in names
    ]
    assert sorted(e.payload["name"] for e in created) == sorted(names)
    # Queue groups spread the load: both replicas handled some (2**-23 odds against).
    assert {e.node for e in created} == {"node1", "node2"}
    listed = set(await client.profiles())
    assert set(names) <= listed


async def test_replicas_starting_together_on_a_fresh_log_create_defaults_once(tmp_path):
    root = short_tempdir("nats-fresh-")
    server = NatsServer(root / "jetstream")
    server.start()
    replicas = [Instance(server.url, tmp_path / f"r{i}", node=f"n{i}") for i in range(3)]
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        client = await Client.open(server.url)
        try:
            project = await client.store.load(subjects.event("project", default_project_id()))
            profile = await client.store.load(
                subjects.event("profile", default_profile_id(default_project_id()))
            )
            assert [e.event.type for e in project] == [events.PROJECT_CREATED]
            assert [e.event.type for e in profile] == [events.PROFILE_CREATED]
            assert await client.profiles() == ["default"]
            assert await client.call(subjects.PROJECTS_LIST, {}) == ["default"]
        finally:
            await client.close()
    finally:
        for replica in replicas:
            await replica.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
