"""Commands and queries of instances, owned by the instance service.

Catalog queries are cluster-scoped (any instance replica answers from its projection):

- list (``subjects.INSTANCES_LIST``, :class:`InstanceListQuery`): names (recursion 0) or LXD
  ``Instance`` objects (1) or ``InstanceFull`` objects with ``state`` (2);
- get (``subjects.INSTANCES_GET``, :class:`~schemas.catalog.ByName`): :class:`InstanceResult`
  (the object, its ETag and the node it lives on).

Everything that touches a host goes to the instance's node, on
``subjects.instance_node(verb, node)``; the gateway learns the node from a get (a create goes
to ``?target=`` or to the gateway's own node):

- create, update (PUT), rename, delete, state change, exec: :class:`~schemas.catalog.
  OperationResult` (the LXD operation, recorded in the log and run by the node);
- state (``INSTANCE_STATE``): the LXD ``InstanceState`` object;
- files and logs: see :class:`FileGet`, :class:`FilePut`, :class:`FileDelete`, :class:`LogQuery`;
- PATCH (``INSTANCE_PATCH``): ``None`` (LXD answers a PATCH synchronously).

Exec streams (``subjects.exec_io(op, fd)``; see :mod:`schemas.exec_io` for the protocol).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class InstanceSource(BaseModel):
    """Where a new instance comes from. Warren creates from a local image (or from nothing)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str = "image"
    alias: str | None = None
    fingerprint: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)
    server: str | None = None
    protocol: str | None = None
    mode: str | None = None


class CreateInstance(BaseModel):
    """``POST /1.0/instances`` (LXD ``InstancesPost``)."""

    model_config = ConfigDict(extra="ignore")

    name: str = ""
    type: str = "container"
    description: str = ""
    architecture: str = ""
    config: dict[str, str] = Field(default_factory=dict)
    devices: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: None: the default profile (as LXD); [] means no profile at all.
    profiles: list[str] | None = None
    ephemeral: bool = False
    stateful: bool = False
    instance_type: str = ""
    source: InstanceSource = Field(default_factory=InstanceSource)


class UpdateInstance(BaseModel):
    """``PUT`` (replace the writable fields) or ``PATCH`` (only those named in ``fields``)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    mode: Literal["put", "patch"] = "put"
    fields: list[str] = Field(default_factory=list)
    description: str = ""
    architecture: str = ""
    config: dict[str, str] = Field(default_factory=dict)
    devices: dict[str, dict[str, str]] = Field(default_factory=dict)
    profiles: list[str] = Field(default_factory=list)
    ephemeral: bool = False
    #: LXD's PUT with ``restore`` restores a snapshot; Warren has no snapshots yet.
    restore: str = ""


class RenameInstance(BaseModel):
    name: str
    new_name: str


class DeleteInstance(BaseModel):
    name: str


class InstanceListQuery(BaseModel):
    """``recursion`` 0: names, 1: objects, 2: objects with live state. ``all_projects``
    lists every project (each object carries its ``project``)."""

    recursion: int = 0
    all_projects: bool = False


class InstanceResult(BaseModel):
    """One instance in its LXD shape, its ETag, and the node it lives on."""

    object: dict[str, Any]
    etag: str
    node: str


class StateChange(BaseModel):
    """``PUT /1.0/instances/<name>/state`` (LXD ``InstanceStatePut``)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    action: Literal["start", "stop", "restart", "freeze", "unfreeze"]
    timeout: float = -1  # seconds; -1: LXD's default for the action
    force: bool = False
    stateful: bool = False


class StateQuery(BaseModel):
    name: str


class ExecStart(BaseModel):
    """``POST /1.0/instances/<name>/exec`` (LXD ``InstanceExecPost``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    command: list[str] = Field(min_length=1)
    environment: dict[str, str] = Field(default_factory=dict)
    cwd: str = ""
    user: int = 0
    group: int = 0
    interactive: bool = False
    width: int = 0
    height: int = 0
    wait_for_websocket: bool = Field(default=False, alias="wait-for-websocket")
    record_output: bool = Field(default=False, alias="record-output")


FileType = Literal["file", "directory", "symlink"]


class FileGet(BaseModel):
    """Read a path inside an instance. For a regular file the content is sent on
    ``subjects.stream(stream_id, 0)`` (a :mod:`schemas.bytestream` stream) after the reply,
    which is a :class:`FileInfo`; the caller starts its receiver before asking."""

    name: str
    path: str
    stream_id: str


class FileInfo(BaseModel):
    """What a path is (ids and mode as the container sees them)."""

    type: FileType
    uid: int
    gid: int
    mode: int  # permission bits
    size: int = 0
    entries: list[str] = Field(default_factory=list)  # directory: its names, sorted
    target: str = ""  # symlink: where it points


class FilePut(BaseModel):
    """Write a path inside an instance (``POST .../files``, LXD's X-LXD-* headers).

    ``type`` file: the reply is :class:`FilePutTicket`; the content then streams on
    ``subjects.stream(stream_id, 0)`` and that stream's final reply is the outcome.
    ``type`` directory or symlink (``target``): done in the reply (``None``).
    None ids/mode: LXD's defaults (0/0, 0644 for files, 0755 for directories; an existing
    file keeps its own unless given).
    """

    name: str
    path: str
    type: FileType = "file"
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    write: Literal["overwrite", "append"] = "overwrite"
    target: str = ""
    stream_id: str = ""


class FilePutTicket(BaseModel):
    stream_id: str


class FileDelete(BaseModel):
    name: str
    path: str


class LogQuery(BaseModel):
    """``file`` None lists the log files; otherwise one file's content (``console`` is the
    console log). Reply: a list of names, or :class:`LogContent`."""

    name: str
    file: str | None = None


class LogContent(BaseModel):
    content: bytes


class LogDelete(BaseModel):
    name: str
    file: str
