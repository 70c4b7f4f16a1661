# ruff: noqa: F811 - the image and containers fixtures come from test_lxc_instances
"""Containers on Warren's default network, through the real ``lxc`` client: launched with
the default profile they get an address by DHCP, reach each other by address and by name,
the host reaches them, a process in a separate network namespace (an "outside" host, on
addresses of this machine only) is reached through NAT, and a network forward on the host
side of that namespace's link reaches a port served inside a container. Killing dnsmasq or
the network service heals without losing the leases.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helpers import lxc_ok, unique
from test_lxc_instances import Containers, containers, image  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.skipif(shutil.which("lxc") is None, reason="the lxc client is missing"),
    pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq is missing"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.timeout(240),
]

BUSYBOX = "/bin/busybox"
LEASE_WITHIN = 10.0  # seconds: a guard against hanging, not a speed target


def sh(*args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


def ipv4_of(target: Any, name: str) -> str | None:
    listed = json.loads(lxc_ok(target, "list", name, "--format", "json"))
    for entry in listed:
        if entry["name"] != name:
            continue
        for nic, net in ((entry.get("state") or {}).get("network") or {}).items():
            if nic == "lo":
                continue
            for address in net["addresses"]:
                if address["family"] == "inet" and address["scope"] == "global":
                    return str(address["address"])
    return None


def wait_ipv4(target: Any, name: str) -> str:
    deadline = time.monotonic() + LEASE_WITHIN
    while time.monotonic() < deadline:
        address = ipv4_of(target, name)
        if address:
            return address
        time.sleep(0.1)
    raise AssertionError(f"{name} got no IPv4 address in {LEASE_WITHIN} s")


class Outside:
    """A network namespace joined to the host by a veth pair: a host "outside" the bridge."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns, self.host_if, self.peer = f"wto{tag}", f"wto{tag}", f"wtp{tag}"
        octet = int(tag[:2], 16)
        self.host_ip, self.ip = f"192.168.{octet}.1", f"192.168.{octet}.2"
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer)
        sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        sh("ip", "link", "set", self.peer, "netns", self.ns)
        self.run("ip", "addr", "add", f"{self.ip}/30", "dev", self.peer)
        self.run("ip", "link", "set", self.peer, "up")
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "route", "add", "default", "via", self.host_ip)

    def run(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns, *args, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *args], stdout=subprocess.PIPE, text=True
        )

    def remove(self) -> None:
        sh("ip", "link", "delete", self.host_if, check=False)
        sh("ip", "netns", "delete", self.ns, check=False)


@pytest.fixture
def outside() -> Iterator[Outside]:
    made = Outside()
    yield made
    made.remove()


def default_network(target: Any) -> str:
    profile = yaml.safe_load(lxc_ok(target, "profile", "show", "default"))
    return str(profile["devices"]["eth0"]["network"])


def serve_once(target: Any, name: str, port: int, reply: str) -> None:
    """A one-shot TCP server inside the container, detached from the exec."""
    command = f'setsid sh -c "echo {reply} | nc -l -p {port}" </dev/null >/dev/null 2>&1 &'
    lxc_ok(target, "exec", name, "--", "sh", "-c", command)
    for _ in range(50):
        listening = target.lxc("exec", name, "--", "netstat", "-ltn").stdout
        if f":{port} " in listening:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {name}:{port}")


