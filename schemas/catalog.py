"""Commands and queries of the catalog (projects and profiles), owned by the instance service.

``RequestMeta.project`` carries the ``?project=`` of the HTTP request; ``RequestMeta.if_match``
the ``If-Match`` header. Results are LXD shapes (``schemas.lxd.catalog``) as plain dicts:

- list (``ListQuery``): names, sorted (recursion 0), or LXD objects (recursion 1);
- get, create, update: :class:`ObjectResult` (``{"object": {...}, "etag": "..."}``);
- profile rename, delete: ``None``;
- project rename: :class:`OperationResult` (LXD makes it an operation; the service records it
  in the log under the request's ``correlation_id`` when that is a uuid, and answers once it
  has ended);
- history (``HistoryQuery``): :class:`HistoryResult`; history list (``HistoryListQuery``):
  URLs or :class:`HistoryName` entries (the same models on every service's history subjects).

``Reply.seq`` is the stream sequence the answer reflects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.lxd.catalog import ProfilePut, ProfilesPost, ProjectPut, ProjectsPost


class ByName(BaseModel):
    """Address one object by its name (in the request's project)."""

    name: str


class ListQuery(BaseModel):
    """``recursion`` 0 gives names, 1 gives objects."""

    recursion: int = 0


class CreateProfile(ProfilesPost):
    pass


class UpdateProfile(ProfilePut):
    """PUT replaces the writable fields; PATCH merges only the fields present in ``fields``."""

    name: str
    mode: Literal["put", "patch"] = "put"
    fields: list[str] = Field(default_factory=list)


class RenameObject(BaseModel):
    name: str
    new_name: str


class CreateProject(ProjectsPost):
    pass


class UpdateProject(ProjectPut):
    name: str
    mode: Literal["put", "patch"] = "put"
    fields: list[str] = Field(default_factory=list)


class HistoryQuery(BaseModel):
    """The history of one object, and optionally its state at a point in the log.

    ``kind`` is the aggregate (``profile``, ``project``, ``instance`` on ``HISTORY``;
    ``network``, ``storage-pool``, ``image``, ``image-alias`` on the history subjects of the
    services owning them); ``name`` a name it has or had in the request's project (a project
    that has or had that name: deleted and renamed projects count; networks and pools are
    scoped by node instead, an image is named by its fingerprint). Several objects may have
    carried the name in turn: ``object_id`` picks one (else the live one, else the latest).
    ``at_seq`` / ``at_time`` (RFC 3339) ask for the object as it was.
    """

    kind: str
    name: str
    object_id: str | None = None
    at_seq: int | None = None
    at_time: str | None = None


class HistoryListQuery(BaseModel):
    """The names ever carried by objects of ``kind`` in the request's project: URLs
    (recursion 0) or :class:`HistoryName` entries (recursion 1)."""

    kind: str
    recursion: int = 0


class HistoryEntry(BaseModel):
    """One event of an object's history, as the API shows it."""

    seq: int
    type: str
    occurred_at: str
    requestor: str
    correlation_id: str | None = None
    version: int
    payload: dict[str, Any] = Field(default_factory=dict)


class ObjectResult(BaseModel):
    """One object in its LXD shape, with the ETag its ``If-Match`` must name."""

    object: dict[str, Any]
    etag: str


class OperationResult(BaseModel):
    """An LXD operation object (``schemas.lxd.operation.Operation``) the caller answers with."""

    operation: dict[str, Any]


class HistoryHolder(BaseModel):
    """One object that carried a name: its latest name, its project's (latest) name, whether
    it is deleted, and the stream sequence of its latest event."""

    object_id: str
    name: str
    project: str | None = None
    deleted: bool = False
    last_seq: int = 0


class HistoryResult(BaseModel):
    """The answer to a :class:`HistoryQuery`: ``state`` is the LXD object as of the point asked
    for (now if none), ``None`` when it did not exist then. ``name`` and ``project`` are the
    object's latest; ``holders`` every object that carried the name asked for, oldest first."""

    object_id: str
    kind: str
    name: str = ""
    project: str | None = None
    events: list[HistoryEntry] = Field(default_factory=list)
    state: dict[str, Any] | None = None
    holders: list[HistoryHolder] = Field(default_factory=list)


class HistoryName(BaseModel):
    """One name of a :class:`HistoryListQuery` answer and the objects that carried it."""

    name: str
    url: str
    holders: list[HistoryHolder] = Field(default_factory=list)
