"""A restarted instance service restores the whole catalog from the log alone, with or
without its projection snapshot, and repairs what a crash between two appends left."""

from __future__ import annotations

import pytest
from test_catalog_support import Client, Instance, unique

from schemas import subjects
from services.instance.catalog import defaults
from services.instance.catalog.meta import SYSTEM, default_profile_id
from services.instance.catalog.projection import CatalogProjection

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def client(nats_server):
    client = await Client.open(nats_server.url)
    yield client
    await client.close()


async def _populate(client: Client) -> tuple[str, str]:
    project, profile = unique("rp"), unique("rprof")
    await client.call(subjects.PROJECTS_CREATE, {"name": project, "config": {"user.x": "1"}})
    await client.call(
        subjects.PROFILES_CREATE,
        {"name": profile, "config": {"limits.memory": "1GiB"}},
        project=project,
    )
    renamed = unique("renamed")
    await client.call(subjects.PROFILES_RENAME, {"name": profile, "new_name": renamed}, project)
    return project, renamed


def _views(projection: CatalogProjection) -> dict:
    return {
        "projects": projection.projects,
        "profiles": projection.profiles,
        "by_name": (projection.project_by_name, projection.profile_by_name),
        "seqs": projection.seqs,
        "names": projection.names,
    }


async def test_restart_without_snapshot_replays_the_log(nats_server, tmp_path, client):
    first = await Instance(nats_server.url, tmp_path / "a").start()
    project, profile = await _populate(client)
    expected = await client.profile(profile, project)
    await first.catalog.fresh()
    before = _views(first.projection)
    await first.stop()

    fresh_dir = tmp_path / "b"  # no snapshot there: everything comes from the log
    second = await Instance(nats_server.url, fresh_dir).start()
    try:
        await second.catalog.fresh()
        assert _views(second.projection) == before
        assert await client.profile(profile, project) == expected
    finally:
        await second.stop()


async def test_restart_from_snapshot_then_the_rest_of_the_log(
    nats_server, tmp_path, client, monkeypatch
):
    first = await Instance(nats_server.url, tmp_path).start()
    project, profile = await _populate(client)
    await first.stop()  # writes the snapshot
    snapshot = tmp_path / "snapshots" / "instance" / "catalog.msgpack"
    assert snapshot.exists()

    # Written by another replica while this one is down: only the replay after the snapshot
    # can show it.
    late = await Instance(nats_server.url, tmp_path / "other").start()
    await client.call(
        subjects.PROFILES_UPDATE,
        {"name": profile, "mode": "patch", "fields": ["description"], "description": "late"},
        project=project,
    )
    await late.stop()

    folded: list[int] = []
    original = CatalogProjection.apply

    def counting(self, stored):
        folded.append(stored.seq)
        original(self, stored)

    monkeypatch.setattr(CatalogProjection, "apply", counting)
    second = await Instance(nats_server.url, tmp_path).start()
    try:
        got = await client.profile(profile, project)
        assert got["object"]["description"] == "late"
        assert got["object"]["config"] == {"limits.memory": "1GiB"}
        # The snapshot covered everything before the late update: only that one was folded.
        assert len(folded) == 1
    finally:
        await second.stop()


async def test_start_up_repairs_a_project_left_without_its_default_profile(
    nats_server, tmp_path, client
):
    service = await Instance(nats_server.url, tmp_path / "a").start()
    project = unique("torn")
    await client.call(subjects.PROJECTS_CREATE, {"name": project})
    project_id = service.projection.project(project).id
    await service.stop()
    # As if a crash had struck between the project's append and its profile's.
    await defaults.remove_default_profile(client.store, project_id, project, SYSTEM)
    last = await client.store.last(subjects.event("profile", default_profile_id(project_id)))
    assert last is not None and last.event.type == "profile-deleted"

    again = await Instance(nats_server.url, tmp_path / "b").start()
    try:
        assert await client.profiles(project) == ["default"]
    finally:
        await again.stop()
