"""``metadata.yaml`` of an LXD image: a pydantic model, parsing with LXD-style errors, dumping.

LXD requires ``architecture`` and ``creation_date``; ``properties`` are the image's default
properties (``os``, ``release``, ``description``, ... by convention) and ``templates`` maps a path
inside the instance to a Pongo2 template file under ``templates/``.
"""

from __future__ import annotations

import posixpath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.errors import BadRequest

# metadata.yaml is tiny in practice; a cap keeps a hostile upload from costing memory.
MAX_METADATA_BYTES = 1024 * 1024

# Architecture names LXD accepts (its osarch table: canonical names and their aliases).
ARCHITECTURES: dict[str, str] = {
    "i686": "i686",
    "i386": "i686",
    "i586": "i686",
    "x86": "i686",
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "armv6l": "armv6l",
    "armel": "armv6l",
    "armv7l": "armv7l",
    "armhf": "armv7l",
    "armhfp": "armv7l",
    "armv7a": "armv7l",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "ppc": "ppc",
    "powerpc": "ppc",
    "ppc64": "ppc64",
    "powerpc64": "ppc64",
    "ppc64le": "ppc64le",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
    "mips": "mips",
    "mips64": "mips64",
    "riscv32": "riscv32",
    "riscv64": "riscv64",
}

Trigger = Literal["create", "copy", "start", "rename"]


class Template(BaseModel):
    """One entry of ``templates``: which file under ``templates/`` renders to the path, and when."""

    model_config = ConfigDict(extra="allow")

    when: list[Trigger] = Field(default_factory=list)
    template: str
    properties: dict[str, str] = Field(default_factory=dict)
    create_only: bool = False

    @field_validator("template")
    @classmethod
    def _inside_templates(cls, value: str) -> str:
        # The file is read from the image's templates/ directory on the host: no way out of it.
        norm = posixpath.normpath(value)
        if not value or value.startswith("/") or norm == ".." or norm.startswith("../"):
            raise ValueError(f"template file {value!r} must be a relative path inside templates/")
        return value


class ImageMetadata(BaseModel):
    """The parsed ``metadata.yaml``."""

    model_config = ConfigDict(extra="allow")

    architecture: str
    creation_date: int = Field(ge=0)
    expiry_date: int | None = Field(default=None, ge=0)
    properties: dict[str, str] = Field(default_factory=dict)
    templates: dict[str, Template] = Field(default_factory=dict)

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {value!r}")
        return value

    @field_validator("properties", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # YAML turns `release: 12` into an int; LXD properties are strings.
        if isinstance(value, dict):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value

    @field_validator("templates")
    @classmethod
    def _absolute_targets(cls, value: dict[str, Template]) -> dict[str, Template]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"template target {path!r} must be an absolute path")
        return value

    @property
    def canonical_architecture(self) -> str:
        """The architecture under LXD's canonical name (``amd64`` -> ``x86_64``)."""
        return ARCHITECTURES[self.architecture]


def parse_metadata(data: bytes) -> ImageMetadata:
    """Parse and validate ``metadata.yaml`` bytes; any problem is a :class:`BadRequest`."""
    if len(data) > MAX_METADATA_BYTES:
        raise BadRequest(f"metadata.yaml is larger than {MAX_METADATA_BYTES} bytes")
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise BadRequest(f"metadata.yaml is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise BadRequest("metadata.yaml must be a mapping")
    try:
        return ImageMetadata.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'metadata'}: {err['msg']}"
            for err in e.errors()
        )
        raise BadRequest(f"invalid metadata.yaml: {problems}") from None


def dump_metadata(meta: ImageMetadata) -> bytes:
    """``metadata.yaml`` bytes for ``meta`` (unset optional keys left out, as LXD writes it)."""
    data = meta.model_dump(exclude_none=True)
    for template in data.get("templates", {}).values():
        if not template.get("properties"):
            template.pop("properties", None)
        if not template.get("create_only"):
            template.pop("create_only", None)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).encode()
