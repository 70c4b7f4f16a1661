"""A minimal rtnetlink reader: the links and addresses of one network namespace, parsed for
just the attributes an instance's state shows (blocking; call in a thread).

pyroute2 parses every attribute of every message (about 1 ms for a container's two links);
a state listing reads each running container's namespace, so this reads the two dumps with
a plain socket and ``struct`` (tens of microseconds). pyroute2 still does the changes
(hot-plug), where its completeness is worth the cost.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

_NETLINK_ROUTE = 0
_RTM_NEWLINK, _RTM_GETLINK, _RTM_NEWADDR, _RTM_GETADDR = 16, 18, 20, 22
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTA = struct.Struct("=HH")
_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MTU, _IFLA_LINK = 1, 3, 4, 5
_IFLA_STATS64, _IFLA_LINK_NETNSID = 23, 37
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_STATS64 = struct.Struct("=8Q")  # the first eight counters of rtnl_link_stats64


@dataclass
class Link:
    """One link as the dump describes it."""

    index: int
    flags: int
    name: str = ""
    hwaddr: str = ""
    mtu: int = 0
    peer_index: int | None = None  # IFLA_LINK when the peer is in another namespace
    stats: tuple[int, ...] = (0,) * 8  # rx/tx packets, rx/tx bytes, errors, dropped


@dataclass
class Address:
    index: int
    family: int
    prefixlen: int
    scope: int
    address: str = ""


@dataclass
class Dump:
    links: list[Link] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)


def open_socket() -> socket.socket:
    """A route netlink socket in the calling thread's current network namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def _attrs(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    while offset + _RTA.size <= len(data):
        length, kind = _RTA.unpack_from(data, offset)
        if length < _RTA.size:
            return
        yield kind & 0x3FFF, data[offset + _RTA.size : offset + length]
        offset += (length + 3) & ~3


def _dump(sock: socket.socket, kind: int, body: bytes, seq: int) -> Iterator[tuple[int, bytes]]:
    header = _NLMSG.pack(_NLMSG.size + len(body), kind, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0)
    sock.send(header + body)
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _NLMSG.size <= len(data):
            length, msg_type, _, msg_seq, _ = _NLMSG.unpack_from(data, offset)
            if length < _NLMSG.size:
                return
            payload = data[offset + _NLMSG.size : offset + length]
            offset += (length + 3) & ~3
            if msg_seq != seq:
                continue
            if msg_type == _NLMSG_DONE:
                return
            if msg_type == _NLMSG_ERROR:
                (errno,) = struct.unpack_from("=i", payload)
                if errno:
                    raise OSError(-errno, "netlink dump failed")
                return
            yield msg_type, payload


def read(sock: socket.socket) -> Dump:
    """Dump the links and addresses the socket's namespace has."""
    dump = Dump()
    for msg_type, payload in _dump(sock, _RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0), 1):
        if msg_type != _RTM_NEWLINK:
            continue
        _, _, index, flags, _ = _IFINFO.unpack_from(payload)
        link = Link(index=index, flags=flags)
        other_namespace = False
        for kind, value in _attrs(payload, _IFINFO.size):
            if kind == _IFLA_IFNAME:
                link.name = value.rstrip(b"\0").decode(errors="replace")
            elif kind == _IFLA_ADDRESS:
                link.hwaddr = ":".join(f"{b:02x}" for b in value)
            elif kind == _IFLA_MTU:
                (link.mtu,) = struct.unpack_from("=I", value)
            elif kind == _IFLA_LINK:
                (link.peer_index,) = struct.unpack_from("=i", value)
            elif kind == _IFLA_LINK_NETNSID:
                other_namespace = True
            elif kind == _IFLA_STATS64 and len(value) >= _STATS64.size:
                link.stats = _STATS64.unpack_from(value)
        if not other_namespace:
            link.peer_index = None
        dump.links.append(link)
    for msg_type, payload in _dump(sock, _RTM_GETADDR, _IFADDR.pack(0, 0, 0, 0, 0), 2):
        if msg_type != _RTM_NEWADDR:
            continue
        family, prefixlen, _, scope, index = _IFADDR.unpack_from(payload)
        values = dict(_attrs(payload, _IFADDR.size))
        raw = values.get(_IFA_LOCAL) or values.get(_IFA_ADDRESS)
        if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = Address(index, family, prefixlen, scope, socket.inet_ntop(family, raw))
        dump.addresses.append(address)
    return dump
