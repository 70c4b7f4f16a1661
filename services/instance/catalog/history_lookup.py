"""Which objects a history request means: every object that carried a name, in every project
that carried the request's project name (live, renamed away or deleted).

Profiles and instances are scoped by project id, so a project's former names and a deleted
project still lead to them: the project name is looked up in the name history first.
"""

from __future__ import annotations

from schemas.catalog import HistoryHolder, HistoryName
from schemas.errors import NotFound
from services.instance.catalog.meta import PROFILE, PROJECT
from services.instance.catalog.projection import CatalogProjection
from services.instance.catalog.state import ProjectState, object_url
from services.instance.instances.state import INSTANCE

_NOT_FOUND = {PROFILE: "Profile not found", PROJECT: "Project not found"}


class HistoryLookup:
    """Name and project -> object ids, from the catalog projection's name history."""

    def __init__(self, projection: CatalogProjection) -> None:
        self.p = projection

    def projects_named(self, name: str) -> list[ProjectState]:
        """Every project that has or had ``name``, oldest first (tombstones included)."""
        ids = self.p.names.holders(PROJECT, "", name)
        return [self.p.projects[i] for i in ids if i in self.p.projects]

    def scopes(self, kind: str, project: str) -> list[str]:
        """The name scopes (project ids) a request in ``project`` covers."""
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

    def holders(self, kind: str, name: str, project: str) -> list[str]:
        """Every object that carried ``name`` in those scopes, oldest first."""
        last: dict[str, int] = {}
        for scope in self.scopes(kind, project):
            for object_id, seq in self.p.names.holders(kind, scope, name).items():
                last[object_id] = max(seq, last.get(object_id, 0))
        return sorted(last, key=lambda object_id: last[object_id])

    def live(self, kind: str, name: str, project: str) -> str | None:
        """The live object that has ``name`` now in the live project ``project``."""
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

    def select(
        self, kind: str, name: str, project: str, object_id: str | None
    ) -> tuple[str, list[str]]:
        """The object meant (``object_id``, else the live one, else the latest holder) and
        every holder of the name."""
        holders = self.holders(kind, name, project)
        if object_id is not None:
            if object_id not in holders:
                where = "" if kind == PROJECT else f" in project {project!r}"
                raise NotFound(f"No {kind} with id {object_id!r} was ever named {name!r}{where}")
            return object_id, holders
        chosen = self.live(kind, name, project) or (holders[-1] if holders else None)
        if chosen is None:
            raise NotFound(_NOT_FOUND.get(kind, f"{kind.capitalize()} not found"))
        return chosen, holders

    def describe(self, object_id: str) -> HistoryHolder:
        """One object as the history lists it (its latest name and project name)."""
        known = self.p.names.carrier(object_id)
        if known is None:
            return HistoryHolder(object_id=object_id, name="", last_seq=self.p.seq_of(object_id))
        project = None
        if known.kind != PROJECT:
            home = self.p.projects.get(known.scope)
            project = home.name if home is not None else None
        return HistoryHolder(
            object_id=object_id,
            name=known.name,
            project=project,
            deleted=known.deleted,
            last_seq=self.p.seq_of(object_id),
        )

    def names(self, kind: str, project: str) -> list[str]:
        """Every name objects of ``kind`` carried in ``project`` (and its former holders)."""
        found: set[str] = set()
        for scope in self.scopes(kind, project):
            found.update(self.p.names.names(kind, scope))
        return sorted(found)

    def url(self, kind: str, name: str, project: str) -> str:
        """The history URL of one name (LXD's escaping, ``?project=`` unless default)."""
        return object_url(f"history/{kind}", name, project)

    def listing(self, kind: str, project: str) -> list[HistoryName]:
        """Each name with every object that carried it."""
        return [
            HistoryName(
                name=name,
                url=self.url(kind, name, project),
                holders=[self.describe(i) for i in self.holders(kind, name, project)],
            )
            for name in self.names(kind, project)
        ]
