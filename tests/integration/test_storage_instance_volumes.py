"""The storage service's volumes for instances, in-process on a real nats-server: image volumes
unpacked from a local blob store (unified and split busybox images), copy-on-write instance
volumes created, mounted (shifted for an unprivileged id map), unmounted and deleted, requests
that keep flowing while an image unpacks, and failures that leave nothing behind.

Each test runs its own node (a fresh node name, WARREN_DIR and blob directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_image_service_support import hostile_image, split_image

from schemas import storage as wire
from schemas import subjects
from schemas.client import Bus
from schemas.errors import BadRequest, Conflict, NotFound, WarrenError
from schemas.messages import RequestMeta
from services.common.blobs import LocalBlobStore
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings
from services.image.builders.busybox import build_busybox
from services.storage import mounts
from services.storage.drivers.dir import DirDriver
from services.storage.pools import image_volumes
from services.storage.pools.handlers import Pools
from services.storage.service import NAME, setup

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0, reason="storage volumes need root (mounts)"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
]

HOST_ROOT = 1_000_000
UNPRIVILEGED = {"host_base": HOST_ROOT, "count": 65536}


class Node:
    """One node: its WARREN_DIR, blob store, storage service and a client asking it."""

    def __init__(self, nats_url: str, warren_dir: Path, bus: Bus) -> None:
        self.dir = warren_dir
        self.name = f"n{uuid.uuid4().hex[:10]}"
        self.bus = bus
        self.blobs = LocalBlobStore(warren_dir / "blobs")
        self.settings = Settings(warren_dir=warren_dir, nats_url=nats_url, node=self.name)
        self.runtime: ServiceRuntime | None = None
        self.pools: Pools | None = None

    async def start(self) -> Node:
        self.runtime = ServiceRuntime(NAME, self.settings, scope="node")
        await self.runtime.connect()
        self.pools = await setup(self.runtime, blobs=self.blobs)
        await self.runtime.start()
        return self

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None

    async def call(self, verb: str, **body: Any) -> Any:
        meta = RequestMeta(requestor="tester")
        return await self.bus.request(subjects.storage(verb, self.name), body, meta, timeout=120)

    async def ensure(self, fingerprint: str, pool: str = "default") -> dict[str, Any]:
        return await self.call(
            subjects.STORAGE_IMAGE_VOLUME_ENSURE, pool=pool, fingerprint=fingerprint
        )

    async def create(
        self, name: str, fingerprint: str, idmap: dict[str, int] | None = None, pool="default"
    ) -> None:
        verb = subjects.STORAGE_INSTANCE_VOLUME_CREATE
        assert (
            await self.call(verb, pool=pool, name=name, fingerprint=fingerprint, idmap=idmap)
            is None
        )

    async def mount(self, name: str, pool: str = "default") -> wire.MountedVolume:
        got = await self.call(subjects.STORAGE_INSTANCE_VOLUME_MOUNT, pool=pool, name=name)
        return wire.MountedVolume.model_validate(got)

    async def unmount(self, name: str, pool: str = "default") -> None:
        assert (
            await self.call(subjects.STORAGE_INSTANCE_VOLUME_UNMOUNT, pool=pool, name=name) is None
        )

    async def delete(self, name: str, pool: str = "default") -> None:
        assert (
            await self.call(subjects.STORAGE_INSTANCE_VOLUME_DELETE, pool=pool, name=name) is None
        )

    async def volumes(self, pool: str = "default") -> list[str]:
        return await self.call(subjects.STORAGE_VOLUME_LIST, pool=pool)

    def pool_root(self, pool: str = "default") -> Path:
        return self.dir / "storage-pools" / pool

    def work_files(self) -> list[str]:
        """Whatever the image downloads left under $WARREN_DIR/tmp (nothing, normally)."""
        work = self.dir / image_volumes.WORK_DIR / self.name
        return sorted(str(p.relative_to(work)) for p in work.rglob("*")) if work.exists() else []

    def leftovers(self, pool: str = "default") -> dict[str, list[str]]:
        """Entries of the pool's images/ and containers/ and of the download directory."""
        root = self.pool_root(pool)
        return {
            "images": sorted(os.listdir(root / "images")),
            "containers": sorted(os.listdir(root / "containers")),
            "downloads": self.work_files(),
        }


def _cleanup(warren_dir: Path) -> None:
    """Unmount whatever a failed test left below the node's directory, detach loop files."""
    with contextlib.suppress(OSError):
        mounts.umount_all(warren_dir)
    for image in warren_dir.glob("disks/*.img"):
        out = subprocess.run(
            ["losetup", "-n", "-O", "NAME", "-j", str(image)], capture_output=True, text=True
        ).stdout
        for device in out.split():
            subprocess.run(["losetup", "-d", device], check=False)


