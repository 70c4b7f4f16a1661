"""The ``dir`` driver: a plain directory; instance volumes are overlayfs clones.

An instance volume is ``upper/`` + ``work/`` over the image volume's ``rootfs/``, mounted on
``rootfs/``. Unprivileged, the lower layer is an idmapped bind of the image volume on
``lower/``, so the container sees its files owned by the id map without any chown, and what it
writes lands in ``upper/`` owned by the mapped ids.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from schemas.errors import BadRequest, Conflict
from services.common.revert import Reverter
from services.storage import mounts
from services.storage.drivers.base import Capabilities, PoolUsage, StorageError, host
from services.storage.drivers.layout import LayoutDriver, remove_tree, tree_bytes
from services.storage.idmap import IdMap, idmapped_bind


class DirConfig(BaseModel):
    """Config keys of a ``dir`` pool."""

    model_config = ConfigDict(extra="forbid")
    source: str | None = None


def statvfs_usage(path: Path) -> PoolUsage:
    """Used/total bytes of the filesystem holding ``path``."""
    st = os.statvfs(path)
    return PoolUsage(used=(st.f_blocks - st.f_bfree) * st.f_frsize, total=st.f_blocks * st.f_frsize)


def remove_volume_tree(path: Path) -> None:
    """Unmount, then delete a volume directory; never recurse into something still mounted
    (an idmapped lower is the image volume itself)."""
    mounts.umount_all(path)
    if mounts.mounts_under(path):
        raise StorageError(f"{path} is still mounted")
    remove_tree(path)


class DirDriver(LayoutDriver):
    """A pool in a directory (default ``$WARREN_DIR/storage-pools/<pool>``)."""

    driver = "dir"
    capabilities = Capabilities(
        cow_clone="overlay",
        rootfs_shift="idmapped-mount",
        supports_quotas=False,
        clone_needs_image=True,
    )
    config_model: ClassVar[type[BaseModel]] = DirConfig

    @property
    def root(self) -> Path:
        source = self.settings.source
        return Path(source) if source else self.warren_dir / "storage-pools" / self.pool

    # -- pool lifecycle --------------------------------------------------------------------

    async def create(self) -> dict[str, str]:
        root = self.root
        if not root.is_absolute():
            raise BadRequest(f"Storage pool source must be an absolute path: {root}")

        def make_root() -> bool:
            if root.exists() and (not root.is_dir() or any(root.iterdir())):
                raise BadRequest(f"Storage pool source {root} is not an empty directory")
            if root.exists():
                return False
            root.mkdir(parents=True)
            return True

        async with Reverter() as revert:
            if await host(make_root):
                revert.add(lambda: host(remove_tree, root))
            await host(self._make_layout)
            revert.success()
        return {**self.config, "source": str(root)}

    async def delete(self) -> None:
        if await host(self._has_volumes):
            raise Conflict(f"Storage pool {self.pool} is currently in use")

        def remove() -> None:
            for sub in ("images", "containers"):
                remove_volume_tree(self.root / sub)
            if self.root.is_dir() and not any(self.root.iterdir()):
                self.root.rmdir()

        await host(remove)

    async def mount(self) -> None:
        await host(self._check_root)
        await host(self._make_layout)
        await host(self._drop_half_made)

    async def unmount(self) -> None:
        """Nothing is mounted at the pool level."""

    async def usage(self) -> PoolUsage:
        return await host(statvfs_usage, self.root)

    # -- host hooks ------------------------------------------------------------------------

    def _make_image_dir(self, path: Path) -> None:
        path.mkdir()

    def _publish_image(self, tmp: Path, final: Path) -> None:
        os.rename(tmp, final)  # one rename: the volume is either absent or complete

    def _remove_image_dir(self, path: Path) -> None:
        remove_tree(path)

    def _clone(self, image: Path, volume: Path, idmap: IdMap | None) -> None:
        volume.mkdir()
        for sub in ("upper", "work", "lower", "rootfs"):
            (volume / sub).mkdir()
        # The upper directory's owner and mode become those of the merged root: match the
        # image's root as the container sees it (shifted when unprivileged).
        st = os.stat(image / "rootfs")
        base = idmap.host_base if idmap else 0
        os.chown(volume / "upper", st.st_uid + base, st.st_gid + base)
        os.chmod(volume / "upper", stat.S_IMODE(st.st_mode))

    def _mount(self, image: Path, volume: Path, idmap: IdMap | None) -> None:
        lower = image / "rootfs"
        if idmap:
            if not mounts.is_mount(volume / "lower"):
                idmapped_bind(image, volume / "lower", idmap)
            lower = volume / "lower" / "rootfs"
        options = f"lowerdir={lower},upperdir={volume / 'upper'},workdir={volume / 'work'}"
        mounts.mount("overlay", volume / "rootfs", "overlay", options)

    def _remove_instance_dir(self, volume: Path) -> None:
        remove_volume_tree(volume)

    def _instance_bytes(self, volume: Path) -> int:
        # Only the upper layer is the instance's own; lower/ and rootfs/ show the image.
        return tree_bytes(volume / "upper")
