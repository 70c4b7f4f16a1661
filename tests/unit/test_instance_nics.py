"""Instance nics: LXD's value checks, what Warren refuses to run, stable MACs and veth names,
and the LXC config lines they become."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from schemas.errors import BadRequest, Unavailable
from schemas.networks import NicPlugged
from services.instance.catalog.devices import check_devices
from services.instance.drivers import lxc_config
from services.instance.drivers.spec import IdMap, InstanceSpec, NicSpec
from services.instance.instances import config as cfg
from services.instance.instances import nics
from services.instance.instances.networking import NicPlumbing
from services.instance.instances.state import expand

ROOT = {"root": {"type": "disk", "path": "/", "pool": "default"}}
ID = "0b7c2a9e-4a57-4c8e-9a55-1a2b3c4d5e6f"


def refusal(devices: dict[str, dict[str, str]]) -> str:
    with pytest.raises(BadRequest) as err:
        check_devices(devices)
    return err.value.message


@pytest.mark.parametrize(
    ("device", "message"),
    [
        (
            {"network": "br", "nictype": "bridged"},
            'Cannot use "nictype" property in conjunction with "network" property',
        ),
        (
            {"network": "br", "parent": "br0"},
            'Cannot use "parent" property in conjunction with "network" property',
        ),
        (
            {"network": "br", "hwaddr": "00:16:3e:zz:00:01"},
            'Invalid value for device option "hwaddr": Invalid MAC address, must be 6 bytes '
            "of hex separated by colons",
        ),
        ({"network": "br", "mtu": "100"}, 'Invalid value for device option "mtu": Out of MTU'),
        ({"network": "br", "mtu": "x"}, 'Invalid value for device option "mtu": Invalid value'),
        (
            {"network": "br", "name": "a-much-too-long-name"},
            'Invalid value for device option "name": Network interface is too long',
        ),
        (
            {"network": "br", "ipv4.address": "10.0.0.300"},
            'Invalid value for device option "ipv4.address": Not an IPv4 address',
        ),
        ({"network": "br", "colour": "red"}, 'Invalid device option "colour"'),
        (
            {"nictype": "bridged", "parent": "br/0"},
            'Invalid value for device option "parent": Invalid network interface name',
        ),
    ],
)
def test_bad_nic_values_in_lxds_words(device: dict[str, str], message: str) -> None:
    assert refusal({"eth0": {"type": "nic", **device}}).startswith(
        f'Device validation failed for "eth0": {message}'
    )


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ({"nictype": "macvlan", "parent": "eth0"}, 'nictype "macvlan" is not supported'),
        ({"network": "br", "limits.ingress": "10Mbit"}, '"limits.ingress" is not supported'),
        ({"network": "br", "limits.max": "10Mbit"}, '"limits.max" is not supported'),
        ({"network": "br", "vlan": "10"}, 'nic option "vlan" is not supported'),
        ({"nictype": "bridged", "parent": "br0", "ipv4.address": "10.0.0.2"}, "managed network"),
    ],
)
def test_what_warren_cannot_run_is_refused(device: dict[str, str], message: str) -> None:
    devices = {**ROOT, "eth0": {"type": "nic", **device}}
    check_devices(devices)  # LXD accepts these in a profile
    with pytest.raises(BadRequest, match=message):
        cfg.check_expanded(expand({}, devices, []))


def test_supported_nics_pass() -> None:
    devices = {
        **ROOT,
        "eth0": {"type": "nic", "network": "warrenbr0", "name": "eth0"},
        "eth1": {
            "type": "nic",
            "nictype": "bridged",
            "parent": "br0",
            "hwaddr": "00:16:3E:00:00:01",
            "mtu": "1400",
            "host_name": "vethmine",
        },
    }
    check_devices(devices)
    assert cfg.check_expanded(expand({}, devices, [])) == "default"


def test_hwaddr_and_host_name_are_stable_and_lxd_shaped() -> None:
    mac = nics.derive_hwaddr(ID, "eth0")
    assert mac == nics.derive_hwaddr(ID, "eth0")
    assert mac.startswith("00:16:3e:") and len(mac) == 17
    assert mac != nics.derive_hwaddr(ID, "eth1")
    assert mac != nics.derive_hwaddr(str(uuid.uuid4()), "eth0")
    veth = nics.veth_name(ID, "eth0")
    assert veth.startswith("veth") and len(veth) == 12 and int(veth[4:], 16) >= 0
    assert veth == nics.veth_name(ID, "eth0") != nics.veth_name(ID, "eth1")


def test_resolve_defaults_and_overrides() -> None:
    devices = {
        "eth0": {"type": "nic", "network": "net1"},
        "eth1": {
            "type": "nic",
            "nictype": "bridged",
            "parent": "br0",
            "hwaddr": "00:16:3E:AA:BB:CC",
        },
    }
    eth0, eth1 = nics.resolve(ID, {}, devices)
    assert (eth0.name, eth0.hwaddr, eth0.network) == (
        "eth0",
        nics.derive_hwaddr(ID, "eth0"),
        "net1",
    )
    assert eth0.host_name == nics.veth_name(ID, "eth0")
    assert (eth1.hwaddr, eth1.parent, eth1.network) == ("00:16:3e:aa:bb:cc", "br0", None)
    assert nics.volatile_hwaddrs([eth0]) == {"volatile.eth0.hwaddr": eth0.hwaddr}
    # volatile.<dev>.hwaddr (what the instance was created with) wins over the derivation
    (kept,) = nics.resolve(
        ID, {"volatile.eth0.hwaddr": "00:16:3e:01:02:03"}, {"eth0": devices["eth0"]}
    )
    assert kept.hwaddr == "00:16:3e:01:02:03"
    same_name = {"a": {"type": "nic", "network": "n", "name": "eth0"}, "eth0": devices["eth0"]}
    with pytest.raises(BadRequest, match="share an interface name"):
        nics.resolve(ID, {}, same_name)


def test_specs_take_the_bridge_and_mtu_from_plugging() -> None:
    devices = {
        "eth0": {"type": "nic", "network": "net1"},
        "eth1": {"type": "nic", "network": "net1", "mtu": "1400"},
        "eth2": {"type": "nic", "nictype": "bridged", "parent": "br0"},
    }
    resolved = nics.resolve(ID, {}, devices)
    plugged = {"net1": NicPlugged(bridge="wbr-net1", mtu=1450)}
    eth0, eth1, eth2 = nics.specs(resolved, plugged)
    assert (eth0.bridge, eth0.mtu) == ("wbr-net1", 1450)
    assert (eth1.bridge, eth1.mtu) == ("wbr-net1", 1400)
    assert (eth2.bridge, eth2.mtu) == ("br0", None)
    assert nics.specs(resolved, {})[0].bridge == "net1"  # not plugged yet: the network's name


def test_lxc_config_lines_round_trip(tmp_path: Path) -> None:
    nic = NicSpec(
        name="eth0", bridge="br0", hwaddr="00:16:3e:00:00:01", host_name="vethab", mtu=1400
    )
    other = NicSpec(name="eth1", bridge="br1", hwaddr="00:16:3e:00:00:02", host_name="vethcd")
    spec = InstanceSpec(
        name="w-" + uuid.UUID(ID).hex,
        rootfs=tmp_path,
        idmap=IdMap(),
        nics=(nic, other),
    )
    text = lxc_config.render_config(spec, tmp_path, available_cpus=1, all_cpus="0", memsw=False)
    assert "lxc.net.0.type = veth" in text and "lxc.net.0.link = br0" in text
    assert "lxc.net.0.veth.pair = vethab" in text and "lxc.net.0.mtu = 1400" in text
    assert "lxc.net.1.name = eth1" in text and "lxc.net.1.mtu" not in text
    assert "type = empty" not in text
    assert lxc_config.nics_of(text) == (nic, other)
    bare = spec.model_copy(update={"nics": ()})
    text = lxc_config.render_config(bare, tmp_path, available_cpus=1, all_cpus="0", memsw=False)
    assert "lxc.net.0.type = empty" in text and lxc_config.nics_of(text) == ()


class SilentPeers:
    """A network service that never answers (as the bus reports one that is not running)."""

    def __init__(self) -> None:
        self.asked = 0

    async def network(self, name: str) -> None:
        self.asked += 1
        raise Unavailable("no service answers network.n1.network-get")

    async def nic_plug(self, plug: object) -> None:
        self.asked += 1
        raise Unavailable("no service answers network.n1.nic-plug")


async def test_a_silent_network_service_is_not_asked_again_at_once() -> None:
    peers = SilentPeers()
    plumbing = NicPlumbing(peers)  # type: ignore[arg-type]
    resolved = nics.resolve(ID, {}, {"eth0": {"type": "nic", "network": "net1"}})
    with pytest.raises(Unavailable):
        await plumbing.check_networks(resolved)
    with pytest.raises(Unavailable, match="network-get"):
        await plumbing.plug("c1", "default", resolved)
    assert peers.asked == 1
    # Nothing is asked for instances without network nics.
    bridged = nics.resolve(ID, {}, {"eth0": {"type": "nic", "nictype": "bridged", "parent": "b"}})
    assert await plumbing.plug("c1", "default", bridged) == {}
    await plumbing.check_networks(bridged)
    assert peers.asked == 1
