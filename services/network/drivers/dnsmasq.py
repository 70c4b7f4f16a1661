"""One dnsmasq per network, for DHCP and DNS, run detached (it outlives the service).

Its files live in ``<root>/<network>/``: the pid, a hash of the arguments it was started
with (a change restarts it), ``dnsmasq.leases``, and ``dnsmasq.hosts/`` with one file per
instance nic (``<hwaddr>[,<ip>],<name>``), which dnsmasq re-reads when it changes, so
plugging a nic needs no restart. ``--no-ping``: without it each lease waits ~3 s for a ping.
Blocking: call from a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from ipaddress import IPv4Address
from pathlib import Path

from services.network.drivers.base import BridgeSpec, Lease, StaticHost
from services.network.drivers.errors import DriverError

DNSMASQ = "/usr/sbin/dnsmasq"
LEASE_TIME = "1h"


class Dnsmasq:
    """The dnsmasq of one network, by its files under ``directory``."""

    def __init__(self, directory: Path, network: str) -> None:
        self.dir = directory
        self.network = network
        self.pid_file = directory / "dnsmasq.pid"
        self.hash_file = directory / "dnsmasq.args"
        self.leases_file = directory / "dnsmasq.leases"
        self.hosts_dir = directory / "dnsmasq.hosts"

    def arguments(self, spec: BridgeSpec) -> list[str]:
        assert spec.ipv4 is not None
        subnet, host = spec.ipv4.network, spec.ipv4.ip
        ranges = spec.ipv4_dhcp_ranges or ((host + 1, subnet.broadcast_address - 1),)
        if ranges[0][0] == host:  # a range given from the host address on: skip it
            ranges = ((host + 1, ranges[0][1]), *ranges[1:])
        args = [
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--strict-order",
            "--bind-interfaces",
            "--except-interface=lo",
            "--no-ping",
            "--no-resolv",
            "--no-hosts",
            # dnsmasq reads the hosts directory after dropping to "nobody": under a root that
            # nobody may traverse (0700, as $WARREN_DIR or a test's tmp dir may be) every
            # fixed address and name were silently ignored.
            "--user=root",
            f"--interface={spec.name}",
            f"--listen-address={host}",
            f"--pid-file={self.pid_file}",
            f"--dhcp-leasefile={self.leases_file}",
            f"--dhcp-hostsdir={self.hosts_dir}",
            "--dhcp-authoritative",
            "--dhcp-rapid-commit",
            "--dhcp-no-override",
            f"--domain={spec.dns_domain}",
            f"--local=/{spec.dns_domain}/",
            "--expand-hosts",
            f"--dhcp-option=option:router,{host}",
            f"--dhcp-option=option:dns-server,{host}",
        ]
        if spec.ipv4_dhcp:
            args += [f"--dhcp-range={a},{b},{subnet.netmask},{LEASE_TIME}" for a, b in ranges]
        if spec.mtu:
            args.append(f"--dhcp-option=option:mtu,{spec.mtu}")
        if spec.ipv6 is not None:
            args += [
                f"--dhcp-range=::,constructor:{spec.name},ra-stateless,ra-names",
                "--enable-ra",
            ]
        args += [f"--server={s}" for s in _upstream()]
        return args

    def pid(self) -> int | None:
        """The running dnsmasq of this network, if any (checked by its command line)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if (
            cmdline
            and cmdline[0].endswith(b"dnsmasq")
            and f"--interface={self.network}".encode() in cmdline
        ):
            return pid
        return None

    def ensure(self, spec: BridgeSpec) -> None:
        """Running with ``spec``'s arguments and hosts (restarted when they changed)."""
        self.write_hosts(spec.hosts)
        if spec.ipv4 is None:
            self.stop()
            return
        args = self.arguments(spec)
        digest = hashlib.sha256("\0".join(args).encode()).hexdigest()
        running = self.pid()
        if running is not None and self._hash() == digest:
            return
        self.stop()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hash_file.write_text(digest)
        with open(self.dir / "dnsmasq.log", "ab") as log:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # dnsmasq checks its arguments before it serves
            if proc.poll() is not None:
                tail = (self.dir / "dnsmasq.log").read_text(errors="replace")[-500:]
                raise DriverError(f"dnsmasq for {spec.name} did not start: {tail.strip()}")
            if _listening(spec):
                break
            time.sleep(0.02)
        # Reaped by whoever: a detached child of a long-lived service must not stay a zombie.
        _reap_later(proc)

    def write_hosts(self, hosts: tuple[StaticHost, ...]) -> None:
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        wanted = {}
        for host in hosts:
            parts = [host.hwaddr] + ([str(host.ipv4)] if host.ipv4 else []) + [host.name]
            wanted[host.hwaddr.replace(":", "")] = ",".join(parts) + "\n"
        for entry in self.hosts_dir.iterdir():
            if entry.name not in wanted:
                entry.unlink(missing_ok=True)
        for name, text in wanted.items():
            path = self.hosts_dir / name
            if not path.exists() or path.read_text() != text:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(text)
                os.replace(tmp, path)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            if _zombie(pid):
                break
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            if Path(f"/proc/{pid}").exists() and not _zombie(pid):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def hosts(self) -> dict[str, StaticHost]:
        """The static entries as written to the hosts directory, by hwaddr."""
        found: dict[str, StaticHost] = {}
        with contextlib.suppress(FileNotFoundError):
            for entry in self.hosts_dir.iterdir():
                parts = entry.read_text().strip().split(",")
                if len(parts) == 3:
                    found[parts[0]] = StaticHost(parts[0], parts[2], IPv4Address(parts[1]))
                elif len(parts) == 2:
                    found[parts[0]] = StaticHost(parts[0], parts[1])
        return found

    def leases(self) -> list[Lease]:
        """dnsmasq's leases, and the fixed addresses not leased yet."""
        hosts = self.hosts()
        found: list[Lease] = []
        seen: set[str] = set()
        with contextlib.suppress(FileNotFoundError):
            for line in self.leases_file.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 4:
                    hwaddr, address, name = parts[1], parts[2], parts[3]
                    static = hosts.get(hwaddr)
                    kind = "static" if static is not None and static.ipv4 is not None else "dynamic"
                    found.append(Lease(name if name != "*" else "", hwaddr, address, kind))
                    seen.add(hwaddr)
        for hwaddr, host in sorted(hosts.items()):
            if host.ipv4 is not None and hwaddr not in seen:
                found.append(Lease(host.name, hwaddr, str(host.ipv4), "static"))
        return found

    def _hash(self) -> str:
        try:
            return self.hash_file.read_text().strip()
        except OSError:
            return ""


def _upstream() -> list[str]:
    """The host's nameservers (not loopback ones: dnsmasq itself may be one)."""
    servers = []
    with contextlib.suppress(OSError):
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    if not IPv4Address(parts[1]).is_loopback:
                        servers.append(parts[1])
    return servers


def _listening(spec: BridgeSpec) -> bool:
    """Is something bound to the network's DNS port (dnsmasq up)?"""
    assert spec.ipv4 is not None
    target = f"{int(spec.ipv4.ip):08X}"
    # /proc/net/udp holds addresses little-endian.
    little = "".join(reversed([target[i : i + 2] for i in range(0, 8, 2)]))
    with contextlib.suppress(OSError):
        return f"{little}:0035" in Path("/proc/net/udp").read_text()
    return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    import threading

    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()
