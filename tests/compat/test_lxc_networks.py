"""Managed networks through the real LXD 5.0 ``lxc`` client: ``lxc network create/list/show/
set/unset/edit/rename/info/list-leases/delete``, the errors a user makes, and that each
network is really on the host (bridge, nftables table, dnsmasq) and completely gone after
its deletion or a refused create.

Every test makes its own networks (``unique`` names, at most 15 characters as interface names
must be) and removes them.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helpers import lxc_ok, metadata, unique

pytestmark = [
    pytest.mark.skipif(shutil.which("lxc") is None, reason="the lxc client is missing"),
    pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq is missing"),
    pytest.mark.timeout(180),
]


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


def dnsmasq_of(name: str) -> list[int]:
    """Pids of the dnsmasq processes serving interface ``name``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            cmdline
            and cmdline[0].endswith(b"dnsmasq")
            and f"--interface={name}".encode() in cmdline
        ):
            found.append(int(proc.name))
    return found


def gone_from_host(name: str) -> bool:
    return (
        not link_exists(name)
        and name.replace("-", "_") not in nft_tables()
        and not dnsmasq_of(name)
    )


def wait_until(predicate: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


class Networks:
    def __init__(self, target: Any) -> None:
        self.target = target
        self.names: list[str] = []

    def create(self, *config: str) -> str:
        name = unique("n")
        self.names.append(name)
        lxc_ok(self.target, "network", "create", name, *config)
        return name

    def cleanup(self) -> None:
        for name in self.names:
            self.target.lxc("network", "delete", name)


@pytest.fixture
def networks(target: Any) -> Iterator[Networks]:
    made = Networks(target)
    yield made
    made.cleanup()


def show(target: Any, name: str) -> dict[str, Any]:
    return yaml.safe_load(lxc_ok(target, "network", "show", name))


def test_create_list_show_set_unset_rename_delete(target: Any, networks: Networks) -> None:
    name = networks.create()
    shown = show(target, name)
    assert shown["managed"] is True and shown["type"] == "bridge"
    address = ipaddress.ip_interface(shown["config"]["ipv4.address"])
    assert address.network.prefixlen == 24 and address.is_private  # picked by "auto"
    assert shown["config"]["ipv4.nat"] == "true"
    # On the host: the bridge holds the address, dnsmasq serves it, rules are in our table.
    assert link_exists(name)
    assert (
        str(address.ip)
        in subprocess.run(["ip", "-4", "addr", "show", name], capture_output=True, text=True).stdout
    )
    assert wait_until(lambda: bool(dnsmasq_of(name)))
    assert name.replace("-", "_") in nft_tables()

    listed = json.loads(lxc_ok(target, "network", "list", "--format", "json"))
    mine = [n for n in listed if n["name"] == name]
    assert mine and mine[0]["managed"] is True
    assert any(n["name"] == "lo" and n["managed"] is False for n in listed)  # host interfaces

    lxc_ok(target, "network", "set", name, "dns.domain", "example")
    lxc_ok(target, "network", "set", name, "user.owner", "tests")
    assert show(target, name)["config"]["dns.domain"] == "example"
    lxc_ok(target, "network", "unset", name, "user.owner")
    assert "user.owner" not in show(target, name)["config"]
    edited = show(target, name)
    edited["description"] = "edited"
    lxc_ok(target, "network", "edit", name, input=yaml.safe_dump(edited))
    assert show(target, name)["description"] == "edited"

    info = lxc_ok(target, "network", "info", name)
    assert str(address.ip) in info
    assert lxc_ok(target, "network", "list-leases", name) is not None

    new = unique("n")
    networks.names.append(new)
    lxc_ok(target, "network", "rename", name, new)
    assert wait_until(lambda: link_exists(new) and gone_from_host(name))
    assert show(target, new)["config"]["ipv4.address"] == str(address)

    lxc_ok(target, "network", "delete", new)
    assert wait_until(lambda: gone_from_host(new))
    assert target.lxc("network", "show", new).returncode != 0


def test_bad_networks_are_refused_and_leave_nothing(target: Any, networks: Networks) -> None:
    first = networks.create()
    subnet = ipaddress.ip_interface(show(target, first)["config"]["ipv4.address"]).network
    overlapping = unique("n")
    result = target.lxc(
        "network", "create", overlapping, f"ipv4.address={subnet.network_address + 9}/24"
    )
    assert result.returncode != 0 and "overlaps" in result.stderr
    assert gone_from_host(overlapping)
    for config, words in (
        ("ipv4.address=10.300.0.1/24", "ipv4.address"),
        ("ipv4.address=10.77.0.0/24", "ipv4.address"),
        ("bogus.key=1", "bogus.key"),
        ("ipv4.nat=maybe", "ipv4.nat"),
    ):
        bad = unique("n")
        result = target.lxc("network", "create", bad, config)
        assert result.returncode != 0 and words in result.stderr, (config, result.stderr)
        assert gone_from_host(bad)
    too_long = "n" * 16
    result = target.lxc("network", "create", too_long)
    assert result.returncode != 0 and "Invalid network name" in result.stderr
    result = target.lxc("network", "create", first)
    assert result.returncode != 0 and "already exists" in result.stderr
    # The first network is untouched by all of it.
    assert ipaddress.ip_interface(show(target, first)["config"]["ipv4.address"]).network == subnet
    assert link_exists(first)


def test_a_network_in_use_cannot_be_deleted(target: Any, networks: Networks) -> None:
    name = networks.create()
    profile = unique("p")
    lxc_ok(target, "profile", "create", profile)
    try:
        lxc_ok(target, "profile", "device", "add", profile, "eth0", "nic", f"network={name}")
        result = target.lxc("network", "delete", name)
        assert result.returncode != 0 and "in use" in result.stderr
        assert link_exists(name)
        used_by = metadata(target, f"/1.0/networks/{name}")["used_by"]
        assert f"/1.0/profiles/{profile}" in used_by
    finally:
        target.lxc("profile", "delete", profile)
    lxc_ok(target, "network", "delete", name)
    assert wait_until(lambda: gone_from_host(name))


def test_a_killed_dnsmasq_comes_back(target: Any, networks: Networks) -> None:
    name = networks.create()
    assert wait_until(lambda: bool(dnsmasq_of(name)))
    (pid,) = dnsmasq_of(name)
    subprocess.run(["kill", "-9", str(pid)], check=True)
    assert wait_until(lambda: bool(dnsmasq_of(name)) and dnsmasq_of(name) != [pid], 20)
    subprocess.run(["ip", "link", "delete", name], check=True)
    assert wait_until(lambda: link_exists(name), 20)
