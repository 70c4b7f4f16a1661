"""The folded state of one project or one profile (immutable values), and its LXD shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from schemas.lxd.catalog import etag_of
from services.instance.catalog.meta import DEFAULT


@dataclass(frozen=True)
class ProjectState:
    """A project as its events describe it; ``deleted`` marks a tombstone."""

    id: str
    name: str
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    version: int = 0
    deleted: bool = False

    @property
    def etag(self) -> str:
        return etag_of(self.description, self.config)

    def writable(self) -> dict[str, Any]:
        return {"description": self.description, "config": dict(self.config)}

    def dump(self) -> dict[str, Any]:
        # Shallow: the state is immutable and the snapshot is encoded at once (asdict's deep
        # copy cost 15x more).
        return dict(self.__dict__)


@dataclass(frozen=True)
class ProfileState:
    """A profile as its events describe it. It belongs to a project by id: project names
    change on rename, ids never do."""

    id: str
    project_id: str
    name: str
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    version: int = 0
    deleted: bool = False

    @property
    def etag(self) -> str:
        return etag_of(self.config, self.description, self.devices)

    def writable(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "config": dict(self.config),
            "devices": {k: dict(d) for k, d in self.devices.items()},
        }

    def dump(self) -> dict[str, Any]:
        # Shallow: the state is immutable and the snapshot is encoded at once (asdict's deep
        # copy cost 15x more).
        return dict(self.__dict__)


def object_url(collection: str, name: str, project: str = DEFAULT) -> str:
    """``/1.0/<collection>/<name>[?project=<p>]``, escaped as LXD's Go client escapes."""
    # Go's url.PathEscape leaves these sub-delimiters alone; quote() would not.
    url = f"/1.0/{collection}/{quote(name, safe='$&+:=@')}"
    if project != DEFAULT:
        url += "?" + urlencode({"project": project})
    return url


def profile_dict(state: ProfileState, used_by: list[str]) -> dict[str, Any]:
    """A profile as ``GET /1.0/profiles/<name>`` returns it."""
    return {"name": state.name, **state.writable(), "used_by": used_by}


def project_dict(state: ProjectState, used_by: list[str]) -> dict[str, Any]:
    """A project as ``GET /1.0/projects/<name>`` returns it."""
    return {"name": state.name, **state.writable(), "used_by": used_by}
