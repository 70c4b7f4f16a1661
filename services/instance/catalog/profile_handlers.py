"""Bus endpoints of ``/1.0/profiles``: each command is barrier -> decide -> append.

A request's project without ``features.profiles`` uses the default project's profiles, as
in LXD. Names are claimed through the log (:class:`NameRegistry`) so two creators racing for
one name cannot both win, even on two replicas. A nic on a managed network is refused when
this node's network service does not know the network (only nics a write adds or changes are
asked about, so profiles without them never wait on that service).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from schemas import catalog as wire
from schemas import subjects
from schemas.envelope import Event
from schemas.errors import BadRequest, NotFound, WarrenError
from schemas.messages import RequestMeta
from services.common.aggregate import decide_and_append
from services.common.endpoints import EndpointGroup
from services.common.revert import Reverter
from services.instance.catalog import profile as agg
from services.instance.catalog.context import Catalog
from services.instance.catalog.meta import DEFAULT
from services.instance.catalog.meta import new_id as new_aggregate_id
from services.instance.catalog.nic_devices import missing_network, network_refs
from services.instance.catalog.state import ProfileState, ProjectState


class NetworkLookup(Protocol):
    """Tells which networks do not exist (the instance side's :class:`NicPlumbing`)."""

    async def missing_networks(self, names: Iterable[str]) -> set[str]: ...


class ProfileHandlers:
    """The profile endpoints of one service process."""

    def __init__(self, catalog: Catalog, networks: NetworkLookup) -> None:
        self.c = catalog
        self.networks = networks

    def register(self, group: EndpointGroup) -> None:
        group.add(subjects.PROFILES_LIST, wire.ListQuery, self.list)
        group.add(subjects.PROFILES_GET, wire.ByName, self.get)
        group.add(subjects.PROFILES_CREATE, wire.CreateProfile, self.create)
        group.add(subjects.PROFILES_UPDATE, wire.UpdateProfile, self.update)
        group.add(subjects.PROFILES_RENAME, wire.RenameObject, self.rename)
        group.add(subjects.PROFILES_DELETE, wire.ByName, self.delete)

    # -- helpers -------------------------------------------------------------------------

    def _home(self, meta: RequestMeta) -> ProjectState:
        return self.c.projection.profile_home(self.c.project_or_404(meta.project))

    def _profile(self, home: ProjectState, name: str) -> ProfileState:
        state = self.c.projection.profile(home.id, name)
        if state is None:
            raise NotFound("Profile not found")
        return state

    async def _check_networks(
        self,
        devices: dict[str, dict[str, str]],
        known: dict[str, dict[str, str]],
        error: type[WarrenError],
    ) -> None:
        """Refuse the first nic (by device name) on a network that does not exist. LXD says
        400 on create and 404 on PUT/PATCH; Warren's networks all live in ``default``."""
        refs = network_refs(devices, known)
        missing = await self.networks.missing_networks(network for _, network in refs)
        for device, network in refs:
            if network in missing:
                raise error(missing_network(device, network, DEFAULT))

    def _result(self, state: ProfileState) -> dict[str, Any]:
        view = self.c.projection.profile_view(state)
        return wire.ObjectResult(object=view, etag=state.etag).model_dump()

    # -- queries -------------------------------------------------------------------------

    async def list(self, body: wire.ListQuery, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.c.fresh()
        profiles = self.c.projection.profiles_in(self._home(meta).id)
        if body.recursion == 0:
            return [p.name for p in profiles], seq
        return [self.c.projection.profile_view(p) for p in profiles], seq

    async def get(self, body: wire.ByName, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.c.fresh()
        return self._result(self._profile(self._home(meta), body.name)), seq

    # -- commands ------------------------------------------------------------------------

    async def create(self, body: wire.CreateProfile, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.c.meta(meta)
        new_id = new_aggregate_id()
        decided: list[Sequence[Event]] = []
        async with Reverter() as revert:

            async def decision() -> tuple[Sequence[Event], int]:
                await self.c.fresh()
                home = self._home(meta)
                command = agg.CreateProfile(
                    id=new_id,
                    project_id=home.id,
                    project=home.name,
                    name=body.name,
                    description=body.description,
                    config=body.config,
                    devices=body.devices,
                    name_taken=self.c.projection.profile(home.id, body.name) is not None,
                    meta=cmd_meta,
                )
                events = agg.decide(None, command)
                await self._check_networks(body.devices, {}, BadRequest)
                message = f'Error inserting "{body.name}" into database: The profile already exists'
                await self.c.claim_profile_name(home.id, body.name, new_id, cmd_meta, message)
                revert.add(
                    lambda: self.c.release_profile_name(home.id, body.name, new_id, cmd_meta)
                )
                decided.append(events)
                return events, 0

            seq = await decide_and_append(self.c.store, decision)
            revert.success()
        state = agg.from_event(decided[-1][-1])
        return self._result(state), seq

    async def update(self, body: wire.UpdateProfile, meta: RequestMeta) -> tuple[Any, int]:
        decided: list[tuple[ProfileState, Sequence[Event]]] = []

        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            home = self._home(meta)
            state = self._profile(home, body.name)
            command = agg.UpdateProfile(
                project=home.name,
                mode=body.mode,
                description=body.description,
                config=body.config,
                devices=body.devices,
                fields=tuple(body.fields),
                if_match=meta.if_match,
                meta=self.c.meta(meta),
            )
            events = agg.decide(state, command)
            new_devices = agg.from_event(events[-1]).devices
            await self._check_networks(new_devices, state.devices, NotFound)
            decided.append((state, events))
            return events, self.c.projection.seq_of(state.id)

        seq = await decide_and_append(self.c.store, decision)
        new = agg.from_event(decided[-1][1][-1])
        return self._result(new), seq

    async def rename(self, body: wire.RenameObject, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.c.meta(meta)
        claimed: list[tuple[str, str]] = []
        async with Reverter() as revert:

            async def decision() -> tuple[Sequence[Event], int]:
                await self.c.fresh()
                home = self._home(meta)
                state = self._profile(home, body.name)
                command = agg.RenameProfile(
                    project=home.name,
                    new_name=body.new_name,
                    name_taken=self.c.projection.profile(home.id, body.new_name) is not None,
                    meta=cmd_meta,
                )
                events = agg.decide(state, command)
                message = f'Name "{body.new_name}" already in use'
                await self.c.claim_profile_name(home.id, body.new_name, state.id, cmd_meta, message)
                if not claimed:
                    revert.add(
                        lambda: self.c.release_profile_name(
                            home.id, body.new_name, state.id, cmd_meta
                        )
                    )
                claimed[:] = [(home.id, state.id)]
                return events, self.c.projection.seq_of(state.id)

            seq = await decide_and_append(self.c.store, decision)
            revert.success()
        home_id, owner = claimed[-1]
        await self.c.release_profile_name(home_id, body.name, owner, cmd_meta)
        return None, seq

    async def delete(self, body: wire.ByName, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.c.meta(meta)
        deleted: list[ProfileState] = []

        async def decision() -> tuple[Sequence[Event], int]:
            await self.c.fresh()
            home = self._home(meta)
            state = self._profile(home, body.name)
            command = agg.DeleteProfile(
                project=home.name,
                used_by=tuple(self.c.projection.profile_used_by(state)),
                meta=cmd_meta,
            )
            events = agg.decide(state, command)
            deleted[:] = [state]
            return events, self.c.projection.seq_of(state.id)

        seq = await decide_and_append(self.c.store, decision)
        state = deleted[-1]
        await self.c.release_profile_name(state.project_id, state.name, state.id, cmd_meta)
        return None, seq
