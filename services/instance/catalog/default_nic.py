"""Give the default profile LXD's ``eth0`` once this node's default network exists.

``lxd init`` adds ``eth0: {type: nic, network: lxdbr0, name: eth0}`` to the default profile
when it makes its bridge. Warren's network service makes the default network on a node's
first start and records it with ``"default": true``; this reaction of the instance service
(which owns profiles) then adds the nic, unless the default profile has a nic already (a
user's choice is never overwritten). Redelivery is harmless: the check runs again on the
profile's newest event, and the append expects it.
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

NIC_DEVICE = "eth0"


def has_nic(devices: dict[str, dict[str, str]]) -> bool:
    return any(d.get("type") == "nic" for d in devices.values())


class DefaultProfileNic(Reaction):
    """Adds ``eth0`` on the default network to the default project's default profile."""

    name = "default-profile-nic"
    filter_subject = subjects.aggregate_events(subjects.NETWORK_AGGREGATE)

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.subject = subjects.event(PROFILE, default_profile_id(default_project_id()))

    def triggers(self, stored: StoredEvent) -> bool:
        event = stored.event
        return (
            event.type == events.NETWORK_CREATED
            and event.payload.get("default") is True
            and bool(event.payload.get("name"))
        )

    async def is_done(self, stored: StoredEvent) -> bool:
        last = await self.store.last(self.subject)
        if last is None or last.event.type == events.PROFILE_DELETED:
            return True  # no default profile to give a nic to
        return has_nic(profile_agg.from_event(last.event).devices)

    async def react(self, stored: StoredEvent) -> None:
        network = str(stored.event.payload["name"])
        for _ in range(8):
            last = await self.store.last(self.subject)
            if last is None or last.event.type == events.PROFILE_DELETED:
                return
            state = profile_agg.from_event(last.event)
            if has_nic(state.devices):
                return
            device = {"type": "nic", "network": network, "name": NIC_DEVICE}
            command = profile_agg.UpdateProfile(
                project=DEFAULT,
                mode="patch",
                devices={NIC_DEVICE: device},
                fields=("devices",),
                meta=SYSTEM,
            )
            try:
                await self.store.append(profile_agg.decide(state, command), last.seq)
                log.info("default profile: eth0 on network %s added", network)
                return
            except WrongSequence:
                continue  # the profile changed meanwhile: look again
