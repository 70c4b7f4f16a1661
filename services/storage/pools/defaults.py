"""Start-up work of a node's storage service: the ``default`` pool and the reconcile.

The ``default`` pool (``dir`` at ``$WARREN_DIR/storage-pools/default``) is made on the first
start, like ``lxd init``: from the log itself (not the projection), with a uuid5 id and a
deterministic event id, so a restart or a second process agree and JetStream keeps one
event. Once made, it is an ordinary pool: deleting it is the user's choice and it is not
made again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from schemas import subjects
from schemas.errors import BadRequest, Conflict
from services.common.eventstore import EventStore, WrongSequence
from services.common.names import NameRegistry
from services.storage.pools import aggregate as agg
from services.storage.pools.host import HostPools
from services.storage.pools.projection import PoolProjection
from services.storage.pools.state import (
    DEFAULT_POOL,
    POOL,
    default_pool_id,
    deterministic_event_id,
)

log = logging.getLogger(__name__)

DEFAULT_DRIVER = "dir"


async def ensure_default_pool(store: EventStore, host: HostPools, node: str) -> None:
    """Create this node's ``default`` pool unless the log has ever had it."""
    pool_id = default_pool_id(node)
    if await store.last(subjects.event(POOL, pool_id)) is not None:
        return
    meta = agg.Meta(requestor="warren", node=node)
    names = NameRegistry(store, POOL)
    try:
        # Before the projection exists, nothing else can be known to hold the name.
        await names.claim(node, DEFAULT_POOL, pool_id, lambda _id, _name: True, _meta(node))
    except Conflict:
        log.warning("a pool named %r exists already: no default pool made", DEFAULT_POOL)
        return
    driver = host.driver_for(DEFAULT_POOL, DEFAULT_DRIVER, {})
    try:
        config = await driver.create()
    except BadRequest:
        # Its directory is there already: an earlier start got this far before a crash (or
        # another process is making it now). Same object, so adopt it.
        await driver.mount()
        config = {"source": str(getattr(driver, "root", ""))}
    command = agg.CreatePool(
        id=pool_id,
        name=DEFAULT_POOL,
        node=node,
        driver=DEFAULT_DRIVER,
        config=config,
        event_id=deterministic_event_id(pool_id, "created", 1),
        meta=meta,
    )
    try:
        await store.append(agg.decide(None, command), expected_seq=0)
        log.info("created the default storage pool (%s)", config.get("source"))
    except WrongSequence:
        pass  # another process recorded it first: same pool


def _meta(node: str) -> dict[str, str | None]:
    return {"requestor": "warren", "correlation_id": None, "causation_id": None, "node": node}


async def reconcile(
    projection: PoolProjection, host: HostPools, node: str, warren_dir: Path
) -> None:
    """Mount every pool the log says this node has; report what does not match the host.

    A pool whose directory or loop file is gone stays listed as ``Unavailable`` (and is
    logged); a directory under ``storage-pools/`` that no pool owns is reported, not deleted
    (it may hold someone's data).
    """
    known = set()
    for state in projection.pools_on(node):
        known.add(state.name)
        if await host.mount(state):
            log.info("storage pool %s (%s) mounted", state.name, state.driver)
    sources = {state.config.get("source") for state in projection.pools_on(node)}
    pools_dir = warren_dir / "storage-pools"
    if pools_dir.is_dir():
        for entry in sorted(pools_dir.iterdir()):
            if entry.name not in known:
                log.warning("reconcile: %s belongs to no storage pool in the log", entry)
    for disk in sorted((warren_dir / "disks").glob("*.img")):
        if str(disk) not in sources:
            log.warning("reconcile: loop file %s belongs to no storage pool in the log", disk)
