"""The node agent's start-up repair: make this host match the log, then autostart.

- an instance the log has but the host lacks (a crash mid-way, a host wiped) gets its volume
  and definition back (re-cloned from its image when the volume is gone);
- every definition is rewritten from the log (an update a crash interrupted is finished);
- host objects of instances the log does not have (a create a crash interrupted, a delete
  whose cleanup was cut short) are removed: definitions, volumes, node state directories;
- instances with ``boot.autostart`` true, or unset and last recorded running, are started if
  the host has them stopped (as LXD does when its daemon starts); ephemeral ones found stopped
  are deleted.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

from schemas import events
from schemas.errors import WarrenError
from schemas.messages import RequestMeta
from services.instance.drivers.spec import Status
from services.instance.instances.commands import InstanceCommands
from services.instance.instances.context import Instances
from services.instance.instances.power import PowerHandlers
from services.instance.instances.state import RUNNING, InstanceState

log = logging.getLogger(__name__)
_TRUE = ("true", "1", "yes", "on")


async def reconcile(i: Instances, commands: InstanceCommands, power: PowerHandlers) -> None:
    """One pass; each repair that fails is logged and left for the next start."""
    await i.fresh()
    wanted = {s.host_name: s for s in i.projection.instances.on_node(i.node)}
    await _remove_unknown(i, set(wanted))
    for state in wanted.values():
        try:
            await _repair(i, commands, state)
        except WarrenError as exc:
            log.error("instance %s: repair failed: %s", state.name, exc.message)
    statuses = await i.live_statuses()
    for state in wanted.values():
        if state.host_name in statuses:
            continue
        if state.ephemeral:  # stopped while nobody watched: gone, as LXD has it
            try:
                async with i.lock(state.id):
                    await commands.delete_stopped(state, RequestMeta(requestor="warren"))
                log.info("ephemeral instance %s was stopped: deleted", state.name)
            except WarrenError as exc:
                log.error("ephemeral instance %s: delete failed: %s", state.name, exc.message)
            continue
        if not _autostart(i, state):
            continue
        try:
            await power.start(state)
            await power.record(state, events.INSTANCE_STARTED, RequestMeta(requestor="warren"))
            log.info("instance %s started (autostart)", state.name)
        except WarrenError as exc:
            log.error("instance %s: autostart failed: %s", state.name, exc.message)


def _autostart(i: Instances, state: InstanceState) -> bool:
    value = i.expanded(state).config.get("boot.autostart")
    if value is not None and value != "":
        return value.lower() in _TRUE
    return state.power == RUNNING


async def _repair(i: Instances, commands: InstanceCommands, state: InstanceState) -> None:
    async with i.lock(state.id):
        if not await i.driver.exists(state.host_name):
            volumes = await i.peers.instance_volumes(state.pool)
            if state.host_name not in volumes:
                log.warning("instance %s: volume missing, cloning it again", state.name)
                mounted = await i.create_volume(state)
            else:
                mounted = await i.mount(state)
            log.warning("instance %s: definition missing on the host, recreated", state.name)
            await i.driver.create(i.spec(state, mounted))
            return
        await commands.sync_host(state)


async def _remove_unknown(i: Instances, known: set[str]) -> None:
    statuses = await i.live_statuses()
    for host_name in await i.driver.list():
        if host_name in known:
            continue
        log.warning("removing %s from the host: the log has no such instance", host_name)
        try:
            if statuses.get(host_name, Status.STOPPED) is not Status.STOPPED:
                await i.driver.stop(host_name, timeout=0, force=True)
            await i.driver.delete(host_name)
        except WarrenError as exc:
            log.error("could not remove %s: %s", host_name, exc.message)
    try:
        pools = await i.peers.pools()
    except WarrenError as exc:
        log.error("could not list storage pools: %s", exc.message)
        pools = []
    for pool in pools:
        try:
            names = await i.peers.instance_volumes(pool)
        except WarrenError as exc:
            log.error("pool %s: could not list volumes: %s", pool, exc.message)
            continue
        for name in names:
            if name.startswith("w-") and name not in known:
                log.warning("removing volume %s of pool %s: no instance owns it", name, pool)
                try:
                    await i.peers.delete_volume(pool, name)
                except WarrenError as exc:
                    log.error("could not remove volume %s: %s", name, exc.message)
    if i.state_root.is_dir():
        for path in await asyncio.to_thread(lambda: list(i.state_root.iterdir())):
            if path.name not in known:
                await asyncio.to_thread(shutil.rmtree, path, True)
