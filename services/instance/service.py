"""Wiring of the instance service: projections, endpoints and start-up repairs."""

from __future__ import annotations

import asyncio
import logging

from services.common.operations import OperationRecorder
from services.common.runtime import ServiceRuntime
from services.instance.catalog import defaults
from services.instance.catalog.context import Catalog
from services.instance.catalog.history import HistoryHandler
from services.instance.catalog.profile_handlers import ProfileHandlers
from services.instance.catalog.project_handlers import ProjectHandlers
from services.instance.catalog.projection import CatalogProjection
from services.instance.catalog.root_disk import DefaultProfileRootDisk

log = logging.getLogger(__name__)

NAME = "instance"


async def setup(runtime: ServiceRuntime) -> Catalog:
    """Register the catalog on a connected runtime (``runtime.start()`` comes after)."""
    assert runtime.bus is not None and runtime.store is not None
    store = runtime.store
    # From the log, not the projection: safe before catch-up and across racing replicas.
    await defaults.ensure_default_project(store)
    projection = CatalogProjection()
    runner = runtime.add_projection(projection)
    operations = OperationRecorder(runtime.bus.nc, store, runtime.settings.node)
    runtime.on_stop(operations.stop)
    catalog = Catalog(store, runner, projection, operations, runtime.settings.node)
    ProfileHandlers(catalog).register(runtime.endpoints)
    ProjectHandlers(catalog).register(runtime.endpoints)
    HistoryHandler(catalog).register(runtime.endpoints)
    runtime.add_reaction(DefaultProfileRootDisk(store))
    target = await store.last_seq()
    catalog.reconcile_task = asyncio.create_task(_reconcile_when_caught_up(catalog, target))
    return catalog


async def _reconcile_when_caught_up(catalog: Catalog, target: int) -> None:
    try:
        await catalog.projection.wait_for(target, timeout=3600)
        await defaults.reconcile(catalog.store, catalog.projection)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("start-up reconcile failed; it runs again at the next start")
