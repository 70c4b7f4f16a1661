"""Contract suite, usage: what an instance volume holds of its own, on every driver.

Writing into an instance's root makes its usage grow by what was written, and the figure is
the instance's own bytes, not its image's (an overlay's upper layer; a btrfs snapshot's
exclusive bytes, which btrfs counts once quotas are on: ``OWN_USAGE_SETUP``). Without that
setup a driver still reports a figure that grows.
"""

from __future__ import annotations

import os

import pytest
from storage_fixtures import FINGERPRINT, OWN_USAGE_SETUP, make_rootfs

from services.storage.drivers import StorageDriver

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="storage drivers need root")

IMAGE_BYTES = 4 * 2**20  # what the image holds beyond make_rootfs's few files
WRITTEN = 2**20


async def clones(pool: StorageDriver, *names: str) -> None:
    """An image volume holding IMAGE_BYTES of data, and privileged clones of it."""
    async with pool.build_image_volume(FINGERPRINT) as path:
        make_rootfs(path)
        (path / "rootfs" / "var" / "data").write_bytes(os.urandom(IMAGE_BYTES))
    for name in names:
        await pool.create_instance_volume(name, FINGERPRINT, None)
    os.sync()  # btrfs counts at transaction commit


async def write_into(pool: StorageDriver, name: str, size: int = WRITTEN) -> None:
    rootfs = await pool.mount_instance_volume(name)
    (rootfs / "etc" / "written").write_bytes(os.urandom(size))
    os.sync()


async def test_usage_is_the_instances_own_bytes(pool: StorageDriver):
    OWN_USAGE_SETUP.get(pool.driver, lambda _: None)(pool)
    await clones(pool, "c1", "c2")
    fresh = await pool.instance_usage()
    assert set(fresh) == {"c1", "c2"}
    assert fresh["c1"].used < IMAGE_BYTES // 8  # the image's data is not the clone's
    assert fresh["c1"].total == 0  # no quota

    await write_into(pool, "c1")
    grown = await pool.instance_usage(["c1", "missing"])
    assert set(grown) == {"c1"}  # a name without a volume is left out
    assert WRITTEN <= grown["c1"].used - fresh["c1"].used < WRITTEN + IMAGE_BYTES // 8
    assert (await pool.instance_usage(["c2"]))["c2"].used < fresh["c2"].used + WRITTEN // 2

    # The volume listing's figure is the same count.
    listed = {v.name: v.used_bytes for v in await pool.list_volumes(usage=True)}
    assert listed["c1"] == grown["c1"].used
    await pool.delete_instance_volume("c2")
    assert set(await pool.instance_usage()) == {"c1"}


async def test_usage_grows_without_any_setup(pool: StorageDriver):
    await clones(pool, "c1")
    before = (await pool.instance_usage(["c1"]))["c1"].used
    await write_into(pool, "c1")
    assert (await pool.instance_usage(["c1"]))["c1"].used - before >= WRITTEN
