"""A changed profile reaches the instances that use it, as in LXD: the node agent rewrites
their definitions and applies limits to the running ones.

A reaction of this node's agent only (its durable consumer is named after the node). The
effect is idempotent (the definition is rewritten from the log as it is now), so a
redelivery only repeats it; nothing is appended, so ``is_done`` has nothing to look up.
"""

from __future__ import annotations

import logging

from schemas import events, subjects
from schemas.envelope import StoredEvent
from schemas.errors import WarrenError
from services.common.reactions import Reaction
from services.instance.catalog.meta import PROFILE
from services.instance.instances.commands import InstanceCommands
from services.instance.instances.context import Instances

log = logging.getLogger(__name__)


class ProfileSync(Reaction):
    """On ``profile-updated``: sync the host of each instance of this node using it."""

    filter_subject = subjects.aggregate_events(PROFILE)

    def __init__(self, instances: Instances, commands: InstanceCommands) -> None:
        self.i = instances
        self.commands = commands
        self.name = f"profile-sync-{instances.node}"

    def triggers(self, stored: StoredEvent) -> bool:
        return stored.event.type == events.PROFILE_UPDATED

    async def is_done(self, stored: StoredEvent) -> bool:
        return False

    async def react(self, stored: StoredEvent) -> None:
        i = self.i
        await i.projection.wait_for(stored.seq, timeout=60)
        name = stored.event.payload.get("name")
        home = i.projection.project_by_id(stored.event.payload.get("project_id", ""))
        if home is None or not isinstance(name, str):
            return
        users = i.projection.instances.using_profile(
            i.projection.projects_using_profiles_of(home), name
        )
        for state in users:
            if state.node != i.node:
                continue
            current = i.projection.instances.by_id.get(state.id)
            if current is None:
                continue
            try:
                async with i.lock(state.id):
                    await self.commands.sync_host(current)
            except WarrenError as exc:
                log.error("instance %s: profile %s not applied: %s", state.name, name, exc.message)
