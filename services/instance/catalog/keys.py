"""The configuration keys LXD 5.0 accepts on profiles (instance options) and on projects.

Tables from LXD 5.0.2's reference documentation (``/usr/share/doc/lxd/reference``); each key
maps to the checker of its value (see :mod:`values`).
"""

from __future__ import annotations

from schemas.errors import BadRequest
from services.instance.catalog import values as v

#: Instance options a profile may carry.
INSTANCE_KEYS: dict[str, v.Check] = {
    "agent.nic_config": v.boolean,
    "cluster.evacuate": v.one_of("auto", "migrate", "live-migrate", "stop"),
    "linux.kernel_modules": v.any_value,
    "boot.autostart": v.boolean,
    "boot.autostart.delay": v.integer,
    "boot.autostart.priority": v.integer,
    "boot.host_shutdown_timeout": v.integer,
    "boot.stop.priority": v.integer,
    "cloud-init.network-config": v.any_value,
    "cloud-init.user-data": v.any_value,
    "cloud-init.vendor-data": v.any_value,
    "limits.cpu": v.cpu,
    "limits.cpu.allowance": v.allowance,
    "limits.cpu.priority": v.priority,
    "limits.disk.priority": v.priority,
    "limits.hugepages.64KB": v.size,
    "limits.hugepages.1MB": v.size,
    "limits.hugepages.2MB": v.size,
    "limits.hugepages.1GB": v.size,
    "limits.memory": v.memory,
    "limits.memory.enforce": v.one_of("soft", "hard"),
    "limits.memory.hugepages": v.boolean,
    "limits.memory.swap": v.boolean,
    "limits.memory.swap.priority": v.priority,
    "limits.network.priority": v.priority,
    "limits.processes": v.integer,
    "migration.incremental.memory": v.boolean,
    "migration.incremental.memory.goal": v.integer,
    "migration.incremental.memory.iterations": v.integer,
    "migration.stateful": v.boolean,
    "nvidia.driver.capabilities": v.any_value,
    "nvidia.runtime": v.boolean,
    "nvidia.require.cuda": v.any_value,
    "nvidia.require.driver": v.any_value,
    "raw.apparmor": v.any_value,
    "raw.idmap": v.any_value,
    "raw.lxc": v.any_value,
    "raw.qemu": v.any_value,
    "raw.qemu.conf": v.any_value,
    "raw.seccomp": v.any_value,
    "security.devlxd": v.boolean,
    "security.devlxd.images": v.boolean,
    "security.idmap.base": v.uint32,
    "security.idmap.isolated": v.boolean,
    "security.idmap.size": v.uint32,
    "security.nesting": v.boolean,
    "security.privileged": v.boolean,
    "security.protection.delete": v.boolean,
    "security.protection.shift": v.boolean,
    "security.agent.metrics": v.boolean,
    "security.secureboot": v.boolean,
    "security.syscalls.allow": v.any_value,
    "security.syscalls.deny": v.any_value,
    "security.syscalls.deny_compat": v.boolean,
    "security.syscalls.deny_default": v.boolean,
    "security.syscalls.intercept.bpf": v.boolean,
    "security.syscalls.intercept.bpf.devices": v.boolean,
    "security.syscalls.intercept.mknod": v.boolean,
    "security.syscalls.intercept.mount": v.boolean,
    "security.syscalls.intercept.mount.allowed": v.any_value,
    "security.syscalls.intercept.mount.fuse": v.any_value,
    "security.syscalls.intercept.mount.shift": v.boolean,
    "security.syscalls.intercept.sched_setscheduler": v.boolean,
    "security.syscalls.intercept.setxattr": v.boolean,
    "snapshots.schedule": v.schedule,
    "snapshots.schedule.stopped": v.boolean,
    "snapshots.pattern": v.any_value,
    "snapshots.expiry": v.expiry,
}

#: Namespaces whose keys are free-form (the suffix is not checked).
INSTANCE_PREFIXES: dict[str, v.Check] = {
    "user.": v.any_value,
    "environment.": v.any_value,
    "linux.sysctl.": v.any_value,
    "limits.kernel.": v.any_value,
}

