"""The catalog read model: every project and profile, by id and by name.

It keeps, per aggregate, the stream sequence of its last event (the expected sequence of the
next append) and, for history, tombstones of deleted projects and profiles and every object
that ever carried each name (:mod:`name_history`).
"""

from __future__ import annotations

from typing import Any

from schemas.envelope import StoredEvent
from services.common.name_history import NameHistory
from services.common.projection import Projection
from services.instance.catalog import profile as profile_agg
from services.instance.catalog import project as project_agg
from services.instance.catalog.meta import DEFAULT, PROFILE, PROJECT, default_project_id
from services.instance.catalog.state import (
    ProfileState,
    ProjectState,
    object_url,
    profile_dict,
    project_dict,
)
from services.instance.instances.index import InstanceIndex
from services.instance.instances.state import INSTANCE


class CatalogProjection(Projection):
    """Projects, profiles and instances folded from the log with the aggregates' own
    ``evolve``."""

    name = "catalog"
    snapshot_version = 5
    aggregates = frozenset({PROJECT, PROFILE, INSTANCE})

    def __init__(self) -> None:
        super().__init__()
        self.load(None)

    # -- folding -------------------------------------------------------------------------

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        agg_id = event.aggregate_id
        if event.aggregate == INSTANCE:
            before = self.instances.by_id.get(agg_id)
            self.instances.apply(event)
            self._follow_profile_renames(agg_id)
            after = self.instances.by_id.get(agg_id)
            known = after or before
            if known is not None:
                self.names.saw(
                    INSTANCE, known.project_id, known.name, agg_id, stored.seq, after is None
                )
        elif event.aggregate == PROJECT:
            old_p = self.projects.get(agg_id)
            new_p = project_agg.evolve(old_p, event)
            if new_p is not None:
                self._index_project(old_p, new_p)
                self.names.saw(PROJECT, "", new_p.name, agg_id, stored.seq, new_p.deleted)
        else:
            old = self.profiles.get(agg_id)
            new = profile_agg.evolve(old, event)
            if new is not None:
                self._index_profile(old, new)
                self.names.saw(PROFILE, new.project_id, new.name, agg_id, stored.seq, new.deleted)
                if old is not None and old.name != new.name:
                    self._rename_in_instances(new, old.name)
        self.seqs[agg_id] = stored.seq

    def _index_project(self, old: ProjectState | None, new: ProjectState) -> None:
        self.projects[new.id] = new
        if old is not None and not old.deleted and self.project_by_name.get(old.name) == old.id:
            del self.project_by_name[old.name]
        if not new.deleted:
            self.project_by_name[new.name] = new.id

    def _index_profile(self, old: ProfileState | None, new: ProfileState) -> None:
        self.profiles[new.id] = new
        if old is not None and not old.deleted:
            key = (old.project_id, old.name)
            if self.profile_by_name.get(key) == old.id:
                del self.profile_by_name[key]
        if not new.deleted:
            self.profile_by_name[(new.project_id, new.name)] = new.id

    def _rename_in_instances(self, profile: ProfileState, old_name: str) -> None:
        # As in LXD, where instances refer to a profile by id: a rename reaches its users.
        home = self.project_by_id(profile.project_id)
        if home is None:
            return
        for state in self.instances.using_profile(self.projects_using_profiles_of(home), old_name):
            renamed = [profile.name if p == old_name else p for p in state.profiles]
            self.instances.set_profiles(state.id, renamed)

    def _follow_profile_renames(self, instance_id: str) -> None:
        # An instance event decided just before a profile rename was folded still names the
        # profile by its old name: follow the name history to the profile's current name.
        state = self.instances.by_id.get(instance_id)
        project = self.project_by_id(state.project_id) if state is not None else None
        if state is None or project is None:
            return
        home_id = self.profile_home(project).id
        current = [self._current_profile_name(home_id, p) for p in state.profiles]
        if current != state.profiles:
            self.instances.set_profiles(instance_id, current)

    def _current_profile_name(self, home_id: str, name: str) -> str:
        if (home_id, name) in self.profile_by_name:
            return name
        holder = self.profiles.get(self.former_holder(PROFILE, home_id, name) or "")
        return holder.name if holder is not None and not holder.deleted else name

    # -- snapshots -----------------------------------------------------------------------

    def dump(self) -> Any:
        return {
            "projects": [s.dump() for s in self.projects.values()],
            "profiles": [s.dump() for s in self.profiles.values()],
            "seqs": self.seqs,
            "names": self.names.dump(),
            "instances": self.instances.dump(),
        }

    def load(self, state: Any) -> None:
        self.projects: dict[str, ProjectState] = {}
        self.profiles: dict[str, ProfileState] = {}
        self.seqs: dict[str, int] = {}
        #: Every object that ever carried each name, for history.
        self.names = NameHistory()
        self.project_by_name: dict[str, str] = {}
        self.profile_by_name: dict[tuple[str, str], str] = {}
        self.instances = InstanceIndex()
        if not state:
            return
        self.instances.load(state.get("instances"))
        for raw in state["projects"]:
            self._index_project(None, ProjectState(**raw))
        for raw in state["profiles"]:
            self._index_profile(None, ProfileState(**raw))
        self.seqs = {k: int(v) for k, v in state["seqs"].items()}
        self.names.load(state.get("names"))

    # -- lookups -------------------------------------------------------------------------

    def seq_of(self, aggregate_id: str) -> int:
        """Stream sequence of the aggregate's last event (0: never written)."""
        return self.seqs.get(aggregate_id, 0)

    def project(self, name: str) -> ProjectState | None:
        agg_id = self.project_by_name.get(name)
        return self.projects[agg_id] if agg_id else None

    def project_by_id(self, project_id: str) -> ProjectState | None:
        state = self.projects.get(project_id)
        return state if state is not None and not state.deleted else None

    def default_project(self) -> ProjectState | None:
        return self.project_by_id(default_project_id())

    def profile_home(self, project: ProjectState) -> ProjectState:
        """The project whose profiles ``project`` uses (itself, or ``default`` without
        ``features.profiles``)."""
        if project_agg.has_profiles(project):
            return project
        return self.default_project() or project

    def profile(self, project_id: str, name: str) -> ProfileState | None:
        agg_id = self.profile_by_name.get((project_id, name))
        return self.profiles[agg_id] if agg_id else None

    def profiles_in(self, project_id: str) -> list[ProfileState]:
        found = [self.profiles[i] for (p, _), i in self.profile_by_name.items() if p == project_id]
        return sorted(found, key=lambda s: s.name)

    def former_holder(self, kind: str, scope: str, name: str) -> str | None:
        """The latest aggregate (live or not) that carried ``name``."""
        return self.names.latest(kind, scope, name)

    def profile_has_name(self, profile_id: str, name: str) -> bool:
        state = self.profiles.get(profile_id)
        return state is not None and not state.deleted and state.name == name

    def project_has_name(self, project_id: str, name: str) -> bool:
        state = self.projects.get(project_id)
        return state is not None and not state.deleted and state.name == name

    # -- LXD views -----------------------------------------------------------------------

    def project_is_empty(self, project: ProjectState) -> bool:
        """Empty as LXD means it: nothing in it but its own ``default`` profile."""
        if self.instances.in_project(project.id):
            return False
        return all(p.name == DEFAULT for p in self.profiles_in(project.id))

    def projects_using_profiles_of(self, home: ProjectState) -> set[str]:
        """Ids of the projects whose instances use ``home``'s profiles."""
        live = (p for p in self.projects.values() if not p.deleted)
        return {p.id for p in live if self.profile_home(p).id == home.id}

    def profile_used_by(self, state: ProfileState) -> list[str]:
        home = self.project_by_id(state.project_id)
        if home is None:
            return []
        users = self.instances.using_profile(self.projects_using_profiles_of(home), state.name)
        return sorted(self.instance_url(i) for i in users)

    def instance_url(self, state: Any) -> str:
        project = self.project_by_id(state.project_id)
        return object_url("instances", state.name, project.name if project else DEFAULT)

    def project_used_by(self, project: ProjectState) -> list[str]:
        used = [self.instance_url(i) for i in self.instances.in_project(project.id)]
        if not project_agg.has_profiles(project):
            return used
        profiles = self.profiles_in(project.id)
        return used + [object_url("profiles", p.name, project.name) for p in profiles]

    def profile_view(self, state: ProfileState) -> dict[str, Any]:
        return profile_dict(state, self.profile_used_by(state))

    def project_view(self, state: ProjectState) -> dict[str, Any]:
        return project_dict(state, self.project_used_by(state))
