"""Contract suite for network drivers: every registered driver, against the real host.

Clients are network namespaces: a veth pair whose host end is enslaved to the bridge plays an
instance nic (busybox udhcpc asks for its address), and another namespace on its own veth pair
(192.168.x.0/30, on this machine only) plays a host outside, for NAT and forwards. Every name
is unique per test (``wt`` + 6 hex characters); a finalizer removes each bridge, veth,
namespace, nft table and dnsmasq a test made, even when it failed.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, ip_network
from pathlib import Path

import pytest

from services.network.drivers import DRIVERS, DriverError, NetworkDriver
from services.network.drivers.base import BridgeSpec, ForwardRule, StaticHost

BUSYBOX = Path("/bin/busybox")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network drivers need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed"),
    pytest.mark.timeout(60),
]

# udhcpc does nothing by itself: this applies what it got (mask is the prefix length).
UDHCPC_SCRIPT = """#!/bin/sh
bb=/bin/busybox
case "$1" in
  deconfig) $bb ip addr flush dev "$interface"; $bb ip link set "$interface" up ;;
  bound|renew)
    $bb ip addr flush dev "$interface"
    $bb ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do $bb ip route replace default via "$r" dev "$interface"; break; done
    echo "$ip" > "$WT_OUT"
    ;;
esac
"""

# One connection: answers with the address it came from, then exits.
TCP_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
print("ready", flush=True)
c, peer = s.accept()
c.sendall(peer[0].encode())
c.close()
"""

