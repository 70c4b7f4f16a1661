"""Bus endpoints of ``/1.0/networks/<n>/forwards``: listen addresses DNAT'd to instances.

A forward's rules go into its network's nftables table, so every change re-applies the
network; a change the host refuses is undone in the log again (append, apply, or revert).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from schemas import networks as wire
from schemas import subjects
from schemas.catalog import ObjectResult
from schemas.errors import NotFound
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.common.names import event_meta
from services.network.networks.context import Networks
from services.network.networks.forward_state import (
    ForwardState,
    decide_forward,
    evolve_forward,
    forward_id,
)


class ForwardHandlers:
    def __init__(self, networks: Networks) -> None:
        self.n = networks

    def register(self, group: EndpointGroup) -> None:
        for verb, model, handler in (
            (subjects.NETWORK_FORWARD_LIST, wire.ForwardQuery, self.list),
            (subjects.NETWORK_FORWARD_GET, wire.ForwardQuery, self.get),
            (subjects.NETWORK_FORWARD_CREATE, wire.CreateForward, self.create),
            (subjects.NETWORK_FORWARD_UPDATE, wire.UpdateForward, self.update),
            (subjects.NETWORK_FORWARD_DELETE, wire.ForwardQuery, self.delete),
        ):
            group.add(subjects.network(verb, self.n.node), model, handler)

    def _current(self, network: str, listen: str) -> tuple[Any, ForwardState | None]:
        state = self.n.network_or_404(network)
        forward = self.n.projection.forwards.get(forward_id(state.id, listen))
        return state, (None if forward is None or forward.deleted else forward)

    async def list(self, body: wire.ForwardQuery, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.n.fresh()
        state = self.n.network_or_404(body.network)
        forwards = self.n.projection.forwards_of(state.id)
        if body.recursion == 0:
            return [f.listen_address for f in forwards], seq
        return [f.lxd() for f in forwards], seq

    async def get(self, body: wire.ForwardQuery, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.n.fresh()
        _, forward = self._current(body.network, body.listen_address or "")
        if forward is None:
            raise NotFound("Network forward not found")
        return ObjectResult(object=forward.lxd(), etag=str(forward.version)).model_dump(), seq

    async def create(self, body: wire.CreateForward, meta: RequestMeta) -> tuple[Any, int]:
        async with self.n.host.lock(body.network):
            await self.n.fresh()
            state, _ = self._current(body.network, body.listen_address)
            new = ForwardState(
                id=forward_id(state.id, body.listen_address),
                network_id=state.id,
                network=state.name,
                listen_address=body.listen_address,
                description=body.description,
                config=dict(body.config),
                ports=tuple(p.model_dump() for p in body.ports),
            )
            previous = self.n.projection.forwards.get(new.id)
            return await self._change(state, previous, new, meta, create=True)

    async def update(self, body: wire.UpdateForward, meta: RequestMeta) -> tuple[Any, int]:
        async with self.n.host.lock(body.network):
            await self.n.fresh()
            state, old = self._current(body.network, body.listen_address)
            if old is None:
                raise NotFound("Network forward not found")
            fields = (
                set(body.fields) if body.mode == "patch" else {"description", "config", "ports"}
            )
            new = replace(
                old,
                description=body.description if "description" in fields else old.description,
                config=dict(body.config) if "config" in fields else old.config,
                ports=tuple(p.model_dump() for p in body.ports) if "ports" in fields else old.ports,
            )
            return await self._change(state, old, new, meta, create=False)

    async def delete(self, body: wire.ForwardQuery, meta: RequestMeta) -> tuple[Any, int]:
        async with self.n.host.lock(body.network):
            await self.n.fresh()
            state, old = self._current(body.network, body.listen_address or "")
            if old is None:
                raise NotFound("Network forward not found")
            _, seq = await self._change(state, old, None, meta, create=False)
            return None, seq

    async def _change(
        self,
        network: Any,
        old: ForwardState | None,
        new: ForwardState | None,
        meta: RequestMeta,
        create: bool,
    ) -> tuple[Any, int]:
        cmd = event_meta(self.n.meta(meta))
        events = decide_forward(old, new, cmd, create)
        if not events:
            assert new is not None
            return ObjectResult(object=new.lxd(), etag=str(new.version)).model_dump(), (
                self.n.projection.seq_of(new.id)
            )
        forward_subject_seq = self.n.projection.seq_of(events[0].aggregate_id)
        seq = await self.n.store.append(events, expected_seq=forward_subject_seq)
        await self.n.projection.wait_for(seq)
        try:
            await self.n.host.apply(network)
        except Exception:
            # The host refused the rules: the log must not keep what is not in force.
            undo = decide_forward(
                evolve_forward(old, events[-1]), old if old and not old.deleted else None, cmd,
                create=False,
            )  # fmt: skip
            if undo:
                seq = await self.n.store.append(undo, expected_seq=seq)
                await self.n.projection.wait_for(seq)
                await self.n.host.apply(network)
            raise
        current = self.n.projection.forwards.get(events[0].aggregate_id)
        if current is None or current.deleted:
            return None, seq
        return ObjectResult(object=current.lxd(), etag=str(current.version)).model_dump(), seq
