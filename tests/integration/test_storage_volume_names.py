"""Container volumes under their instances' names, in-process on a real nats-server: the
storage service learns who owns a volume from the instance and project events in the log
(appended here as the instance service would), never by asking the instance service.

Volumes are made directly with the pool's driver (a tiny image volume, then clones named
after the instances' host names); each test runs its own node.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from schemas import subjects
from schemas.client import Bus
from schemas.errors import BadRequest, NotFound
from schemas.messages import RequestMeta
from services.common.eventstore import EventStore
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings
from services.instance.catalog import project as proj
from services.instance.catalog.state import ProjectState
from services.instance.instances import aggregate as inst
from services.instance.instances.state import InstanceState
from services.storage.pools.handlers import Pools
from services.storage.service import NAME, setup

pytestmark = pytest.mark.timeout(120)

FINGERPRINT = uuid.uuid4().hex * 2


class Node:
    """One storage service for a fresh node name, a client asking it, and the log."""

    def __init__(self, nats_url: str, warren_dir: Path, bus: Bus) -> None:
        self.dir = warren_dir
        self.name = f"n{uuid.uuid4().hex[:10]}"
        self.bus = bus
        self.store = EventStore(bus.js)
        self.settings = Settings(warren_dir=warren_dir, nats_url=nats_url, node=self.name)
        self.runtime: ServiceRuntime | None = None
        self.pools: Pools | None = None
        self.seqs: dict[str, int] = {}

    async def start(self) -> Node:
        self.runtime = ServiceRuntime(NAME, self.settings, scope="node")
        await self.runtime.connect()
        self.pools = await setup(self.runtime)
        await self.runtime.start()
        return self

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None

    async def call(self, verb: str, project: str = "default", **body: Any) -> Any:
        meta = RequestMeta(requestor="tester", project=project)
        return await self.bus.request(subjects.storage(verb, self.name), body, meta, timeout=60)

    async def record(self, decided: list[Any]) -> None:
        """Append an aggregate's events as its owner would (expected sequence and all)."""
        aggregate_id = decided[0].aggregate_id
        self.seqs[aggregate_id] = await self.store.append(
            decided, expected_seq=self.seqs.get(aggregate_id, 0)
        )

    async def volumes(self, project: str = "default") -> list[dict[str, Any]]:
        found = await self.call(
            subjects.STORAGE_VOLUME_LIST, project, pool="default", type="container", recursion=1
        )
        return sorted(found, key=lambda v: (v["name"], v["project"]))

    async def volume(self, name: str, project: str = "default") -> dict[str, Any]:
        return await self.call(
            subjects.STORAGE_VOLUME_GET, project, pool="default", type="container", name=name
        )

    async def used_by(self) -> list[str]:
        return (await self.call(subjects.STORAGE_POOL_GET, name="default"))["object"]["used_by"]

    async def make_volume(self, host_name: str) -> None:
        assert self.pools is not None
        state = self.pools.projection.pool(self.name, "default")
        assert state is not None
        driver = await self.pools.host.mounted(state)
        if not (self.dir / "storage-pools" / "default" / "images" / FINGERPRINT).exists():
            async with driver.build_image_volume(FINGERPRINT) as path:
                (path / "rootfs").mkdir()
        await driver.create_instance_volume(host_name, FINGERPRINT, None)


@pytest.fixture
async def bus(nats_server):
    bus = await Bus.open(nats_server.url, "storage-volume-names-test")
    yield bus
    await bus.close()


@pytest.fixture
async def node(nats_server, tmp_path, bus):
    node = Node(nats_server.url, tmp_path / "warren", bus)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def new_instance(node: Node, name: str, project: ProjectState | None = None) -> InstanceState:
    return InstanceState(
        id=str(uuid.uuid4()),
        project_id=project.id if project else "default-project",
        name=name,
        node=node.name,
        host_name=f"w-{uuid.uuid4().hex}",
        pool="default",
        image=FINGERPRINT,
    )


async def create(node: Node, state: InstanceState, project: str = "default") -> InstanceState:
    decided = inst.decide(None, inst.Create(state=state, project=project))
    await node.record(decided)
    await node.make_volume(state.host_name)
    new = inst.evolve(None, decided[0])
    assert new is not None
    return new


