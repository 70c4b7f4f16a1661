"""The storage driver interface: capabilities, result models and the abstract base class.

A pool is one driver object. Orchestration (the storage and instance services) branches on
``capabilities``, never on a driver's name. Every blocking host call runs through
``asyncio.to_thread``; host failures leave the driver as :class:`StorageError` (a
``WarrenError``), and multi-step changes undo themselves with a ``Reverter``.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.errors import BadRequest, WarrenError
from services.common.endpoints import validation_message
from services.storage.idmap import IdMap

T = TypeVar("T")

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGTP]?)(i?)B?\s*$", re.IGNORECASE)


class StorageError(WarrenError):
    """A host-level storage failure (mount, mkfs, btrfs, filesystem errors): code 500."""


@dataclass(frozen=True)
class Capabilities:
    """What a driver can do, as data the callers branch on.

    - ``cow_clone``: how an instance volume is cloned from an image volume.
    - ``rootfs_shift``: how an unprivileged rootfs appears shifted to the id map:
      ``"idmapped-mount"`` the driver mounts it shifted (hand LXC the path, no idmap option);
      ``"lxc-idmap"`` the caller must set ``lxc.rootfs.options = idmap=container``;
      ``"none"`` the caller must chown a copy.
    - ``clone_needs_image``: an instance volume reads from its image volume, so the image
      volume cannot go while clones of it exist.
    """

    cow_clone: Literal["overlay", "snapshot"]
    rootfs_shift: Literal["idmapped-mount", "lxc-idmap", "none"]
    supports_quotas: bool
    clone_needs_image: bool


class PoolUsage(BaseModel):
    """Bytes used and total of the filesystem holding the pool (for ``/resources``)."""

    used: int
    total: int


class VolumeUsage(BaseModel):
    """What one instance volume holds of its own: ``used`` bytes (what its root adds to its
    image: the overlay's upper layer, a snapshot's exclusive extents), ``total`` its quota
    (0: none; no driver enforces quotas yet, see ``Capabilities.supports_quotas``)."""

    used: int
    total: int = 0


class VolumeInfo(BaseModel):
    """One volume of a pool as listed under ``/1.0/storage-pools/<pool>/volumes``."""

    type: Literal["image", "container"]
    name: str
    used_bytes: int | None = None


@dataclass(frozen=True)
class PendingImage:
    """An image volume being filled: unpack into ``path`` (``rootfs/`` plus metadata), then
    commit or abort. Until committed it is invisible: nothing lists or clones it."""

    fingerprint: str
    path: Path


def check_fingerprint(fingerprint: str) -> str:
    """An image fingerprint: 64 lowercase hex digits (sha256)."""
    if not _FINGERPRINT.match(fingerprint):
        raise BadRequest(f"Invalid image fingerprint {fingerprint!r}")
    return fingerprint


def check_volume_name(name: str) -> str:
    """A volume name safe as one path component."""
    if not _VOLUME_NAME.match(name):
        raise BadRequest(f"Invalid volume name {name!r}")
    return name


def parse_size(text: str) -> int:
    """LXD-style sizes: ``300MiB``, ``5GB``, ``1GiB``, ``4096`` (bytes)."""
    match = _SIZE.match(text)
    if not match:
        raise BadRequest(f"Invalid size {text!r}")
    number, unit, binary = match.groups()
    power = " KMGTP".index(unit.upper() or " ")
    return int(number) * (1024 if binary or not unit else 1000) ** power


def run(cmd: list[str]) -> str:
    """Run a host command (blocking); its stderr becomes the :class:`StorageError` message."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise StorageError(f"{cmd[0]}: {exc.strerror}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise StorageError(f"{' '.join(cmd[:3])}: {detail[-1] if detail else done.returncode}")
    return done.stdout


