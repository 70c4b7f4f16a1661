"""Give the default profile LXD's root disk once a ``default`` storage pool exists.

``lxd init`` adds ``root: {type: disk, path: /, pool: default}`` to the default profile when
it makes the default pool. Warren's storage service makes that pool on its first start, so
this reaction of the instance service (which owns profiles) follows the log: on a
``storage-pool-created`` event named ``default`` it adds the device, unless the default
profile has a root disk already (a user's choice is never overwritten). Redelivery is
harmless: the check runs again on the profile's newest event, and the append expects it.
"""

from __future__ import annotations

import logging

from schemas import events, subjects
from schemas.envelope import StoredEvent
from services.common.eventstore import EventStore, WrongSequence
from services.common.reactions import Reaction
from services.instance.catalog import profile as profile_agg
from services.instance.catalog.meta import (
    DEFAULT,
    PROFILE,
    SYSTEM,
    default_profile_id,
    default_project_id,
)

log = logging.getLogger(__name__)

ROOT_DEVICE = "root"


def has_root_disk(devices: dict[str, dict[str, str]]) -> bool:
    return any(d.get("type") == "disk" and d.get("path") == "/" for d in devices.values())


class DefaultProfileRootDisk(Reaction):
    """Adds the root disk on the ``default`` pool to the default project's default profile."""

    name = "default-profile-root-disk"
    filter_subject = subjects.aggregate_events(subjects.STORAGE_POOL_AGGREGATE)

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.subject = subjects.event(PROFILE, default_profile_id(default_project_id()))

    def triggers(self, stored: StoredEvent) -> bool:
        event = stored.event
        return event.type == events.STORAGE_POOL_CREATED and event.payload.get("name") == DEFAULT

    async def is_done(self, stored: StoredEvent) -> bool:
        last = await self.store.last(self.subject)
        if last is None or last.event.type == events.PROFILE_DELETED:
            return True  # no default profile to give a disk to
        return has_root_disk(profile_agg.from_event(last.event).devices)

    async def react(self, stored: StoredEvent) -> None:
        for _ in range(8):
            last = await self.store.last(self.subject)
            if last is None or last.event.type == events.PROFILE_DELETED:
                return
            state = profile_agg.from_event(last.event)
            if has_root_disk(state.devices):
                return
            device = {"type": "disk", "path": "/", "pool": DEFAULT}
            command = profile_agg.UpdateProfile(
                project=DEFAULT,
                mode="patch",
                devices={ROOT_DEVICE: device},
                fields=("devices",),
                meta=SYSTEM,
            )
            try:
                await self.store.append(profile_agg.decide(state, command), last.seq)
                log.info("default profile: root disk on the default pool added")
                return
            except WrongSequence:
                continue  # the profile changed meanwhile: look again
