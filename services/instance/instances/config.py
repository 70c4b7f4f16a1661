"""Instance input checks and what the config means for the driver, in LXD 5.0's words.

Pure functions: they raise :class:`BadRequest` and never touch state.
"""

from __future__ import annotations

import re

from schemas.errors import BadRequest
from schemas.lxd.units import parse_size
from services.instance.catalog import keys, values
from services.instance.catalog.devices import check_devices
from services.instance.drivers.spec import Limits
from services.instance.instances import nics
from services.instance.instances.state import Expanded, root_disk

_NAME_CHARS = re.compile(r"^[a-zA-Z0-9-]+$")
#: Keys an instance may carry beyond a profile's (LXD keeps image.* and volatile.* on it).
_INSTANCE_ONLY = ("image.", "volatile.")
#: LXD's key for an image template trigger (create, copy, rename) to fire at the next start.
APPLY_TEMPLATE = "volatile.apply_template"
#: Physical memory, for ``limits.memory`` given as a percentage.
_MEM_TOTAL_KEY = "MemTotal:"


def check_name(name: str) -> None:
    """LXD's instance name rules (the name becomes a hostname), with its messages."""
    if not name:
        raise BadRequest("Instance name is required")
    problem = None
    if len(name) > 63:
        problem = "Name must be 1-63 characters long"
    elif not _NAME_CHARS.match(name):
        problem = "Name can only contain alphanumeric and hyphen characters"
    elif name[0].isdigit() or name[0] == "-":
        problem = "Name must not start with a digit or hyphen"
    elif name.endswith("-"):
        problem = "Name must not end with a hyphen"
    if problem:
        raise BadRequest(f"Invalid instance name: {problem}")


def check_instance(config: dict[str, str], devices: dict[str, dict[str, str]]) -> None:
    """Validate an instance's own config and devices (before profile expansion)."""
    keys.check_profile_config({k: v for k, v in config.items() if not k.startswith(_INSTANCE_ONLY)})
    check_devices(devices)


def check_expanded(expanded: Expanded) -> str:
    """What Warren can run of an instance's expanded config and devices; the root disk's pool.

    Containers get their root disk and bridged nics: any other device is refused rather
    than silently left out (``none`` devices, which mask a profile's, are fine).
    """
    root = root_disk(expanded.devices)
    if root is None or not root[1].get("pool"):
        raise BadRequest(
            "Failed initialising instance: Invalid devices: Failed detecting root disk "
            "device: No root device could be found"
        )
    for name, device in sorted(expanded.devices.items()):
        if device.get("type") == "nic":
            nics.check_nic(name, device)
        elif name != root[0] and device.get("type") != "none":
            raise BadRequest(
                f'Device "{name}" (type {device.get("type")}) is not supported yet: '
                "Warren gives containers their root disk and nics only"
            )
    limits_of(expanded.config)
    return root[1]["pool"]


def check_type(instance_type: str) -> None:
    if instance_type not in ("", "container"):
        if instance_type == "virtual-machine":
            raise BadRequest("Virtual machines are not supported by Warren yet")
        raise BadRequest(f"Invalid instance type {instance_type!r}")


def memory_bytes(value: str) -> int:
    """``limits.memory``: a size (``64MB``, ``1GiB``) or a percentage of the host's memory."""
    if value.endswith("%"):
        return int(host_memory() * int(value[:-1]) / 100)
    size = parse_size(value)
    if size is None:
        raise BadRequest(f"Invalid value for limits.memory {value!r}")
    return size


def host_memory() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith(_MEM_TOTAL_KEY):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def limits_of(config: dict[str, str]) -> Limits:
    """The driver limits an (expanded) config asks for."""
    cpu: int | str | None = None
    raw_cpu = config.get("limits.cpu")
    if raw_cpu:
        cpu = int(raw_cpu) if raw_cpu.isdigit() else raw_cpu
    memory = None
    if config.get("limits.memory"):
        memory = memory_bytes(config["limits.memory"])
    processes = int(config["limits.processes"]) if config.get("limits.processes") else None
    try:
        return Limits(
            cpu=cpu,
            cpu_allowance=config.get("limits.cpu.allowance") or None,
            memory=memory,
            processes=processes,
        )
    except ValueError as exc:
        raise BadRequest(f"Invalid limits: {exc}") from None


def privileged(config: dict[str, str]) -> bool:
    return values.is_true(config.get("security.privileged"))


def environment(config: dict[str, str]) -> dict[str, str]:
    """``environment.*`` keys as variables."""
    prefix = "environment."
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
