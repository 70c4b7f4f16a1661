"""LXD shapes of storage pools, their volumes and resources, as the REST API uses them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    # LXD ignores unknown top-level fields of request bodies (``lxc storage edit`` sends back
    # name, driver, status... with the writable fields); values must still have the right type.
    model_config = ConfigDict(extra="ignore")


class StoragePoolPut(_Lenient):
    """Body of PUT /1.0/storage-pools/<name> (and what PATCH merges)."""

    description: str = ""
    config: dict[str, str] = Field(default_factory=dict)


class StoragePoolsPost(StoragePoolPut):
    """Body of POST /1.0/storage-pools."""

    name: str = ""
    driver: str = ""


class StoragePool(StoragePoolPut):
    """A storage pool as GET returns it."""

    name: str
    driver: str
    status: str = "Created"
    locations: list[str] = Field(default_factory=lambda: ["none"])
    used_by: list[str] = Field(default_factory=list)


class StorageVolume(BaseModel):
    """A volume of a pool (image and container volumes are the ones Warren makes)."""

    name: str
    type: str
    description: str = ""
    config: dict[str, str] = Field(default_factory=dict)
    used_by: list[str] = Field(default_factory=list)
    location: str = "none"
    content_type: str = "filesystem"
    project: str = "default"


class ResourcesCount(BaseModel):
    """Used and total of one resource (bytes or inodes)."""

    used: int = 0
    total: int = 0


class StoragePoolResources(BaseModel):
    """GET /1.0/storage-pools/<name>/resources."""

    space: ResourcesCount
    inodes: ResourcesCount


class StorageVolumeStateUsage(BaseModel):
    """Bytes a volume uses, and its size (0: no quota, as LXD 5.0 answers for instances)."""

    used: int = 0
    total: int = 0


class StorageVolumeState(BaseModel):
    """GET /1.0/storage-pools/<pool>/volumes/<type>/<name>/state."""

    usage: StorageVolumeStateUsage