@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> tuple[bytes, str]:
    """A unified busybox image tarball and its fingerprint."""
    data = Path(build_busybox(tmp_path_factory.mktemp("busybox")).path).read_bytes()
    return data, hashlib.sha256(data).hexdigest()


@pytest.fixture
async def bus(nats_server):
    bus = await Bus.open(nats_server.url, "storage-volumes-test")
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
        _cleanup(node.dir)


@pytest.fixture
async def image(node, busybox) -> str:
    """The busybox image put in the node's blob store the way the image service keeps it."""
    data, fingerprint = busybox
    await node.blobs.put(f"images/{fingerprint}", data)
    return fingerprint


@pytest.fixture
def unpacks(monkeypatch) -> list[str]:
    """Every unpack the storage service starts (the image directories it unpacks into)."""
    calls: list[str] = []
    real = image_volumes.unpack_image

    def counting(target, *args, **kwargs):
        calls.append(str(target))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(image_volumes, "unpack_image", counting)
    return calls


def _gate_unpacks(monkeypatch) -> tuple[threading.Event, threading.Event, list[str]]:
    """Make unpacks wait for ``release``; ``started`` is set when one has begun; the list
    gets the target of each unpack."""
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []
    real = image_volumes.unpack_image

    def gated(target, *args, **kwargs):
        calls.append(str(target))
        started.set()
        assert release.wait(60), "unpack never released"
        return real(target, *args, **kwargs)

    monkeypatch.setattr(image_volumes, "unpack_image", gated)
    return started, release, calls


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def test_ensure_unpacks_the_image_once(node, image, unpacks):
    assert await node.ensure(image) == {"fingerprint": image, "created": True}
    volume = node.pool_root() / "images" / image
    assert (volume / "rootfs" / "bin" / "busybox").is_file()
    assert (volume / "metadata.yaml").is_file() and (volume / "templates").is_dir()
    assert sorted(os.listdir(volume)) == ["metadata.yaml", "rootfs", "templates"]
    assert os.stat(volume / "rootfs" / "bin" / "busybox").st_uid == 0
    assert await node.ensure(image) == {"fingerprint": image, "created": False}
    assert len(unpacks) == 1
    assert await node.volumes() == [f"image/{image}"]
    assert node.leftovers() == {"images": [image], "containers": [], "downloads": []}


async def test_image_volume_templates(node, image):
    verb = subjects.STORAGE_IMAGE_VOLUME_TEMPLATES
    with pytest.raises(NotFound):  # no image volume yet
        await node.call(verb, pool="default", fingerprint=image)
    await node.ensure(image)
    got = wire.ImageTemplates.model_validate(
        await node.call(verb, pool="default", fingerprint=image)
    )
    assert sorted(got.templates) == ["/etc/hostname", "/etc/hosts"]
    assert got.templates["/etc/hostname"].when == ["create", "copy"]
    assert got.files["hostname.tpl"] == "{{ container.name }}\n"
    with pytest.raises(BadRequest):
        await node.call(verb, pool="default", fingerprint="nope")


async def test_instance_volume_lifecycle_unprivileged(node, image):
    await node.create("c1", image, UNPRIVILEGED)
    assert await node.volumes() == [f"image/{image}", "container/c1"]
    mounted = await node.mount("c1")
    rootfs = Path(mounted.path)
    assert mounted.rootfs_shift == "idmapped-mount"
    assert rootfs == node.pool_root() / "containers" / "c1" / "rootfs"
    assert (rootfs / "bin" / "busybox").is_file()
    assert os.stat(rootfs / "bin" / "busybox").st_uid == HOST_ROOT
    assert os.stat(rootfs / "bin" / "busybox").st_gid == HOST_ROOT
    assert os.stat(rootfs).st_uid == HOST_ROOT
    # The image volume itself stays owned by 0 on disk.
    assert os.stat(node.pool_root() / "images" / image / "rootfs" / "bin" / "busybox").st_uid == 0
    assert await node.mount("c1") == mounted  # idempotent
    await node.unmount("c1")
    assert not mounts.is_mount(rootfs)
    await node.unmount("c1")  # idempotent
    assert await node.mount("c1") == mounted  # mounts again
    await node.delete("c1")  # unmounts first
    assert node.leftovers() == {"images": [image], "containers": [], "downloads": []}
    assert mounts.mounts_under(node.pool_root()) == []
    await node.delete("c1")  # idempotent
    await node.unmount("c1")  # a missing volume is fine
    with pytest.raises(NotFound, match="container/c1 not found"):
        await node.mount("c1")


