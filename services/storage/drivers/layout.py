"""The on-disk layout both drivers share, and the volume logic built on it.

Inside a pool's root::

    images/<fingerprint>/         committed image volumes (rootfs/ + image metadata)
    images/.tmp-<fp>-<random>/    an image volume being filled: never listed, never cloned
    containers/<name>/            instance volumes; <name>/rootfs is what LXC gets
    containers/<name>.json        the instance volume's record, written last: a directory
                                  without it is half-made and removed at the next pool mount

Drivers supply the host operations (make, publish, clone, mount, remove) as blocking hooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import stat
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from schemas.errors import BadRequest, Conflict, NotFound
from services.common.revert import Reverter
from services.storage import mounts
from services.storage.drivers.base import (
    PendingImage,
    StorageDriver,
    StorageError,
    VolumeInfo,
    VolumeUsage,
    check_fingerprint,
    check_volume_name,
    host,
)
from services.storage.idmap import IdMap

TMP_PREFIX = ".tmp-"

log = logging.getLogger(__name__)


def tree_bytes(path: Path) -> int:
    """Disk bytes used by a tree (hard links counted once, other filesystems not entered;
    a bind mount of the same filesystem is entered, so callers pick a tree without one).

    Entries that go while the tree is walked (a running instance removing files) are skipped;
    only a missing ``path`` itself raises ``FileNotFoundError``.
    """
    total = 0
    seen: set[tuple[int, int]] = set()
    root_dev = os.lstat(path).st_dev
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    is_dir = stat.S_ISDIR(st.st_mode)
                    if is_dir or st.st_nlink > 1:  # only these can be met twice
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
                    if is_dir and st.st_dev == root_dev:
                        stack.append(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


class LayoutDriver(StorageDriver):
    """Volume bookkeeping shared by the drivers; subclasses implement the host hooks."""

    def __init__(self, pool: str, config: Mapping[str, str], warren_dir: Path) -> None:
        super().__init__(pool, config, warren_dir)
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    @abstractmethod
    def root(self) -> Path:
        """The directory holding ``images/`` and ``containers/``."""

    # -- hooks (blocking; called in a thread) ----------------------------------------------

    @abstractmethod
    def _make_image_dir(self, path: Path) -> None: ...

    @abstractmethod
    def _publish_image(self, tmp: Path, final: Path) -> None:
        """Make ``final`` appear complete in one step (then ``tmp`` is gone)."""

    @abstractmethod
    def _remove_image_dir(self, path: Path) -> None: ...

    @abstractmethod
    def _clone(self, image: Path, volume: Path, idmap: IdMap | None) -> None: ...

    @abstractmethod
    def _mount(self, image: Path, volume: Path, idmap: IdMap | None) -> None:
        """Mount ``volume/rootfs`` as the instance sees it (a no-op if nothing to mount)."""

    @abstractmethod
    def _remove_instance_dir(self, volume: Path) -> None: ...

    # -- paths -----------------------------------------------------------------------------

    def image_dir(self, fingerprint: str) -> Path:
        return self.root / "images" / check_fingerprint(fingerprint)

    def volume_dir(self, name: str) -> Path:
        return self.root / "containers" / check_volume_name(name)

    def _record(self, name: str) -> Path:
        return self.root / "containers" / f"{check_volume_name(name)}.json"

    def _read_record(self, name: str) -> dict:
        try:
            return json.loads(self._record(name).read_text())
        except FileNotFoundError:
            message = f"Storage volume container/{name} not found in pool {self.pool}"
            raise NotFound(message) from None

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"Storage pool {self.pool}: {self.root} is missing")

    def _make_layout(self) -> None:
        for sub in ("images", "containers"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _has_volumes(self) -> bool:
        return any(
            not entry.name.startswith(".")
            for sub in ("images", "containers")
            if (self.root / sub).is_dir()
            for entry in os.scandir(self.root / sub)
        )

    def _drop_half_made(self) -> None:
        """Remove what a crash left: pending image volumes and unrecorded instance volumes."""
        images, containers = self.root / "images", self.root / "containers"
        for entry in os.scandir(images):
            if entry.name.startswith(TMP_PREFIX):
                self._remove_image_dir(Path(entry.path))
        for entry in os.scandir(containers):
            if entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)  # a record write that never got renamed into place
            elif (
                entry.is_dir(follow_symlinks=False)
                and not (containers / f"{entry.name}.json").exists()
            ):
                mounts.umount_all(Path(entry.path))
                self._remove_instance_dir(Path(entry.path))

    # -- checks (blocking) -----------------------------------------------------------------

    def _absent_image(self, final: Path) -> None:
        if final.exists():
            raise Conflict(f"Image volume {final.name} already exists in pool {self.pool}")

    def _check_filled(self, pending: PendingImage, final: Path) -> None:
        if not (pending.path / "rootfs").is_dir():
            raise BadRequest(f"Image volume {pending.fingerprint} has no rootfs directory")
        self._absent_image(final)

    def _present_image(self, path: Path) -> None:
        if not path.is_dir():
            raise NotFound(f"Storage volume image/{path.name} not found in pool {self.pool}")

    def _volume_present(self, name: str) -> bool:
        return self.volume_dir(name).exists() or self._record(name).exists()

    def _absent_volume(self, name: str) -> None:
        if self._volume_present(name):
            raise Conflict(f"Storage volume container/{name} already exists in pool {self.pool}")

    def _lock(self, key: str) -> asyncio.Lock:
        """One lock per volume: concurrent calls on the same volume run one after the other."""
        return self._locks.setdefault(key, asyncio.Lock())

    # -- image volumes ---------------------------------------------------------------------

    async def begin_image_volume(self, fingerprint: str) -> PendingImage:
        final = self.image_dir(fingerprint)
        await host(self._absent_image, final)
        tmp = final.with_name(f"{TMP_PREFIX}{fingerprint}-{secrets.token_hex(4)}")
        await host(self._make_image_dir, tmp)
        return PendingImage(fingerprint=fingerprint, path=tmp)

    async def commit_image_volume(self, pending: PendingImage) -> None:
        final = self.image_dir(pending.fingerprint)
        async with self._lock(f"image/{pending.fingerprint}"):
            await host(self._check_filled, pending, final)
            await host(self._publish_image, pending.path, final)

    async def abort_image_volume(self, pending: PendingImage) -> None:
        await host(self._remove_image_dir, pending.path)

    async def image_volume_dir(self, fingerprint: str) -> Path:
        path = self.image_dir(fingerprint)
        await host(self._present_image, path)
        return path

    async def delete_image_volume(self, fingerprint: str) -> None:
        path = self.image_dir(fingerprint)
        async with self._lock(f"image/{fingerprint}"):
            await host(self._present_image, path)
            if self.capabilities.clone_needs_image:
                users = [n for n, image in await self._instance_volumes() if image == fingerprint]
                if users:
                    raise Conflict(f"Image volume {fingerprint} is in use by {', '.join(users)}")
            await host(self._remove_image_dir, path)

    # -- instance volumes ------------------------------------------------------------------

    async def create_instance_volume(
        self, name: str, fingerprint: str, idmap: IdMap | None = None
    ) -> None:
        volume, record = self.volume_dir(name), self._record(name)
        image = self.image_dir(fingerprint)
        data = {"image": fingerprint, "idmap": [idmap.host_base, idmap.count] if idmap else None}

        def check() -> None:
            self._absent_volume(name)
            self._present_image(image)

        def make() -> None:
            self._clone(image, volume, idmap)
            # The record is the commit point: without it the directory counts as half-made.
            _write_atomic(record, json.dumps(data))

        async with self._lock(f"container/{name}"), Reverter() as revert:
            await host(check)
            revert.add(lambda: host(self._remove_instance_dir, volume))
            await host(make)
            revert.success()

    async def has_instance_volume(self, name: str) -> bool:
        return await host(self._volume_present, name)

    def _volume_args(self, name: str) -> tuple[Path, Path, IdMap | None]:
        data = self._read_record(name)
        idmap = IdMap(*data["idmap"]) if data["idmap"] else None
        return self.image_dir(data["image"]), self.volume_dir(name), idmap

    async def mount_instance_volume(self, name: str) -> Path:
        def mount() -> Path:
            image, volume, idmap = self._volume_args(name)
            rootfs = volume / "rootfs"
            if not mounts.is_mount(rootfs):
                try:
                    self._mount(image, volume, idmap)
                except BaseException:
                    _quietly(mounts.umount_all, volume)  # no half mount stays behind
                    raise
            return rootfs

        async with self._lock(f"container/{name}"):
            return await host(mount)

    async def unmount_instance_volume(self, name: str) -> None:
        async with self._lock(f"container/{name}"):
            await host(self._read_record, name)
            await host(mounts.umount_all, self.volume_dir(name))

    async def delete_instance_volume(self, name: str) -> None:
        volume = self.volume_dir(name)
        async with self._lock(f"container/{name}"):
            await host(self._read_record, name)
            await host(mounts.umount_all, volume)
            # Record first: if removing the tree fails, the next pool mount finishes the job.
            await host(self._record(name).unlink)
            await host(self._remove_instance_dir, volume)

    # -- listing ---------------------------------------------------------------------------

    async def _instance_volumes(self) -> list[tuple[str, str]]:
        def scan() -> list[tuple[str, str]]:
            out = []
            for entry in sorted(os.scandir(self.root / "containers"), key=lambda e: e.name):
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    image = json.loads(Path(entry.path).read_text())["image"]
                    out.append((entry.name.removesuffix(".json"), image))
            return out

        return await host(scan)

    async def list_volumes(self, *, usage: bool = False) -> list[VolumeInfo]:
        def scan() -> list[VolumeInfo]:
            images = sorted(
                e.name for e in os.scandir(self.root / "images") if not e.name.startswith(".")
            )
            out = [
                VolumeInfo(
                    type="image",
                    name=fp,
                    used_bytes=tree_bytes(self.image_dir(fp)) if usage else None,
                )
                for fp in images
            ]
            return out

        volumes = await host(scan)
        names = [name for name, _image in await self._instance_volumes()]
        used = await host(self._instances_bytes, names) if usage else {}
        volumes.extend(VolumeInfo(type="container", name=n, used_bytes=used.get(n)) for n in names)
        return volumes

    async def instance_usage(self, names: Sequence[str] | None = None) -> dict[str, VolumeUsage]:
        def measure() -> dict[str, VolumeUsage]:
            if names is None:
                wanted = self._recorded_names()
            else:
                wanted = [n for n in dict.fromkeys(names) if self._record(n).exists()]
            return {n: VolumeUsage(used=b) for n, b in self._instances_bytes(wanted).items()}

        return await host(measure)

    def _recorded_names(self) -> list[str]:
        """Names of the committed instance volumes (those with a record)."""
        return sorted(
            entry.name.removesuffix(".json")
            for entry in os.scandir(self.root / "containers")
            if entry.name.endswith(".json") and not entry.name.startswith(".")
        )

    def _instances_bytes(self, names: Sequence[str]) -> dict[str, int]:
        """Bytes each named instance volume holds of its own (blocking); a volume whose tree
        went meanwhile is left out. Drivers whose filesystem keeps a count may override it."""
        found: dict[str, int] = {}
        for name in names:
            try:
                found[name] = self._instance_bytes(self.volume_dir(name))
            except FileNotFoundError:
                continue
        return found

    def _instance_bytes(self, volume: Path) -> int:
        """Bytes the instance volume itself holds (overridden where clones share data)."""
        return tree_bytes(volume)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _quietly(undo: Callable[[Path], None], path: Path) -> None:
    try:
        undo(path)
    except OSError:
        log.exception("undo step on %s failed", path)


def remove_tree(path: Path) -> None:
    """rmtree that accepts a missing path (undo steps may run before the path exists)."""
    if path.exists():
        shutil.rmtree(path)
