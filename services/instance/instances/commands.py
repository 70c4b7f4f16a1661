"""Node endpoints that create, change, rename and delete instances.

Host work and the log are ordered so a crash leaves nothing a restart cannot sort out:
create does the host work first and records ``instance-created`` last (a crash leaves host
objects named after an id the log never heard of, which the start-up reconcile removes);
delete records ``instance-deleted`` first and then cleans the host (the reconcile finishes a
cleanup a crash interrupted). Each long step runs as an LXD operation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any

from schemas import instances as wire
from schemas import subjects
from schemas.catalog import OperationResult
from schemas.envelope import utcnow
from schemas.errors import BadRequest, Conflict, NotImplementedYet, Unavailable, WarrenError
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.common.names import event_meta
from services.common.operations import RunningOperation, lxd_time
from services.common.revert import Reverter
from services.instance.catalog import validation
from services.instance.catalog.state import object_url
from services.instance.drivers.spec import InstanceSpec, Status, host_name_for
from services.instance.instances import aggregate as agg
from services.instance.instances import config as cfg
from services.instance.instances import nics
from services.instance.instances.admission import Admissions
from services.instance.instances.context import Instances, host_architecture
from services.instance.instances.state import InstanceState, expand

log = logging.getLogger(__name__)


def resources(state_name: str, project: str) -> dict[str, list[str]]:
    url = object_url("instances", state_name, project)
    return {"instances": [url], "containers": [url.replace("/instances/", "/containers/", 1)]}


class InstanceCommands:
    """create / update (PUT) / patch / rename / delete on this node."""

    def __init__(self, instances: Instances) -> None:
        self.i = instances
        self.admissions = Admissions(instances.projection)

    def register(self, group: EndpointGroup) -> None:
        node = self.i.node
        for verb, model, handler in (
            (subjects.INSTANCE_CREATE, wire.CreateInstance, self.create),
            (subjects.INSTANCE_UPDATE, wire.UpdateInstance, self.update),
            (subjects.INSTANCE_PATCH, wire.UpdateInstance, self.patch),
            (subjects.INSTANCE_RENAME, wire.RenameInstance, self.rename),
            (subjects.INSTANCE_DELETE, wire.DeleteInstance, self.delete),
        ):
            group.add(subjects.instance_node(verb, node), model, handler, concurrent=True)

    async def _operation(
        self, work: Any, description: str, name: str, meta: RequestMeta
    ) -> tuple[Any, int]:
        op = await self.i.catalog.operations.start(
            work,
            description=description,
            resources=resources(name, meta.project),
            meta=meta,
            project=meta.project,
            may_cancel=False,
        )
        return OperationResult(operation=op.object).model_dump(), op.seq

    # -- create ----------------------------------------------------------------------------

    async def create(self, body: wire.CreateInstance, meta: RequestMeta) -> tuple[Any, int]:
        i = self.i
        await i.fresh()
        project = i.project_or_404(meta)
        cfg.check_type(body.type)
        cfg.check_name(body.name)
        if body.source.type == "none":
            raise NotImplementedYet("Instances without an image are not supported yet")
        if body.source.type not in ("image", ""):
            raise NotImplementedYet(f"Instance source type {body.source.type!r} is not supported")
        profiles = ["default"] if body.profiles is None else list(body.profiles)
        if len(set(profiles)) != len(profiles):
            raise BadRequest("Duplicate profile found in request")
        config = validation.clean_config(body.config)
        cfg.check_instance(config, body.devices)
        expanded = expand(config, body.devices, i.profile_layers(project, profiles))
        pool = cfg.check_expanded(expanded)
        instance_id = str(uuid.uuid4())
        resolved = nics.resolve(instance_id, expanded.config, expanded.devices)
        image, _ = await asyncio.gather(
            i.peers.resolve_image(body.source, meta), i.net.check_networks(resolved)
        )
        architecture = body.architecture or image.get("architecture") or host_architecture()
        now = lxd_time(utcnow())
        image_keys = {f"image.{k}": str(v) for k, v in (image.get("properties") or {}).items()}
        state = InstanceState(
            id=instance_id,
            project_id=project.id,
            name=body.name,
            node=i.node,
            host_name=host_name_for(instance_id),
            pool=pool,
            image=str(image["fingerprint"]),
            type="container",
            architecture=architecture,
            description=body.description,
            config={
                **image_keys,
                # LXD renders the image's create templates at the first start.
                cfg.APPLY_TEMPLATE: "create",
                **config,
                "volatile.base_image": str(image["fingerprint"]),
                **nics.volatile_hwaddrs(resolved),
            },
            devices=body.devices,
            profiles=profiles,
            ephemeral=body.ephemeral,
            created_at=now,
        )
        cmd_meta = i.meta(meta)
        agg.decide(None, agg.Create(state, project.name, meta=cmd_meta))  # refuse before claiming
        await i.fresh()
        # The project's limits as they are now; nothing awaited before the create is counted.
        self.admissions.admit(i.project_or_404(meta), instance_id)
        try:
            return await self._claim_and_create(state, project.name, cmd_meta, meta)
        except BaseException:
            self.admissions.done(project.id, instance_id)
            raise

    async def _claim_and_create(
        self, state: InstanceState, project: str, cmd_meta: Any, meta: RequestMeta
    ) -> tuple[Any, int]:
        i = self.i
        names = event_meta(cmd_meta)
        try:
            await i.names.claim(
                state.project_id, state.name, state.id, i.projection.instances.has_name, names
            )
        except Conflict:
            raise Conflict(f'Instance "{state.name}" already exists') from None

        async def work(op: RunningOperation) -> None:
            try:
                await self._provision(state, project, cmd_meta)
            except BaseException:
                await asyncio.shield(i.names.release(state.project_id, state.name, state.id, names))
                raise
            finally:
                self.admissions.done(state.project_id, state.id)

        return await self._operation(work, "Creating instance", state.name, meta)

    async def _provision(self, state: InstanceState, project: str, cmd_meta: Any) -> None:
        i = self.i
        async with i.lock(state.id), Reverter() as revert:
            mounted = await i.create_volume(state)
            revert.add(lambda: i.peers.delete_volume(state.pool, state.host_name))
            await i.driver.create(i.spec(state, mounted))
            revert.add(lambda: i.driver.delete(state.host_name))
            await i.decide(state.id, agg.Create(state, project, meta=cmd_meta))
            revert.success()

    # -- update ----------------------------------------------------------------------------

    def _update_command(self, body: wire.UpdateInstance, meta: RequestMeta) -> agg.Update:
        if body.restore:
            raise NotImplementedYet("Snapshots are not supported yet: nothing to restore")
        return agg.Update(
            project=meta.project,
            mode=body.mode,
            fields=tuple(body.fields),
            description=body.description,
            architecture=body.architecture,
            config=body.config,
            devices=body.devices,
            profiles=tuple(body.profiles),
            ephemeral=body.ephemeral,
            if_match=meta.if_match,
            meta=self.i.meta(meta),
        )

    async def _apply_update(self, body: wire.UpdateInstance, meta: RequestMeta) -> InstanceState:
        """Validate against profiles, record, then bring the host in line."""
        i = self.i
        await i.fresh()
        state = i.get(meta, body.name)
        project = i.project_or_404(meta)
        command = self._update_command(body, meta)
        preview = agg.from_event(agg.decide(state, command)[-1])
        expanded = expand(
            preview.config, preview.devices, i.profile_layers(project, preview.profiles)
        )
        if cfg.check_expanded(expanded) != state.pool:
            raise BadRequest("Changing the root disk's storage pool is not supported")
        old_nics = i.nics(state)
        new_nics = nics.resolve(state.id, expanded.config, expanded.devices)
        missing = {
            key: value
            for key, value in nics.volatile_hwaddrs(new_nics).items()
            if key not in preview.config
        }
        if missing:  # a nic added: its MAC shows in volatile.<device>.hwaddr, as in LXD
            command = dataclasses.replace(
                command,
                config={**command.config, **missing},
                fields=tuple({*command.fields, "config"}),
            )
            preview = agg.from_event(agg.decide(state, command)[-1])
        await i.net.check_networks(new_nics, nics.networks(old_nics))
        running = await i.live_status(state) is not Status.STOPPED
        if running and cfg.privileged(expanded.config) != cfg.privileged(i.expanded(state).config):
            raise BadRequest("security.privileged can only be changed while stopped")
        async with i.lock(state.id):
            if running and new_nics != old_nics:
                new = await self._hotplug_then_decide(state, preview, command)
            else:
                new = await i.decide(state.id, command)
            await self.sync_host(new)
        await i.net.unplug([nic for nic in old_nics if nic not in new_nics])
        return new

    async def _hotplug_then_decide(
        self, state: InstanceState, preview: InstanceState, command: agg.Update
    ) -> InstanceState:
        """Change a running instance's nics on the host first, so that a refusal (a bridge
        missing, a name taken inside) records nothing; undone if recording fails."""
        i = self.i
        mounted = await i.mount(state)
        old = i.spec(state, mounted)
        new = i.spec(preview, mounted, await i.plug(preview))
        await i.driver.set_nics(state.host_name, new.nics)
        await i.driver.update(new)
        try:
            return await i.decide(state.id, command)
        except BaseException:
            await asyncio.shield(self._restore_nics(old))
            raise

    async def _restore_nics(self, spec: InstanceSpec) -> None:
        try:
            await self.i.driver.set_nics(spec.name, spec.nics)
            await self.i.driver.update(spec)
        except WarrenError as exc:
            log.error("nics of %s not restored: %s", spec.name, exc.message)

    async def sync_host(self, state: InstanceState) -> None:
        """Rewrite the driver's definition from the log; if running, apply limits and bring
        its nics in line (a profile may have added or removed one)."""
        i = self.i
        running = await i.live_status(state) is not Status.STOPPED
        mounted, plugged = await i.mount(state), {}
        live_nics = running
        if running and nics.networks(i.nics(state)):
            try:
                plugged = await i.plug(state)
            except Unavailable as exc:
                # Its nics keep running as they are, and the definition keeps naming them
                # (the driver diffs against it); the next start plugs and rewrites it.
                log.warning("instance %s: nics left as they are: %s", state.name, exc.message)
                live_nics = False
        spec = i.spec(state, mounted, plugged)
        if live_nics:
            await i.driver.set_nics(state.host_name, spec.nics)
            await i.driver.update(spec)
        elif not running:
            await i.driver.update(spec)
        if running and i.driver.capabilities.live_limits:
            await i.driver.set_limits(state.host_name, spec.limits)

    async def update(self, body: wire.UpdateInstance, meta: RequestMeta) -> tuple[Any, int]:
        body = body.model_copy(update={"mode": "put"})
        # Validate at once (a 400 or 412 is an answer, not a failed operation), then run.
        await self.i.fresh()
        agg.decide(self.i.get(meta, body.name), self._update_command(body, meta))

        async def work(op: RunningOperation) -> None:
            await self._apply_update(body, meta)

        return await self._operation(work, "Updating instance", body.name, meta)

    async def patch(self, body: wire.UpdateInstance, meta: RequestMeta) -> tuple[Any, int]:
        await self._apply_update(body.model_copy(update={"mode": "patch"}), meta)
        return None, await self.i.catalog.store.last_seq()

    # -- rename ----------------------------------------------------------------------------

    async def rename(self, body: wire.RenameInstance, meta: RequestMeta) -> tuple[Any, int]:
        i = self.i
        await i.fresh()
        state = i.get(meta, body.name)
        project = i.project_or_404(meta)
        cmd_meta = i.meta(meta)
        running = await i.live_status(state) is not Status.STOPPED
        command = agg.Rename(meta.project, body.new_name, False, running, cmd_meta)
        agg.decide(state, command)
        taken = i.projection.instances.get(project.id, body.new_name) is not None
        if taken:
            raise Conflict(f'Name "{body.new_name}" already in use')

        async def work(op: RunningOperation) -> None:
            names = event_meta(cmd_meta)
            try:
                await i.names.claim(
                    project.id, body.new_name, state.id, i.projection.instances.has_name, names
                )
            except Conflict:
                raise Conflict(f'Name "{body.new_name}" already in use') from None
            try:
                async with i.lock(state.id):
                    running_now = await i.live_status(state) is not Status.STOPPED
                    renamed = agg.Rename(meta.project, body.new_name, False, running_now, cmd_meta)
                    new = await i.decide(state.id, renamed)
                    await self.sync_host(new)  # the hostname follows the name
            except BaseException:
                await i.names.release(project.id, body.new_name, state.id, names)
                raise
            await i.names.release(project.id, state.name, state.id, names)

        return await self._operation(work, "Renaming instance", body.name, meta)

    # -- delete ----------------------------------------------------------------------------

    async def delete(self, body: wire.DeleteInstance, meta: RequestMeta) -> tuple[Any, int]:
        i = self.i
        await i.fresh()
        state = i.get(meta, body.name)
        if await i.live_status(state) is not Status.STOPPED:
            raise BadRequest("Instance is running")
        if state.config.get("security.protection.delete", "").lower() in ("true", "1", "yes"):
            raise BadRequest("Instance is protected")

        async def work(op: RunningOperation) -> None:
            async with i.lock(state.id):
                await self.delete_stopped(state, meta)

        return await self._operation(work, "Deleting instance", body.name, meta)

    async def delete_stopped(self, state: InstanceState, meta: RequestMeta) -> None:
        """Record the deletion of a stopped instance, then clear the host and its name (the
        caller holds the instance's lock)."""
        i = self.i
        cmd_meta = i.meta(meta)
        running = await i.live_status(state) is not Status.STOPPED
        await i.decide(state.id, agg.Delete(meta.project, running, cmd_meta))
        await self.remove_from_host(state)
        await i.names.release(state.project_id, state.name, state.id, event_meta(cmd_meta))

    async def remove_from_host(self, state: InstanceState) -> None:
        """Remove the driver's definition and the volume. The log says the instance is gone
        already: a failure here is logged, and the next start's reconcile finishes it."""
        i = self.i
        try:
            await i.driver.delete(state.host_name)
            await i.peers.delete_volume(state.pool, state.host_name)
            await i.net.unplug(i.nics(state))
        except WarrenError as exc:
            log.error(
                "instance %s deleted; host cleanup left for the next start: %s",
                state.name,
                exc.message,
            )
        await i.remove_state_dir(state)
