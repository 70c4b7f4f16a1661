"""The ``disk`` section of an instance's state: what its root disk holds of its own.

The storage service of this node owns the volumes and counts them; one request covers any
number of instances (a ``recursion=2`` listing asks once, not once per instance). When it
does not answer in time the state answers all the same, without disk figures, as LXD does for
a pool that cannot count. Instances of other nodes get none from here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import ValidationError

from schemas.errors import WarrenError
from schemas.storage import InstanceVolumeRef, InstanceVolumeUsage
from services.instance.instances.peers import Peers
from services.instance.instances.state import InstanceState, root_disk

log = logging.getLogger(__name__)


async def root_usages(
    peers: Peers, states: Iterable[InstanceState]
) -> dict[str, InstanceVolumeUsage]:
    """Host name -> usage of the root volume of each of ``states`` on the peers' node;
    nothing for those the storage service cannot count, or when it does not answer."""
    refs = [
        InstanceVolumeRef(pool=s.pool, name=s.host_name)
        for s in states
        if s.node == peers.node and s.pool
    ]
    if not refs:
        return {}
    try:
        found = await peers.volume_usage(refs)
    except (WarrenError, ValidationError) as exc:
        log.warning("no disk figures for %d instance(s): %s", len(refs), exc)
        return {}
    wanted = {(ref.pool, ref.name) for ref in refs}
    return {usage.name: usage for usage in found if (usage.pool, usage.name) in wanted}


def disk_state(
    devices: dict[str, dict[str, str]], usage: InstanceVolumeUsage | None
) -> dict[str, dict[str, int]]:
    """LXD's ``disk`` map of an instance state, from its expanded devices: its root disk
    device's ``usage`` (and ``total``, its quota or 0, as later LXD versions add); empty
    without a figure."""
    root = root_disk(devices)
    if usage is None or root is None:
        return {}
    return {root[0]: {"usage": usage.used, "total": usage.total}}
