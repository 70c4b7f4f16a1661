"""LXD shapes of images and image aliases, as the REST API returns and accepts them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: What LXD writes for a time that was never set (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"


class _Lenient(BaseModel):
    # LXD ignores unknown fields in request bodies; values must still have the right types.
    model_config = ConfigDict(extra="ignore")


class ImagePut(_Lenient):
    """Body of PUT /1.0/images/<fingerprint> (and what PATCH merges)."""

    auto_update: bool = False
    properties: dict[str, str] = Field(default_factory=dict)
    public: bool = False
    expires_at: str = ZERO_TIME
    profiles: list[str] = Field(default_factory=lambda: ["default"])


class ImageAlias(BaseModel):
    """An alias as listed inside an image."""

    name: str
    description: str = ""


class Image(ImagePut):
    """An image as GET returns it."""

    aliases: list[ImageAlias] = Field(default_factory=list)
    architecture: str
    cached: bool = False
    filename: str = ""
    fingerprint: str
    size: int
    update_source: dict[str, Any] | None = None
    type: str = "container"
    created_at: str = ZERO_TIME
    last_used_at: str = ZERO_TIME
    uploaded_at: str = ZERO_TIME


class ImagesPost(_Lenient):
    """Body of a JSON POST /1.0/images (remote sources; Warren only takes uploads)."""

    source: dict[str, Any] | None = None
    public: bool = False
    auto_update: bool = False
    filename: str = ""
    properties: dict[str, str] = Field(default_factory=dict)
    aliases: list[ImageAlias] = Field(default_factory=list)


class ImageAliasesEntryPut(_Lenient):
    """Body of PUT /1.0/images/aliases/<name>."""

    description: str = ""
    target: str


class ImageAliasesPost(ImageAliasesEntryPut):
    """Body of POST /1.0/images/aliases."""

    name: str
    type: str = ""


class ImageAliasesEntry(BaseModel):
    """An alias as GET returns it."""

    name: str
    description: str = ""
    target: str
    type: str = "container"


class ImageAliasesEntryPost(_Lenient):
    """Body of POST /1.0/images/aliases/<name> (rename)."""

    name: str