async def test_volumes_follow_their_instances_create_rename_and_delete(node):
    c1 = await create(node, new_instance(node, "c1"))
    leftover = f"w-{uuid.uuid4().hex}"
    await node.make_volume(leftover)
    listed = await node.volumes()
    assert [(v["name"], v["project"], v["used_by"]) for v in listed] == [
        ("c1", "default", ["/1.0/instances/c1"]),
        (leftover, "default", [f"/1.0/instances/{leftover}"]),
    ]
    assert (await node.volume("c1"))["name"] == "c1"
    assert (await node.volume(c1.host_name))["name"] == "c1"
    assert (await node.volume(leftover))["name"] == leftover
    used = await node.used_by()
    assert "/1.0/instances/c1" in used and f"/1.0/instances/{leftover}" in used
    assert f"/1.0/images/{FINGERPRINT}" in used
    # The names-only listing shows LXD names too; the instance service's own query gives
    # the host names it reconciles against.
    names = await node.call(subjects.STORAGE_VOLUME_LIST, pool="default", type="container")
    assert sorted(names) == sorted(["container/c1", f"container/{leftover}"])
    hosts = await node.call(subjects.STORAGE_INSTANCE_VOLUME_LIST, pool="default")
    assert hosts == sorted([c1.host_name, leftover])

    renamed = inst.decide(c1, inst.Rename("default", "web1"))
    await node.record(renamed)
    assert [v["name"] for v in await node.volumes()] == [leftover, "web1"]
    assert (await node.volume("web1"))["used_by"] == ["/1.0/instances/web1"]
    with pytest.raises(NotFound, match="Storage volume not found"):
        await node.volume("c1")
    assert "/1.0/instances/web1" in await node.used_by()

    # A restart restores the names from the snapshot (and the log after it).
    await node.stop()
    await node.start()
    assert [v["name"] for v in await node.volumes()] == [leftover, "web1"]

    state = inst.evolve(c1, renamed[0])
    assert state is not None
    await node.record(inst.decide(state, inst.Delete("default")))
    # The volume outlives the instance's event here: it is a leftover again.
    assert [v["name"] for v in await node.volumes()] == sorted([leftover, c1.host_name])


async def test_an_instance_of_another_project_is_shown_with_its_project(node):
    decided = proj.decide(None, proj.CreateProject(id=str(uuid.uuid4()), name=f"p{node.name}"))
    await node.record(decided)
    project = proj.evolve(None, decided[0])
    assert project is not None
    await create(node, new_instance(node, "c1", project), project.name)
    await create(node, new_instance(node, "c1"))
    listed = await node.volumes(project.name)
    assert [(v["name"], v["project"], v["used_by"][0]) for v in listed] == sorted(
        [
            ("c1", "default", "/1.0/instances/c1"),
            ("c1", project.name, f"/1.0/instances/c1?project={project.name}"),
        ]
    )
    assert (await node.volume("c1", project.name))["project"] == project.name
    assert (await node.volume("c1"))["project"] == "default"
    assert f"/1.0/instances/c1?project={project.name}" in await node.used_by()


async def test_usage_of_many_volumes_and_one_volumes_state(node):
    c1 = await create(node, new_instance(node, "c1"))
    c2 = await create(node, new_instance(node, "c2"))
    root = node.dir / "storage-pools" / "default" / "containers" / c1.host_name / "upper"
    (root / "written").write_bytes(b"x" * 100_000)

    def ref(name: str, pool: str = "default") -> dict[str, str]:
        return {"pool": pool, "name": name}

    asked = [ref(c1.host_name), ref(c2.host_name), ref("w-missing"), ref(c1.host_name, "nope")]
    got = await node.call(subjects.STORAGE_INSTANCE_VOLUME_USAGE, volumes=asked)
    usage = {(v["pool"], v["name"]): (v["used"], v["total"]) for v in got["volumes"]}
    # Missing volumes and unknown pools are left out, not errors.
    assert set(usage) == {("default", c1.host_name), ("default", c2.host_name)}
    assert usage["default", c1.host_name][0] >= 100_000 and usage["default", c1.host_name][1] == 0
    assert usage["default", c2.host_name] == (0, 0)
    every = await node.call(subjects.STORAGE_INSTANCE_VOLUME_USAGE)  # volumes: None
    assert {v["name"] for v in every["volumes"]} == {c1.host_name, c2.host_name}
    with pytest.raises(BadRequest, match="Invalid volume name"):
        await node.call(subjects.STORAGE_INSTANCE_VOLUME_USAGE, volumes=[ref("../x")])

    def state(name: str, volume_type: str = "container") -> Any:
        return node.call(subjects.STORAGE_VOLUME_STATE, pool="default", type=volume_type, name=name)

    expected = {"usage": {"used": usage["default", c1.host_name][0], "total": 0}}
    assert await state("c1") == expected  # by its LXD name
    assert await state(c1.host_name) == expected
    with pytest.raises(NotFound, match="Storage volume not found"):
        await state("nope")
    with pytest.raises(BadRequest, match='Invalid storage volume type "image"'):
        await state(FINGERPRINT, "image")
    with pytest.raises(BadRequest, match="Invalid storage volume type"):
        await state("c1", "bogus")
