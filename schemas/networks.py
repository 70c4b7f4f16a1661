"""Commands and queries of the network service (node-scoped: ``subjects.network(verb, node)``).

Results are LXD shapes as plain dicts:

- network list (``schemas.catalog.ListQuery``): names (recursion 0) or network objects, the
  host's unmanaged interfaces included, as LXD lists them;
- network get, create, update, rename: ``schemas.catalog.ObjectResult``;
- network delete: ``None`` (a 400 while an instance nic or a forward uses it);
- network state (``ByName``): LXD's ``NetworkState``; leases (``ByName``): ``NetworkLease``s;
- forwards: ``ForwardQuery`` / ``CreateForward`` / ``UpdateForward``; results
  ``ObjectResult`` of LXD's ``NetworkForward`` (list: listen addresses or objects).

For the instance service of the same node:

- ``nic-plug`` (:class:`NicPlug`): an instance nic joins a managed network: it gets a static
  DHCP host entry (its hwaddr, its instance name for DNS, and ``ipv4.address`` if given);
  reply :class:`NicPlugged` (the host bridge to link the veth to). ``BadRequest`` when the
  network does not exist or the address is outside its subnet or taken;
- ``nic-unplug`` (:class:`NicUnplug`): the entry goes (idempotent); ``None``.

Networks belong to the ``default`` project (LXD without ``features.networks``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    # ``lxc network edit`` sends back every field GET gave it; only the writable ones count.
    model_config = ConfigDict(extra="ignore")


class NetworkPut(_Lenient):
    """Body of PUT /1.0/networks/<name> (and what PATCH merges)."""

    description: str = ""
    config: dict[str, str] = Field(default_factory=dict)


class CreateNetwork(NetworkPut):
    """Body of POST /1.0/networks."""

    name: str = ""
    type: str = "bridge"


class UpdateNetwork(NetworkPut):
    """PUT replaces description and config; PATCH merges only the fields in ``fields``."""

    name: str
    mode: Literal["put", "patch"] = "put"
    fields: list[str] = Field(default_factory=list)


class RenameNetwork(BaseModel):
    name: str
    new_name: str


class ForwardPort(BaseModel):
    """One port rule of a forward, as LXD spells it (ports are lists and ranges: "80,8000-8010")."""

    model_config = ConfigDict(extra="ignore")

    protocol: Literal["tcp", "udp"] = "tcp"
    listen_port: str
    target_address: str
    target_port: str = ""
    description: str = ""


class ForwardPut(_Lenient):
    description: str = ""
    config: dict[str, str] = Field(default_factory=dict)
    ports: list[ForwardPort] = Field(default_factory=list)


class CreateForward(ForwardPut):
    network: str
    listen_address: str = ""


class UpdateForward(ForwardPut):
    network: str
    listen_address: str
    mode: Literal["put", "patch"] = "put"
    fields: list[str] = Field(default_factory=list)


class ForwardQuery(BaseModel):
    """The forwards of one network, or one by its listen address."""

    network: str
    listen_address: str | None = None
    recursion: int = 0


class NicPlug(BaseModel):
    network: str
    project: str = "default"
    instance: str
    device: str
    hwaddr: str
    ipv4_address: str | None = None


class NicPlugged(BaseModel):
    bridge: str
    mtu: int | None = None


class NicUnplug(BaseModel):
    network: str
    hwaddr: str