async def test_create_can_mount_and_leaves_nothing_when_the_mount_fails(node, image, monkeypatch):
    verb = subjects.STORAGE_INSTANCE_VOLUME_CREATE
    got = await node.call(verb, pool="default", name="m1", fingerprint=image, mount=True)
    mounted = wire.MountedVolume.model_validate(got)
    assert mounted == await node.mount("m1")
    assert mounts.is_mount(Path(mounted.path))
    assert (Path(mounted.path) / "bin" / "busybox").is_file()
    await node.delete("m1")

    def refuse(*_args: Any) -> None:
        raise OSError("mount refused for the test")

    monkeypatch.setattr(DirDriver, "_mount", refuse)
    with pytest.raises(WarrenError, match="mount refused"):
        await node.call(verb, pool="default", name="m2", fingerprint=image, mount=True)
    assert node.leftovers() == {"images": [image], "containers": [], "downloads": []}
    assert mounts.mounts_under(node.pool_root()) == []


async def test_privileged_volume_is_not_shifted(node, image):
    await node.create("priv", image)
    rootfs = Path((await node.mount("priv")).path)
    assert os.stat(rootfs / "bin" / "busybox").st_uid == 0
    await node.delete("priv")
    assert os.listdir(node.pool_root() / "containers") == []


async def test_create_refuses_an_existing_volume(node, image):
    await node.create("dup", image, UNPRIVILEGED)
    with pytest.raises(Conflict, match="already exists"):
        await node.create("dup", image, UNPRIVILEGED)
    await node.delete("dup")


async def test_concurrent_creates_share_one_unpack(node, image, unpacks):
    names = [f"c{i}" for i in range(5)]
    await asyncio.gather(*(node.create(n, image, UNPRIVILEGED) for n in names))
    assert len(unpacks) == 1
    assert await node.volumes() == [f"image/{image}", *(f"container/{n}" for n in names)]
    paths = await asyncio.gather(*(node.mount(n) for n in names))
    for mounted in paths:
        assert (Path(mounted.path) / "bin" / "busybox").is_file()
    await asyncio.gather(*(node.delete(n) for n in names))
    assert node.leftovers() == {"images": [image], "containers": [], "downloads": []}


async def test_requests_keep_flowing_while_an_image_unpacks(node, image, busybox, monkeypatch):
    # A volume of another image, ready before the slow unpack starts.
    meta, rootfs = split_image(busybox[0])
    other = hashlib.sha256(meta + rootfs).hexdigest()
    await node.blobs.put(f"images/{other}.meta", meta)
    await node.blobs.put(f"images/{other}.rootfs", rootfs)
    await node.create("ready", other, UNPRIVILEGED)

    started, release, calls = _gate_unpacks(monkeypatch)
    names = [f"w{i:02d}" for i in range(20)]
    creates = [asyncio.create_task(node.create(n, image, UNPRIVILEGED)) for n in names]
    try:
        await _until(started.is_set)
        # The unpack is held: the same subjects still answer other requests.
        mounted = await node.mount("ready")
        assert (Path(mounted.path) / "bin" / "busybox").is_file()
        await node.unmount("ready")
        assert await node.ensure(other) == {"fingerprint": other, "created": False}
        await node.create("ready2", other)  # a create of an image already there
        with pytest.raises(NotFound):
            await node.call(
                subjects.STORAGE_INSTANCE_VOLUME_CREATE, pool="nope", name="x", fingerprint=image
            )
        assert not any(task.done() for task in creates)
    finally:
        release.set()
    await asyncio.gather(*creates)
    assert len(calls) == 1  # the 20 creates shared one unpack
    listed = await node.volumes()
    assert all(f"container/{n}" in listed for n in names)
    await asyncio.gather(*(node.delete(n) for n in [*names, "ready", "ready2"]))
    assert node.leftovers() == {
        "images": sorted([image, other]),
        "containers": [],
        "downloads": [],
    }