async def host(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking host call in a thread, translating OS errors into :class:`StorageError`."""
    try:
        return await asyncio.to_thread(fn, *args)
    except WarrenError:
        raise
    except OSError as exc:
        raise StorageError(str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise StorageError(f"Corrupt storage record: {exc}") from exc


class StorageDriver(ABC):
    """One storage pool on this node, backed by a driver.

    ``config`` is the pool's LXD-style config (string values). :meth:`create` returns it
    completed (e.g. the source it chose), and that is what later objects are built with.
    """

    driver: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: The pool config keys the driver accepts (unknown keys are rejected as LXD does).
    config_model: ClassVar[type[BaseModel]]

    def __init__(self, pool: str, config: Mapping[str, str], warren_dir: Path) -> None:
        self.pool = check_volume_name(pool)
        try:
            self.settings: Any = self.config_model.model_validate(dict(config))
        except ValidationError as exc:
            message = f"Invalid {self.driver} pool config: {validation_message(exc)}"
            raise BadRequest(message) from None
        self.config = dict(config)
        self.warren_dir = Path(warren_dir)

    # -- pool lifecycle --------------------------------------------------------------------

    @abstractmethod
    async def create(self) -> dict[str, str]:
        """Create the pool on the host (and mount it); return its completed config."""

    @abstractmethod
    async def delete(self) -> None:
        """Remove the pool from the host; ``Conflict`` while it holds any volume."""

    @abstractmethod
    async def mount(self) -> None:
        """Make the pool usable (at service start) and drop half-made volumes of a crash."""

    @abstractmethod
    async def unmount(self) -> None:
        """Release the pool's host mounts (volumes must be unmounted first)."""

    @abstractmethod
    async def usage(self) -> PoolUsage:
        """Used and total bytes of the pool's filesystem."""

    # -- image volumes ---------------------------------------------------------------------

    @abstractmethod
    async def begin_image_volume(self, fingerprint: str) -> PendingImage:
        """Start an image volume; ``Conflict`` if that image already has one."""

    @abstractmethod
    async def commit_image_volume(self, pending: PendingImage) -> None:
        """Publish a filled image volume atomically (it needs a ``rootfs/`` directory)."""

    @abstractmethod
    async def abort_image_volume(self, pending: PendingImage) -> None:
        """Throw a pending image volume away."""

    @abstractmethod
    async def delete_image_volume(self, fingerprint: str) -> None:
        """Delete an image volume (``Conflict`` while clones need it)."""

    @abstractmethod
    async def image_volume_dir(self, fingerprint: str) -> Path:
        """The committed image volume's directory (``metadata.yaml``, ``templates/``,
        ``rootfs/``); ``NotFound`` when the pool holds no volume of that image."""

    @asynccontextmanager
    async def build_image_volume(self, fingerprint: str) -> AsyncIterator[Path]:
        """``async with pool.build_image_volume(fp) as path:`` fill ``path``; commit on
        success, abort on any exception."""
        pending = await self.begin_image_volume(fingerprint)
        try:
            yield pending.path
        except BaseException:
            await self.abort_image_volume(pending)
            raise
        try:
            await self.commit_image_volume(pending)
        except BaseException:
            await self.abort_image_volume(pending)
            raise

    # -- instance volumes ------------------------------------------------------------------

    @abstractmethod
    async def create_instance_volume(
        self, name: str, fingerprint: str, idmap: IdMap | None = None
    ) -> None:
        """Clone an instance volume from an image volume; ``idmap`` None means privileged."""

    @abstractmethod
    async def has_instance_volume(self, name: str) -> bool:
        """Whether an instance volume of that name exists, whole or half-made."""

    @abstractmethod
    async def mount_instance_volume(self, name: str) -> Path:
        """Mount an instance volume (idempotent); return the rootfs path to give LXC."""

    @abstractmethod
    async def unmount_instance_volume(self, name: str) -> None:
        """Unmount an instance volume (idempotent)."""

    @abstractmethod
    async def delete_instance_volume(self, name: str) -> None:
        """Unmount and delete an instance volume; ``NotFound`` if it does not exist."""

    @abstractmethod
    async def instance_usage(self, names: Sequence[str] | None = None) -> dict[str, VolumeUsage]:
        """The usage of the named instance volumes (None: every one), in one host call; a
        name without a volume is left out. Walks trees where the filesystem keeps no count."""

    # -- listing ---------------------------------------------------------------------------

    @abstractmethod
    async def list_volumes(self, *, usage: bool = False) -> list[VolumeInfo]:
        """Committed image volumes and instance volumes; ``usage`` adds bytes (walks trees)."""
