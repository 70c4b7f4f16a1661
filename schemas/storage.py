"""Commands and queries of the storage service (node-scoped: ``subjects.storage(verb, node)``).

Results are LXD shapes (``schemas.lxd.storage``) as plain dicts:

- pool list (``schemas.catalog.ListQuery``): names (recursion 0) or pool objects;
- pool get, create, update: ``schemas.catalog.ObjectResult`` (``{"object", "etag"}``);
- pool delete: ``None``;
- pool resources (``schemas.catalog.ByName``): ``StoragePoolResources``;
- volume list (``VolumeQuery``): ``type/name`` strings (recursion 0) or volume objects;
- volume get (``VolumeQuery`` with ``type`` and ``name``): one volume object.

Pools are not project-scoped (LXD shares them across projects); ``RequestMeta.project`` only
shapes volume URLs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.lxd.storage import StoragePoolPut, StoragePoolsPost


class CreatePool(StoragePoolsPost):
    pass


class UpdatePool(StoragePoolPut):
    """PUT replaces description and config; PATCH merges only the fields in ``fields``."""

    name: str
    mode: Literal["put", "patch"] = "put"
    fields: list[str] = Field(default_factory=list)


class VolumeQuery(BaseModel):
    """Volumes of one pool, optionally of one type, or one volume by type and name."""

    pool: str
    type: str | None = None
    name: str | None = None
    recursion: int = 0
