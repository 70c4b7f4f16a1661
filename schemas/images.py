"""Commands and queries of the image service (images and image aliases).

``RequestMeta.project`` is the ``?project=``; ``RequestMeta.if_match`` the ``If-Match``.
Results are LXD shapes (``schemas.lxd.images``) as plain dicts:

- image/alias list (:class:`ListQuery`): fingerprints / names (recursion 0) or objects;
- image/alias get, alias create/update: :class:`~schemas.catalog.ObjectResult`;
- image update, alias rename/delete: ``None``;
- upload (:class:`UploadBegin`): :class:`UploadTicket`; the body then streams over
  ``subjects.stream(upload_id, part)`` (part 0, and 1 for a split image's rootfs, see
  :mod:`schemas.bytestream`); the final reply of the last part is an
  :class:`~schemas.catalog.OperationResult` (the import continues as an LXD operation);
- image delete: :class:`~schemas.catalog.OperationResult` (recorded, then run);
- export (:class:`ExportBegin`): :class:`ExportTicket`; the service then sends each file on
  ``subjects.stream(export_id, i)`` in order to the receivers the caller subscribed first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.lxd.images import ImageAliasesPost, ImagePut


class ListQuery(BaseModel):
    recursion: int = 0


class ImageRef(BaseModel):
    """An image by fingerprint or unique fingerprint prefix."""

    fingerprint: str = Field(min_length=1, max_length=64)


class UpdateImage(ImagePut):
    """PUT replaces the writable fields; PATCH only those named in ``fields``."""

    fingerprint: str
    mode: Literal["put", "patch"] = "put"
    fields: list[str] = Field(default_factory=list)


class UploadBegin(BaseModel):
    """An upload is about to stream: unified (one part) or split (metadata + rootfs)."""

    split: bool = False
    #: X-LXD-filename; for a split image the rootfs part's file name (as LXD keeps it),
    #: sent as the ``filename`` trailer of part 1's end frame, wins.
    filename: str = ""
    public: bool = False
    properties: dict[str, str] = Field(default_factory=dict)
    #: X-LXD-fingerprint: the content must have this fingerprint.
    fingerprint: str | None = None
    #: The gateway's operation id for the import (a uuid).
    operation_id: str | None = None


class UploadTicket(BaseModel):
    upload_id: str
    parts: int


class ExportBegin(ImageRef):
    export_id: str


class ExportFile(BaseModel):
    """One file of an export: its part name (LXD's multipart field), file name and size."""

    field: str
    filename: str
    size: int


class ExportTicket(BaseModel):
    fingerprint: str
    files: list[ExportFile]


class AliasRef(BaseModel):
    name: str


class CreateAlias(ImageAliasesPost):
    pass


class UpdateAlias(BaseModel):
    name: str
    mode: Literal["put", "patch"] = "put"
    description: str = ""
    target: str = ""
    fields: list[str] = Field(default_factory=list)


class RenameAlias(BaseModel):
    name: str
    new_name: str
