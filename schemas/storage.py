"""Commands and queries of the storage service (node-scoped: ``subjects.storage(verb, node)``).

Results are LXD shapes (``schemas.lxd.storage``) as plain dicts:

- pool list (``schemas.catalog.ListQuery``): names (recursion 0) or pool objects;
- pool get, create, update: ``schemas.catalog.ObjectResult`` (``{"object", "etag"}``);
- pool delete: ``None``;
- pool resources (``schemas.catalog.ByName``): ``StoragePoolResources``;
- volume list (``VolumeQuery``): ``type/name`` strings (recursion 0) or volume objects;
- volume get (``VolumeQuery`` with ``type`` and ``name``): one volume object;
- volume state (``VolumeQuery`` with ``type`` and ``name``): ``StorageVolumeState`` (only
  container volumes have one; other types are a 400 as in LXD).

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


# -- volumes for instances (asked by the instance service on the same node) ------------------
#
# - ``image-volume-ensure`` (:class:`ImageVolumeEnsure`): the image's volume exists in the pool
#   afterwards (fetched from the blob store and unpacked once; concurrent asks share the
#   work); reply :class:`ImageVolumeReady`;
# - ``instance-volume-create`` (:class:`InstanceVolumeCreate`): a copy-on-write clone of the
#   image volume named ``name`` (the instance's host name); ``None``, or with ``mount`` the
#   clone mounted and its :class:`MountedVolume`. Conflict if it exists;
# - ``instance-volume-mount`` (:class:`InstanceVolumeRef`): mounted (idempotent); reply
#   :class:`MountedVolume`;
# - ``instance-volume-unmount`` / ``instance-volume-delete`` (:class:`InstanceVolumeRef`):
#   ``None``; both idempotent (deleting a volume that is not there is not an error);
# - ``instance-volume-list`` (:class:`InstanceVolumeList`): the host names of the pool's
#   instance volumes, sorted (what the instance service reconciles against; the LXD listing
#   shows instance names instead);
# - ``instance-volume-usage`` (:class:`InstanceVolumeUsageQuery`): what many instance volumes
#   hold of their own, in one request (a listing's worth); reply :class:`InstanceVolumeUsages`.
#   Volumes that do not exist, or whose pool is unknown or unavailable, are left out;
# - ``image-volume-templates`` (:class:`ImageTemplatesQuery`): the ``templates`` of the image
#   volume's ``metadata.yaml`` and the content of the template files they name; reply
#   :class:`ImageTemplates` (empty when the image has no metadata.yaml). ``NotFound`` when
#   the pool holds no volume of that image.


class VolumeIdMap(BaseModel):
    """Container ids 0..count-1 are host ids host_base.. (uids and gids alike)."""

    host_base: int = Field(default=1_000_000, ge=1)
    count: int = Field(default=65_536, ge=1)


class ImageVolumeEnsure(BaseModel):
    pool: str
    fingerprint: str


class ImageVolumeReady(BaseModel):
    fingerprint: str
    #: False when the volume was there already.
    created: bool


class InstanceVolumeCreate(BaseModel):
    pool: str
    name: str
    fingerprint: str
    #: None: privileged (the clone is not shifted).
    idmap: VolumeIdMap | None = None
    #: Mount the clone too, and reply its :class:`MountedVolume`.
    mount: bool = False


class InstanceVolumeList(BaseModel):
    pool: str


class InstanceVolumeRef(BaseModel):
    pool: str
    name: str


class MountedVolume(BaseModel):
    """Where the instance's root filesystem is, and how it is shifted (the pool driver's
    ``Capabilities.rootfs_shift``): ``idmapped-mount`` means already shown shifted."""

    path: str
    rootfs_shift: Literal["idmapped-mount", "lxc-idmap", "none"]


class InstanceVolumeUsageQuery(BaseModel):
    """The usage of these instance volumes (host names); None: every instance volume of
    every pool of the node."""

    volumes: list[InstanceVolumeRef] | None = None


class InstanceVolumeUsage(BaseModel):
    """What one instance volume holds of its own (its root's own bytes, not its image's)."""

    pool: str
    name: str
    used: int
    #: The volume's quota in bytes; 0: none.
    total: int = 0


class InstanceVolumeUsages(BaseModel):
    volumes: list[InstanceVolumeUsage] = Field(default_factory=list)


class ImageTemplatesQuery(BaseModel):
    pool: str
    fingerprint: str


class ImageTemplate(BaseModel):
    """One ``templates`` entry of an image's metadata.yaml: the file under ``templates/``
    rendered to the entry's path in the instance, on which triggers."""

    when: list[str] = Field(default_factory=list)
    template: str
    create_only: bool = False
    properties: dict[str, str] = Field(default_factory=dict)


class ImageTemplates(BaseModel):
    """An image's templates (path in the instance -> entry) and the text of each template
    file they name (a file missing from ``templates/`` is left out of ``files``)."""

    templates: dict[str, ImageTemplate] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