TCP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(c.recv(100).decode())
"""


def sh(*args: str, check: bool = True, timeout: float = 20) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {done.returncode} {done.stderr.strip()}")
    return done.stdout


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def nft_tables() -> str:
    return sh("nft", "list", "tables")


def dnsmasq_pids(bridge: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if cmdline[0].endswith(b"dnsmasq") and f"--interface={bridge}".encode() in cmdline:
                if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(proc.name))
    return found


def free_slash30(taken: list[str]) -> IPv4Network:
    used = [ip_network(t) for t in taken]
    rng = random.Random()
    while True:
        net = IPv4Network((f"192.168.{rng.randrange(1, 255)}.{rng.randrange(0, 64) * 4}", 30))
        if not any(net.overlaps(u) for u in used):
            return net


def free_slash24(taken: list[str]) -> IPv4Interface:
    used = [ip_network(t) for t in taken]
    rng = random.Random()
    while True:
        net = IPv4Network((f"10.{rng.randrange(100, 250)}.{rng.randrange(0, 256)}.0", 24))
        if not any(net.overlaps(u) for u in used):
            return IPv4Interface((net.network_address + 1, 24))


class Lab:
    """A driver under test plus every host object one test made (all removed afterwards)."""

    def __init__(self, driver: NetworkDriver, workdir: Path) -> None:
        self.driver = driver
        self.workdir = workdir
        self.tag = uuid.uuid4().hex[:6]
        self.networks: list[str] = []
        self.netns: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.script = workdir / "udhcpc.sh"
        self.script.write_text(UDHCPC_SCRIPT)
        self.script.chmod(0o755)
        self._n = 0

    def name(self, prefix: str = "wt") -> str:
        self._n += 1
        return f"{prefix}{self.tag}{self._n}"

    async def spec(self, **extra: object) -> BridgeSpec:
        name = self.name()
        self.networks.append(name)
        if "ipv4" not in extra:
            extra["ipv4"] = free_slash24(await self.driver.taken_ipv4())
        return BridgeSpec(name=name, **extra)  # type: ignore[arg-type]

    def client(self, bridge: str, hwaddr: str) -> str:
        """A namespace whose eth0 (with ``hwaddr``) is plugged into ``bridge``."""
        ns, host_end = self.name("wn"), self.name("wv")
        sh("ip", "netns", "add", ns)
        self.netns.append(ns)
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.links.append(host_end)
        sh("ip", "-n", ns, "link", "set", "eth0", "address", hwaddr)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "link", "set", host_end, "master", bridge, "up")
        return ns

    def outside(self, net: IPv4Network) -> tuple[str, IPv4Address, IPv4Address]:
        """A namespace on its own /30 to the host: (netns, host's address, its address)."""
        ns, host_end = self.name("wn"), self.name("wo")
        host_ip, far_ip = list(net.hosts())
        sh("ip", "netns", "add", ns)
        self.netns.append(ns)
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.links.append(host_end)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_end)
        sh("ip", "link", "set", host_end, "up")
        sh("ip", "-n", ns, "addr", "add", f"{far_ip}/30", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        # No route back to the bridge's subnet: only masquerade lets replies find the client.
        return ns, host_ip, far_ip

    def dhcp(self, ns: str, hostname: str | None = None) -> tuple[str, float]:
        """Ask for a lease in ``ns``: (address, seconds it took)."""
        out = self.workdir / f"{ns}.ip"
        out.unlink(missing_ok=True)
        args = ["ip", "netns", "exec", ns, str(BUSYBOX), "udhcpc", "-i", "eth0", "-n", "-q"]
        args += ["-t", "5", "-T", "1", "-s", str(self.script)]
        if hostname:
            args += ["-x", f"hostname:{hostname}"]
        start = time.monotonic()
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=20, env={**os.environ, "WT_OUT": str(out)}
        )
        took = time.monotonic() - start
        assert done.returncode == 0 and out.exists(), f"no lease: {done.stdout} {done.stderr}"
        return out.read_text().strip(), took

    def serve(self, ns: str, port: int) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", TCP_SERVER, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    def connect(self, ns: str, address: object, port: int) -> str:
        return sh(
            "ip", "netns", "exec", ns, sys.executable, "-c", TCP_CLIENT, str(address), str(port)
        ).strip()

    async def cleanup(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        for name in self.networks:
            with contextlib.suppress(Exception):
                await self.driver.remove(name)
            for pid in dnsmasq_pids(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            sh("nft", "delete", "table", "inet", f"warren_{name}", check=False)
            sh("ip", "link", "del", name, check=False)
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        for ns in self.netns:
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture(params=sorted(DRIVERS))
async def lab(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Lab]:
    """Each network driver in turn, rooted in a fresh directory."""
    made = Lab(DRIVERS[request.param](tmp_path / "networks"), tmp_path)
    try:
        yield made
    finally:
        await made.cleanup()


async def test_bridge_dhcp_static_dns(lab: Lab) -> None:
    fixed_mac, named_mac, dyn_mac = "00:16:3e:aa:00:01", "00:16:3e:aa:00:02", "00:16:3e:aa:00:03"
    probe = await lab.spec()
    assert probe.ipv4 is not None
    fixed_ip = probe.ipv4.ip + 50
    hosts = (StaticHost(fixed_mac, "fixed1", fixed_ip), StaticHost(named_mac, "named1"))
    spec = BridgeSpec(name=probe.name, ipv4=probe.ipv4, dns_domain="wtest", hosts=hosts)
    await lab.driver.ensure(spec)
    assert await lab.driver.healthy(spec.name)
    assert spec.name in await lab.driver.managed()

    state = await lab.driver.state(spec.name)
    assert state.state == "up" and state.kind == "bridge"
    assert {"family": "inet", "address": str(spec.ipv4.ip), "netmask": "24", "scope": "global"} in [
        dict(a) for a in state.addresses
    ]
    assert set(state.counters) >= {"bytes_received", "bytes_sent", "packets_received"}
    taken = await lab.driver.taken_ipv4()
    assert "192.0.2.0/24" in taken and str(spec.ipv4.network) in taken
    names = {i.name: i for i in await lab.driver.interfaces()}
    assert names["lo"].type == "loopback" and "eth0" in names

    # A dynamic lease, timed, and listed.
    ns = lab.client(spec.name, dyn_mac)
    address, took = lab.dhcp(ns, hostname="dyn1")
    assert IPv4Address(address) in spec.ipv4.network and took < 5, (address, took)
    leases = {le.hwaddr: le for le in await lab.driver.leases(spec.name)}
    assert leases[dyn_mac].address == address and leases[dyn_mac].type == "dynamic"
    assert leases[fixed_mac].address == str(fixed_ip) and leases[fixed_mac].type == "static"

    # The fixed address is exactly what its nic gets.
    fixed_ns = lab.client(spec.name, fixed_mac)
    got = lab.dhcp(fixed_ns)[0]
    assert got == str(fixed_ip), (
        got,
        address,
        (lab.driver.root / spec.name / "dnsmasq.leases").read_text(),
    )

    # The name of a hosts entry is the lease's DNS name.
    named_ns = lab.client(spec.name, named_mac)
    named_ip = lab.dhcp(named_ns)[0]
    for name, want in (("named1", named_ip), ("fixed1", str(fixed_ip))):
        out = sh(
            "ip", "netns", "exec", ns, str(BUSYBOX), "nslookup", f"{name}.wtest", str(spec.ipv4.ip)
        )
        assert want in out.split("Name:", 1)[-1], out

    # Idempotent: the same spec again restarts nothing.
    before = dnsmasq_pids(spec.name)
    await lab.driver.ensure(spec)
    assert dnsmasq_pids(spec.name) == before and len(before) == 1


async def test_nat_and_forward(lab: Lab) -> None:
    taken = await lab.driver.taken_ipv4()
    out_ns, host_ip, far_ip = lab.outside(free_slash30(taken))
    spec = await lab.spec(ipv4_nat=True)
    assert spec.ipv4 is not None
    client_ip = spec.ipv4.ip + 7
    hosts = (StaticHost("00:16:3e:bb:00:01", "inside1", client_ip),)
    forward = ForwardRule(host_ip, "tcp", 18081, client_ip, 8081)
    spec = BridgeSpec(spec.name, spec.ipv4, ipv4_nat=True, hosts=hosts, forwards=(forward,))
    await lab.driver.ensure(spec)
    client = lab.client(spec.name, "00:16:3e:bb:00:01")
    assert lab.dhcp(client)[0] == str(client_ip)

    # Out through NAT: the outside host sees the host's address, not the client's.
    lab.serve(out_ns, 8080)
    assert lab.connect(client, far_ip, 8080) == str(host_ip)

    # In through the forward: from the outside host to the listen address.
    lab.serve(client, 8081)
    assert lab.connect(out_ns, host_ip, 18081) == str(far_ip)
    # And from the host itself (output chain), answered through the bridge.
    lab.serve(client, 8081)
    out = sh(sys.executable, "-c", TCP_CLIENT, str(host_ip), "18081")
    assert out.strip() in (str(spec.ipv4.ip), str(host_ip))
    # Hairpin: another nic on the bridge through the listen address.
    other = lab.client(spec.name, "00:16:3e:bb:00:02")
    lab.dhcp(other)
    lab.serve(client, 8081)
    assert lab.connect(other, host_ip, 18081) == str(spec.ipv4.ip)


async def test_repairs_and_remove(lab: Lab) -> None:
    spec = await lab.spec()
    await lab.driver.ensure(spec)
    [pid] = dnsmasq_pids(spec.name)
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not dnsmasq_pids(spec.name):
            break
        time.sleep(0.02)
    assert not await lab.driver.healthy(spec.name)
    await lab.driver.ensure(spec)
    assert await lab.driver.healthy(spec.name)
    ns = lab.client(spec.name, "00:16:3e:cc:00:01")
    lab.dhcp(ns)

    # A bridge deleted behind the driver's back comes back (with its address).
    sh("ip", "link", "del", spec.name)
    assert not await lab.driver.healthy(spec.name)
    await lab.driver.ensure(spec)
    assert await lab.driver.healthy(spec.name)
    state = await lab.driver.state(spec.name)
    assert str(spec.ipv4.ip) in [a["address"] for a in state.addresses]

    await lab.driver.remove(spec.name)
    assert not link_exists(spec.name)
    assert f"warren_{spec.name}" not in nft_tables()
    assert not dnsmasq_pids(spec.name)
    assert not (lab.driver.root / spec.name).exists()
    assert spec.name not in await lab.driver.managed()
    await lab.driver.remove(spec.name)  # idempotent


async def test_failed_ensure_leaves_nothing(lab: Lab) -> None:
    spec = await lab.spec()
    assert spec.ipv4 is not None
    # A range dnsmasq refuses (start and end in different subnets).
    bad = BridgeSpec(
        spec.name,
        spec.ipv4,
        ipv4_dhcp_ranges=((spec.ipv4.ip + 10, spec.ipv4.ip + 600),),
    )
    for wrong in (bad, BridgeSpec("wt" + "x" * 14, spec.ipv4)):
        lab.networks.append(wrong.name)
        with pytest.raises(DriverError):
            await lab.driver.ensure(wrong)
        assert not link_exists(wrong.name)
        assert f"warren_{wrong.name}" not in nft_tables()
        assert not dnsmasq_pids(wrong.name)
        assert not (lab.driver.root / wrong.name).exists()


async def test_hosts_change_without_restart(lab: Lab) -> None:
    spec = await lab.spec(dns_domain="wtest")
    assert spec.ipv4 is not None
    await lab.driver.ensure(spec)
    [pid] = dnsmasq_pids(spec.name)
    mac, fixed = "00:16:3e:dd:00:01", spec.ipv4.ip + 77
    changed = BridgeSpec(
        spec.name, spec.ipv4, dns_domain="wtest", hosts=(StaticHost(mac, "late1", fixed),)
    )
    await lab.driver.ensure(changed)
    assert dnsmasq_pids(spec.name) == [pid]  # dnsmasq re-reads its hosts directory
    ns = lab.client(spec.name, mac)
    assert lab.dhcp(ns)[0] == str(fixed)
    out = sh("ip", "netns", "exec", ns, str(BUSYBOX), "nslookup", "late1.wtest", str(spec.ipv4.ip))
    assert str(fixed) in out.split("Name:", 1)[-1], out


async def static_hwaddrs(lab: Lab, network: str) -> set[str]:
    return {le.hwaddr for le in await lab.driver.leases(network) if le.type == "static"}


async def test_set_hosts_changes_only_the_static_hosts(lab: Lab) -> None:
    spec = await lab.spec(dns_domain="wtest")
    assert spec.ipv4 is not None
    await lab.driver.ensure(spec)
    [pid] = dnsmasq_pids(spec.name)
    rules = sh("nft", "list", "table", "inet", f"warren_{spec.name}")
    mac, fixed = "00:16:3e:ee:00:01", spec.ipv4.ip + 88
    assert await lab.driver.set_hosts(spec.name, (StaticHost(mac, "quick1", fixed),))
    assert dnsmasq_pids(spec.name) == [pid]
    assert sh("nft", "list", "table", "inet", f"warren_{spec.name}") == rules
    ns = lab.client(spec.name, mac)
    assert lab.dhcp(ns)[0] == str(fixed)
    assert {le.hwaddr: le.address for le in await lab.driver.leases(spec.name)}[mac] == str(fixed)

    # Removed again: the address is no longer reserved for that nic.
    assert await lab.driver.set_hosts(spec.name, ())
    assert mac not in await static_hwaddrs(lab, spec.name)

    # Without its bridge up, nothing is done and the caller is told to ensure instead.
    sh("ip", "link", "set", spec.name, "down")
    assert not await lab.driver.set_hosts(spec.name, (StaticHost(mac, "quick1", fixed),))
    assert mac not in await static_hwaddrs(lab, spec.name)
    sh("ip", "link", "del", spec.name)
    assert not await lab.driver.set_hosts(spec.name, ())


async def test_ipv6(lab: Lab) -> None:
    prefix = uuid.uuid4().hex[:12]
    ipv6 = IPv6Interface(f"fd42:{prefix[:4]}:{prefix[4:8]}:{prefix[8:]}::1/64")
    spec = await lab.spec(ipv6=ipv6, ipv6_nat=True)
    await lab.driver.ensure(spec)
    assert await lab.driver.healthy(spec.name)
    state = await lab.driver.state(spec.name)
    found = {(a["family"], a["address"], a["netmask"]) for a in state.addresses}
    assert ("inet6", str(ipv6.ip), "64") in found
    assert f"ip6 saddr {ipv6.network}" in sh("nft", "list", "table", "inet", f"warren_{spec.name}")
    # Back to IPv4 only: the IPv6 address goes.
    await lab.driver.ensure(BridgeSpec(spec.name, spec.ipv4))
    state = await lab.driver.state(spec.name)
    assert str(ipv6.ip) not in [a["address"] for a in state.addresses]
