"""The ``network-forward`` aggregate: a listen address of a network and its port rules.

Its id is fixed by the network and the listen address (uuid5), so the log itself refuses a
second forward on one address (the create expects an empty subject). ``decide`` and
``evolve`` are pure; ``rules`` expands the ports into the driver's DNAT rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

from schemas import events, subjects
from schemas.envelope import Event
from schemas.errors import BadRequest, Conflict
from services.network.drivers.base import ForwardRule

FORWARD = subjects.NETWORK_FORWARD_AGGREGATE
_NAMESPACE = uuid.UUID("9c41e6b2-7d05-4f3a-b8e1-2a6d0c5f9e37")
MAX_PORTS = 1024


def forward_id(network_id: str, listen_address: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{network_id}/{listen_address}"))


@dataclass(frozen=True)
class ForwardState:
    id: str
    network_id: str
    network: str
    listen_address: str
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    ports: tuple[dict[str, str], ...] = ()
    version: int = 0
    deleted: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "name": self.listen_address,
            "network": self.network,
            "network_id": self.network_id,
            "description": self.description,
            "config": dict(self.config),
            "ports": [dict(p) for p in self.ports],
        }

    def lxd(self) -> dict[str, Any]:
        """LXD's ``NetworkForward`` object."""
        return {
            "listen_address": self.listen_address,
            "description": self.description,
            "config": dict(self.config),
            "ports": [dict(p) for p in self.ports],
            "location": "",
        }

    @classmethod
    def undump(cls, raw: dict[str, Any]) -> ForwardState:
        return cls(**{**raw, "ports": tuple(raw.get("ports", ()))})


def parse_ports(value: str, what: str) -> list[int]:
    """``"80,8000-8010"`` -> the ports; a 400 naming ``what`` when malformed."""
    ports: list[int] = []
    for part in value.split(","):
        first, _, last = part.strip().partition("-")
        try:
            start, end = int(first), int(last or first)
        except ValueError:
            raise BadRequest(f"Invalid {what} {value!r}") from None
        if not 1 <= start <= end <= 65535:
            raise BadRequest(f"Invalid {what} {value!r}")
        ports.extend(range(start, end + 1))
        if len(ports) > MAX_PORTS:
            raise BadRequest(f"Too many ports in {what} {value!r}")
    return ports


def rules(state: ForwardState) -> list[ForwardRule]:
    """The DNAT rules of a forward (one per listen port); checked as :func:`check` does."""
    listen = IPv4Address(state.listen_address)
    out: list[ForwardRule] = []
    for port in state.ports:
        listen_ports = parse_ports(port["listen_port"], "listen_port")
        target_ports = parse_ports(port.get("target_port") or port["listen_port"], "target_port")
        if len(target_ports) == 1:
            target_ports = target_ports * len(listen_ports)
        if len(target_ports) != len(listen_ports):
            raise BadRequest("target_port must name one port or as many as listen_port")
        try:
            target = IPv4Address(port["target_address"])
        except ValueError:
            raise BadRequest(f"Invalid target_address {port['target_address']!r}") from None
        for lp, tp in zip(listen_ports, target_ports, strict=True):
            out.append(ForwardRule(listen, port.get("protocol", "tcp"), lp, target, tp))
    return out


def check(state: ForwardState) -> None:
    try:
        address = IPv4Address(state.listen_address)
    except ValueError:
        raise BadRequest(f"Invalid listen address {state.listen_address!r} (IPv4 only)") from None
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise BadRequest(f"Invalid listen address {state.listen_address!r}")
    seen: set[tuple[str, int]] = set()
    for rule in rules(state):
        key = (rule.protocol, rule.listen_port)
        if key in seen:
            raise BadRequest(f"Duplicate listen port {rule.protocol}/{rule.listen_port}")
        seen.add(key)


def decide_forward(
    state: ForwardState | None, new: ForwardState | None, meta: dict[str, Any], create: bool
) -> list[Event]:
    """Create (``create``) or update a forward to ``new``, or delete it (``new`` None)."""
    if new is None:
        if state is None or state.deleted:
            return []
        return [_event(events.NETWORK_FORWARD_DELETED, state, meta)]
    check(new)
    if state is not None and not state.deleted:
        if create:
            raise Conflict(f"A forward on {new.listen_address} exists already")
        if replace(new, version=state.version) == state:
            return []
        return [_event(events.NETWORK_FORWARD_UPDATED, replace(new, version=state.version), meta)]
    version = state.version if state is not None else 0
    return [_event(events.NETWORK_FORWARD_CREATED, replace(new, version=version), meta)]


def _event(type_: str, state: ForwardState, meta: dict[str, Any]) -> Event:
    return Event(
        type=type_,
        aggregate=FORWARD,
        aggregate_id=state.id,
        version=state.version + 1,
        payload=state.payload(),
        **meta,
    )


def evolve_forward(state: ForwardState | None, event: Event) -> ForwardState | None:
    if event.type == events.NETWORK_FORWARD_DELETED:
        return None if state is None else replace(state, deleted=True, version=event.version)
    if event.type in (events.NETWORK_FORWARD_CREATED, events.NETWORK_FORWARD_UPDATED):
        p = event.payload
        return ForwardState(
            id=event.aggregate_id,
            network_id=str(p["network_id"]),
            network=str(p["network"]),
            listen_address=str(p["name"]),
            description=str(p.get("description", "")),
            config=dict(p.get("config", {})),
            ports=tuple(dict(x) for x in p.get("ports", [])),
            version=event.version,
        )
    return state