_FEATURE = v.boolean
PROJECT_FEATURES = ("features.images", "features.profiles", "features.storage.volumes")
#: Features a new project gets when its creator does not say (LXD 5.0: all but networks).
PROJECT_FEATURE_DEFAULTS = {key: "true" for key in PROJECT_FEATURES}
ALL_PROJECT_FEATURES = (*PROJECT_FEATURES, "features.networks")

_BLOCK_ALLOW = v.one_of("block", "allow")
_MANAGED = v.one_of("block", "managed", "allow")

PROJECT_KEYS: dict[str, v.Check] = {
    "backups.compression_algorithm": v.compression,
    "features.images": _FEATURE,
    "features.networks": _FEATURE,
    "features.profiles": _FEATURE,
    "features.storage.volumes": _FEATURE,
    "images.auto_update_cached": v.boolean,
    "images.auto_update_interval": v.integer,
    "images.compression_algorithm": v.compression,
    "images.default_architecture": v.any_value,
    "images.remote_cache_expiry": v.integer,
    "limits.containers": v.uint32,
    "limits.cpu": v.uint32,
    "limits.disk": v.size,
    "limits.instances": v.uint32,
    "limits.memory": v.size,
    "limits.networks": v.uint32,
    "limits.processes": v.uint32,
    "limits.virtual-machines": v.uint32,
    "restricted": v.boolean,
    "restricted.backups": _BLOCK_ALLOW,
    "restricted.cluster.groups": v.any_value,
    "restricted.cluster.target": _BLOCK_ALLOW,
    "restricted.containers.lowlevel": _BLOCK_ALLOW,
    "restricted.containers.nesting": _BLOCK_ALLOW,
    # LXD 5.0 spells the default "unpriviliged" and accepts it (and the right spelling).
    "restricted.containers.privilege": v.one_of(
        "unpriviliged", "unprivileged", "isolated", "allow"
    ),
    "restricted.containers.interception": v.one_of("block", "allow", "full"),
    "restricted.devices.disk": _MANAGED,
    "restricted.devices.disk.paths": v.any_value,
    "restricted.devices.gpu": _BLOCK_ALLOW,
    "restricted.devices.infiniband": _BLOCK_ALLOW,
    "restricted.devices.nic": _MANAGED,
    "restricted.devices.pci": _BLOCK_ALLOW,
    "restricted.devices.proxy": _BLOCK_ALLOW,
    "restricted.devices.unix-block": _BLOCK_ALLOW,
    "restricted.devices.unix-char": _BLOCK_ALLOW,
    "restricted.devices.unix-hotplug": _BLOCK_ALLOW,
    "restricted.devices.usb": _BLOCK_ALLOW,
    "restricted.idmap.uid": v.any_value,
    "restricted.idmap.gid": v.any_value,
    "restricted.networks.access": v.any_value,
    "restricted.networks.subnets": v.any_value,
    "restricted.networks.uplinks": v.any_value,
    "restricted.networks.zones": v.any_value,
    "restricted.snapshots": _BLOCK_ALLOW,
    "restricted.virtual-machines.lowlevel": _BLOCK_ALLOW,
}


def check_profile_config(config: dict[str, str]) -> None:
    """Refuse what LXD refuses in a profile's ``config`` (first offending key, sorted)."""
    for key in sorted(config):
        value = config[key]
        if key.startswith("volatile."):
            raise BadRequest("Volatile keys can only be set on instances")
        if key.startswith("image."):
            raise BadRequest("Image keys can only be set on instances")
        check = INSTANCE_KEYS.get(key)
        if check is None:
            check = next((c for p, c in INSTANCE_PREFIXES.items() if key.startswith(p)), None)
        if check is None:
            raise BadRequest(f"Unknown configuration key: {key}")
        if value != "":
            check(value)


def check_project_config(config: dict[str, str]) -> None:
    """Refuse what LXD refuses in a project's ``config`` (first offending key, sorted)."""
    for key in sorted(config):
        value = config[key]
        check = PROJECT_KEYS.get(key) or (v.any_value if key.startswith("user.") else None)
        if check is None:
            raise BadRequest(f'Invalid project configuration key "{key}"')
        if value == "":
            continue
        try:
            check(value)
        except BadRequest as exc:
            raise BadRequest(
                f'Invalid project configuration key "{key}" value: {exc.message}'
            ) from exc
