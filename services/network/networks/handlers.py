"""Bus endpoints of ``/1.0/networks`` on this node.

Queries come from the projection (after a barrier) and, for state, leases and the host's
unmanaged interfaces, from the host. Commands: decide (pure) -> host change under a
``Reverter`` -> append; a failed append undoes the host change, so a refused or failed
create leaves no bridge, rule or dnsmasq behind.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from schemas import networks as wire
from schemas import subjects
from schemas.catalog import ByName, ListQuery
from schemas.errors import BadRequest, Conflict, NotFound
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.common.names import event_meta
from services.common.revert import Reverter
from services.network.networks import aggregate as agg
from services.network.networks import config as cfg
from services.network.networks.context import Networks
from services.network.networks.state import unmanaged_dict

log = logging.getLogger(__name__)


class NetworkHandlers:
    """The network endpoints of this node's network service."""

    def __init__(self, networks: Networks) -> None:
        self.n = networks

    def register(self, group: EndpointGroup) -> None:
        for verb, model, handler in (
            (subjects.NETWORK_LIST, ListQuery, self.list),
            (subjects.NETWORK_GET, ByName, self.get),
            (subjects.NETWORK_STATE, ByName, self.state),
            (subjects.NETWORK_LEASES, ByName, self.leases),
            (subjects.NETWORK_CREATE, wire.CreateNetwork, self.create),
            (subjects.NETWORK_UPDATE, wire.UpdateNetwork, self.update),
            (subjects.NETWORK_RENAME, wire.RenameNetwork, self.rename),
            (subjects.NETWORK_DELETE, ByName, self.delete),
        ):
            group.add(subjects.network(verb, self.n.node), model, handler)

    # -- queries -------------------------------------------------------------------------

    async def list(self, body: ListQuery, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.n.fresh()
        managed = self.n.projection.networks_on(self.n.node)
        names = {s.name for s in managed}
        host = [i for i in await self.n.host.driver.interfaces() if i.name not in names]
        if body.recursion == 0:
            return sorted([s.name for s in managed] + [i.name for i in host]), seq
        views = [await self.n.view(s) for s in managed]
        views += [unmanaged_dict(i.name, i.kind) for i in host]
        return sorted(views, key=lambda v: v["name"]), seq

    async def get(self, body: ByName, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.n.fresh()
        state = self.n.find(body.name)
        if state is not None:
            return await self.n.result(state), seq
        for interface in await self.n.host.driver.interfaces():
            if interface.name == body.name:
                return {"object": unmanaged_dict(interface.name, interface.kind), "etag": ""}, seq
        raise NotFound("Network not found")

    async def state(self, body: ByName, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.n.fresh()
        interface = await self.n.host.driver.state(body.name)
        return interface.lxd(), seq

    async def leases(self, body: ByName, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.n.fresh()
        state = self.n.network_or_404(body.name)
        found = await self.n.host.driver.leases(state.name)
        owners = {hw: nic for hw, nic in state.nics.items()}
        out = []
        for lease in found:
            nic = owners.get(lease.hwaddr)
            out.append(
                {
                    "hostname": nic.instance if nic else lease.hostname,
                    "hwaddr": lease.hwaddr,
                    "address": lease.address,
                    "type": lease.type,
                    "location": "none",
                    "project": nic.project if nic else "default",
                }
            )
        return out, seq

    # -- commands ------------------------------------------------------------------------

    async def create(self, body: wire.CreateNetwork, meta: RequestMeta) -> tuple[Any, int]:
        network_id = str(uuid.uuid4())
        command = await create_command(self.n, body, network_id, self.n.meta(meta))
        seq, state = await create_network(self.n, command)
        return await self.n.result(state), seq

    async def update(self, body: wire.UpdateNetwork, meta: RequestMeta) -> tuple[Any, int]:
        async with self.n.host.lock(body.name):
            before = self.n.network_or_404(body.name)
            taken = tuple(await self.n.host.taken(except_name=body.name))

            def command(state: Any) -> agg.Command:
                return agg.Update(
                    mode=body.mode,
                    description=body.description,
                    config=body.config,
                    fields=tuple(body.fields),
                    if_match=meta.if_match,
                    taken=taken,
                    meta=self.n.meta(meta),
                )

            state, seq = await self.n.decide(body.name, command)
            assert state is not None
            if state != before:
                try:
                    await self.n.host.apply(state)
                except Exception:
                    # Recorded, so the heal loop keeps trying; the caller hears why.
                    log.exception("network %s updated in the log, not yet on the host", state.name)
                    raise
        return await self.n.result(state), seq

    async def rename(self, body: wire.RenameNetwork, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.n.meta(meta)
        async with self.n.host.lock(body.name), self.n.host.lock(body.new_name):
            await self.n.fresh()
            old = self.n.network_or_404(body.name)
            taken = self.n.find(body.new_name) is not None
            used = tuple(self.n.projection.used_by(old))
            agg.decide(old, agg.Rename(body.new_name, taken, used, cmd_meta))
            await self.n.names.claim(
                self.n.node, body.new_name, old.id, self.n.projection.has_name, event_meta(cmd_meta)
            )
            state, seq = await self.n.decide(
                body.name, lambda s: agg.Rename(body.new_name, False, used, cmd_meta)
            )
            assert state is not None
            await self.n.names.release(self.n.node, body.name, old.id, event_meta(cmd_meta))
            # The bridge is named after the network: the old one goes, the new one comes.
            await self.n.host.remove(body.name)
            await self.n.host.apply(state)
        return await self.n.result(state), seq

    async def delete(self, body: ByName, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.n.meta(meta)
        async with self.n.host.lock(body.name):
            await self.n.fresh()
            state = self.n.network_or_404(body.name)
            if self.n.projection.forwards_of(state.id):
                raise BadRequest("The network has forwards: delete them first")

            def command(current: Any) -> agg.Command:
                return agg.Delete(tuple(self.n.projection.used_by(current)), cmd_meta)

            _, seq = await self.n.decide(body.name, command)
            await self.n.host.remove(state.name)
        await self.n.names.release(self.n.node, state.name, state.id, event_meta(cmd_meta))
        return None, seq


async def create_command(
    n: Networks,
    body: wire.CreateNetwork,
    network_id: str,
    meta: agg.Meta,
    default: bool = False,
    event_id: str | None = None,
) -> agg.Create:
    """A checked create command on fresh state (``auto`` resolved to a free subnet)."""

    def command(config: dict[str, str], taken: Any, name_taken: bool) -> agg.Create:
        return agg.Create(
            id=network_id,
            name=body.name,
            node=n.node,
            type=body.type or "bridge",
            description=body.description,
            config=config,
            taken=tuple(taken),
            name_taken=name_taken,
            default=default,
            event_id=event_id,
            meta=meta,
        )

    # Validate before touching anything (bad names must not reach the lock table).
    agg.decide(None, command({**body.config, "ipv4.address": "none"}, (), False))
    cfg.check_config(body.type or "bridge", body.config)
    await n.fresh()
    taken = await n.host.taken()
    config = cfg.completed(body.config, taken)
    return command(config, taken, n.find(body.name) is not None)


async def create_network(n: Networks, command: agg.Create) -> tuple[int, Any]:
    """Claim the name, make the bridge, record it; undone entirely if any step fails."""
    events = agg.decide(None, command)
    async with n.host.lock(command.name), Reverter() as revert:
        try:
            await n.names.claim(
                n.node, command.name, command.id, n.projection.has_name, event_meta(command.meta)
            )
        except Conflict:
            raise Conflict(f"Network {command.name!r} already exists") from None
        revert.add(
            lambda: n.names.release(n.node, command.name, command.id, event_meta(command.meta))
        )
        state = agg.from_event(events[-1])
        revert.add(lambda: n.host.remove(command.name))
        await n.host.apply(state)
        seq = await n.store.append(events, expected_seq=0)
        revert.success()
    await n.projection.wait_for(seq)
    return seq, state