async def test_split_image(node, busybox, unpacks):
    meta, rootfs = split_image(busybox[0])
    fingerprint = hashlib.sha256(meta + rootfs).hexdigest()
    await node.blobs.put(f"images/{fingerprint}.meta", meta)
    await node.blobs.put(f"images/{fingerprint}.rootfs", rootfs)
    await node.create("s1", fingerprint, UNPRIVILEGED)
    volume = node.pool_root() / "images" / fingerprint
    assert sorted(os.listdir(volume)) == ["metadata.yaml", "rootfs", "templates"]
    path = Path((await node.mount("s1")).path)
    assert os.stat(path / "bin" / "busybox").st_uid == HOST_ROOT
    assert await node.ensure(fingerprint) == {"fingerprint": fingerprint, "created": False}
    assert len(unpacks) == 1
    await node.delete("s1")
    assert node.leftovers() == {"images": [fingerprint], "containers": [], "downloads": []}


async def test_a_missing_image_is_not_found_and_leaves_nothing(node, busybox):
    missing = hashlib.sha256(b"not in the blob store").hexdigest()
    with pytest.raises(NotFound, match=f"Image {missing} not found in the blob store"):
        await node.ensure(missing)
    with pytest.raises(NotFound, match="not found in the blob store"):
        await node.create("m1", missing, UNPRIVILEGED)
    # Half a split image is missing too.
    meta, _ = split_image(busybox[0])
    await node.blobs.put(f"images/{missing}.meta", meta)
    with pytest.raises(NotFound, match="not found in the blob store"):
        await node.ensure(missing)
    assert node.leftovers() == {"images": [], "containers": [], "downloads": []}
    assert await node.volumes() == []


async def test_a_bad_blob_leaves_nothing(node, busybox):
    # Content that is not the image its key names: refused after unpacking, nothing kept.
    wrong = hashlib.sha256(b"some other image").hexdigest()
    await node.blobs.put(f"images/{wrong}", busybox[0])
    with pytest.raises(WarrenError, match="corrupt") as caught:
        await node.create("b1", wrong, UNPRIVILEGED)
    assert caught.value.code == 500
    # A hostile tarball: the unpacker's refusal comes back, nothing kept.
    data = hostile_image()
    hostile = hashlib.sha256(data).hexdigest()
    await node.blobs.put(f"images/{hostile}", data)
    with pytest.raises(BadRequest):
        await node.ensure(hostile)
    assert node.leftovers() == {"images": [], "containers": [], "downloads": []}


async def test_unknown_pool_and_bad_input(node, image):
    for verb, body in (
        (subjects.STORAGE_IMAGE_VOLUME_ENSURE, {"fingerprint": image}),
        (subjects.STORAGE_INSTANCE_VOLUME_CREATE, {"name": "x", "fingerprint": image}),
        (subjects.STORAGE_INSTANCE_VOLUME_MOUNT, {"name": "x"}),
        (subjects.STORAGE_INSTANCE_VOLUME_UNMOUNT, {"name": "x"}),
        (subjects.STORAGE_INSTANCE_VOLUME_DELETE, {"name": "x"}),
    ):
        with pytest.raises(NotFound, match="Storage pool not found"):
            await node.call(verb, pool="nope", **body)
    with pytest.raises(BadRequest, match="Invalid image fingerprint"):
        await node.ensure(image[:12])
    with pytest.raises(BadRequest, match="Invalid volume name"):
        await node.create("../x", image)
    with pytest.raises(BadRequest):
        await node.call(subjects.STORAGE_INSTANCE_VOLUME_MOUNT, pool="default")
    assert node.leftovers() == {"images": [], "containers": [], "downloads": []}


async def test_btrfs_pool(node, image):
    await node.call(
        subjects.STORAGE_POOL_CREATE, name="bt", driver="btrfs", config={"size": "300MiB"}
    )
    try:
        assert (await node.ensure(image, pool="bt"))["created"] is True
        await node.create("b1", image, UNPRIVILEGED, pool="bt")
        mounted = await node.mount("b1", pool="bt")
        assert mounted.rootfs_shift == "idmapped-mount"
        assert os.stat(Path(mounted.path) / "bin" / "busybox").st_uid == HOST_ROOT
        await node.delete("b1", pool="bt")
        assert node.leftovers("bt")["containers"] == []
        state = node.pools.projection.pool(node.name, "bt")  # type: ignore[union-attr]
        await node.pools.host.driver(state).delete_image_volume(image)  # type: ignore[union-attr]
    finally:
        await node.call(subjects.STORAGE_POOL_DELETE, name="bt")
    assert not (node.dir / "disks" / "bt.img").exists()


async def test_restart_drops_leftover_downloads(node):
    work = node.dir / image_volumes.WORK_DIR / node.name
    (work / "dead-download").mkdir(parents=True)
    (work / "dead-download" / "rootfs").write_bytes(b"x")
    await node.stop()
    await node.start()
    assert os.listdir(work) == []
