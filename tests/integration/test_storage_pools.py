"""The storage service in-process on a real nats-server: the default pool, pool CRUD with
the host effects, bad input, volumes, and what a restart finds on the host.

Each test runs its own node (a fresh node name and WARREN_DIR), so the session's shared log
never mixes their pools.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from schemas import subjects
from schemas.client import Bus
from schemas.errors import BadRequest, Conflict, NotFound, PreconditionFailed, Unavailable
from schemas.messages import RequestMeta
from services.common.eventstore import EventStore
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings
from services.storage.pools import defaults
from services.storage.pools.handlers import Pools
from services.storage.pools.host import HostPools
from services.storage.pools.state import POOL, default_pool_id
from services.storage.service import NAME, setup

pytestmark = pytest.mark.timeout(120)

FINGERPRINT = hashlib.sha256(b"storage service test image").hexdigest()


class Storage:
    """One storage service process for ``node``, started in the test's event loop."""

    def __init__(self, nats_url: str, warren_dir: Path, node: str) -> None:
        self.settings = Settings(warren_dir=warren_dir, nats_url=nats_url, node=node)
        self.runtime = ServiceRuntime(NAME, self.settings, scope="node")
        self.pools: Pools | None = None

    async def start(self) -> Storage:
        await self.runtime.connect()
        self.pools = await setup(self.runtime)
        await self.runtime.start()
        return self

    async def stop(self) -> None:
        await self.runtime.stop()


class Node:
    """A node's directory and name, its running service, and a client asking it."""

    def __init__(self, nats_url: str, warren_dir: Path, bus: Bus) -> None:
        self.nats_url = nats_url
        self.dir = warren_dir
        self.name = f"n{uuid.uuid4().hex[:10]}"
        self.bus = bus
        self.service: Storage | None = None

    async def start(self) -> Storage:
        self.service = await Storage(self.nats_url, self.dir, self.name).start()
        return self.service

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()
            self.service = None

    async def call(self, verb: str, body: dict[str, Any], if_match: str | None = None) -> Any:
        meta = RequestMeta(requestor="tester", if_match=if_match)
        return await self.bus.request(subjects.storage(verb, self.name), body, meta, timeout=60)

    async def names(self) -> list[str]:
        return await self.call(subjects.STORAGE_POOL_LIST, {"recursion": 0})

    async def get(self, name: str) -> dict[str, Any]:
        return await self.call(subjects.STORAGE_POOL_GET, {"name": name})

    async def create(self, name: str, driver: str = "dir", **extra: Any) -> dict[str, Any]:
        body = {"name": name, "driver": driver, **extra}
        return await self.call(subjects.STORAGE_POOL_CREATE, body)

    async def delete(self, name: str) -> None:
        await self.call(subjects.STORAGE_POOL_DELETE, {"name": name})


@pytest.fixture
async def bus(nats_server):
    bus = await Bus.open(nats_server.url, "storage-test-client")
    yield bus
    await bus.close()


@pytest.fixture
async def node(nats_server, tmp_path, bus):
    node = Node(nats_server.url, tmp_path / "warren", bus)
    await node.start()
    yield node
    await node.stop()


async def test_first_start_makes_the_default_dir_pool_once(node, bus):
    assert await node.names() == ["default"]
    got = await node.get("default")
    source = node.dir / "storage-pools" / "default"
    assert got["object"]["driver"] == "dir" and got["object"]["status"] == "Created"
    assert got["object"]["config"] == {"source": str(source)}
    assert (source / "images").is_dir() and (source / "containers").is_dir()
    assert len(got["etag"]) == 64
    # A restart and two more processes racing for it: still the one pool, one event.
    await node.stop()
    store = EventStore(bus.js)
    await asyncio.gather(
        *(defaults.ensure_default_pool(store, HostPools(node.dir), node.name) for _ in range(2))
    )
    await node.start()
    assert await node.names() == ["default"]
    created = await store.load(subjects.event(POOL, default_pool_id(node.name)))
    assert [s.event.type for s in created] == ["storage-pool-created"]


async def test_create_show_update_delete_a_dir_pool(node):
    made = await node.create("p1", description="mine", config={"user.a": "1"})
    source = node.dir / "storage-pools" / "p1"
    assert made["object"]["config"] == {"source": str(source), "user.a": "1"}
    assert made["object"]["description"] == "mine" and (source / "images").is_dir()
    assert await node.names() == ["default", "p1"]

    etag = (await node.get("p1"))["etag"]
    patch = {"name": "p1", "mode": "patch", "config": {"user.b": "2"}, "fields": ["config"]}
    await node.call(subjects.STORAGE_POOL_UPDATE, patch, if_match=etag)
    got = await node.get("p1")
    assert got["object"]["config"] == {"source": str(source), "user.a": "1", "user.b": "2"}
    with pytest.raises(PreconditionFailed):
        await node.call(subjects.STORAGE_POOL_UPDATE, patch, if_match=etag)
    put = {"name": "p1", "description": "new", "config": {"source": "/elsewhere"}}
    with pytest.raises(BadRequest, match='"source" cannot be changed'):
        await node.call(subjects.STORAGE_POOL_UPDATE, put)
    assert (await node.get("p1"))["etag"] == got["etag"]  # nothing changed

    await node.delete("p1")
    assert await node.names() == ["default"]
    assert not source.exists()
    with pytest.raises(NotFound, match="Storage pool not found"):
        await node.get("p1")
    with pytest.raises(NotFound):
        await node.delete("p1")
    # The name was released with the pool.
    await node.create("p1")
    await node.delete("p1")


