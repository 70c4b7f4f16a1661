"""Value checks of ``nic`` devices, with LXD 5.0's messages (profiles and instances alike).

Which options a nic may carry at all is :data:`devices.DEVICE_OPTIONS`; here the values of
the ones Warren runs, LXD's rule that a ``network`` nic names neither nictype nor parent, and
which networks a profile's nics name (whether those exist, only the network service knows).
"""

from __future__ import annotations

import ipaddress
import re

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
#: Interface names: the kernel's IFNAMSIZ less the NUL, and no slash, colon or blank.
_IFNAME = re.compile(r"^[^/:\s]{1,15}$")
#: Options a ``network`` nic takes from its network (LXD refuses them beside ``network``).
_FROM_NETWORK = ("nictype", "parent")
MTU_MIN, MTU_MAX = 1280, 16384


def nic_problem(config: dict[str, str]) -> str | None:
    """What LXD says is wrong with a nic's values (None when nothing is)."""
    if config.get("network"):
        for option in _FROM_NETWORK:
            if config.get(option):
                return f'Cannot use "{option}" property in conjunction with "network" property'
    checks = (
        ("hwaddr", _mac_problem),
        ("mtu", _mtu_problem),
        ("name", _ifname_problem),
        ("host_name", _ifname_problem),
        ("parent", _ifname_problem),
        ("ipv4.address", _ipv4_problem),
    )
    for option, check in checks:
        value = config.get(option)
        if value:
            problem = check(value)
            if problem:
                return f'Invalid value for device option "{option}": {problem}'
    return None


def _mac_problem(value: str) -> str | None:
    if not _MAC.match(value):
        return "Invalid MAC address, must be 6 bytes of hex separated by colons"
    return None


def _mtu_problem(value: str) -> str | None:
    if not value.isdigit():
        return f'Invalid value for an integer "{value}"'
    if not MTU_MIN <= int(value) <= MTU_MAX:
        return f"Out of MTU range ({MTU_MIN}-{MTU_MAX})"
    return None


def _ifname_problem(value: str) -> str | None:
    if len(value) > 15:
        return "Network interface is too long (maximum 15 characters)"
    if not _IFNAME.match(value) or value in (".", ".."):
        return f'Invalid network interface name "{value}"'
    return None


def _ipv4_problem(value: str) -> str | None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f'Not an IPv4 address "{value}"'
    return None


def network_refs(
    devices: dict[str, dict[str, str]], known: dict[str, dict[str, str]] | None = None
) -> list[tuple[str, str]]:
    """(device, network) of each ``network`` nic, by device name; a nic identical in
    ``known`` (the devices as they were) is left out: its network was checked already."""
    known = known or {}
    return [
        (name, device["network"])
        for name, device in sorted(devices.items())
        if device.get("type") == "nic" and device.get("network") and known.get(name) != device
    ]


def missing_network(device: str, network: str, project: str) -> str:
    """LXD's message for a profile nic on a network that does not exist."""
    return (
        f'Device validation failed for "{device}": Failed loading device "{device}": '
        f'Failed to load network "{network}" for project "{project}": Network not found'
    )
