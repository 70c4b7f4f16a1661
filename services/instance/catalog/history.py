"""``warren_history`` of the catalog's kinds (profiles, projects, instances): the catalog's
:class:`~services.common.history_lookup.HistoryBook`, served on :data:`subjects.HISTORY`.

A request covers every project that carried the request's project name (live, renamed away
or deleted): profiles and instances are scoped by project id, so a project's former names and
a deleted project still lead to them; the project name is looked up in the name history first.
"""

from __future__ import annotations

from typing import Any

from schemas import subjects
from schemas.errors import NotFound
from services.common.endpoints import EndpointGroup
from services.common.history import HistoryEndpoints
from services.common.history_lookup import HistoryBook
from services.common.name_history import NameHistory
from services.instance.catalog import profile as profile_agg
from services.instance.catalog import project as project_agg
from services.instance.catalog.context import Catalog
from services.instance.catalog.meta import PROFILE, PROJECT
from services.instance.catalog.state import ProfileState, ProjectState, profile_dict, project_dict
from services.instance.instances import aggregate as instance_agg
from services.instance.instances.state import INSTANCE, InstanceState

KINDS = (PROFILE, PROJECT, INSTANCE)


class CatalogHistory(HistoryBook):
    """What the shared history needs to know of profiles, projects and instances."""

    evolvers = {
        PROFILE: profile_agg.evolve,
        PROJECT: project_agg.evolve,
        INSTANCE: instance_agg.evolve,
    }

    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog
        self.p = catalog.projection
        self.store = catalog.store

    @property
    def names(self) -> NameHistory:
        return self.p.names

    async def fresh(self) -> int:
        return await self.c.fresh()

    def seq_of(self, object_id: str) -> int:
        return self.p.seq_of(object_id)

    def project_scoped(self, kind: str) -> bool:
        return kind != PROJECT

    def projects_named(self, name: str) -> list[ProjectState]:
        """Every project that has or had ``name``, oldest first (tombstones included)."""
        ids = self.p.names.holders(PROJECT, "", name)
        return [self.p.projects[i] for i in ids if i in self.p.projects]

    def scopes(self, kind: str, project: str) -> list[str]:
        if kind == PROJECT:
            return [""]
        projects = self.projects_named(project)
        if not projects:
            raise NotFound(f'Failed loading project "{project}": Project not found')
        found: list[str] = []
        for state in projects:
            # A project without features.profiles uses the default project's profiles.
            home = [self.p.profile_home(state).id] if kind == PROFILE else []
            for scope in [state.id, *home]:
                if scope not in found:
                    found.append(scope)
        return found

    def live(self, kind: str, name: str, project: str) -> str | None:
        if kind == PROJECT:
            state = self.p.project(name)
            return state.id if state else None
        home = self.p.project(project)
        if home is None:
            return None
        if kind == INSTANCE:
            instance = self.p.instances.get(home.id, name)
            return instance.id if instance else None
        profile = self.p.profile(self.p.profile_home(home).id, name)
        return profile.id if profile else None

    def project_name(self, kind: str, scope: str) -> str | None:
        if kind == PROJECT:
            return None
        home = self.p.projects.get(scope)
        return home.name if home is not None else None

    async def current(self, kind: str, object_id: str) -> dict[str, Any] | None:
        if kind == PROJECT:
            project = self.p.project_by_id(object_id)
            return self.p.project_view(project) if project else None
        if kind == INSTANCE:
            instance = self.p.instances.by_id.get(object_id)
            return instance_view(instance) if instance else None
        profile = self.p.profiles.get(object_id)
        return self.p.profile_view(profile) if profile and not profile.deleted else None

    def past(self, kind: str, state: Any) -> dict[str, Any] | None:
        # A past state's used_by is not kept in the log of the object itself: shown empty.
        if isinstance(state, ProfileState):
            return profile_dict(state, [])
        if isinstance(state, ProjectState):
            return project_dict(state, [])
        if isinstance(state, InstanceState):
            return instance_view(state)
        return None


class HistoryHandler:
    """Serves :data:`subjects.HISTORY` and :data:`subjects.HISTORY_LIST` for the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.endpoints = HistoryEndpoints(CatalogHistory(catalog))

    def register(self, group: EndpointGroup) -> None:
        self.endpoints.register(group, subjects.HISTORY, subjects.HISTORY_LIST)


def instance_view(state: InstanceState) -> dict[str, Any]:
    """An instance as its own events describe it (the history's state; live status and
    profile expansion are the instance API's business)."""
    return {"name": state.name, **state.writable(), "created_at": state.created_at}
