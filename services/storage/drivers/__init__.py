"""Storage drivers: the registry maps a pool's ``driver`` name to its class."""

from __future__ import annotations

from services.storage.drivers.base import (
    Capabilities,
    PendingImage,
    PoolUsage,
    StorageDriver,
    StorageError,
    VolumeInfo,
    VolumeUsage,
)
from services.storage.drivers.btrfs import BtrfsDriver
from services.storage.drivers.dir import DirDriver

DRIVERS: dict[str, type[StorageDriver]] = {"dir": DirDriver, "btrfs": BtrfsDriver}

__all__ = [
    "DRIVERS",
    "BtrfsDriver",
    "Capabilities",
    "DirDriver",
    "PendingImage",
    "PoolUsage",
    "StorageDriver",
    "StorageError",
    "VolumeInfo",
    "VolumeUsage",
]
