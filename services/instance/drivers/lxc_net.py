"""A running container's interfaces through netlink (pyroute2), from the host (blocking: the
driver calls these in a thread).

A netlink socket belongs to the network namespace it was opened in, so the thread enters
the container's namespace (``/proc/<init pid>/ns/net``) only to open one and returns at
once: no helper process per read, and the thread is never left inside. Reads use the small
reader in lxc_netlink; changes (hot-plug) use pyroute2.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from services.instance.drivers import lxc_netlink
from services.instance.drivers.errors import DriverError
from services.instance.drivers.spec import (
    NetworkAddress,
    NetworkCounters,
    NetworkInterface,
    NicSpec,
)

_CLONE_NEWNET = 0x40000000
_IFF_UP, _IFF_LOOPBACK, _IFF_POINTOPOINT = 0x1, 0x8, 0x10
_FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}
_SCOPES = {0: "global", 253: "link", 254: "local"}
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _opened_in(pid: int, make: Callable[[], T]) -> T:
    """``make()`` run inside the network namespace of process ``pid`` (a socket it opens
    stays there), the thread back home before this returns."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            return make()
        finally:
            _setns(home)  # never leave a worker thread inside a container
    finally:
        os.close(target)
        os.close(home)


@contextlib.contextmanager
def netlink_in(pid: int) -> Iterator[IPRoute]:
    """An IPRoute socket inside the network namespace of process ``pid``."""
    with _opened_in(pid, IPRoute) as ipr:
        yield ipr


def interfaces(pid: int) -> dict[str, NetworkInterface]:
    """Every interface inside the namespace of ``pid``, as LXD's instance state shows them."""
    with _opened_in(pid, lxc_netlink.open_socket) as sock:
        dump = lxc_netlink.read(sock)
    by_index: dict[int, list[NetworkAddress]] = {}
    for addr in dump.addresses:
        by_index.setdefault(addr.index, []).append(
            NetworkAddress(
                family=_FAMILIES[addr.family],
                address=addr.address,
                netmask=str(addr.prefixlen),
                scope=_SCOPES.get(addr.scope, "global"),
            )
        )
    found: dict[str, NetworkInterface] = {}
    for link in dump.links:
        flags = link.flags
        rx_packets, tx_packets, rx_bytes, tx_bytes, rx_err, tx_err, rx_drop, tx_drop = link.stats
        kind = "loopback" if flags & _IFF_LOOPBACK else "broadcast"
        if flags & _IFF_POINTOPOINT:
            kind = "point-to-point"
        found[link.name] = NetworkInterface(
            addresses=by_index.get(link.index, []),
            counters=NetworkCounters(
                bytes_received=rx_bytes,
                bytes_sent=tx_bytes,
                packets_received=rx_packets,
                packets_sent=tx_packets,
                errors_received=rx_err,
                errors_sent=tx_err,
                packets_dropped_inbound=rx_drop,
                packets_dropped_outbound=tx_drop,
            ),
            hwaddr="" if flags & _IFF_LOOPBACK else link.hwaddr,
            host_name=_peer_name(link.peer_index),
            mtu=link.mtu,
            state="up" if flags & _IFF_UP else "down",
            type=kind,
        )
    return found


def _peer_name(peer: int | None) -> str:
    # A veth's IFLA_LINK is its peer's index in the peer's namespace (the host's, for Warren's
    # nics); this thread is back in the host's namespace.
    if peer is None:
        return ""
    try:
        return socket.if_indextoname(peer)
    except OSError:
        return ""


def plug(pid: int, nic: NicSpec) -> None:
    """Hot-plug ``nic`` into the running container of init ``pid``; undone if a step fails."""
    peer = "wtmp" + secrets.token_hex(4)  # the peer's name on the host, for a moment
    try:
        with IPRoute() as ipr:
            bridge = ipr.link_lookup(ifname=nic.bridge)
            if not bridge:
                raise DriverError(f"plugging {nic.name} failed", f"no bridge {nic.bridge}")
            ipr.link("add", ifname=nic.host_name, kind="veth", peer={"ifname": peer})
            host_end = ipr.link_lookup(ifname=nic.host_name)[0]
            settings: dict[str, Any] = {"master": bridge[0], "state": "up"}
            if nic.mtu is not None:
                settings["mtu"] = nic.mtu
            ipr.link("set", index=host_end, **settings)
            ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_pid=pid)
        with netlink_in(pid) as inside:
            index = inside.link_lookup(ifname=peer)[0]
            settings = {"ifname": nic.name, "address": nic.hwaddr}
            if nic.mtu is not None:
                settings["mtu"] = nic.mtu
            inside.link("set", index=index, **settings)
            inside.link("set", index=index, state="up")
    except (NetlinkError, OSError, IndexError) as exc:
        unplug(nic)
        raise DriverError(f"plugging {nic.name} into the instance failed", repr(exc)) from exc
    except DriverError:
        unplug(nic)
        raise


def sync(pid: int, live: tuple[NicSpec, ...], wanted: tuple[NicSpec, ...]) -> None:
    """Turn a running container's nics from ``live`` into ``wanted`` (a changed nic is
    unplugged and plugged again); the nics added are removed again if one fails."""
    for nic in live:
        if nic not in wanted:
            unplug(nic)
    done: list[NicSpec] = []
    try:
        for nic in wanted:
            if nic not in live:
                plug(pid, nic)
                done.append(nic)
    except BaseException:
        for nic in done:
            unplug(nic)
        raise


def unplug(nic: NicSpec) -> None:
    """Remove a nic's veth pair (its host end; the peer inside goes with it). Idempotent."""
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=nic.host_name):
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)
