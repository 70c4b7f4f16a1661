"""Contract suite: every storage driver behaves the same on real host objects (a directory, a
btrfs filesystem on a loop file), as root. Branches on capabilities, never on driver names."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from storage_fixtures import (
    FINGERPRINT,
    HOST_ROOT,
    OTHER_FINGERPRINT,
    force_cleanup,
    loop_devices_after_release,
    loop_devices_of,
    make_rootfs,
    mounted_below,
    new_pool,
    run_as_container_root,
)

from schemas.errors import BadRequest, Conflict, NotFound
from services.storage import mounts
from services.storage.drivers import DRIVERS, StorageDriver
from services.storage.idmap import IdMap

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="storage drivers need root")


@pytest.fixture
async def image_pool(pool: StorageDriver) -> StorageDriver:
    """A pool holding one committed image volume (FINGERPRINT)."""
    async with pool.build_image_volume(FINGERPRINT) as path:
        make_rootfs(path)
    return pool


def rootfs_of_image(pool: StorageDriver, fingerprint: str = FINGERPRINT) -> Path:
    return pool.image_dir(fingerprint) / "rootfs"  # type: ignore[attr-defined]


async def names(pool: StorageDriver) -> list[tuple[str, str]]:
    return [(v.type, v.name) for v in await pool.list_volumes()]


async def test_pool_usage_reports_its_filesystem(pool: StorageDriver):
    usage = await pool.usage()
    assert usage.total > 0
    assert 0 < usage.used <= usage.total


async def test_pool_delete_refused_while_volumes_exist(image_pool: StorageDriver):
    root = image_pool.root  # type: ignore[attr-defined]
    with pytest.raises(Conflict):
        await image_pool.delete()
    assert (root / "images" / FINGERPRINT / "rootfs" / "bin" / "tool").exists()
    await image_pool.delete_image_volume(FINGERPRINT)
    await image_pool.delete()
    assert not root.exists()
    assert mounted_below(root) == []
    disk = image_pool.warren_dir / "disks" / "pool1.img"
    assert not disk.exists()


async def test_btrfs_loop_pool_leaves_no_loop_device(tmp_path: Path):
    warren_dir = tmp_path / "warren"
    driver = new_pool("btrfs", warren_dir)
    try:
        disk = warren_dir / "disks" / "pool1.img"
        config = await driver.create()
        assert config["source"] == str(disk)
        assert loop_devices_of(disk) != []
        await driver.unmount()
        assert await asyncio.to_thread(loop_devices_after_release, disk) == []
        await driver.mount()
        await driver.delete()
        assert not disk.exists()
        assert mounted_below(warren_dir) == []
    finally:
        force_cleanup(warren_dir)


async def test_btrfs_pool_in_a_directory_on_btrfs(tmp_path: Path):
    warren_dir = tmp_path / "warren"
    outer = new_pool("btrfs", warren_dir)
    try:
        await outer.create()
        source = outer.root / "nested"  # type: ignore[attr-defined]
        source.mkdir()
        inner = DRIVERS["btrfs"]("inner", {"source": str(source)}, warren_dir)
        assert await inner.create() == {"source": str(source)}
        async with inner.build_image_volume(FINGERPRINT) as path:
            make_rootfs(path)
        await inner.create_instance_volume("c1", FINGERPRINT, IdMap())
        rootfs = await inner.mount_instance_volume("c1")
        assert os.stat(rootfs / "bin" / "tool").st_uid == HOST_ROOT
        await inner.delete_instance_volume("c1")
        await inner.delete_image_volume(FINGERPRINT)
        await inner.delete()
        assert os.listdir(source) == []
        await outer.delete()
        assert mounted_below(warren_dir) == []
    finally:
        force_cleanup(warren_dir)


async def test_image_volume_keeps_files_modes_owners_and_symlinks(image_pool: StorageDriver):
    rootfs = rootfs_of_image(image_pool)
    tool = os.lstat(rootfs / "bin" / "tool")
    assert (tool.st_uid, tool.st_gid, stat.S_IMODE(tool.st_mode)) == (0, 0, 0o4755)
    assert os.readlink(rootfs / "bin" / "sh") == "tool"
    assert ("image", FINGERPRINT) in await names(image_pool)
    with pytest.raises(Conflict):
        await image_pool.begin_image_volume(FINGERPRINT)


async def test_half_made_image_volume_is_never_visible(pool: StorageDriver):
    pending = await pool.begin_image_volume(FINGERPRINT)
    make_rootfs(pending.path)
    assert await names(pool) == []
    with pytest.raises(NotFound):
        await pool.create_instance_volume("c1", FINGERPRINT)
    # A crash now (no commit, no abort): the next pool mount drops the half-made volume.
    await pool.mount()
    assert not pending.path.exists()
    assert await names(pool) == []
    async with pool.build_image_volume(FINGERPRINT) as path:
        make_rootfs(path)
    assert await names(pool) == [("image", FINGERPRINT)]


async def test_failed_unpack_or_commit_leaves_nothing(pool: StorageDriver):
    with pytest.raises(RuntimeError):
        async with pool.build_image_volume(FINGERPRINT) as path:
            make_rootfs(path)
            raise RuntimeError("truncated tarball")
    with pytest.raises(BadRequest):
        async with pool.build_image_volume(OTHER_FINGERPRINT) as path:
            (path / "metadata.yaml").write_text("no rootfs here\n")
    assert await names(pool) == []
    assert os.listdir(pool.root / "images") == []  # type: ignore[attr-defined]


async def test_bad_names_are_rejected(image_pool: StorageDriver):
    with pytest.raises(BadRequest):
        await image_pool.begin_image_volume("../../etc")
    with pytest.raises(BadRequest):
        await image_pool.create_instance_volume("../c1", FINGERPRINT)
    with pytest.raises(NotFound):
        await image_pool.mount_instance_volume("missing")


async def test_clones_are_independent_and_leave_the_image_alone(image_pool: StorageDriver):
    await image_pool.create_instance_volume("c1", FINGERPRINT)
    await image_pool.create_instance_volume("c2", FINGERPRINT)
    with pytest.raises(Conflict):
        await image_pool.create_instance_volume("c1", FINGERPRINT)
    r1 = await image_pool.mount_instance_volume("c1")
    r2 = await image_pool.mount_instance_volume("c2")
    (r1 / "etc" / "hostname").write_text("c1\n")
    (r1 / "new").write_text("only in c1")
    (r2 / "bin" / "tool").unlink()
    assert (r2 / "etc" / "hostname").read_text() == "image\n"
    assert not (r2 / "new").exists()
    assert (r1 / "bin" / "tool").exists()
    image = rootfs_of_image(image_pool)
    assert (image / "etc" / "hostname").read_text() == "image\n"
    assert (image / "bin" / "tool").exists() and not (image / "new").exists()
    assert sorted(await names(image_pool)) == [
        ("container", "c1"),
        ("container", "c2"),
        ("image", FINGERPRINT),
    ]
    listed = await image_pool.list_volumes(usage=True)
    assert all(v.used_bytes is not None and v.used_bytes > 0 for v in listed)


async def test_unprivileged_clone_is_shifted_and_writable_by_container_root(
    image_pool: StorageDriver,
):
    await image_pool.create_instance_volume("c1", FINGERPRINT, IdMap(HOST_ROOT, 65536))
    rootfs = await image_pool.mount_instance_volume("c1")
    tool = os.lstat(rootfs / "bin" / "tool")
    assert (tool.st_uid, tool.st_gid, stat.S_IMODE(tool.st_mode)) == (HOST_ROOT, HOST_ROOT, 0o4755)
    assert os.stat(rootfs).st_uid == HOST_ROOT
    assert os.readlink(rootfs / "bin" / "sh") == "tool"
    # The image volume on disk is untouched: still owned by 0.
    assert os.lstat(rootfs_of_image(image_pool) / "bin" / "tool").st_uid == 0

    done = run_as_container_root(rootfs, "sh", "-c", "echo hi > made && echo x >> etc/hostname")
    assert done.returncode == 0, done.stderr
    made = os.stat(rootfs / "made")
    assert (made.st_uid, made.st_gid) == (HOST_ROOT, HOST_ROOT)
    assert (rootfs_of_image(image_pool) / "etc" / "hostname").read_text() == "image\n"
    if image_pool.capabilities.cow_clone == "overlay":
        upper = image_pool.volume_dir("c1") / "upper"  # type: ignore[attr-defined]
        assert os.stat(upper / "made").st_uid == HOST_ROOT
        assert os.stat(upper / "etc" / "hostname").st_uid == HOST_ROOT


async def test_unmount_and_remount_keep_data(image_pool: StorageDriver):
    for idmap in (None, IdMap()):
        name = "shifted" if idmap else "plain"
        await image_pool.create_instance_volume(name, FINGERPRINT, idmap)
        rootfs = await image_pool.mount_instance_volume(name)
        assert await image_pool.mount_instance_volume(name) == rootfs  # idempotent
        if idmap:
            # Through a shifted rootfs only mapped ids may create files (host root is not one).
            done = run_as_container_root(rootfs, "sh", "-c", f"echo {name} > kept")
            assert done.returncode == 0, done.stderr
        else:
            (rootfs / "kept").write_text(f"{name}\n")
        await image_pool.unmount_instance_volume(name)
        await image_pool.unmount_instance_volume(name)
        assert mounted_below(image_pool.volume_dir(name)) == []  # type: ignore[attr-defined]
        rootfs = await image_pool.mount_instance_volume(name)
        assert (rootfs / "kept").read_text() == f"{name}\n"
        assert (rootfs / "bin" / "tool").exists()


async def test_delete_instance_volume_leaves_no_mount_and_no_directory(
    image_pool: StorageDriver,
):
    await image_pool.create_instance_volume("c1", FINGERPRINT, IdMap())
    rootfs = await image_pool.mount_instance_volume("c1")
    volume = image_pool.volume_dir("c1")  # type: ignore[attr-defined]
    assert str(rootfs) in mounts.mount_points()
    await image_pool.delete_instance_volume("c1")
    assert mounted_below(volume) == []
    assert not volume.exists()
    assert await names(image_pool) == [("image", FINGERPRINT)]
    with pytest.raises(NotFound):
        await image_pool.delete_instance_volume("c1")
    # The image volume survived the teardown of the mounts layered on it.
    assert (rootfs_of_image(image_pool) / "bin" / "tool").exists()


async def test_image_volume_still_needed_by_clones(image_pool: StorageDriver):
    await image_pool.create_instance_volume("c1", FINGERPRINT)
    if image_pool.capabilities.clone_needs_image:
        with pytest.raises(Conflict):
            await image_pool.delete_image_volume(FINGERPRINT)
    else:
        await image_pool.delete_image_volume(FINGERPRINT)
        rootfs = await image_pool.mount_instance_volume("c1")
        assert (rootfs / "bin" / "tool").exists()


@pytest.mark.parametrize("step", ["_clone", "_mount"])
async def test_failure_half_way_leaves_nothing_behind(
    image_pool: StorageDriver, monkeypatch: pytest.MonkeyPatch, step: str
):
    real = getattr(image_pool, step)

    def broken(*args):
        real(*args)  # the host change happens, then the step fails
        raise OSError(5, "injected failure")

    monkeypatch.setattr(image_pool, step, broken)
    volume = image_pool.volume_dir("c1")  # type: ignore[attr-defined]
    if step == "_clone":
        with pytest.raises(Exception, match="injected failure"):
            await image_pool.create_instance_volume("c1", FINGERPRINT, IdMap())
        assert not volume.exists()
        assert await names(image_pool) == [("image", FINGERPRINT)]
    else:
        await image_pool.create_instance_volume("c1", FINGERPRINT, IdMap())
        with pytest.raises(Exception, match="injected failure"):
            await image_pool.mount_instance_volume("c1")
    assert mounted_below(volume) == []


async def test_half_made_instance_volume_is_dropped_at_pool_mount(image_pool: StorageDriver):
    await image_pool.create_instance_volume("c1", FINGERPRINT, IdMap())
    await image_pool.mount_instance_volume("c1")
    record = image_pool.root / "containers" / "c1.json"  # type: ignore[attr-defined]
    assert json.loads(record.read_text())["image"] == FINGERPRINT
    record.unlink()  # as if the process died before the record was written
    await image_pool.mount()
    assert not image_pool.volume_dir("c1").exists()  # type: ignore[attr-defined]
    assert mounted_below(image_pool.volume_dir("c1")) == []  # type: ignore[attr-defined]
    assert await names(image_pool) == [("image", FINGERPRINT)]
