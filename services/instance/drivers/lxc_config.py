"""Render an LXC container config file from an InstanceSpec (pure functions, no host calls).

Warren writes the whole file itself rather than going through python-lxc's set_config_item and
save_config: the distribution's common.conf pulls in a post-stop hook that sleeps half a second
and AppArmor keys this kernel lacks, and save_config drops cleared keys (see HOST-NOTES.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from services.instance.drivers.spec import InstanceSpec, Limits, NicSpec

SECCOMP_PROFILE = Path("/usr/share/lxc/config/common.seccomp")
CPU_PERIOD_US = 100_000
_DEFAULT_SHARES = 1024

# The device allow-list of LXC's common.conf, written for the cgroup v1 devices controller
# (cgroups are a v1/v2 hybrid here and LXC drives v1: lxc.cgroup2.* keys would be ignored).
_DEVICES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:1 rwm",  # console
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # pts
    "c 10:229 rwm",  # fuse
)


def online_cpus() -> int:
    """How many CPUs this host has (a CPU count limit is capped to it)."""
    return os.cpu_count() or 1


def cpuset_of(cpu: int | str, available: int) -> str:
    """A CPU count becomes the first N CPUs; a CPU set is kept as given."""
    if isinstance(cpu, str):
        return cpu
    count = min(cpu, available)
    return "0" if count == 1 else f"0-{count - 1}"


def allowance_items(allowance: str | None) -> list[tuple[str, str]]:
    """cpu controller items: "N%" is a relative weight, "Xms/Yms" a hard CFS quota."""
    if allowance is None:
        return [("cpu.shares", str(_DEFAULT_SHARES)), ("cpu.cfs_quota_us", "-1")]
    match = re.match(r"^(\d+)%$", allowance)
    if match:
        shares = max(2, _DEFAULT_SHARES * int(match.group(1)) // 100)
        return [("cpu.shares", str(shares)), ("cpu.cfs_quota_us", "-1")]
    quota_ms, period_ms = (int(x) for x in re.findall(r"\d+", allowance))
    return [
        ("cpu.shares", str(_DEFAULT_SHARES)),
        ("cpu.cfs_period_us", str(period_ms * 1000)),
        ("cpu.cfs_quota_us", str(quota_ms * 1000)),
    ]


def limit_items(
    limits: Limits, *, available_cpus: int, all_cpus: str, memsw: bool
) -> list[tuple[str, str]]:
    """cgroup v1 (key, value) pairs for limits, in the order a fresh cgroup accepts them.

    A fresh cgroup is unlimited, so memory.limit_in_bytes goes before memory.memsw (which must
    stay >= it); absent limits are written as "unlimited" so that applying limits live resets
    them. Swap is not allowed beyond the memory limit (memsw = memory), as an enforced cap.
    """
    items: list[tuple[str, str]] = []
    cpus = all_cpus if limits.cpu is None else cpuset_of(limits.cpu, available_cpus)
    items.append(("cpuset.cpus", cpus))
    items.extend(allowance_items(limits.cpu_allowance))
    memory = "-1" if limits.memory is None else str(limits.memory)
    items.append(("memory.limit_in_bytes", memory))
    if memsw:
        items.append(("memory.memsw.limit_in_bytes", memory))
    items.append(("pids.max", "max" if limits.processes is None else str(limits.processes)))
    return items


def instance_dir(root: Path, name: str) -> Path:
    """Where LXC finds the container: <lxcpath>/<name>/config."""
    return root / name


def render_config(
    spec: InstanceSpec, root: Path, *, available_cpus: int, all_cpus: str, memsw: bool
) -> str:
    """The complete LXC config file for ``spec`` under the lxcpath ``root``."""
    home = instance_dir(root, spec.name)
    console_log = spec.console_log or home / "console.log"
    log = spec.log or home / "lxc.log"
    lines = [
        "# Written by Warren; do not edit (rewritten on every change).",
        f"lxc.uts.name = {spec.hostname}",
        f"lxc.rootfs.path = dir:{spec.rootfs}",
        *nic_lines(spec.nics),
        # /sys/fs/cgroup is empty inside without cgroup:mixed:force.
        "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed:force",
        "lxc.autodev = 1",
        "lxc.tty.dir = lxc",
        "lxc.tty.max = 0",
        "lxc.pty.max = 1024",
        f"lxc.console.logfile = {console_log}",
        f"lxc.log.file = {log}",
        "lxc.log.level = WARN",
        "lxc.cap.drop = mac_admin mac_override sys_time sys_module sys_rawio",
        # SIGPWR asks init to power off (sysvinit, systemd and busybox init all honour it).
        "lxc.signal.halt = SIGPWR",
        "lxc.signal.stop = SIGKILL",
        f"lxc.init.cmd = {' '.join(spec.init)}",
    ]
    if SECCOMP_PROFILE.exists():
        lines.append(f"lxc.seccomp.profile = {SECCOMP_PROFILE}")
    if spec.idmap is not None:
        idmap = spec.idmap
        lines.append(f"lxc.idmap = u 0 {idmap.host_uid} {idmap.count}")
        lines.append(f"lxc.idmap = g 0 {idmap.host_gid} {idmap.count}")
        if spec.rootfs_idmapped_mount:
            # An idmapped mount shifts an unshifted rootfs on the fly: no chown of the files.
            lines.append("lxc.rootfs.options = idmap=container")
    lines.append("lxc.cgroup.devices.deny = a")
    lines.extend(f"lxc.cgroup.devices.allow = {rule}" for rule in _DEVICES)
    items = limit_items(spec.limits, available_cpus=available_cpus, all_cpus=all_cpus, memsw=memsw)
    lines.extend(f"lxc.cgroup.{key} = {value}" for key, value in items)
    lines.extend(f"lxc.environment = {key}={value}" for key, value in spec.environment.items())
    # Deliberately absent: lxc.include of common.conf (its lxcfs hooks sleep 0.5 s on every stop)
    # and any lxc.apparmor.* key (no AppArmor on this kernel; CRIU restore trips on it).
    return "\n".join(lines) + "\n"


def nic_lines(nics: tuple[NicSpec, ...]) -> list[str]:
    """``lxc.net.N.*`` of each nic; without nics a private, empty network namespace."""
    if not nics:
        return ["lxc.net.0.type = empty"]
    lines = []
    for index, nic in enumerate(nics):
        key = f"lxc.net.{index}"
        lines += [
            f"{key}.type = veth",
            f"{key}.link = {nic.bridge}",
            f"{key}.flags = up",
            f"{key}.hwaddr = {nic.hwaddr}",
            f"{key}.name = {nic.name}",
            f"{key}.veth.pair = {nic.host_name}",
        ]
        if nic.mtu is not None:
            lines.append(f"{key}.mtu = {nic.mtu}")
    return lines


def nics_of(config_text: str) -> tuple[NicSpec, ...]:
    """The nics a config file Warren wrote defines (what a running instance was started or
    hot-plugged with: the file is rewritten after each change)."""
    found: dict[int, dict[str, str]] = {}
    for line in config_text.splitlines():
        key, _, value = line.partition("=")
        parts = key.strip().split(".")
        if len(parts) >= 4 and parts[:2] == ["lxc", "net"] and parts[2].isdigit():
            found.setdefault(int(parts[2]), {})[".".join(parts[3:])] = value.strip()
    nics = []
    for _, items in sorted(found.items()):
        if items.get("type") != "veth":
            continue
        nics.append(
            NicSpec(
                name=items["name"],
                bridge=items["link"],
                hwaddr=items["hwaddr"],
                host_name=items["veth.pair"],
                mtu=int(items["mtu"]) if items.get("mtu") else None,
            )
        )
    return tuple(nics)


def rootfs_of(config_text: str) -> Path | None:
    """The rootfs directory named by a config file Warren wrote (None if it names none)."""
    for line in config_text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "lxc.rootfs.path":
            value = value.strip()
            return Path(value.removeprefix("dir:")) if value else None
    return None