async def test_bad_input_is_refused_and_changes_nothing(node):
    before = sorted(p.name for p in (node.dir / "storage-pools").iterdir())
    cases = [
        ({"name": "p", "driver": "zfs"}, BadRequest, "Unknown driver"),
        ({"name": "p", "driver": ""}, BadRequest, "No driver provided"),
        ({"name": "", "driver": "dir"}, BadRequest, "No name provided"),
        ({"name": "a/b", "driver": "dir"}, BadRequest, "may not contain slashes"),
        ({"name": "p", "driver": "dir", "config": {"x": "1"}}, BadRequest, 'Invalid option "x"'),
        ({"name": "default", "driver": "dir"}, Conflict, "Storage pool already exists"),
    ]
    for body, error, message in cases:
        with pytest.raises(error, match=message):
            await node.call(subjects.STORAGE_POOL_CREATE, body)
    outside = node.dir / "not-empty"
    (outside / "data").mkdir(parents=True)
    with pytest.raises(BadRequest, match="not an empty directory"):
        await node.create("p", config={"source": str(outside)})
    assert (outside / "data").is_dir()
    assert await node.names() == ["default"]
    assert sorted(p.name for p in (node.dir / "storage-pools").iterdir()) == before
    # The refused names are free.
    await node.create("p")
    await node.delete("p")


async def test_a_failed_append_undoes_the_host_change(node, monkeypatch):
    store = node.service.pools.store  # type: ignore[union-attr]
    real_append = store.append

    async def failing(events, expected_seq):
        if events and events[0].type == "storage-pool-created":
            raise Unavailable("event log refused the append: test")
        return await real_append(events, expected_seq)

    monkeypatch.setattr(store, "append", failing)
    with pytest.raises(Unavailable):
        await node.create("half")
    assert not (node.dir / "storage-pools" / "half").exists()
    monkeypatch.setattr(store, "append", real_append)
    await node.create("half")  # name released, nothing left in the way
    await node.delete("half")


async def test_volumes_are_listed_and_keep_the_pool(node):
    await node.create("vols")
    state = node.service.pools.projection.pool(node.name, "vols")  # type: ignore[union-attr]
    driver = node.service.pools.host.driver(state)  # type: ignore[union-attr]
    async with driver.build_image_volume(FINGERPRINT) as path:
        (path / "rootfs").mkdir()
        (path / "rootfs" / "file").write_text("x" * 1000)
    listed = await node.call(subjects.STORAGE_VOLUME_LIST, {"pool": "vols"})
    assert listed == [f"image/{FINGERPRINT}"]
    assert (
        await node.call(subjects.STORAGE_VOLUME_LIST, {"pool": "vols", "type": "container"}) == []
    )
    one = await node.call(
        subjects.STORAGE_VOLUME_GET, {"pool": "vols", "type": "image", "name": FINGERPRINT}
    )
    assert one["name"] == FINGERPRINT and one["type"] == "image"
    assert one["used_by"] == [f"/1.0/images/{FINGERPRINT}"]
    with pytest.raises(NotFound, match="Storage volume not found"):
        await node.call(subjects.STORAGE_VOLUME_GET, {"pool": "vols", "type": "image", "name": "x"})
    assert (await node.get("vols"))["object"]["used_by"] == [f"/1.0/images/{FINGERPRINT}"]
    with pytest.raises(BadRequest, match="The storage pool is currently in use"):
        await node.delete("vols")
    assert "vols" in await node.names()
    resources = await node.call(subjects.STORAGE_POOL_RESOURCES, {"name": "vols"})
    assert 0 < resources["space"]["used"] <= resources["space"]["total"]
    await driver.delete_image_volume(FINGERPRINT)
    await node.delete("vols")


async def test_restart_remounts_pools_and_reports_a_missing_one(node, tmp_path, caplog):
    kept = tmp_path / "kept"
    lost = tmp_path / "lost"
    await node.create("kept", config={"source": str(kept)})
    await node.create("lost", config={"source": str(lost)})
    await node.stop()
    shutil.rmtree(lost)
    with caplog.at_level(logging.WARNING):
        service = await node.start()
        await service.runtime.projections[0].barrier()
        await node.names()  # a request waits for nothing; the reconcile runs on its own
        lost_view = (await node.get("lost"))["object"]
    assert lost_view["status"] == "Unavailable"
    assert (await node.get("kept"))["object"]["status"] == "Created"
    assert any("storage pool lost is unavailable" in r.getMessage() for r in caplog.records)
    with pytest.raises(Unavailable):
        await node.call(subjects.STORAGE_VOLUME_LIST, {"pool": "lost"})
    # An unavailable pool can still be deleted (there is nothing left on the host).
    await node.delete("lost")
    await node.delete("kept")
    assert await node.names() == ["default"]
