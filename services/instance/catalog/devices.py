"""Device validation for profiles, with LXD 5.0's messages.

LXD checks devices deeply (including whether referenced networks and pools exist, which
other services know: the instance service asks them when an instance uses a device).
Checked here: the device name, the type, the options each type knows, the options each type
requires, and the values of a nic's options.
"""

from __future__ import annotations

import re

from schemas.errors import BadRequest
from services.instance.catalog.nic_devices import nic_problem

_COMMON = {"type"}
_USB_LIKE = {"gid", "mode", "productid", "required", "uid", "vendorid"}
_UNIX = {"gid", "major", "minor", "mode", "path", "required", "source", "uid"}

#: The options each device type accepts (besides ``type``), from LXD 5.0's reference.
DEVICE_OPTIONS: dict[str, set[str]] = {
    "none": set(),
    "nic": {
        "acceleration",
        "boot.priority",
        "gvrp",
        "host_name",
        "hwaddr",
        "ipv4.address",
        "ipv4.gateway",
        "ipv4.host_address",
        "ipv4.host_table",
        "ipv4.neighbor_probe",
        "ipv4.routes",
        "ipv4.routes.external",
        "ipv6.address",
        "ipv6.gateway",
        "ipv6.host_address",
        "ipv6.host_table",
        "ipv6.neighbor_probe",
        "ipv6.routes",
        "ipv6.routes.external",
        "limits.egress",
        "limits.ingress",
        "limits.max",
        "maas.subnet.ipv4",
        "maas.subnet.ipv6",
        "mode",
        "mtu",
        "name",
        "network",
        "nictype",
        "parent",
        "security.acls",
        "security.acls.default.egress.action",
        "security.acls.default.egress.logged",
        "security.acls.default.ingress.action",
        "security.acls.default.ingress.logged",
        "security.ipv4_filtering",
        "security.ipv6_filtering",
        "security.mac_filtering",
        "security.port_isolation",
        "vlan",
        "vlan.tagged",
    },
    "disk": {
        "boot.priority",
        "ceph.cluster_name",
        "ceph.user_name",
        "limits.max",
        "limits.read",
        "limits.write",
        "path",
        "pool",
        "propagation",
        "raw.mount.options",
        "readonly",
        "recursive",
        "required",
        "shift",
        "size",
        "size.state",
        "source",
    },
    "unix-char": _UNIX,
    "unix-block": _UNIX,
    "usb": _USB_LIKE,
    "unix-hotplug": _USB_LIKE,
    "gpu": {
        "gid",
        "gputype",
        "id",
        "mdev",
        "mig.ci",
        "mig.gi",
        "mig.uuid",
        "mode",
        "pci",
        "productid",
        "uid",
        "vendorid",
    },
    "infiniband": {"hwaddr", "mtu", "name", "nictype", "parent"},
    "proxy": {
        "bind",
        "connect",
        "gid",
        "listen",
        "mode",
        "nat",
        "proxy_protocol",
        "security.gid",
        "security.uid",
        "uid",
    },
    "tpm": {"path", "pathrm"},
    "pci": {"address"},
}

#: NIC types that need a host ``parent`` when given through ``nictype``.
_NEEDS_PARENT = {"bridged", "macvlan", "sriov", "physical", "ipvlan"}
_NICTYPES = _NEEDS_PARENT | {"ovn", "p2p", "routed"}
_DEVICE_NAME = re.compile(r"^[a-zA-Z0-9/\-:_.]+$")
_PROXY_PROTOCOLS = ("tcp:", "udp:", "unix:")


def _fail(name: str, message: str) -> BadRequest:
    return BadRequest(f'Device validation failed for "{name}": {message}')


def _load_fail(name: str, message: str) -> BadRequest:
    return _fail(name, f'Failed loading device "{name}": {message}')


def _required(name: str, option: str) -> BadRequest:
    return _fail(name, f'Invalid value for device option "{option}": Required value')


def check_devices(devices: dict[str, dict[str, str]]) -> None:
    """Refuse what LXD refuses in a profile's ``devices`` (first offending device, sorted)."""
    for name in sorted(devices):
        check_device(name, devices[name])


def check_device(name: str, config: dict[str, str]) -> None:
    """Validate one device of a profile."""
    if not 1 <= len(name) <= 63:
        raise _fail(name, "Name must be 1-63 characters long")
    if not _DEVICE_NAME.match(name):
        raise _fail(
            name,
            "Name can only contain alphanumeric, forward slash, hyphen, colon, underscore "
            "and full stop characters",
        )
    kind = config.get("type", "")
    if kind == "":
        raise _load_fail(name, "Missing device type in config")
    known = DEVICE_OPTIONS.get(kind)
    if known is None:
        raise _load_fail(name, "Unsupported device type")
    if kind == "nic":
        _check_nic(name, config)
    for option in sorted(config):
        if option not in known and option not in _COMMON:
            raise _fail(name, f'Invalid device option "{option}"')
    if kind == "disk":
        _check_disk(name, config)
    elif kind in ("unix-char", "unix-block") and not (config.get("source") or config.get("path")):
        raise _fail(name, 'Unix device entry is missing the required "source" or "path" property')
    elif kind == "proxy":
        for option in ("listen", "connect"):
            if not config.get(option, "").startswith(_PROXY_PROTOCOLS):
                protocol = config.get(option, "").partition(":")[0]
                raise _fail(
                    name,
                    f'Invalid value for device option "{option}": '
                    f'Unknown protocol type "{protocol}"',
                )
    elif kind == "pci" and not config.get("address"):
        raise _required(name, "address")


def _check_nic(name: str, config: dict[str, str]) -> None:
    nictype, network = config.get("nictype", ""), config.get("network", "")
    if not nictype and not network:
        raise _load_fail(name, "Unsupported device type")
    if nictype and nictype not in _NICTYPES:
        raise _load_fail(name, "Unsupported device type")
    if nictype in _NEEDS_PARENT and not network and not config.get("parent"):
        raise _required(name, "parent")
    problem = nic_problem(config)
    if problem:
        raise _fail(name, problem)


def _check_disk(name: str, config: dict[str, str]) -> None:
    path, source = config.get("path", ""), config.get("source", "")
    if path == "/":
        if not config.get("pool"):
            raise _fail(name, 'Root disk entry must have a "pool" property set')
        return
    if not source:
        raise _fail(name, 'Disk entry is missing the required "source" or "path" property')
