"""Wiring of the instance service: projections, endpoints and start-up repairs.

Every replica serves the cluster-scoped catalog (projects, profiles, instance list/get).
The first replica of a node (``WARREN_REPLICA`` 0) is also the node agent: it alone does host
work (``instance.<node>.*``), after it has reconciled the host with the log, so two processes
never change one container at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

from services.common.endpoints import EndpointGroup
from services.common.operations import OperationRecorder
from services.common.runtime import ServiceRuntime
from services.instance.catalog import defaults
from services.instance.catalog.context import Catalog
from services.instance.catalog.default_nic import DefaultProfileNic
from services.instance.catalog.history import HistoryHandler
from services.instance.catalog.profile_handlers import ProfileHandlers
from services.instance.catalog.project_handlers import ProjectHandlers
from services.instance.catalog.projection import CatalogProjection
from services.instance.catalog.root_disk import DefaultProfileRootDisk
from services.instance.drivers import DRIVERS
from services.instance.instances.commands import InstanceCommands
from services.instance.instances.context import Instances
from services.instance.instances.exec_handler import ExecHandler
from services.instance.instances.file_handlers import FileHandlers
from services.instance.instances.log_handlers import LogHandlers
from services.instance.instances.orphans import RunningInstanceOperations, fail_orphans
from services.instance.instances.peers import Peers
from services.instance.instances.power import PowerHandlers
from services.instance.instances.profile_sync import ProfileSync
from services.instance.instances.queries import InstanceQueries
from services.instance.instances.reconcile import reconcile

log = logging.getLogger(__name__)

NAME = "instance"
DRIVER = "lxc"


def _searchable(path: Path) -> None:
    """An unprivileged container's root (a high host uid) must be able to walk down to its
    rootfs under $WARREN_DIR, or LXC cannot start it: give "others" search permission."""
    path.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if not mode & stat.S_IXOTH:
        os.chmod(path, stat.S_IMODE(mode) | stat.S_IXOTH)
        log.info("%s made searchable by others (unprivileged containers live below it)", path)


def is_node_agent() -> bool:
    return os.environ.get("WARREN_REPLICA", "0") in ("", "0")


async def setup(runtime: ServiceRuntime) -> Catalog:
    """Register the catalog on a connected runtime (``runtime.start()`` comes after)."""
    assert runtime.bus is not None and runtime.store is not None
    store = runtime.store
    settings = runtime.settings
    # From the log, not the projection: safe before catch-up and across racing replicas.
    await defaults.ensure_default_project(store)
    projection = CatalogProjection()
    runner = runtime.add_projection(projection)
    operations = OperationRecorder(runtime.bus.nc, store, settings.node)
    runtime.on_stop(operations.stop)
    catalog = Catalog(store, runner, projection, operations, settings.node)
    ProjectHandlers(catalog).register(runtime.endpoints)
    HistoryHandler(catalog).register(runtime.endpoints)
    runtime.add_reaction(DefaultProfileRootDisk(store))
    runtime.add_reaction(DefaultProfileNic(store))

    await asyncio.to_thread(_searchable, settings.warren_dir)
    driver = DRIVERS[DRIVER](settings.warren_dir / "lxc")
    instances = Instances(
        catalog,
        driver,
        Peers(runtime.bus, settings.node),
        settings.warren_dir / "instances",
        settings.node,
    )
    # Profiles ask this node's network service about their nics, as instances do.
    ProfileHandlers(catalog, instances.net).register(runtime.endpoints)
    node_group = EndpointGroup(f"{NAME}.{settings.node}")
    queries = InstanceQueries(instances)
    queries.register(runtime.endpoints, node_group)
    commands = InstanceCommands(instances)
    commands.register(node_group)
    power = PowerHandlers(instances, commands)
    power.register(node_group)
    ExecHandler(instances, runtime.bus.nc).register(node_group)
    FileHandlers(instances.host, instances.record, runtime.bus.nc, settings.node).register(
        node_group
    )
    LogHandlers(instances.host, instances.record, settings.node).register(node_group)

    running_ops = RunningInstanceOperations()
    runtime.add_projection(running_ops)

    target = await store.last_seq()
    catalog.reconcile_task = asyncio.create_task(_reconcile_when_caught_up(catalog, target))
    if is_node_agent():
        runtime.add_reaction(ProfileSync(instances, commands))
        task = asyncio.create_task(
            _serve_node(runtime, instances, commands, power, node_group, running_ops, target)
        )
        runtime.on_stop(lambda: _stop_node(task, node_group))
    return catalog


async def _reconcile_when_caught_up(catalog: Catalog, target: int) -> None:
    try:
        await catalog.projection.wait_for(target, timeout=3600)
        await defaults.reconcile(catalog.store, catalog.projection)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("start-up reconcile failed; it runs again at the next start")


async def _serve_node(
    runtime: ServiceRuntime,
    instances: Instances,
    commands: InstanceCommands,
    power: PowerHandlers,
    group: EndpointGroup,
    running_ops: RunningInstanceOperations,
    target: int,
) -> None:
    """Fail what a previous run left Running, reconcile the host with the log, then serve."""
    await instances.projection.wait_for(target, timeout=3600)
    await running_ops.wait_for(target, timeout=3600)
    await fail_orphans(instances.catalog.store, running_ops, instances.node, target)
    try:
        await reconcile(instances, commands, power)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("instance reconcile failed; serving anyway, it runs again next start")
    assert runtime.bus is not None
    await group.start(runtime.bus.nc)
    log.info("node agent of %s serving", instances.node)


async def _stop_node(task: asyncio.Task[None], group: EndpointGroup) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await group.stop()
