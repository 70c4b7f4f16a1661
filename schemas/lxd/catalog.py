"""LXD shapes of profiles and projects, as the REST API returns and accepts them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    # LXD ignores unknown top-level fields in request bodies (checked on 5.0.2); so do we, but
    # values must have the right types.
    model_config = ConfigDict(extra="ignore")


class ProfilePut(_Strict):
    """Body of PUT /1.0/profiles/<name> (and what PATCH merges)."""

    description: str = ""
    config: dict[str, str] = Field(default_factory=dict)
    devices: dict[str, dict[str, str]] = Field(default_factory=dict)


class ProfilesPost(ProfilePut):
    """Body of POST /1.0/profiles (a missing name is LXD's "No name provided", not a schema
    error: the service checks names)."""

    name: str = ""


class Profile(ProfilePut):
    """A profile as GET returns it."""

    name: str
    used_by: list[str] = Field(default_factory=list)


class ProjectPut(_Strict):
    """Body of PUT /1.0/projects/<name>."""

    description: str = ""
    config: dict[str, str] = Field(default_factory=dict)


class ProjectsPost(ProjectPut):
    """Body of POST /1.0/projects (a missing name: see :class:`ProfilesPost`)."""

    name: str = ""


class Project(ProjectPut):
    """A project as GET returns it."""

    name: str
    used_by: list[str] = Field(default_factory=list)


class RenamePost(_Strict):
    """Body of POST /1.0/profiles/<name> and /1.0/projects/<name> (a missing name: see
    :class:`ProfilesPost`)."""

    name: str = ""


def etag_of(*parts: Any) -> str:
    """LXD-style ETag: a sha256 of the object's writable fields (profiles: config,
    description, devices; projects: description, config). Clients only echo it back in
    ``If-Match``, so it need not equal the real LXD's value for the same object."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
