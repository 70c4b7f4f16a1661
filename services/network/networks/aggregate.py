"""The ``network`` aggregate: ``decide(state, command) -> events`` and ``evolve``; pure.

What ``decide`` needs beyond the network (is the name taken, what uses it, the subnets in
use, the completed config) arrives inside the command, gathered by the handler.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, Literal

from schemas import events
from schemas.envelope import Event
from schemas.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from services.common.aggregate import SYSTEM, Meta, state_event
from services.network.networks import config as cfg
from services.network.networks.state import NETWORK, NetworkState, Nic


@dataclass(frozen=True)
class Create:
    id: str
    name: str
    node: str
    type: str = "bridge"
    description: str = ""
    #: Completed already (``auto`` replaced by a subnet).
    config: dict[str, str] = field(default_factory=dict)
    taken: tuple[IPv4Network, ...] = ()
    name_taken: bool = False
    default: bool = False
    event_id: str | None = None
    meta: Meta = SYSTEM


@dataclass(frozen=True)
class Update:
    mode: Literal["put", "patch"] = "put"
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    if_match: str | None = None
    taken: tuple[IPv4Network, ...] = ()
    meta: Meta = SYSTEM


@dataclass(frozen=True)
class Rename:
    new_name: str
    name_taken: bool = False
    used_by: tuple[str, ...] = ()
    meta: Meta = SYSTEM


@dataclass(frozen=True)
class Delete:
    used_by: tuple[str, ...] = ()
    meta: Meta = SYSTEM


@dataclass(frozen=True)
class Plug:
    hwaddr: str
    nic: Nic
    meta: Meta = SYSTEM


@dataclass(frozen=True)
class Unplug:
    hwaddr: str
    meta: Meta = SYSTEM


Command = Create | Update | Rename | Delete | Plug | Unplug


def exists(state: NetworkState | None) -> bool:
    return state is not None and not state.deleted


def _event(
    type_: str, state: NetworkState, meta: Meta, event_id: str | None = None, **extra: Any
) -> Event:
    payload = {**state.payload(), **extra}
    return state_event(type_, NETWORK, state.id, state.version, payload, meta, state.node, event_id)


def decide(state: NetworkState | None, command: Command) -> list[Event]:
    """The events a command causes, or the LXD error refusing it."""
    if isinstance(command, Create):
        return _create(state, command)
    if not exists(state):
        raise NotFound("Network not found")
    assert state is not None
    if isinstance(command, Update):
        return _update(state, command)
    if isinstance(command, Rename):
        return _rename(state, command)
    if isinstance(command, Delete):
        if command.used_by:
            raise BadRequest("The network is currently in use")
        return [_event(events.NETWORK_DELETED, state, command.meta)]
    if isinstance(command, Plug):
        return _plug(state, command)
    if command.hwaddr not in state.nics:
        return []
    nics = {hw: nic for hw, nic in state.nics.items() if hw != command.hwaddr}
    return [_event(events.NETWORK_NIC_UNPLUGGED, replace(state, nics=nics), command.meta)]


def _create(state: NetworkState | None, cmd: Create) -> list[Event]:
    cfg.check_name(cmd.name)
    cfg.check_config(cmd.type, cmd.config)
    if exists(state) or cmd.name_taken:
        raise Conflict(f"Network {cmd.name!r} already exists")
    cfg.check_overlap(cmd.name, cmd.config, list(cmd.taken))
    version = state.version if state is not None else 0
    new = NetworkState(
        cmd.id, cmd.name, cmd.node, cmd.type, cmd.description, dict(cmd.config),
        default=cmd.default, version=version,
    )  # fmt: skip
    return [_event(events.NETWORK_CREATED, new, cmd.meta, cmd.event_id)]


def _update(state: NetworkState, cmd: Update) -> list[Event]:
    if cmd.if_match and cmd.if_match.strip('"') != state.etag:
        raise PreconditionFailed(f"ETag doesn't match: {state.etag} vs {cmd.if_match}")
    if cmd.mode == "put":
        description, config = cmd.description, dict(cmd.config)
    else:
        description = cmd.description if "description" in cmd.fields else state.description
        config = {**state.config, **cmd.config} if "config" in cmd.fields else dict(state.config)
    config = {k: v for k, v in config.items() if v != ""}  # an empty value unsets
    if config.get("ipv4.address") == "auto":
        config["ipv4.address"] = state.config.get("ipv4.address", "none")
    cfg.check_config(state.type, config)
    cfg.check_overlap(state.name, config, list(cmd.taken))
    new = replace(state, description=description, config=config)
    _check_fixed_addresses(new)
    if new == state:
        return []
    return [_event(events.NETWORK_UPDATED, new, cmd.meta)]


def _rename(state: NetworkState, cmd: Rename) -> list[Event]:
    cfg.check_name(cmd.new_name)
    if cmd.new_name == state.name:
        return []
    if cmd.name_taken:
        raise Conflict(f"Network {cmd.new_name!r} already exists")
    if cmd.used_by:
        raise BadRequest("Cannot rename a network that is in use")
    new = replace(state, name=cmd.new_name)
    return [_event(events.NETWORK_RENAMED, new, cmd.meta, old_name=state.name)]


def _plug(state: NetworkState, cmd: Plug) -> list[Event]:
    nic = cmd.nic
    if nic.ipv4 is not None:
        ipv4 = cfg.ipv4_of(state.config)
        try:
            address = IPv4Address(nic.ipv4)
        except ValueError:
            raise BadRequest(f'Invalid value for device "ipv4.address": {nic.ipv4!r}') from None
        if ipv4 is None or address not in ipv4.network or address == ipv4.ip:
            raise BadRequest(
                f"Device {nic.device!r}: ipv4.address {address} is not a free address of "
                f"network {state.name!r} ({ipv4.network if ipv4 else 'no IPv4'})"
            )
        for hwaddr, other in state.nics.items():
            if hwaddr != cmd.hwaddr and other.ipv4 == nic.ipv4:
                raise BadRequest(
                    f"Device {nic.device!r}: ipv4.address {address} is already used by "
                    f"instance {other.instance!r}"
                )
    if state.nics.get(cmd.hwaddr) == nic:
        return []
    new = replace(state, nics={**state.nics, cmd.hwaddr: nic})
    return [_event(events.NETWORK_NIC_PLUGGED, new, cmd.meta)]


def _check_fixed_addresses(state: NetworkState) -> None:
    """A subnet change must keep every nic's fixed address inside it."""
    ipv4 = cfg.ipv4_of(state.config)
    for nic in state.nics.values():
        if nic.ipv4 and (ipv4 is None or IPv4Interface(nic.ipv4).ip not in ipv4.network):
            raise BadRequest(
                f"Instance {nic.instance!r} has the fixed address {nic.ipv4}, outside the new "
                "subnet: change its nic first"
            )


def evolve(state: NetworkState | None, event: Event) -> NetworkState | None:
    """Fold one network event into the state it follows (every event carries it whole)."""
    if event.type == events.NETWORK_DELETED:
        return None if state is None else replace(state, deleted=True, version=event.version)
    if event.type in NETWORK_EVENTS:
        return from_event(event)
    return state


def from_event(event: Event) -> NetworkState:
    p = event.payload
    return NetworkState(
        id=event.aggregate_id,
        name=p["name"],
        node=p.get("node", event.node),
        type=p.get("type", "bridge"),
        description=p.get("description", ""),
        config=dict(p.get("config", {})),
        nics={hw: Nic(**nic) for hw, nic in (p.get("nics") or {}).items()},
        default=bool(p.get("default", False)),
        version=event.version,
    )


NETWORK_EVENTS = frozenset(
    {
        events.NETWORK_CREATED,
        events.NETWORK_UPDATED,
        events.NETWORK_RENAMED,
        events.NETWORK_NIC_PLUGGED,
        events.NETWORK_NIC_UNPLUGGED,
    }
)
