"""Project count limits at instance create: the instances the log holds plus the creates this
node agent has admitted and not yet recorded (an instance is recorded only once its host
work is done, so two creates racing for a project's last slot would both fit otherwise).

The check and the admission happen without an ``await`` in between, on a projection brought
up to date just before, so within this process exactly one of two racing creates gets the
last slot. Creates on two nodes at once can still both pass, as in LXD (which checks in one
transaction and records the instance in another).
"""

from __future__ import annotations

from services.instance.catalog import limits
from services.instance.catalog.projection import CatalogProjection
from services.instance.catalog.state import ProjectState


class Admissions:
    """Creates under way in this process, by project id."""

    def __init__(self, projection: CatalogProjection) -> None:
        self.projection = projection
        self._pending: dict[str, set[str]] = {}

    def usage(self, project_id: str) -> limits.Usage:
        """What the project holds, counting admitted creates once even when already folded."""
        live = self.projection.instances.in_project(project_id)
        pending = self._pending.get(project_id, set()) - {s.id for s in live}
        # Warren creates containers only: an admitted create is one.
        return limits.Usage.of([*live, *(_Container() for _ in pending)])

    def admit(self, project: ProjectState, instance_id: str) -> None:
        """Refuse the create if the project is at a limit (LXD's message), else count it."""
        limits.check_room(project.name, project.config, self.usage(project.id))
        self._pending.setdefault(project.id, set()).add(instance_id)

    def done(self, project_id: str, instance_id: str) -> None:
        """The create ended (recorded, or failed): the log alone counts it from now on."""
        pending = self._pending.get(project_id)
        if pending is not None:
            pending.discard(instance_id)
            if not pending:
                del self._pending[project_id]


class _Container:
    type = limits.CONTAINER
