"""The ``btrfs`` driver: image volumes are read-only subvolumes, instances their snapshots.

The pool lives on a block device (``source=/dev/...``), on a loop file the driver creates
(no source; ``size=``, default 5GiB, at ``$WARREN_DIR/disks/<pool>.img``), or in an existing
directory on a btrfs filesystem (``source=<dir>``). Unprivileged instances get an idmapped
bind of their snapshot's ``rootfs/`` over itself: files stay owned by 0 on disk.

An instance volume's usage is its snapshot's exclusive bytes when quotas are enabled on the
filesystem (``btrfs quota enable <pool root>``), else the bytes of its whole tree (what it
shares with its image included), see :mod:`.btrfs_qgroups`.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from schemas.errors import BadRequest, Conflict
from services.common.revert import Reverter
from services.storage import mounts
from services.storage.drivers.base import (
    Capabilities,
    PoolUsage,
    StorageError,
    host,
    parse_size,
    run,
)
from services.storage.drivers.btrfs_qgroups import exclusive_bytes, subvolume_id
from services.storage.drivers.dir import statvfs_usage
from services.storage.drivers.layout import LayoutDriver, remove_tree
from services.storage.idmap import IdMap, idmapped_bind

log = logging.getLogger(__name__)

MIN_SIZE = 128 * 1024 * 1024  # mkfs.btrfs refuses much smaller filesystems
BTRFS_ROOT_INO = 256  # every subvolume's root directory has this inode number


class BtrfsConfig(BaseModel):
    """Config keys of a ``btrfs`` pool."""

    model_config = ConfigDict(extra="forbid")
    source: str | None = None
    size: str | None = None


def is_subvolume(path: Path) -> bool:
    return path.is_dir() and os.stat(path).st_ino == BTRFS_ROOT_INO


def delete_subvolume(path: Path) -> None:
    """Unmount anything inside, then delete the subvolume (a plain directory is rmtree'd)."""
    mounts.umount_all(path)
    if mounts.mounts_under(path):
        raise StorageError(f"{path} is still mounted")
    if is_subvolume(path):
        run(["btrfs", "-q", "subvolume", "delete", str(path)])
    else:
        remove_tree(path)


class BtrfsDriver(LayoutDriver):
    """A pool on a btrfs filesystem."""

    driver = "btrfs"
    capabilities = Capabilities(
        cow_clone="snapshot",
        rootfs_shift="idmapped-mount",
        supports_quotas=False,
        clone_needs_image=False,
    )
    config_model: ClassVar[type[BaseModel]] = BtrfsConfig

    def __init__(self, pool: str, config: Mapping[str, str], warren_dir: Path) -> None:
        super().__init__(pool, config, warren_dir)
        self.kind = self._kind()

    def _kind(self) -> Literal["loop", "device", "dir"]:
        source = self.settings.source
        if not source:
            return "loop"
        mode = os.stat(source).st_mode if os.path.exists(source) else 0
        return "loop" if stat.S_ISREG(mode) else "device" if stat.S_ISBLK(mode) else "dir"

    @property
    def backing(self) -> Path:
        """The loop file or block device holding the filesystem."""
        source = self.settings.source
        return Path(source) if source else self.warren_dir / "disks" / f"{self.pool}.img"

    @property
    def root(self) -> Path:
        if self.kind == "dir":
            return Path(self.settings.source)
        return self.warren_dir / "storage-pools" / self.pool

    # -- pool lifecycle --------------------------------------------------------------------

    async def create(self) -> dict[str, str]:
        root = self.root
        config = dict(self.config)
        async with Reverter() as revert:
            if self.kind == "dir":
                await host(self._check_btrfs_dir)
            else:
                if self.kind == "loop":
                    size = parse_size(self.settings.size or "5GiB")
                    if size < MIN_SIZE:
                        raise BadRequest(f"Storage pool size must be at least {MIN_SIZE} bytes")
                    await host(self._make_loop_file, size)
                    revert.add(lambda: host(self.backing.unlink, True))
                    config.update(source=str(self.backing), size=str(size))
                await host(run, ["mkfs.btrfs", "-q", "-L", self.pool, str(self.backing)])
                await host(self._make_mount_point)
                revert.add(lambda: host(root.rmdir))
                await host(self._mount_fs)
                revert.add(lambda: host(mounts.umount, root))
            await host(self._make_layout)
            revert.success()
        return config

    def _check_btrfs_dir(self) -> None:
        if not self.root.is_dir() or mounts.fs_type(self.root) != "btrfs":
            raise BadRequest(f"Storage pool source {self.root} is not a directory on btrfs")

    def _make_loop_file(self, size: int) -> None:
        self.backing.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.backing, "xb") as f:
                f.truncate(size)  # sparse: blocks are allocated as the filesystem fills
        except FileExistsError:
            raise Conflict(f"Loop file {self.backing} already exists") from None

    def _make_mount_point(self) -> None:
        try:
            self.root.mkdir(parents=True)
        except FileExistsError:
            raise Conflict(f"Storage pool mount point {self.root} already exists") from None

    def _mount_fs(self) -> None:
        # mount(8) sets up the loop device with autoclear: the last umount releases it.
        options = ["-o", "loop"] if self.kind == "loop" else []
        run(["mount", "-t", "btrfs", *options, str(self.backing), str(self.root)])

    async def delete(self) -> None:
        # Mounted first: an unmounted filesystem would look empty and be thrown away whole.
        await self.mount()
        if await host(self._has_volumes):
            raise Conflict(f"Storage pool {self.pool} is currently in use")
        if self.kind == "dir":
            for sub in ("images", "containers"):
                await host(delete_subvolume, self.root / sub)
            return
        await self.unmount()
        await host(self.root.rmdir)
        if self.kind == "loop":
            await host(self.backing.unlink, True)

    async def mount(self) -> None:
        if self.kind != "dir" and not await host(mounts.is_mount, self.root):
            await host(lambda: self.root.mkdir(parents=True, exist_ok=True))
            await host(self._mount_fs)
        await host(self._check_root)
        await host(self._make_layout)
        await host(self._drop_half_made)

    async def unmount(self) -> None:
        if self.kind != "dir" and await host(mounts.is_mount, self.root):
            await host(mounts.umount, self.root)

    async def usage(self) -> PoolUsage:
        return await host(statvfs_usage, self.root)

    # -- host hooks ------------------------------------------------------------------------

    def _make_image_dir(self, path: Path) -> None:
        run(["btrfs", "-q", "subvolume", "create", str(path)])

    def _publish_image(self, tmp: Path, final: Path) -> None:
        # A read-only snapshot appears under its final name in one step; the filled
        # temporary subvolume then goes.
        run(["btrfs", "-q", "subvolume", "snapshot", "-r", str(tmp), str(final)])
        try:
            delete_subvolume(tmp)
        except (OSError, StorageError):
            # Published already; the leftover is dropped at the next pool mount.
            log.warning("could not delete %s after publishing it", tmp, exc_info=True)

    def _remove_image_dir(self, path: Path) -> None:
        delete_subvolume(path)

    def _clone(self, image: Path, volume: Path, idmap: IdMap | None) -> None:
        run(["btrfs", "-q", "subvolume", "snapshot", str(image), str(volume)])

    def _mount(self, image: Path, volume: Path, idmap: IdMap | None) -> None:
        if idmap:
            rootfs = volume / "rootfs"
            idmapped_bind(rootfs, rootfs, idmap)

    def _remove_instance_dir(self, volume: Path) -> None:
        delete_subvolume(volume)

    def _instances_bytes(self, names: Sequence[str]) -> dict[str, int]:
        exclusive = exclusive_bytes(self.root) if names else None
        if exclusive is None:
            return super()._instances_bytes(names)
        found: dict[str, int] = {}
        uncounted: list[str] = []
        for name in names:
            volume = self.volume_dir(name)
            try:
                subvolume = subvolume_id(volume) if is_subvolume(volume) else None
            except FileNotFoundError:
                continue  # deleted meanwhile
            if subvolume is not None and subvolume in exclusive:
                found[name] = exclusive[subvolume]
            else:  # not a subvolume of its own, or no qgroup for it yet
                uncounted.append(name)
        return {**found, **super()._instances_bytes(uncounted)}