def test_containers_get_addresses_names_nat_and_forwards(
    target: Any, containers: Containers, outside: Outside
) -> None:
    c1, c2 = containers.launch(), containers.launch()
    ip1, ip2 = wait_ipv4(target, c1), wait_ipv4(target, c2)
    assert ip1 != ip2
    bridge = default_network(target)
    leases = lxc_ok(target, "network", "list-leases", bridge)
    assert c1 in leases and ip1 in leases
    # c2 reaches c1 by address and by name (dnsmasq answers <name>.<dns.domain>).
    lxc_ok(target, "exec", c2, "--", "ping", "-c1", "-W2", ip1)
    lxc_ok(target, "exec", c2, "--", "ping", "-c1", "-W2", f"{c1}.lxd")
    # The host reaches both.
    for address in (ip1, ip2):
        sh(BUSYBOX, "ping", "-c1", "-W2", address)
    # NAT: the outside host has no route to the bridge's subnet, yet c1 reaches it.
    server = outside.popen(BUSYBOX, "nc", "-l", "-p", "7000")
    try:
        time.sleep(0.2)
        lxc_ok(target, "exec", c1, "--", "sh", "-c", f"echo via-nat | nc -w2 {outside.ip} 7000")
        assert server.communicate(timeout=5)[0].strip() == "via-nat"
    finally:
        server.kill()
    # A forward on the host's address of the outside link reaches c1's port 80.
    lxc_ok(target, "network", "forward", "create", bridge, outside.host_ip)
    try:
        lxc_ok(
            target,
            "network",
            "forward",
            "port",
            "add",
            bridge,
            outside.host_ip,
            "tcp",
            "8080",
            ip1,
            "80",
        )
        serve_once(target, c1, 80, "forwarded")
        got = outside.run(BUSYBOX, "nc", "-w2", outside.host_ip, "8080", timeout=5).stdout
        assert got.strip() == "forwarded"
    finally:
        lxc_ok(target, "network", "forward", "delete", bridge, outside.host_ip)
    rules = sh("nft", "list", "ruleset").stdout
    assert outside.host_ip not in rules  # the forward's DNAT went with it
    # The default network is in use: it cannot be deleted.
    result = target.lxc("network", "delete", bridge)
    assert result.returncode != 0 and "in use" in result.stderr


def test_a_nic_on_a_missing_network_is_refused(target: Any, containers: Containers) -> None:
    name = unique("c")
    result = target.lxc("init", containers.image.alias, name, "-n", "nosuchnet")
    assert result.returncode != 0 and "nosuchnet" in result.stderr
    assert target.lxc("info", name).returncode != 0


def test_killing_dnsmasq_or_the_network_service_heals(target: Any, containers: Containers) -> None:
    c1 = containers.launch()
    ip1 = wait_ipv4(target, c1)
    bridge = default_network(target)
    pid_file = Path(target.dir) / "networks" / bridge / "dnsmasq.pid"
    old = int(pid_file.read_text())
    sh("kill", "-9", str(old))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            new = int(pid_file.read_text())
        except (OSError, ValueError):
            new = old
        if new != old and Path(f"/proc/{new}").exists():
            break
        time.sleep(0.1)
    else:
        raise AssertionError("dnsmasq did not come back")
    c2 = containers.launch()
    assert wait_ipv4(target, c2)  # the new dnsmasq serves
    sh("kill", "-9", str(target.pid("network")))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = target.lxc("network", "list-leases", bridge)
        if result.returncode == 0 and c1 in result.stdout and ip1 in result.stdout:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("leases not back after the network service was killed")
    assert ipv4_of(target, c1) == ip1


def test_a_hot_plugged_nic_gets_its_reserved_address(target: Any, containers: Containers) -> None:
    network = unique("n")
    lxc_ok(target, "network", "create", network, "ipv4.address=10.213.7.1/24")
    c1 = containers.launch()
    try:
        wait_ipv4(target, c1)
        lxc_ok(
            target, "config", "device", "add", c1, "eth1", "nic",
            f"network={network}", "name=eth1", "ipv4.address=10.213.7.50",
        )  # fmt: skip
        leases = lxc_ok(target, "network", "list-leases", network)
        assert "10.213.7.50" in leases and "STATIC" in leases
        # busybox's init asks DHCP for eth0 only: ask for eth1 by hand.
        script = "/usr/share/udhcpc/default.script"
        lxc_ok(target, "exec", c1, "--", "udhcpc", "-i", "eth1", "-n", "-q", "-s", script)
        shown = lxc_ok(target, "exec", c1, "--", "ip", "-4", "addr", "show", "eth1")
        assert "10.213.7.50/24" in shown
        sh(BUSYBOX, "ping", "-c1", "-W2", "10.213.7.50")
        result = target.lxc("network", "delete", network)
        assert result.returncode != 0 and "in use" in result.stderr
        lxc_ok(target, "config", "device", "remove", c1, "eth1")
        assert "eth1" not in lxc_ok(target, "exec", c1, "--", "ip", "link")
    finally:
        target.lxc("config", "device", "remove", c1, "eth1")
        target.lxc("delete", "--force", c1)
        lxc_ok(target, "network", "delete", network)
