"""What an instance's ``nic`` devices mean for the host: pure functions, no host calls.

Warren runs veth nics on a bridge: ``nictype: bridged`` with a ``parent`` bridge, or
``network: <managed network>`` (the network service names the bridge when the nic is
plugged). The MAC address and the host end's name derive from the instance id and the device
name, so they survive restarts, renames and a lost host.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.errors import BadRequest
from schemas.networks import NicPlugged
from services.instance.drivers.spec import NicSpec

#: The nic options Warren runs (LXD knows more; those are refused, never ignored).
SUPPORTED = frozenset(
    {"type", "nictype", "parent", "network", "name", "hwaddr", "host_name", "mtu", "ipv4.address"}
)
#: LXD's MAC prefix (Xen's OUI, which LXD took over).
HWADDR_PREFIX = "00:16:3e"


@dataclass(frozen=True)
class Nic:
    """One nic device of an instance, resolved (name inside, MAC, host end)."""

    device: str
    name: str
    hwaddr: str
    host_name: str
    network: str | None  # the managed network, or None for nictype=bridged
    parent: str | None
    mtu: int | None
    ipv4_address: str | None


def _digest(instance_id: str, device: str) -> bytes:
    return hashlib.sha256(f"{instance_id}/{device}".encode()).digest()


def derive_hwaddr(instance_id: str, device: str) -> str:
    """A stable MAC for a nic without ``hwaddr``: LXD's prefix, then three derived bytes."""
    tail = _digest(instance_id, device)[:3]
    return HWADDR_PREFIX + "".join(f":{b:02x}" for b in tail)


def veth_name(instance_id: str, device: str) -> str:
    """The host end of a nic without ``host_name``: ``veth`` + 8 hex, as LXD names them."""
    return "veth" + _digest(instance_id, device)[3:7].hex()


def nic_devices(devices: dict[str, dict[str, str]]) -> list[tuple[str, dict[str, str]]]:
    return [(name, d) for name, d in sorted(devices.items()) if d.get("type") == "nic"]


def check_nic(device: str, config: dict[str, str]) -> None:
    """Refuse what Warren cannot run of a nic LXD would accept (values are checked already)."""
    nictype = config.get("nictype", "")
    if not config.get("network") and not nictype:
        raise BadRequest(f'Device "{device}": a nic needs "network" or "nictype"')
    if nictype and nictype != "bridged":
        raise BadRequest(
            f'Device "{device}": nictype "{nictype}" is not supported: Warren runs bridged '
            'nics ("network" or nictype "bridged")'
        )
    for option in sorted(config):
        if option.startswith("limits."):
            raise BadRequest(f'Device "{device}": "{option}" is not supported on nics yet')
        if option not in SUPPORTED:
            raise BadRequest(f'Device "{device}": nic option "{option}" is not supported yet')
    if config.get("ipv4.address") and not config.get("network"):
        raise BadRequest(
            f'Device "{device}": "ipv4.address" needs a managed network ("network" property)'
        )
    if not config.get("name") and len(device) > 15:
        raise BadRequest(
            f'Device "{device}": the device name is too long for an interface name: set "name"'
        )


def resolve(
    instance_id: str, config: dict[str, str], devices: dict[str, dict[str, str]]
) -> list[Nic]:
    """Every nic of the expanded devices, checked, in device-name order."""
    nics = []
    for device, d in nic_devices(devices):
        check_nic(device, d)
        hwaddr = d.get("hwaddr") or config.get(f"volatile.{device}.hwaddr")
        nics.append(
            Nic(
                device=device,
                name=d.get("name") or device,
                hwaddr=(hwaddr or derive_hwaddr(instance_id, device)).lower(),
                host_name=d.get("host_name") or veth_name(instance_id, device),
                network=d.get("network") or None,
                parent=d.get("parent") or None,
                mtu=int(d["mtu"]) if d.get("mtu") else None,
                ipv4_address=d.get("ipv4.address") or None,
            )
        )
    for attr, what in (("name", "interface name"), ("hwaddr", "MAC address")):
        values = [getattr(nic, attr) for nic in nics]
        if len(set(values)) != len(values):
            raise BadRequest(f"Two nics of the instance share an {what}")
    return nics


def networks(nics: list[Nic]) -> set[str]:
    """The managed networks the nics use."""
    return {nic.network for nic in nics if nic.network}


def specs(nics: list[Nic], plugged: dict[str, NicPlugged]) -> tuple[NicSpec, ...]:
    """The driver's nics; a network nic's bridge is what plugging said (else the network's
    name, as LXD names a bridge network's interface, until it is plugged)."""
    out = []
    for nic in nics:
        link = plugged.get(nic.network) if nic.network else None
        mtu = nic.mtu if nic.mtu is not None else (link.mtu if link else None)
        bridge = link.bridge if link else (nic.network or nic.parent or "")
        out.append(
            NicSpec(
                name=nic.name, bridge=bridge, hwaddr=nic.hwaddr, host_name=nic.host_name, mtu=mtu
            )
        )
    return tuple(out)


def volatile_hwaddrs(nics: list[Nic]) -> dict[str, str]:
    """LXD's ``volatile.<device>.hwaddr`` keys, shown in the instance's config."""
    return {f"volatile.{nic.device}.hwaddr": nic.hwaddr for nic in nics}
