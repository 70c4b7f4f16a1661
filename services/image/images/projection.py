"""The image service's read model: images and aliases per project, and project names.

Projects belong to the instance service; their events are the shared contract, so this
projection folds just what it needs from them (name -> id, and whether the project keeps
its own images: ``features.images``) without asking the instance service. A deleted project
stays as a tombstone, and every image, alias and project that carried each name is kept, so
the history of an image of a renamed or deleted project is still found by that project's name.
"""

from __future__ import annotations

from typing import Any

from schemas import events, subjects
from schemas.envelope import StoredEvent
from schemas.errors import BadRequest, NotFound
from services.common.name_history import NameHistory
from services.common.projection import Projection
from services.image.images import alias as alias_agg
from services.image.images import image as image_agg
from services.image.images.orphans import RunningOps
from services.image.images.state import ALIAS, IMAGE, PROJECT, AliasState, ImageState, image_view

DEFAULT = "default"


class ImageProjection(Projection):
    """Images and aliases folded with the aggregates' own ``evolve``."""

    name = "images"
    snapshot_version = 2
    aggregates = frozenset({IMAGE, ALIAS, PROJECT, subjects.OPERATION_AGGREGATE})

    def __init__(self) -> None:
        super().__init__()
        self.load(None)

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        agg_id = event.aggregate_id
        if event.aggregate == subjects.OPERATION_AGGREGATE:
            self.running.apply(stored.seq, event)
            return  # operations are not aggregates of this service: no expected sequence kept
        if event.aggregate == PROJECT:
            self._apply_project(agg_id, event.type, event.payload)
            name = str(event.payload.get("name", ""))
            deleted = event.type == events.PROJECT_DELETED
            self.names.saw(PROJECT, "", name, agg_id, stored.seq, deleted)
        elif event.aggregate == IMAGE:
            new = image_agg.evolve(self.images.get(agg_id), event)
            if new is not None:
                self.images[agg_id] = new
                self.names.saw(
                    IMAGE, new.project_id, new.fingerprint, agg_id, stored.seq, new.deleted
                )
        else:
            old = self.aliases.get(agg_id)
            new_alias = alias_agg.evolve(old, event)
            if new_alias is not None:
                self._index_alias(old, new_alias)
                self.names.saw(
                    ALIAS, new_alias.project_id, new_alias.name, agg_id, stored.seq,
                    new_alias.deleted,
                )  # fmt: skip
        self.seqs[agg_id] = stored.seq

    def _apply_project(self, agg_id: str, type_: str, payload: dict[str, Any]) -> None:
        if type_ == events.PROJECT_DELETED:
            if agg_id in self.projects:  # a tombstone, for history
                self.projects[agg_id] = {**self.projects[agg_id], "deleted": True}
            return
        config = payload.get("config") or {}
        own_images = payload.get("name") == DEFAULT or str(
            config.get("features.images", "true")
        ).lower() in ("true", "1", "yes", "on")
        self.projects[agg_id] = {"name": payload.get("name", ""), "own_images": own_images}

    def _index_alias(self, old: AliasState | None, new: AliasState) -> None:
        self.aliases[new.id] = new
        if old is not None and not old.deleted:
            if self.alias_by_name.get((old.project_id, old.name)) == old.id:
                del self.alias_by_name[(old.project_id, old.name)]
        if not new.deleted:
            self.alias_by_name[(new.project_id, new.name)] = new.id

    def dump(self) -> Any:
        return {
            "images": [s.dump() for s in self.images.values()],
            "aliases": [s.dump() for s in self.aliases.values()],
            "projects": self.projects,
            "seqs": self.seqs,
            "running": self.running.dump(),
            "names": self.names.dump(),
        }

    def load(self, state: Any) -> None:
        self.images: dict[str, ImageState] = {}
        self.aliases: dict[str, AliasState] = {}
        self.alias_by_name: dict[tuple[str, str], str] = {}
        #: project id -> its name, whether it keeps its own images, whether it is deleted
        self.projects: dict[str, dict[str, Any]] = {}
        #: Every image (by fingerprint), alias and project that carried each name.
        self.names = NameHistory()
        self.seqs: dict[str, int] = {}
        #: Image operations still Running in the log (see :mod:`.orphans`).
        self.running = RunningOps()
        if not state:
            return
        self.running.load(state.get("running"))
        for raw in state["images"]:
            image = ImageState(**raw)
            self.images[image.id] = image
        for raw in state["aliases"]:
            self._index_alias(None, AliasState(**raw))
        self.projects = dict(state["projects"])
        self.seqs = {k: int(v) for k, v in state["seqs"].items()}
        self.names.load(state.get("names"))

    # -- lookups -------------------------------------------------------------------------

    def seq_of(self, aggregate_id: str) -> int:
        return self.seqs.get(aggregate_id, 0)

    def image_home(self, project: str) -> tuple[str, str]:
        """(id, name) of the project whose images ``project`` uses (LXD: features.images)."""
        found = [(i, p) for i, p in self.projects.items() if p["name"] == project]
        found = [(i, p) for i, p in found if not p.get("deleted")]
        if not found:
            raise NotFound(f'Failed loading project "{project}": Project not found')
        agg_id, info = found[0]
        default = self.default_project_id()
        if not info["own_images"] and default is not None:
            return default, DEFAULT
        return agg_id, info["name"]

    def default_project_id(self) -> str | None:
        for agg_id, info in self.projects.items():
            if info["name"] == DEFAULT and not info.get("deleted"):
                return agg_id
        return None

    def image_scopes(self, project: str) -> list[str]:
        """The ids of the projects whose images a project that has or had the name
        ``project`` used, oldest first (renamed and deleted ones included)."""
        found: list[str] = []
        for agg_id in self.names.holders(PROJECT, "", project):
            info = self.projects.get(agg_id)
            if info is None:
                continue
            # A project without features.images uses the default project's images.
            home = [] if info["own_images"] else [self.default_project_id() or agg_id]
            for scope in [agg_id, *home]:
                if scope not in found:
                    found.append(scope)
        return found

    def images_in(self, project_id: str) -> list[ImageState]:
        found = [s for s in self.images.values() if s.project_id == project_id and not s.deleted]
        return sorted(found, key=lambda s: s.fingerprint)

    def resolve(self, project_id: str, prefix: str) -> ImageState:
        """An image by fingerprint or unique prefix, as LXD resolves it."""
        matches = [s for s in self.images_in(project_id) if s.fingerprint.startswith(prefix)]
        if not matches:
            raise NotFound("Image not found")
        if len(matches) > 1:
            raise BadRequest("More than one image matches")
        return matches[0]

    def fingerprint_in_use(self, fingerprint: str) -> bool:
        """Whether any project still holds an image with this fingerprint (shared blobs)."""
        return any(s.fingerprint == fingerprint and not s.deleted for s in self.images.values())

    def alias(self, project_id: str, name: str) -> AliasState | None:
        agg_id = self.alias_by_name.get((project_id, name))
        return self.aliases[agg_id] if agg_id else None

    def aliases_in(self, project_id: str) -> list[AliasState]:
        found = [self.aliases[i] for (p, _), i in self.alias_by_name.items() if p == project_id]
        return sorted(found, key=lambda s: s.name)

    def aliases_of(self, image: ImageState) -> list[AliasState]:
        return [a for a in self.aliases_in(image.project_id) if a.target == image.fingerprint]

    def alias_has_name(self, alias_id: str, name: str) -> bool:
        state = self.aliases.get(alias_id)
        return state is not None and not state.deleted and state.name == name

    def view(self, image: ImageState) -> dict[str, Any]:
        return image_view(image, self.aliases_of(image))
