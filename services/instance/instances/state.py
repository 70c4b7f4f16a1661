"""An instance as its events describe it, and its LXD views (with profiles expanded)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.lxd.catalog import etag_of
from schemas.lxd.images import ZERO_TIME

INSTANCE = "instance"

#: Last power state recorded in the log (the live status comes from the host).
STOPPED, RUNNING, FROZEN = "stopped", "running", "frozen"


@dataclass(frozen=True)
class InstanceState:
    """One instance. It belongs to a project and lives on a node, both by id/name fixed at
    creation; its host name (driver and volume name) comes from its id, so renames are free."""

    id: str
    project_id: str
    name: str
    node: str
    host_name: str
    pool: str
    image: str  # fingerprint of the image it was made from ("" for none)
    type: str = "container"
    architecture: str = "x86_64"
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=lambda: ["default"])
    ephemeral: bool = False
    created_at: str = ZERO_TIME
    last_used_at: str = ZERO_TIME
    power: str = STOPPED
    version: int = 0
    deleted: bool = False

    @property
    def etag(self) -> str:
        return etag_of(
            self.architecture,
            self.config,
            self.devices,
            self.ephemeral,
            self.profiles,
            self.description,
        )

    def writable(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "description": self.description,
            "config": dict(self.config),
            "devices": {k: dict(d) for k, d in self.devices.items()},
            "profiles": list(self.profiles),
            "ephemeral": self.ephemeral,
        }

    def payload(self) -> dict[str, Any]:
        """What every instance event carries: the whole state but id, version, deleted."""
        data = dict(self.__dict__)
        for key in ("id", "version", "deleted"):
            data.pop(key)
        data["config"] = dict(self.config)
        data["devices"] = {k: dict(d) for k, d in self.devices.items()}
        data["profiles"] = list(self.profiles)
        return data

    def dump(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Expanded:
    """Config and devices with the profiles applied in order, the instance's own last."""

    config: dict[str, str]
    devices: dict[str, dict[str, str]]


def expand(
    config: dict[str, str],
    devices: dict[str, dict[str, str]],
    profiles: Iterable[tuple[dict[str, str], dict[str, dict[str, str]]]],
) -> Expanded:
    """LXD's expansion: each profile's config and devices over the previous, then the
    instance's own (a device is replaced whole, never merged key by key)."""
    out_config: dict[str, str] = {}
    out_devices: dict[str, dict[str, str]] = {}
    for p_config, p_devices in profiles:
        out_config.update(p_config)
        out_devices.update({k: dict(d) for k, d in p_devices.items()})
    out_config.update(config)
    out_devices.update({k: dict(d) for k, d in devices.items()})
    return Expanded(out_config, out_devices)


def root_disk(devices: dict[str, dict[str, str]]) -> tuple[str, dict[str, str]] | None:
    """The root disk device (type disk, path /) and its name."""
    for name, device in sorted(devices.items()):
        if device.get("type") == "disk" and device.get("path") == "/":
            return name, device
    return None
